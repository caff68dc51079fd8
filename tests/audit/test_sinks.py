"""Tests of the audit sinks: the local file, syslog over UDP and TCP to real listeners, and their composition."""

from __future__ import annotations

import logging
import os
import re
import socket
import stat
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from dcmseal.audit import (
    AuditEvent,
    EventOutcome,
    FileSink,
    MultiSink,
    PatientRef,
    SyslogSink,
    SyslogTransport,
    format_syslog_message,
    sink_from_settings,
    syslog_priority,
    to_xml,
    validate_message,
)
from dcmseal.errors import InputError, PeerError, UsageError
from tests.audit.events import (
    FIXED_TIME,
    PATIENT_ID,
    PATIENT_NAME,
    fixed_now,
    make_alert,
    make_export,
    make_import,
)

RECEIVE_TIMEOUT_S = 5.0
# RFC 5424 Section 6: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]
SYSLOG_MSG = re.compile(
    rb"<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) (?P<timestamp>\S+) (?P<hostname>\S+) (?P<app>\S+) "
    rb"(?P<procid>\S+) (?P<msgid>\S+) (?P<sd>-|\[.*?\]) (?P<msg>.*)",
    re.DOTALL,
)
BOM = b"\xef\xbb\xbf"
SYSLOG_TIME = "2024-05-06T05:08:09.123000Z"


@dataclass(frozen=True)
class Frame:
    pri: int
    version: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: str
    xml: bytes


def parse_syslog(message: bytes) -> Frame:
    """Split an RFC 5424 SYSLOG-MSG whose MSG is MSG-UTF8 (BOM then UTF-8)."""
    match = SYSLOG_MSG.fullmatch(message)
    assert match is not None, message[:200]
    msg = match["msg"]
    assert msg.startswith(BOM), "MSG must be MSG-UTF8 (RFC 5424 Section 6.4)"
    return Frame(
        pri=int(match["pri"]),
        version=int(match["version"]),
        timestamp=match["timestamp"].decode("ascii"),
        hostname=match["hostname"].decode("ascii"),
        app_name=match["app"].decode("ascii"),
        procid=match["procid"].decode("ascii"),
        msgid=match["msgid"].decode("ascii"),
        structured_data=match["sd"].decode("ascii"),
        xml=msg[len(BOM) :],
    )


def split_octet_counted(stream: bytes) -> list[bytes]:
    """Split an RFC 6587 Section 3.4.1 stream: SYSLOG-FRAME = MSG-LEN SP SYSLOG-MSG."""
    frames = []
    while stream:
        length, space, rest = stream.partition(b" ")
        assert space, stream[:20]
        assert length.isdigit(), stream[:20]
        assert not length.startswith(b"0"), stream[:20]
        size = int(length)
        assert len(rest) >= size, f"frame announces {size} octets, {len(rest)} arrived"
        frames.append(rest[:size])
        stream = rest[size:]
    return frames


def events() -> list[AuditEvent]:
    return [make_export(), make_import(), make_alert()]


# --- FileSink -----------------------------------------------------------------------------------------------


def test_file_sink_writes_one_valid_message_per_line(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    sink = FileSink(log)
    written = events() * 3
    for event in written:
        sink.emit(event)
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert lines[:-1] == [to_xml(event) for event in written]
    for line in lines[:-1]:
        assert validate_message(line) == []


def test_file_sink_appends_and_creates_private_files(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    FileSink(log).emit(make_export())
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    FileSink(log).emit(make_alert())
    assert len(log.read_bytes().splitlines()) == 2


def test_concurrent_writers_never_interleave_inside_a_line(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    sink = FileSink(log)
    event = make_export()

    def write() -> None:
        for _ in range(25):
            sink.emit(event)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    lines = log.read_bytes().splitlines()
    assert len(lines) == 100
    assert set(lines) == {to_xml(event)}


def test_file_sink_failure_names_the_path(tmp_path: Path) -> None:
    log = tmp_path / "missing-directory" / "audit.log"
    with pytest.raises(InputError) as caught:
        FileSink(log).emit(make_export())
    assert str(caught.value).startswith(f"{log}: cannot open the audit log")


# --- the syslog message -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "pri"),
    [
        (make_export(), 85),  # facility 10 * 8 + notice 5: "<85>" of PS3.15 A.6/A.7
        (make_import(), 84),  # minor failure: warning 4
        (make_export(outcome=EventOutcome.SERIOUS_FAILURE), 84),
        (make_export(outcome=EventOutcome.MAJOR_FAILURE), 84),
        (make_alert(), 81),  # security alert: alert 1
        (make_alert(outcome=EventOutcome.MAJOR_FAILURE), 81),
    ],
)
def test_priority(event: AuditEvent, pri: int) -> None:
    assert syslog_priority(event) == pri


def test_syslog_message_known_answer() -> None:
    message = format_syslog_message(
        make_export(),
        app_name="dcmseal",
        hostname="ws1.hospital.example",
        procid="4242",
        timestamp=FIXED_TIME,
    )
    header = b"<85>1 2024-05-06T05:08:09.123000Z ws1.hospital.example dcmseal 4242 DICOM+RFC3881 - "
    assert message == header + BOM + to_xml(make_export())


def test_syslog_header_fields_are_printable_ascii() -> None:
    message = format_syslog_message(
        make_export(), app_name="dcmseal", hostname="my host\u00e9", procid="1", timestamp=FIXED_TIME
    )
    assert parse_syslog(message).hostname == "my_host_"


def test_syslog_sink_refuses_misuse() -> None:
    with pytest.raises(ValueError, match="sctp"):
        SyslogSink("127.0.0.1", 514, transport="sctp")
    with pytest.raises(ValueError, match="APP-NAME"):
        SyslogSink("127.0.0.1", 514, app_name="x" * 49)
    with pytest.raises(ValueError, match="port"):
        SyslogSink("127.0.0.1", 0)
    sink = SyslogSink("127.0.0.1", 9, now=lambda: datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        sink.emit(make_export())


# --- SyslogSink over UDP and TCP to real listeners ----------------------------------------------------------


def _check_frame(frame: Frame, event: AuditEvent) -> None:
    assert frame.pri == syslog_priority(event)
    assert frame.version == 1
    assert frame.timestamp == SYSLOG_TIME
    assert frame.hostname == "audit-test-host"
    assert frame.app_name == "dcmseal"
    assert frame.procid == str(os.getpid())
    assert frame.msgid == "DICOM+RFC3881"
    assert frame.structured_data == "-"
    assert frame.xml == to_xml(event)
    assert validate_message(frame.xml) == []


def test_syslog_over_udp_to_a_real_listener() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(RECEIVE_TIMEOUT_S)
        port = listener.getsockname()[1]
        sink = SyslogSink("127.0.0.1", port, transport="udp", hostname="audit-test-host", now=fixed_now)
        sent = events()
        for event in sent:
            sink.emit(event)
        received = [listener.recvfrom(65535)[0] for _ in sent]
    frames = {frame.pri: frame for frame in map(parse_syslog, received)}
    assert len(frames) == len(sent)
    for event in sent:
        _check_frame(frames[syslog_priority(event)], event)


@dataclass
class TcpListener:
    """A syslog receiver on 127.0.0.1 that takes ``expected`` connections, each read to its end."""

    expected: int
    streams: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(RECEIVE_TIMEOUT_S)
        self.port: int = self.socket.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.socket:
            for _ in range(self.expected):
                connection, _ = self.socket.accept()
                with connection:
                    connection.settimeout(RECEIVE_TIMEOUT_S)
                    chunks = []
                    while chunk := connection.recv(65536):
                        chunks.append(chunk)
                self.streams.append(b"".join(chunks))

    def join(self) -> list[bytes]:
        self.thread.join(timeout=RECEIVE_TIMEOUT_S * (self.expected + 1))
        assert not self.thread.is_alive(), "the listener did not get every connection"
        return self.streams


def test_syslog_over_tcp_with_octet_counting() -> None:
    sent = events()
    listener = TcpListener(expected=len(sent))
    sink = SyslogSink(
        "127.0.0.1", listener.port, transport=SyslogTransport.TCP, hostname="audit-test-host", now=fixed_now
    )
    for event in sent:
        sink.emit(event)
    streams = listener.join()
    assert len(streams) == len(sent)
    for stream, event in zip(streams, sent, strict=True):
        (message,) = split_octet_counted(stream)
        length = stream.split(b" ", 1)[0]
        assert int(length) == len(message) == len(stream) - len(length) - 1
        _check_frame(parse_syslog(message), event)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_tcp_to_a_closed_port_is_a_peer_error() -> None:
    port = _closed_port()
    sink = SyslogSink("127.0.0.1", port, transport="tcp", now=fixed_now)
    with pytest.raises(PeerError) as caught:
        sink.emit(make_export())
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "(tcp)" in message
    assert PATIENT_NAME not in message


def test_udp_datagram_too_large_is_a_peer_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dcmseal")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        sink = SyslogSink("127.0.0.1", listener.getsockname()[1], now=fixed_now)
        with pytest.raises(PeerError, match=r"127\.0\.0\.1:\d+ \(udp\)"):
            sink.emit(make_import(description="x" * 70_000))
    assert "RFC 5426" in caplog.text


# --- MultiSink and sink_from_settings -----------------------------------------------------------------------


@dataclass
class RecordingSink:
    received: list[AuditEvent] = field(default_factory=list)

    def emit(self, event: AuditEvent) -> None:
        self.received.append(event)


@dataclass
class FailingSink:
    name: str

    def emit(self, event: AuditEvent) -> None:
        raise PeerError(f"{self.name} is down")


def test_multi_sink_reaches_every_sink_then_raises_the_first_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = RecordingSink(), RecordingSink()
    sink = MultiSink([first, FailingSink("alpha"), second, FailingSink("beta")])
    event = make_export()
    with pytest.raises(PeerError, match="alpha is down"):
        sink.emit(event)
    assert first.received == [event]
    assert second.received == [event]
    assert "beta is down" in caplog.text


def test_multi_sink_passes_events_on() -> None:
    first, second = RecordingSink(), RecordingSink()
    MultiSink(iter([first, second])).emit(make_alert())
    assert len(first.received) == len(second.received) == 1


def test_sink_from_settings_builds_what_is_configured(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    assert sink_from_settings(log, None) == FileSink(log)
    assert sink_from_settings(None, "udp://127.0.0.1:5514") == SyslogSink("127.0.0.1", 5514, transport="udp")
    assert sink_from_settings(None, "TCP://[::1]:6514") == SyslogSink("::1", 6514, transport="tcp")
    assert sink_from_settings(None, "udp://loghost.example") == SyslogSink("loghost.example", 514)
    both = sink_from_settings(log, "tcp://127.0.0.1:601")
    assert isinstance(both, MultiSink)
    assert both.sinks == (FileSink(log), SyslogSink("127.0.0.1", 601, transport="tcp"))
    nothing = sink_from_settings(None, None)
    assert nothing == MultiSink([])
    nothing.emit(make_export())


@pytest.mark.parametrize(
    "target",
    [
        "http://loghost:514",
        "udp://:514",
        "udp://loghost:99999",
        "udp://loghost:port",
        "loghost:514",
        "tcp://h:1/x",
    ],
)
def test_sink_from_settings_refuses_bad_targets(target: str) -> None:
    with pytest.raises(UsageError, match="udp://host:port"):
        sink_from_settings(None, target)


# --- privacy ------------------------------------------------------------------------------------------------


def test_no_patient_identifier_reaches_the_log(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG, logger="dcmseal")
    patients = [PatientRef(patient_id=PATIENT_ID, name=PATIENT_NAME)]
    sent = [make_export(patients=patients), make_import(patients=patients), make_alert(patients=patients)]
    file_sink = FileSink(tmp_path / "audit.log")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        udp = SyslogSink("127.0.0.1", listener.getsockname()[1], now=fixed_now)
        tcp = SyslogSink("127.0.0.1", _closed_port(), transport="tcp", now=fixed_now)
        for event in sent:
            validate_message(to_xml(event))
            validate_message(to_xml(event).replace(b'EventActionCode="', b'EventActionCode="X'))
            with pytest.raises(PeerError):
                MultiSink([file_sink, udp, tcp, FailingSink("spare")]).emit(event)
        with pytest.raises(PeerError):
            udp.emit(make_import(patients=patients, description="x" * 70_000))
    assert PATIENT_NAME.encode() in (tmp_path / "audit.log").read_bytes()  # the audit trail has it
    assert caplog.records, "the library logged nothing: this test would prove nothing"
    for record in caplog.records:
        rendered = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        assert PATIENT_NAME not in rendered
        assert "Smithwick" not in rendered
        assert PATIENT_ID not in rendered
