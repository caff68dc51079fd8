"""STOW-RS to a DICOMweb target, each instance confirmed or refused from the response (through :mod:`dcmseal.dicomweb`).

Each instance is confirmed on its own from the STOW-RS response (PS3.18 10.5.3): a ReferencedSOPSequence item
naming its SOP Instance UID is the confirmation (with its Retrieve URL and any Warning Reason), a
FailedSOPSequence item is a refusal with its Failure Reason, and an instance the response does not name was
not confirmed and is sent again. dicomweb-client's own retrying is off: :func:`dcmseal.importer.send.deliver`
retries, within the import's bounds.

:meth:`StowSender.held` asks the same service, with the same session and authentication, which instances of a
study it holds: QIDO-RS ``GET {root}/studies/{uid}/instances`` with only the SOP Instance UID asked for, paged
with ``offset`` (bounded) until every instance looked for is found or the service has no more.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence

from pydicom import dcmread
from pydicom.dataset import Dataset

from dcmseal.dicomweb import HTTP_TIMEOUT_S, DicomWebClient, DicomWebError, Failure, value_of
from dcmseal.errors import PeerError
from dcmseal.importer.send import Delivery, DicomWebTarget, NotQueryableError, Outgoing, PeerUnavailableError
from dcmseal.part10.fileformat import ZERO_PREAMBLE
from dcmseal.webauth import HttpCredentials

__all__ = ["HTTP_TIMEOUT_S", "QIDO_MAX_PAGES", "StowSender"]

logger = logging.getLogger(__name__)

#: Instances per STOW-RS request: few enough that a lost request costs little, many enough to save round trips.
STOW_BATCH = 8
#: Failure Reason (0008,1197) values that may clear on a retry: 0xA700 out of resources, 0x0110 processing failure
#: (PS3.18 Table 10.5.3-2 lists them with the C-STORE meanings).
_RETRYABLE_FAILURES = frozenset({0xA700, 0x0110})
#: QIDO-RS pages asked for one study at most: a service that ignores ``offset`` cannot keep us asking.
QIDO_MAX_PAGES = 100
_SOP_INSTANCE_UID = "00080018"
_STUDY_INSTANCE_UID = "0020000D"


class StowSender:
    """Stores instances on a DICOMweb service with STOW-RS, optionally with HTTP basic authentication or a
    bearer token."""

    batch_size = STOW_BATCH

    def __init__(
        self,
        target: DicomWebTarget,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout_s: float = HTTP_TIMEOUT_S,
    ) -> None:
        self.target = target
        # dicomweb-client's own retrying is off (attempts=1): deliver() retries, within the import's bounds.
        self._web = DicomWebClient(
            target.url,
            credentials=HttpCredentials(username=username, password=password, token=token),
            timeout_s=timeout_s,
        )

    def store(self, items: Sequence[Outgoing]) -> list[Delivery]:
        datasets: list[Dataset] = []
        for item in items:
            ds = dcmread(item.path)
            # The prepared file was written with a zero preamble and rescanned; dicomweb-client re-encodes the
            # data set with pydicom, which writes ds.preamble: it must be (and is here made) all zero.
            if ds.preamble is not None and any(ds.preamble):
                raise RuntimeError(f"{item.path}: a prepared file with a non-zero preamble")
            ds.preamble = ZERO_PREAMBLE
            datasets.append(ds)
        try:
            response = self._web.store(datasets)
        except DicomWebError as exc:
            if exc.failure is Failure.HTTP and exc.status in (401, 403):
                raise PeerError(
                    f"{self.target}: HTTP {exc.status}: authentication refused (check --user and its password)"
                ) from None
            if exc.failure is Failure.HTTP and exc.transient:
                raise PeerUnavailableError(f"HTTP {exc.status}") from None
            if exc.failure in (Failure.TIMEOUT, Failure.CONNECTION):
                raise PeerUnavailableError(f"{self.target}: {exc.cause}: cannot reach the service") from None
            if exc.failure is not Failure.HTTP:
                raise PeerError(f"{self.target}: STOW-RS failed: {exc.cause}") from None
            if exc.body is None:
                return [
                    Delivery(key=i.key, stored=False, reason=f"STOW-RS refused: HTTP {exc.status}")
                    for i in items
                ]
            response = exc.body
        return _deliveries(items, response)

    query = "QIDO-RS"

    def held(self, study_instance_uid: str, wanted: Collection[str]) -> set[str]:
        found: set[str] = set()
        offset = 0
        for _page in range(QIDO_MAX_PAGES):
            page = self._instances(study_instance_uid, offset)
            uids = {uid for item in page if (uid := value_of(item, _SOP_INSTANCE_UID))}
            new = uids - found
            found |= uids
            # A service may answer fewer results than it has (PS3.18 8.3.4.4, with a Warning header): ask on
            # from where it stopped, unless everything looked for is there or the page brought nothing new.
            if not page or not new or found.issuperset(wanted):
                break
            offset += len(page)
        return found

    def _instances(self, study_instance_uid: str, offset: int) -> list[Mapping[str, object]]:
        try:
            return self._web.search_instances(study_instance_uid, offset=offset, fields=[_SOP_INSTANCE_UID])
        except DicomWebError as exc:
            if exc.failure is Failure.HTTP:
                if exc.status == 404 and self._study_absent(study_instance_uid):
                    return []  # a service that answers 404 for a study it does not hold, and does answer QIDO-RS
                if exc.transient:
                    raise PeerUnavailableError(f"QIDO-RS: HTTP {exc.status}") from None
                raise NotQueryableError(f"QIDO-RS: HTTP {exc.status}") from None
            if exc.failure in (Failure.TIMEOUT, Failure.CONNECTION):
                raise PeerUnavailableError(f"{self.target}: {exc.cause}: cannot reach the service") from None
            raise NotQueryableError(f"QIDO-RS: {exc.cause}: the answer cannot be read") from None

    def _study_absent(self, study_instance_uid: str) -> bool:
        """After a 404 for a study's instances: True when a study-level QIDO-RS answers and does not list it."""
        try:
            studies = self._web.search_studies(
                {"StudyInstanceUID": study_instance_uid}, fields=[_STUDY_INSTANCE_UID]
            )
        except DicomWebError:
            return False
        return not any(value_of(s, _STUDY_INSTANCE_UID) == study_instance_uid for s in studies)

    def close(self) -> None:
        self._web.close()


def _deliveries(items: Sequence[Outgoing], response: Dataset) -> list[Delivery]:
    stored: dict[str, dict[str, object]] = {}
    for ref in response.get("ReferencedSOPSequence", []):
        uid = str(ref.get("ReferencedSOPInstanceUID", ""))
        confirmation: dict[str, object] = {"protocol": "STOW-RS", "sop_instance_uid": uid}
        if "RetrieveURL" in ref:
            confirmation["retrieve_url"] = str(ref.RetrieveURL)
        if "WarningReason" in ref:
            confirmation["warning_reason"] = f"0x{int(ref.WarningReason):04X}"
        stored[uid] = confirmation
    failed: dict[str, int] = {}
    for ref in response.get("FailedSOPSequence", []):
        failed[str(ref.get("ReferencedSOPInstanceUID", ""))] = int(ref.get("FailureReason", 0) or 0)
    answers: list[Delivery] = []
    for item in items:
        if item.sop_instance_uid in stored:
            answers.append(Delivery(key=item.key, stored=True, confirmation=stored[item.sop_instance_uid]))
            logger.info("%s: stored (STOW-RS)", item.sop_instance_uid)
        elif item.sop_instance_uid in failed:
            code = failed[item.sop_instance_uid]
            answers.append(
                Delivery(
                    key=item.key,
                    stored=False,
                    confirmation={"protocol": "STOW-RS", "failure_reason": f"0x{code:04X}"},
                    reason=f"STOW-RS refused: Failure Reason 0x{code:04X}",
                    retryable=code in _RETRYABLE_FAILURES,
                )
            )
        else:
            answers.append(
                Delivery(
                    key=item.key, stored=False, reason="STOW-RS response does not confirm it", retryable=True
                )
            )
    return answers
