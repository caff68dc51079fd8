"""Tests of batch sealing and unsealing: every file accounted for, one PBKDF2 derivation per set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dcmseal import cms
from dcmseal.errors import DecryptionError, ExitCode, MissingInputError, UsageError
from dcmseal.outcomes import ReasonKind
from dcmseal.part10 import (
    FileOutcome,
    FileStatus,
    SealPlan,
    UnsealPlan,
    is_secure_file,
    seal_tree,
    unseal_tree,
)
from tests.cli.runner import run_dcmseal
from tests.jsondoc import array_at, member
from tests.part10.dicomfiles import PASSWORD, copy_ct_small, fast_kdf, leftovers, snapshot, write_part10

PW = PASSWORD.encode()
SET_SIZE = 200


def _plan() -> SealPlan:
    return SealPlan(password=PW, kdf=fast_kdf())


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SET_SIZE copies of one small Part 10 file, in two folders."""
    root = tmp_path_factory.mktemp("set") / "study"
    template = write_part10(root / "template.tmp", pixel_bytes=16)
    for index in range(SET_SIZE):
        target = root / f"series{index % 2}" / f"IM{index:05d}.dcm"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(template, target)
    template.unlink()
    return root


# -- every file accounted for -----------------------------------------------------------------------------
def test_every_file_has_one_outcome(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    copy_ct_small(inputs / "IM0001")
    write_part10(inputs / "sub" / "IM0002")
    write_part10(inputs / "sub" / "IM0003", preamble=b"MZ" + bytes(126))
    (inputs / "sub" / "README.txt").write_text("burned by the PACS export\n")
    out = tmp_path / "out"
    seen: list[FileOutcome] = []
    report = seal_tree([inputs], out, _plan(), workers=1, on_outcome=seen.append)

    by_source = {o.source.relative_to(inputs).as_posix(): o for o in report.outcomes}
    assert sorted(by_source) == ["IM0001", "sub/IM0002", "sub/IM0003", "sub/README.txt"]
    assert len(seen) == len(report.outcomes) == 4
    text = by_source["sub/README.txt"]
    assert text.status == "failed"
    assert text.destination is None
    assert text.reason is not None
    assert text.reason.startswith(f"{inputs / 'sub' / 'README.txt'}: not a DICOM PS3.10 file")
    assert text.exit_code == ExitCode.INPUT
    assert report.exit_code == ExitCode.INPUT
    assert [o.status for o in report.outcomes if o is not text] == ["sealed"] * 3
    assert sorted(p.relative_to(out).as_posix() for p in leftovers(out)) == [
        "IM0001",
        "sub/IM0002",
        "sub/IM0003",
    ]
    assert all(is_secure_file(p) for p in leftovers(out))

    document = report.to_json()
    assert document["schema"] == "dcmseal.seal/1"
    assert member(document, "summary", "total") == 4
    assert member(document, "summary", "failed") == 1
    statuses = {member(f, "source"): member(f, "status") for f in array_at(document, "files")}
    assert statuses[str(inputs / "sub" / "README.txt")] == "failed"


def test_unseal_tree_accounts_for_every_file(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    write_part10(inputs / "a.dcm")
    write_part10(inputs / "b.dcm")
    sealed = tmp_path / "sealed"
    seal_tree([inputs], sealed, _plan(), workers=1)
    (sealed / "c-corrupt.dcm").write_bytes((sealed / "a.dcm").read_bytes()[:100])
    copy_ct_small(sealed / "d-plain.dcm")
    report = unseal_tree([sealed], tmp_path / "open", UnsealPlan(passwords=(PW,)), workers=1)

    statuses = {o.source.name: o.status for o in report.outcomes}
    assert statuses == {
        "a.dcm": "unsealed",
        "b.dcm": "unsealed",
        "c-corrupt.dcm": "failed",
        "d-plain.dcm": "failed",
    }
    assert report.exit_code == ExitCode.INPUT
    assert sorted(p.name for p in leftovers(tmp_path / "open")) == ["a.dcm", "b.dcm"]
    for outcome in report.failed:
        assert outcome.reason is not None
        assert outcome.reason.startswith(f"{outcome.source}: ")


def test_second_run_reports_existing_outputs_and_force_overwrites(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    write_part10(inputs / "a.dcm")
    write_part10(inputs / "b.dcm")
    out = tmp_path / "out"
    assert not seal_tree([inputs], out, _plan(), workers=1).failed
    first = snapshot(out)

    again = seal_tree([inputs], out, _plan(), workers=1)
    assert [o.status for o in again.outcomes] == ["failed", "failed"]
    for outcome in again.outcomes:
        assert outcome.reason == f"{out / outcome.source.name}: already exists (use --force to overwrite)"
    assert snapshot(out) == first

    forced = seal_tree([inputs], out, _plan(), workers=1, overwrite=True)
    assert [o.status for o in forced.outcomes] == ["sealed", "sealed"]
    assert {k: v.sha256 for k, v in snapshot(out).items()} != {k: v.sha256 for k, v in first.items()}


def test_two_inputs_with_one_name_never_share_an_output(tmp_path: Path) -> None:
    # Two studies exported with the same file names, given together: neither may silently replace the
    # other (with or without overwrite), and every file must be accounted for.
    first = write_part10(tmp_path / "study1" / "IM0001")
    second = write_part10(tmp_path / "study2" / "IM0001")
    out = tmp_path / "out"
    report = seal_tree([first, second], out, _plan(), workers=1, overwrite=True)

    sealed = [o for o in report.outcomes if o.status == "sealed"]
    destinations = [o.destination for o in sealed]
    assert len(set(destinations)) == len(destinations), [(o.source, o.destination) for o in report.outcomes]
    assert len(leftovers(out)) == len(sealed)


def test_missing_input_is_an_input_error_and_output_inside_input_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError):  # exit 1, as a missing input is in every command
        seal_tree([tmp_path / "missing"], tmp_path / "out", _plan(), workers=1)
    inputs = tmp_path / "in"
    write_part10(inputs / "a.dcm")
    with pytest.raises(UsageError):
        seal_tree([inputs], inputs, _plan(), workers=1)


def test_output_folder_inside_the_input_is_not_read_back(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    write_part10(inputs / "a.dcm")
    report = seal_tree([inputs], inputs / "sealed", _plan(), workers=1)
    assert [o.source.name for o in report.outcomes] == ["a.dcm"]
    again = seal_tree([inputs], inputs / "sealed", _plan(), workers=1, overwrite=True)
    assert [o.source.name for o in again.outcomes] == ["a.dcm"]


# -- KEK reuse: one derivation for the set, on either side ---------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2], ids=["serial", "process-pool"])
def test_one_pbkdf2_derivation_for_200_files(small_set: Path, tmp_path: Path, workers: int) -> None:
    context = cms.Context()  # one run: sealing, then opening here
    cache = context.kdf_cache
    before = cache.derivations
    sealed = tmp_path / "sealed"
    report = seal_tree([small_set], sealed, _plan(), workers=workers, context=context)

    assert len(report.outcomes) == SET_SIZE
    assert not report.failed
    assert report.workers == workers
    assert report.pbkdf2_derivations == 1
    assert cache.derivations - before == 1  # nothing else derived in this run either

    # Within this run the key is cached already: opening the set derives nothing more.
    opened_here = unseal_tree(
        [sealed], tmp_path / "open-here", UnsealPlan(passwords=(PW,)), workers=1, context=context
    )
    assert not opened_here.failed
    assert opened_here.pbkdf2_derivations == 0

    # A fresh process (the reader at the other end) derives exactly once for the whole set.
    run = run_dcmseal(
        "unseal",
        sealed,
        "--out",
        tmp_path / "open",
        "--password-env",
        "DCMSEAL_TEST_PASSWORD",
        "--json",
        "--workers",
        str(workers),
        home=tmp_path,
        env={"DCMSEAL_TEST_PASSWORD": PASSWORD},
    )
    assert run.code == 0, run.stderr
    summary = run.json()["summary"]
    assert summary["total"] == SET_SIZE
    assert summary["ok"] == SET_SIZE
    assert summary["workers"] == workers
    assert summary["pbkdf2_derivations"] == 1
    opened = {name: state.sha256 for name, state in snapshot(tmp_path / "open").items()}
    assert opened == {name: state.sha256 for name, state in snapshot(tmp_path / "open-here").items()}
    assert opened.keys() == snapshot(small_set).keys()


# -- a rerun of unseal resumes ----------------------------------------------------------------------------------
def _sealed_set(tmp_path: Path, count: int = 3) -> tuple[Path, Path]:
    inputs = tmp_path / "in"
    for index in range(count):
        write_part10(inputs / f"IM{index}.dcm")
    sealed = tmp_path / "sealed"
    assert not seal_tree([inputs], sealed, _plan(), workers=1).failed
    return inputs, sealed


def test_a_rerun_skips_what_an_earlier_unseal_finished(tmp_path: Path) -> None:
    inputs, sealed = _sealed_set(tmp_path)
    out = tmp_path / "out"
    plan = UnsealPlan(passwords=(PW,))
    assert [o.status for o in unseal_tree([sealed], out, plan, workers=1).outcomes] == ["unsealed"] * 3
    (out / "IM1.dcm").unlink()  # as if the first run had been killed before this file
    first = snapshot(out)

    again = unseal_tree([sealed], out, plan, workers=1)
    assert not again.failed
    assert sorted((o.source.name, o.status) for o in again.outcomes) == [
        ("IM0.dcm", "skipped"),
        ("IM1.dcm", "unsealed"),
        ("IM2.dcm", "skipped"),
    ]
    assert again.pbkdf2_derivations <= 1
    after = snapshot(out)
    assert {k: after[k] for k in first} == first  # the finished outputs were not touched
    for name in ("IM0.dcm", "IM1.dcm", "IM2.dcm"):
        assert (out / name).read_bytes() == (inputs / name).read_bytes()
    assert member(again.to_json(), "summary", "skipped") == 2


def test_a_rerun_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    """Same name, but not the file recorded (someone wrote it, or changed it since): refused, left alone."""
    _, sealed = _sealed_set(tmp_path)
    out = tmp_path / "out"
    plan = UnsealPlan(passwords=(PW,))
    assert not unseal_tree([sealed], out, plan, workers=1).failed
    (out / "IM0.dcm").unlink()
    (out / "IM0.dcm").write_bytes(b"the user's own file")
    with open(out / "IM2.dcm", "ab") as changed:
        changed.write(b"an edit")
    edited = (out / "IM2.dcm").read_bytes()

    again = unseal_tree([sealed], out, plan, workers=1)
    assert sorted((o.source.name, o.status) for o in again.outcomes) == [
        ("IM0.dcm", "failed"),
        ("IM1.dcm", "skipped"),
        ("IM2.dcm", "failed"),
    ]
    for outcome in again.failed:
        assert outcome.reason is not None
        assert "already exists (use --force" in outcome.reason
    assert (out / "IM0.dcm").read_bytes() == b"the user's own file"
    assert (out / "IM2.dcm").read_bytes() == edited


def test_a_changed_source_is_unsealed_again_only_with_force(tmp_path: Path) -> None:
    inputs, sealed = _sealed_set(tmp_path, count=1)
    out = tmp_path / "out"
    plan = UnsealPlan(passwords=(PW,))
    assert not unseal_tree([sealed], out, plan, workers=1).failed
    write_part10(inputs / "IM0.dcm", patient_name="Other^Patient")
    assert not seal_tree([inputs], sealed, _plan(), workers=1, overwrite=True).failed  # a new envelope

    again = unseal_tree([sealed], out, plan, workers=1)
    assert [o.status for o in again.outcomes] == ["failed"]
    forced = unseal_tree([sealed], out, plan, workers=1, overwrite=True)
    assert [o.status for o in forced.outcomes] == ["unsealed"]
    assert (out / "IM0.dcm").read_bytes() == (inputs / "IM0.dcm").read_bytes()


def test_a_wrong_password_in_a_worker_is_a_wrong_key_outcome(small_set: Path, tmp_path: Path) -> None:
    """Each outcome says its kind, also from a worker process: a program tests it, never the words."""
    sealed = seal_tree([small_set / "series0"], tmp_path / "sealed", _plan(), workers=1)
    assert {o.status for o in sealed.outcomes} == {FileStatus.SEALED}
    report = unseal_tree(
        [tmp_path / "sealed"], tmp_path / "out", UnsealPlan(passwords=(b"not the password",)), workers=2
    )
    assert report.workers == 2
    assert len(report.failed) == len(report.outcomes) == SET_SIZE // 2
    for outcome in report.outcomes:
        assert outcome.status is FileStatus.FAILED
        assert outcome.kind is ReasonKind.WRONG_KEY
        assert outcome.reason == str(DecryptionError(path=outcome.source))
    assert member(report.to_json(), "summary", "failed") == SET_SIZE // 2
    assert {member(f, "status") for f in array_at(report.to_json(), "files")} == {"failed"}
