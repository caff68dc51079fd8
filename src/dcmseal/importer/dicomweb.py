"""STOW-RS to a DICOMweb target with dicomweb-client: the one module that touches dicomweb-client and requests.

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

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset

from dcmseal.errors import PeerError
from dcmseal.importer.send import (
    Delivery,
    DicomWebTarget,
    NotQueryableError,
    Outgoing,
    PeerUnavailableError,
)
from dcmseal.webauth import HttpCredentials

__all__ = ["HTTP_TIMEOUT_S", "QIDO_MAX_PAGES", "StowSender"]

logger = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 60.0
#: Instances per STOW-RS request: few enough that a lost request costs little, many enough to save round trips.
STOW_BATCH = 8
#: Failure Reason (0008,1197) values that may clear on a retry: 0xA700 out of resources, 0x0110 processing failure
#: (PS3.18 Table 10.5.3-2 lists them with the C-STORE meanings).
_RETRYABLE_FAILURES = frozenset({0xA700, 0x0110})
_RETRYABLE_HTTP = frozenset({408, 429, 500, 502, 503, 504})
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
        self._session = requests.Session()
        HttpCredentials(username=username, password=password, token=token).apply(self._session)
        self._client = DICOMwebClient(url=target.url, session=self._session, timeout=timeout_s)
        self._client.set_http_retry_params(retry=False)

    def store(self, items: Sequence[Outgoing]) -> list[Delivery]:
        datasets: list[Dataset] = []
        for item in items:
            ds = dcmread(item.path)
            # The prepared file was written with a zero preamble and rescanned; dicomweb-client re-encodes the
            # data set with pydicom, which writes ds.preamble: it must be (and is here made) all zero.
            if ds.preamble is not None and any(ds.preamble):
                raise RuntimeError(f"{item.path}: a prepared file with a non-zero preamble")
            ds.preamble = bytes(128)
            datasets.append(ds)
        try:
            response = self._client.store_instances(datasets=datasets)
        except requests.HTTPError as exc:
            answer = exc.response
            status = answer.status_code if answer is not None else 0
            if status in (401, 403):
                raise PeerError(
                    f"{self.target}: HTTP {status}: authentication refused (check --user and its password)"
                ) from None
            if status in _RETRYABLE_HTTP:
                raise PeerUnavailableError(f"HTTP {status}") from None
            body = _response_dataset(answer)
            if body is None:
                return [
                    Delivery(key=i.key, stored=False, reason=f"STOW-RS refused: HTTP {status}") for i in items
                ]
            response = body
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise PeerUnavailableError(
                f"{self.target}: {type(exc).__name__}: cannot reach the service"
            ) from None
        return _deliveries(items, response)

    query = "QIDO-RS"

    def held(self, study_instance_uid: str, wanted: Collection[str]) -> set[str]:
        found: set[str] = set()
        offset = 0
        for _page in range(QIDO_MAX_PAGES):
            page = self._instances(study_instance_uid, offset)
            uids = {uid for item in page if (uid := _value(item, _SOP_INSTANCE_UID))}
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
            page = self._client.search_for_instances(
                study_instance_uid=study_instance_uid, offset=offset or None, fields=[_SOP_INSTANCE_UID]
            )
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status == 404 and self._study_absent(study_instance_uid):
                return []  # a service that answers 404 for a study it does not hold, and does answer QIDO-RS
            if status in _RETRYABLE_HTTP:
                raise PeerUnavailableError(f"QIDO-RS: HTTP {status}") from None
            raise NotQueryableError(f"QIDO-RS: HTTP {status}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise PeerUnavailableError(
                f"{self.target}: {type(exc).__name__}: cannot reach the service"
            ) from None
        except (requests.RequestException, ValueError) as exc:  # ValueError: the body is not JSON
            raise NotQueryableError(f"QIDO-RS: {type(exc).__name__}: the answer cannot be read") from None
        return [item for item in page if isinstance(item, dict)]

    def _study_absent(self, study_instance_uid: str) -> bool:
        """After a 404 for a study's instances: True when a study-level QIDO-RS answers and does not list it."""
        try:
            studies = self._client.search_for_studies(
                search_filters={"StudyInstanceUID": study_instance_uid}, fields=[_STUDY_INSTANCE_UID]
            )
        except (requests.RequestException, ValueError):
            return False
        return not any(
            isinstance(s, dict) and _value(s, _STUDY_INSTANCE_UID) == study_instance_uid for s in studies
        )

    def close(self) -> None:
        self._session.close()


def _value(item: Mapping[str, object], tag: str) -> str | None:
    """The first value of ``tag`` in a DICOM JSON object, as text."""
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]) if isinstance(values, list) and values else None


#: The STOW-RS response's two sequences (PS3.18 Table 10.5.3-3), by tag as DICOM JSON names them.
_RESPONSE_SEQUENCES = ("00081198", "00081199")


def _response_dataset(response: requests.Response | None) -> Dataset | None:
    """The STOW-RS response of a refusal (HTTP 4xx), when its body is one (DICOM JSON).

    Orthanc's DICOMweb plugin 1.7 answers a partly failed request with HTTP 400 and the response in the body
    but no Content-Type: a body without one is read too when it is a JSON object naming either sequence,
    so the instances the service did store are not taken for refused.
    """
    if response is None or not response.content:
        return None
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type not in ("application/dicom+json", "application/json", ""):
        return None
    try:
        body = response.json()
        if not isinstance(body, dict) or not any(tag in body for tag in _RESPONSE_SEQUENCES):
            return None
        return Dataset.from_json(body)
    except (ValueError, TypeError, KeyError):
        return None


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
