"""C-STORE to a DIMSE target with pynetdicom: the one module that touches pynetdicom.

One association serves the whole import; it is opened with a presentation context for each (SOP Class,
Transfer Syntax) pair the import holds, and reopened when the peer aborts or a file needs a context the
current association lacks (an association carries at most 128 contexts, PS3.8 9.3.2.2).

:meth:`DimseSender.held` asks the peer which instances of a study it holds: C-FIND in the Study Root
Query/Retrieve Information Model at IMAGE level (StudyInstanceUID matched, SOPInstanceUID returned), on an
association of its own with the same AE titles. A peer with no C-FIND SCP (DCMTK storescp) rejects the context
or the association: :class:`~dcmseal.importer.send.NotQueryableError`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Collection, Iterable, Iterator, Sequence

from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]
from pynetdicom.status import code_to_category

from dcmseal.errors import PeerError
from dcmseal.importer.send import Delivery, DimseTarget, NotQueryableError, Outgoing, PeerUnavailableError

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
_DEFLATED = frozenset({DeflatedExplicitVRLittleEndian, "1.2.840.10008.1.2.8.1"})  # + Deflated Image Frame
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


def _accepts_as_is(assoc: Association, item: Outgoing) -> bool:
    """Whether the file's data set bytes can be sent as they are: a context for its own SOP Class and Transfer
    Syntax, and not deflated (a deflated stream may have an odd length, which pynetdicom would send unpadded;
    DCMTK aborts on the odd PDV)."""
    if item.transfer_syntax_uid in _DEFLATED:
        return False
    return any(
        cx.abstract_syntax == item.sop_class_uid and cx.transfer_syntax[0] == item.transfer_syntax_uid
        for cx in assoc.accepted_contexts
    )


@contextlib.contextmanager
def _streamed(as_is: bool) -> Iterator[None]:
    """Send the file's data set bytes as they are (pynetdicom's chunked send) when the peer takes its syntax.

    Otherwise pynetdicom decodes the whole file and encodes it again for each C-STORE, which cost more than the
    send itself (4.9 s of 27 for 400 CT instances); the prepared file is already what is to be sent. The switch
    is pynetdicom's module setting, set for this one call: the import sends from one thread.
    """
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = as_is
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous


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
        self._find: Association | None = None
        self._stored_any = False  # the peer confirmed an instance: it is reachable and takes C-STORE from us

    def _associate(self, needed: tuple[str, str]) -> Association:
        """An established association offering ``needed`` (and as many other pairs as fit)."""
        if self._assoc is not None and self._assoc.is_established and needed in self._offered:
            return self._assoc
        self._close_store()
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
                with _streamed(_accepts_as_is(assoc, item)):
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
                self._close_store()
                if answers:
                    return answers  # the rest of the batch is retried by the caller
                if self._stored_any:
                    # The peer took instances on this association before and breaks off on this one (DCMTK
                    # storescp aborts on a deflated data set it cannot inflate): this instance, not the peer,
                    # is the problem. Retried as a refusal of its own, then failed; the run goes on. It may
                    # have been stored before the abort, so it is in doubt.
                    answers.append(
                        Delivery(
                            key=item.key,
                            stored=False,
                            reason="the PACS broke off the association during its C-STORE, without an answer",
                            retryable=True,
                            in_doubt=True,
                        )
                    )
                    continue
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
                self._stored_any = True
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

    query = "C-FIND"

    def held(self, study_instance_uid: str, wanted: Collection[str]) -> set[str]:
        assoc = self._find_association()
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "IMAGE"
        identifier.StudyInstanceUID = study_instance_uid
        identifier.SOPInstanceUID = ""
        found: set[str] = set()
        try:
            for status, answer in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
                if not status or "Status" not in status:
                    self._close_find()
                    raise PeerUnavailableError("the association ended without a C-FIND response")
                code = int(status.Status)
                category = code_to_category(code)
                if category == "Pending":
                    uid = answer.get("SOPInstanceUID") if answer is not None else None
                    if uid:
                        found.add(str(uid))
                elif category == "Success":
                    return found
                else:
                    self._close_find()
                    refusal = f"C-FIND refused: status 0x{code:04X} ({category})"
                    if 0xA700 <= code <= 0xA7FF:  # out of resources: may clear
                        raise PeerUnavailableError(refusal)
                    raise NotQueryableError(refusal)
        except ValueError as exc:  # the context was not accepted after all
            self._close_find()
            raise NotQueryableError(f"C-FIND: {exc}") from None
        self._close_find()
        raise PeerUnavailableError("the C-FIND ended without a final status")

    def _find_association(self) -> Association:
        """An association offering only Study Root C-FIND, as the same calling and called AE titles."""
        if self._find is not None and self._find.is_established:
            return self._find
        # The storing is over: release its association first, for a peer that serves one at a time (storescp
        # without --fork would leave this one waiting in its backlog until our ACSE timeout).
        self._close_store()
        ae = AE(ae_title=self._ae.ae_title)
        ae.connection_timeout = self._ae.connection_timeout
        ae.acse_timeout = self._ae.acse_timeout
        ae.network_timeout = self._ae.network_timeout
        ae.dimse_timeout = self._ae.dimse_timeout
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = ae.associate(self.target.host, self.target.port, ae_title=self.target.called_aet)
        if assoc.is_established:
            if not assoc.accepted_contexts:
                assoc.release()
                raise NotQueryableError("the peer does not accept Study Root C-FIND (no query SCP)")
            self._find = assoc
            return assoc
        if assoc.is_rejected:
            rejection = assoc.acceptor.primitive
            result = getattr(rejection, "result", None)
            reason = getattr(rejection, "reason_str", None) or getattr(rejection, "result_str", "rejected")
            if result == _REJECTED_TRANSIENT:
                raise PeerUnavailableError(f"C-FIND association rejected ({reason})")
            raise NotQueryableError(f"the C-FIND association was rejected ({reason})")
        answer = assoc.acceptor.primitive
        if answer is not None and getattr(answer, "result", None) == 0:
            # The peer accepted the association but none of its contexts, and pynetdicom aborted it.
            raise NotQueryableError("the peer accepts no Study Root C-FIND context: no query SCP")
        raise PeerUnavailableError("cannot connect for C-FIND, or the peer aborted the association")

    def _close_find(self) -> None:
        if self._find is not None:
            if self._find.is_established:
                self._find.release()
            self._find = None

    def close(self) -> None:
        self._close_find()
        self._close_store()

    def _close_store(self) -> None:
        if self._assoc is not None:
            if self._assoc.is_established:
                self._assoc.release()
            self._assoc = None
            self._offered = set()
