"""The sinks audit messages are written to: an append-only file, syslog (RFC 5424 over UDP or TCP), or several."""

from __future__ import annotations

import logging
import os
import socket
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from dcmseal.audit.codes import AuditEventKind, EventOutcome
from dcmseal.audit.messages import AuditEvent
from dcmseal.audit.xmlform import to_xml
from dcmseal.errors import DcmsealError, InputError, PeerError, UsageError
from dcmseal.fsutil import open_state_file

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DEFAULT_SYSLOG_PORT",
    "MSGID",
    "SEND_TIMEOUT_S",
    "SYSLOG_FACILITY",
    "AuditSink",
    "FileSink",
    "MultiSink",
    "NullSink",
    "SyslogSink",
    "SyslogTransport",
    "emit_events",
    "format_syslog_message",
    "sink_from_settings",
    "syslog_priority",
]

logger = logging.getLogger(__name__)

#: PS3.15 A.6 and A.7: "The PRI field shall be set using the facility value of 10 (security/authorization
#: messages)". RFC 5424 Table 1 also lists 13 "log audit", but the DICOM profiles fix 10, and audit
#: repositories filter on it.
SYSLOG_FACILITY = 10
#: PS3.15 A.6/A.7: "The value "DICOM+RFC3881" may be used for messages that comply with this profile."
#: IHE ATNA's "IHE+RFC-3881" names the same payload; we follow the DICOM text we implement.
MSGID = "DICOM+RFC3881"
#: PS3.15 A.7: "The syslog port number shall be configurable, with the port number (514) as the default."
DEFAULT_SYSLOG_PORT = 514
CONNECT_TIMEOUT_S = 2.0
SEND_TIMEOUT_S = 2.0

# RFC 5424 Section 6.2.1 severities.
_SEVERITY_ALERT = 1
_SEVERITY_WARNING = 4
_SEVERITY_NOTICE = 5
# RFC 5424 Section 6.4: MSG-UTF8 = BOM UTF-8-STRING.
_BOM = b"\xef\xbb\xbf"
_NILVALUE = "-"
# RFC 5426 Section 3.2: receivers SHOULD take datagrams of 2048 octets; larger ones may be truncated.
_UDP_SAFE_OCTETS = 2048
_PRINTUSASCII = frozenset(range(33, 127))


class SyslogTransport(StrEnum):
    """How syslog messages travel: one datagram each (RFC 5426) or octet-counted on TCP (RFC 6587)."""

    UDP = "udp"
    TCP = "tcp"


@runtime_checkable
class AuditSink(Protocol):
    """Where audit events go; ``emit`` raises a :class:`~dcmseal.errors.DcmsealError` when it cannot."""

    def emit(self, event: AuditEvent) -> None:
        """Record ``event``."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FileSink:
    """Append each audit message as one line of a local file.

    Each message is one ``write`` on a descriptor opened with ``O_APPEND``, then ``fsync``: concurrent
    writers on a local file system never interleave inside a line, and a line reported written survives
    a crash. The file is created with mode 0600 (messages can carry patient names).
    """

    path: Path

    def emit(self, event: AuditEvent) -> None:
        """Append ``event`` as one line.

        Raises
        ------
        InputError
            The file cannot be opened, written or synced (``str`` names the path).
        """
        line = to_xml(event) + b"\n"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = open_state_file(self.path, flags)
        except OSError as exc:
            raise InputError(f"cannot open the audit log: {exc.strerror or exc}", path=self.path) from exc
        try:
            written = os.write(fd, line)
            if written != len(line):
                # A short write on a regular file means the disk is full; finish the line rather than
                # leave a fragment that the next message would continue.
                view = memoryview(line)[written:]
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            raise InputError(
                f"cannot append to the audit log: {exc.strerror or exc}", path=self.path
            ) from exc
        finally:
            os.close(fd)
        logger.debug("appended a %s audit message (%d octets) to %s", event.kind, len(line), self.path)


def syslog_priority(event: AuditEvent) -> int:
    """Return the RFC 5424 PRIVAL of ``event``: facility 10 times 8 plus the severity.

    Severity 5 (notice) for a success, as PS3.15 A.6/A.7 expects for most messages ("<85>"); 4
    (warning) for a failure; 1 (alert) for every Security Alert, which asks for a person's attention.
    """
    if event.kind is AuditEventKind.SECURITY_ALERT:
        severity = _SEVERITY_ALERT
    elif event.outcome is EventOutcome.SUCCESS:
        severity = _SEVERITY_NOTICE
    else:
        severity = _SEVERITY_WARNING
    return SYSLOG_FACILITY * 8 + severity


def _header_field(value: str, max_octets: int) -> str:
    # RFC 5424 Section 6: header fields are PRINTUSASCII (33..126); anything else becomes "_".
    cleaned = "".join(c if ord(c) in _PRINTUSASCII else "_" for c in value)[:max_octets]
    return cleaned or _NILVALUE


def _timestamp(moment: datetime) -> str:
    if moment.utcoffset() is None:
        raise ValueError("the syslog clock must return an aware datetime (RFC 5424 Section 6.2.3)")
    # RFC 5424 Section 6.2.3: at most 6 fractional digits; UTC written as "Z".
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def format_syslog_message(
    event: AuditEvent, *, app_name: str, hostname: str, procid: str, timestamp: datetime
) -> bytes:
    """Return the RFC 5424 SYSLOG-MSG carrying ``event`` (PS3.15 A.6, A.7).

    ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM XML``: VERSION 1, no STRUCTURED-DATA, and
    the audit XML as MSG-UTF8 (RFC 5424 Section 6.4).

    Parameters
    ----------
    event
        The event; its XML is :func:`~dcmseal.audit.xmlform.to_xml`.
    app_name, hostname, procid
        Header fields; characters outside printable US-ASCII become ``_``, and each is cut to its RFC
        5424 length (48, 255, 128).
    timestamp
        TIMESTAMP, the time the message is made; must be aware.

    Returns
    -------
    bytes
        The message, without transport framing.
    """
    header = " ".join(
        (
            f"<{syslog_priority(event)}>1",
            _timestamp(timestamp),
            _header_field(hostname, 255),
            _header_field(app_name, 48),
            _header_field(procid, 128),
            MSGID,
            _NILVALUE,  # STRUCTURED-DATA
        )
    )
    return header.encode("ascii") + b" " + _BOM + to_xml(event)


def _peer(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return exc.strerror or str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class SyslogSink:
    """Send each audit message to a syslog receiver (RFC 5424 over RFC 5426 UDP or RFC 6587 TCP).

    UDP sends one datagram per message. TCP opens a connection per message and frames it with RFC 6587
    octet counting (``MSG-LEN SP SYSLOG-MSG``); connecting and sending each time out after 2 s. Plain
    TCP carries patient data unencrypted: PS3.15 A.6 asks for TLS (RFC 5425) across untrusted networks.
    """

    host: str
    port: int = DEFAULT_SYSLOG_PORT
    _: KW_ONLY
    transport: SyslogTransport | str = SyslogTransport.UDP
    app_name: str = "dcmseal"
    #: HOSTNAME of the header; ``None`` asks the system each time (RFC 5424 Section 6.2.4).
    hostname: str | None = None
    now: Callable[[], datetime] = field(default=_utc_now, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "transport", SyslogTransport(self.transport))
        if not self.host:
            raise ValueError("a syslog receiver needs a host")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1..65535, not {self.port}")
        if (
            not self.app_name
            or len(self.app_name) > 48
            or any(ord(c) not in _PRINTUSASCII for c in self.app_name)
        ):
            raise ValueError(f"APP-NAME must be 1 to 48 printable US-ASCII characters, not {self.app_name!r}")

    def emit(self, event: AuditEvent) -> None:
        """Send ``event`` as one syslog message.

        Raises
        ------
        PeerError
            The receiver cannot be resolved, reached or written to in time (``str`` names host:port).
        """
        message = format_syslog_message(
            event,
            app_name=self.app_name,
            hostname=self.hostname if self.hostname is not None else socket.gethostname(),
            procid=str(os.getpid()),
            timestamp=self.now(),
        )
        if self.transport is SyslogTransport.UDP:
            self._send_udp(message)
        else:
            self._send_tcp(b"%d " % len(message) + message)
        logger.debug(
            "sent a %s audit message (%d octets) to syslog %s over %s",
            event.kind,
            len(message),
            _peer(self.host, self.port),
            self.transport,
        )

    def _fail(self, exc: OSError) -> PeerError:
        where = f"{_peer(self.host, self.port)} ({self.transport})"
        return PeerError(f"cannot send the audit message to the syslog receiver {where}: {_reason(exc)}")

    def _send_udp(self, message: bytes) -> None:
        if len(message) > _UDP_SAFE_OCTETS:
            logger.warning(
                "audit message of %d octets sent over UDP to %s; RFC 5426 receivers may truncate beyond %d",
                len(message),
                _peer(self.host, self.port),
                _UDP_SAFE_OCTETS,
            )
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_DGRAM
            )[0]
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(SEND_TIMEOUT_S)
                sent = sock.sendto(message, address)
        except OSError as exc:
            raise self._fail(exc) from exc
        if sent != len(message):
            raise self._fail(OSError(f"sent {sent} of {len(message)} octets"))

    def _send_tcp(self, frame: bytes) -> None:
        try:
            with socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S) as sock:
                sock.settimeout(SEND_TIMEOUT_S)
                sock.sendall(frame)
                sock.shutdown(socket.SHUT_WR)  # the receiver sees the frame end with the stream
        except OSError as exc:
            raise self._fail(exc) from exc


class NullSink:
    """Writes nothing: for a step whose caller audits the whole workflow itself (the import opens a medium and
    writes one Import message with the final outcome, not open's own)."""

    def emit(self, event: AuditEvent) -> None:
        return None


@dataclass(frozen=True, slots=True, init=False)
class MultiSink:
    """Send each audit message to every sink; one failing sink does not keep the others from theirs."""

    sinks: tuple[AuditSink, ...]

    def __init__(self, sinks: Iterable[AuditSink]) -> None:
        object.__setattr__(self, "sinks", tuple(sinks))

    def emit(self, event: AuditEvent) -> None:
        """Emit ``event`` to every sink.

        Raises
        ------
        DcmsealError
            The first failure, once every sink has had the event; later failures are logged.
        """
        first: DcmsealError | None = None
        for sink in self.sinks:
            try:
                sink.emit(event)
            except DcmsealError as exc:
                if first is None:
                    first = exc
                else:
                    logger.warning("another audit sink failed too: %s", exc)
        if first is not None:
            raise first


def _parse_syslog_target(target: str) -> tuple[SyslogTransport, str, int]:
    usage = f"the syslog target must look like udp://host:port or tcp://host:port, not {target!r}"
    parts = urllib.parse.urlsplit(target)
    try:
        transport = SyslogTransport(parts.scheme.lower())
        port = parts.port
    except ValueError:
        raise UsageError(usage) from None
    if not parts.hostname or parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
        raise UsageError(usage)
    return transport, parts.hostname, DEFAULT_SYSLOG_PORT if port is None else port


def sink_from_settings(audit_log: Path | None, syslog: str | None) -> AuditSink:
    """Return the sink the settings ask for: a file, a syslog receiver, both, or none.

    Parameters
    ----------
    audit_log
        A file to append messages to (:class:`FileSink`), or ``None``.
    syslog
        ``udp://host:port`` or ``tcp://host:port`` (port 514 when left out, PS3.15 A.7), or ``None``.

    Returns
    -------
    AuditSink
        The one configured sink, or a :class:`MultiSink` of all of them (of none, if nothing is set).

    Raises
    ------
    UsageError
        ``syslog`` is not such a URL.
    """
    sinks: list[AuditSink] = []
    if audit_log is not None:
        sinks.append(FileSink(audit_log))
    if syslog is not None:
        transport, host, port = _parse_syslog_target(syslog)
        sinks.append(SyslogSink(host, port, transport=transport))
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)


def emit_events(sink: AuditSink, events: Iterable[AuditEvent]) -> str | None:
    """Emit ``events`` to ``sink``; ``None`` when all were written, else why the first that failed was not.

    A workflow's work stands when its audit record cannot be written: the caller says the returned reason
    (the result's ``audit_error``) instead of losing the work. The failure is logged as an error too.
    """
    for event in events:
        try:
            sink.emit(event)
        except (DcmsealError, OSError) as exc:
            logger.error("the %s audit message could not be written: %s", event.kind, exc)
            return str(exc)
    return None
