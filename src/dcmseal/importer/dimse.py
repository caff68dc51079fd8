"""C-STORE to a DIMSE target with pynetdicom: the one module that touches pynetdicom.

One association serves the whole import; it is opened with a presentation context for each (SOP Class,
Transfer Syntax) pair the import holds, and reopened when the peer aborts or a file needs a context the
current association lacks (an association carries at most 128 contexts, PS3.8 9.3.2.2).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterable, Sequence

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.status import code_to_category

from dcmseal.errors import PeerError
from dcmseal.importer.send import Delivery, DimseTarget, Outgoing, PeerUnavailableError

__all__ = ["CONNECT_TIMEOUT_S", "DIMSE_TIMEOUT_S", "DimseSender"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
#: How long one C-STORE response may take (a large instance on a slow archive).
DIMSE_TIMEOUT_S = 60.0
MAX_CONTEXTS = 128
_UNCOMPRESSED = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
)
#: A-ASSOCIATE-RJ result 2 is "rejected-transient" (PS3.8 9.3.4): worth another try; 1 is permanent.
_REJECTED_TRANSIENT = 0x02


def _syntaxes(transfer_syntax: str) -> list[str]:
    """Propose the file's own syntax; for uncompressed data, the two little-endian ones too (pynetdicom converts)."""
    if transfer_syntax in _UNCOMPRESSED:
        return list(dict.fromkeys([transfer_syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
    return [transfer_syntax]


def _no_delay(assoc: Association) -> None:
    """Turn Nagle's algorithm off: pynetdicom writes a C-STORE as several small PDUs, and Nagle holding the
    next one until the peer's delayed ACK costs about 40 ms per instance (measured: 89 ms -> a few ms)."""
    transport = getattr(getattr(assoc, "dul", None), "socket", None)
    sock = getattr(transport, "socket", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class DimseSender:
    """Stores instances on ``target`` as ``calling_aet``, one C-STORE at a time."""

    batch_size = 1

    def __init__(
        self,
        target: DimseTarget,
        *,
        calling_aet: str,
        pairs: Iterable[tuple[str, str]],
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        dimse_timeout_s: float = DIMSE_TIMEOUT_S,
    ) -> None:
        self.target = target
        self._pairs = list(dict.fromkeys(pairs))
        self._ae = AE(ae_title=calling_aet)
        self._ae.connection_timeout = connect_timeout_s
        self._ae.acse_timeout = connect_timeout_s
        self._ae.network_timeout = dimse_timeout_s
        self._ae.dimse_timeout = dimse_timeout_s
        self._assoc: Association | None = None
        self._offered: set[tuple[str, str]] = set()

    def _associate(self, needed: tuple[str, str]) -> Association:
        """An established association offering ``needed`` (and as many other pairs as fit)."""
        if self._assoc is not None and self._assoc.is_established and needed in self._offered:
            return self._assoc
        self.close()
        ordered = [needed, *(p for p in self._pairs if p != needed)][:MAX_CONTEXTS]
        self._ae.requested_contexts = []
        for sop_class, syntax in ordered:
            self._ae.add_requested_context(sop_class, _syntaxes(syntax))
        assoc = self._ae.associate(self.target.host, self.target.port, ae_title=self.target.called_aet)
        if assoc.is_established:
            _no_delay(assoc)
            self._assoc, self._offered = assoc, set(ordered)
            return assoc
        if assoc.is_rejected:
            rejection = assoc.acceptor.primitive
            result = getattr(rejection, "result", None)
            reason = getattr(rejection, "reason_str", None) or getattr(rejection, "result_str", "rejected")
            message = f"{self.target}: association rejected ({reason})"
            if result == _REJECTED_TRANSIENT:
                raise PeerUnavailableError(f"association rejected ({reason})")
            raise PeerError(
                message + "; check the called AE title and that the PACS knows our calling AE title"
            )
        # pynetdicom reports a refused TCP connection as an aborted association: one message for both.
        raise PeerUnavailableError("cannot connect, or the peer aborted the association")

    def store(self, items: Sequence[Outgoing]) -> list[Delivery]:
        answers: list[Delivery] = []
        for item in items:
            assoc = self._associate((item.sop_class_uid, item.transfer_syntax_uid))
            try:
                status = assoc.send_c_store(str(item.path))
            except ValueError as exc:  # no accepted presentation context, or the data set does not encode
                answers.append(
                    Delivery(
                        key=item.key,
                        stored=False,
                        reason=f"the PACS accepts no context for SOP Class {item.sop_class_uid} in "
                        f"{item.transfer_syntax_uid}: {exc}",
                    )
                )
                continue
            if not status or "Status" not in status:
                # Timeout, abort or an invalid response: we do not know; the association is gone.
                self.close()
                if answers:
                    return answers  # the rest of the batch is retried by the caller
                # Orthanc, for one, answers a C-STORE from a calling AE title it does not know with an abort.
                raise PeerUnavailableError(
                    "the association ended without a C-STORE response (does the PACS accept C-STORE "
                    f"from our calling AE title {self._ae.ae_title!r}?)"
                )
            code = int(status.Status)
            category = code_to_category(code)
            confirmation: dict[str, object] = {
                "protocol": "C-STORE",
                "status": f"0x{code:04X}",
                "category": category,
                "affected_sop_instance_uid": str(status.get("AffectedSOPInstanceUID", item.sop_instance_uid)),
            }
            if "ErrorComment" in status:
                confirmation["comment"] = str(status.ErrorComment)
            if category in ("Success", "Warning"):
                answers.append(Delivery(key=item.key, stored=True, confirmation=confirmation))
                logger.info("%s: stored (C-STORE status 0x%04X)", item.sop_instance_uid, code)
            else:
                # 0xA7xx "out of resources" may clear; anything else will not change on a retry.
                answers.append(
                    Delivery(
                        key=item.key,
                        stored=False,
                        confirmation=confirmation,
                        reason=f"C-STORE refused: status 0x{code:04X} ({category})"
                        + (f": {status.ErrorComment}" if "ErrorComment" in status else ""),
                        retryable=0xA700 <= code <= 0xA7FF,
                    )
                )
        return answers

    def close(self) -> None:
        if self._assoc is not None:
            if self._assoc.is_established:
                self._assoc.release()
            self._assoc = None
            self._offered = set()
