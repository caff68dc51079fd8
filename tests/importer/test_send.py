"""Targets, C-STORE to DCMTK storescp, and retries against a port nobody listens on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmseal.errors import PeerError, UsageError
from dcmseal.importer import DicomWebTarget, DimseTarget, RetryPolicy, deliver, parse_target
from dcmseal.importer.dimse import DimseSender
from tests.importer.conftest import FAST_RETRY, OUR_AET, StoreScp, foreign_study, outgoing
from tests.peers.orthanc import free_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dicom://PACS@pacs.example:11112", DimseTarget("PACS", "pacs.example", 11112)),
        ("dicom://MY AE@127.0.0.1:104", DimseTarget("MY AE", "127.0.0.1", 104)),
        # No port: DICOM's well-known port, as DCMTK's storescu assumes.
        ("dicom://PACS@pacs.example", DimseTarget("PACS", "pacs.example", 104)),
        ("https://pacs.example/dicom-web/", DicomWebTarget("https://pacs.example/dicom-web")),
        ("http://127.0.0.1:8042/dicom-web", DicomWebTarget("http://127.0.0.1:8042/dicom-web")),
    ],
)
def test_targets_parse(text: str, expected: object) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("dicom://127.0.0.1:104", r"dicom://AET@host\[:port\]"),
        ("dicom://PACS@127.0.0.1:notaport", "the port is a number"),
        ("dicom://WAY-TOO-LONG-AE-TITLE@h:1", "not an AE title"),
        ("https://user:secret@pacs.example/dicom-web", "no credentials in the URL"),
        ("ftp://pacs.example", "give dicom://"),
    ],
)
def test_bad_targets_are_usage_errors(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem) as caught:
        parse_target(text)
    assert "secret" not in str(caught.value)


@pytest.mark.interop
def test_c_store_to_storescp_confirms_each_instance(tmp_path: Path, storescp: StoreScp) -> None:
    items = outgoing(foreign_study(tmp_path / "src", 3))
    sender = DimseSender(
        storescp.target, calling_aet=OUR_AET, pairs=[(i.sop_class_uid, i.transfer_syntax_uid) for i in items]
    )
    attempts: list[int] = []
    try:
        answers = deliver(
            sender,
            items,
            FAST_RETRY,
            target=storescp.target,
            before_attempt=lambda c: attempts.append(len(c)),
        )
    finally:
        sender.close()
    assert attempts == [3]
    assert [a.stored for a in answers] == [True, True, True]
    assert {a.confirmation["status"] for a in answers} == {"0x0000"}
    received = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in storescp.received()}
    assert received == {i.sop_instance_uid for i in items}


def test_a_peer_that_never_answers_is_retried_then_a_clear_failure(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    target = DimseTarget("NOBODY", "127.0.0.1", port)
    items = outgoing(foreign_study(tmp_path / "src", 1))
    sender = DimseSender(
        target, calling_aet=OUR_AET, pairs=[(items[0].sop_class_uid, items[0].transfer_syntax_uid)]
    )
    attempts: list[int] = []
    pauses: list[float] = []
    policy = RetryPolicy(attempts=4, initial_delay_s=0.05, max_delay_s=0.1, max_total_s=10)
    started = time.monotonic()
    with pytest.raises(PeerError) as caught:
        deliver(
            sender,
            items,
            policy,
            target=target,
            before_attempt=lambda c: attempts.append(len(c)),
            sleep=pauses.append,  # recorded, not slept: the policy's pauses are what is checked
        )
    sender.close()
    assert attempts == [1, 1, 1, 1]
    assert pauses == [0.05, 0.1, 0.1]  # exponential, capped
    message = str(caught.value)
    assert message.startswith(f"dicom://NOBODY@127.0.0.1:{port}: ")
    assert message.count("dicom://") == 1
    assert "cannot connect" in message
    assert "gave up after 4 attempt(s)" in message
    assert time.monotonic() - started < 60


def test_the_total_time_bounds_the_retries(tmp_path: Path) -> None:
    target = DimseTarget("NOBODY", "127.0.0.1", free_port())
    items = outgoing(foreign_study(tmp_path / "src", 1))
    sender = DimseSender(
        target, calling_aet=OUR_AET, pairs=[(items[0].sop_class_uid, items[0].transfer_syntax_uid)]
    )
    attempts: list[int] = []
    clock = iter([0.0, 1.0, 2.5, 100.0, 200.0])  # the injected clock says 2.5 s went by after two attempts
    with pytest.raises(PeerError, match=r"gave up after 2 attempt\(s\)"):
        deliver(
            sender,
            items,
            RetryPolicy(attempts=10, initial_delay_s=1.0, max_total_s=3.0),
            target=target,
            before_attempt=lambda c: attempts.append(len(c)),
            sleep=lambda _s: None,
            clock=lambda: next(clock),
        )
    sender.close()
    assert len(attempts) == 2
