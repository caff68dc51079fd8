"""DICOMweb over HTTP: the one module that touches dicomweb-client and requests, for every service dcmseal uses.

STOW-RS (the import stores), QIDO-RS (the import asks what a service holds) and WADO-RS (a burn retrieves a
study) share one client here: a session signed in with :class:`dcmseal.webauth.HttpCredentials`, dicomweb-client
underneath, and every failure of requests or dicomweb-client translated once into :class:`DicomWebError`
(what went wrong: an HTTP status, no answer in time, no connection, an answer that cannot be read), so the
workflows decide what a failure means (retry, refuse, report) without importing either library.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dcmseal.errors import PeerError
from dcmseal.webauth import HttpCredentials

__all__ = [
    "HTTP_TIMEOUT_S",
    "RETRYABLE_HTTP",
    "DicomWebClient",
    "DicomWebError",
    "Failure",
    "value_of",
]

logger = logging.getLogger(__name__)

#: Connect and read timeout of each request, unless the caller gives its own.
HTTP_TIMEOUT_S = 60.0
#: HTTP statuses that may clear on a retry (timeout, too many requests, server errors, unavailable).
RETRYABLE_HTTP = frozenset({408, 429, 500, 502, 503, 504})
#: Instances retrieved as the service stores them (any transfer syntax), never transcoded on the way.
_AS_STORED = (("application/dicom", "*"),)
#: The STOW-RS response's two sequences (PS3.18 Table 10.5.3-3), by tag as DICOM JSON names them.
_RESPONSE_SEQUENCES = ("00081198", "00081199")


class Failure(enum.StrEnum):
    """What went wrong with a DICOMweb request."""

    HTTP = "http"  # the service answered with an error status
    TIMEOUT = "timeout"  # no answer within the timeout
    CONNECTION = "connection"  # the service cannot be reached
    UNREADABLE = "unreadable"  # an answer that is not what the service should send (not JSON, not DICOM)
    OTHER = "other"  # any other failure of the HTTP layer


class DicomWebError(PeerError):
    """A DICOMweb request that failed, with what is known of why (``failure``, ``status``, ``body``)."""

    def __init__(
        self,
        message: str,
        *,
        failure: Failure,
        status: int = 0,
        reason: str = "",
        cause: str = "",
        body: Dataset | None = None,
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.status = status  # the HTTP status (0 when there was none)
        self.reason = reason  # the HTTP reason phrase
        self.cause = cause  # the name of the underlying exception (ConnectTimeout, ConnectionError, ...)
        self.body = body  # the STOW-RS response an error status carried, when it carries one

    @property
    def transient(self) -> bool:
        """Whether a retry may succeed: no connection, no answer in time, or a status that may clear."""
        return self.failure in (Failure.TIMEOUT, Failure.CONNECTION) or (
            self.failure is Failure.HTTP and self.status in RETRYABLE_HTTP
        )

    def describe(self, timeout_s: float) -> str:
        """The failure in a few words: ``HTTP 404 Not Found``, ``no answer within 5 s``, ``cannot connect``."""
        if self.failure is Failure.HTTP and self.status:
            return f"HTTP {self.status} {self.reason}".rstrip()
        if self.failure is Failure.TIMEOUT:
            return f"no answer within {timeout_s:g} s"
        if self.failure is Failure.CONNECTION:
            return "cannot connect"
        return self.cause or self.message


def _translated(exc: requests.RequestException, *, stow: bool = False) -> DicomWebError:
    """``exc`` as a :class:`DicomWebError` (a STOW-RS refusal keeps the response its body carries)."""
    cause = type(exc).__name__
    if isinstance(exc, requests.HTTPError):
        answer = exc.response
        return DicomWebError(
            f"HTTP {answer.status_code if answer is not None else 0}",
            failure=Failure.HTTP,
            status=answer.status_code if answer is not None else 0,
            reason=(answer.reason or "") if answer is not None else "",
            cause=cause,
            body=_response_dataset(answer) if stow else None,
        )
    if isinstance(exc, requests.Timeout):  # before ConnectionError: ConnectTimeout is both
        return DicomWebError(cause, failure=Failure.TIMEOUT, cause=cause)
    if isinstance(exc, requests.ConnectionError):
        return DicomWebError(cause, failure=Failure.CONNECTION, cause=cause)
    return DicomWebError(cause, failure=Failure.OTHER, cause=cause)


class DicomWebClient:
    """A DICOMweb service at ``url`` (its root, without credentials), signed in with ``credentials``.

    ``attempts`` above 1 lets dicomweb-client retry a request that fails transiently, waiting ``backoff_ms``
    times an exponential factor; 1 (the default) leaves retrying to the caller. Raises ValueError for a URL
    that dicomweb-client cannot use. Close it (or use it as a context manager) to close its session.
    """

    def __init__(
        self,
        url: str,
        *,
        credentials: HttpCredentials | None = None,
        timeout_s: float = HTTP_TIMEOUT_S,
        attempts: int = 1,
        backoff_ms: int = 0,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._session = requests.Session()
        if credentials is not None:
            credentials.apply(self._session)
        try:
            self._client = DICOMwebClient(url=url, session=self._session, timeout=timeout_s)
        except ValueError:
            self._session.close()
            raise
        if attempts > 1:
            self._client.set_http_retry_params(
                retry=True, max_attempts=attempts, wait_exponential_multiplier=backoff_ms
            )
        else:
            self._client.set_http_retry_params(retry=False)

    def store(self, datasets: Sequence[Dataset]) -> Dataset:
        """STOW-RS ``datasets`` in one request; the response (PS3.18 10.5.3).

        An error status raises :class:`DicomWebError` with the response in ``body`` when it carries one (a
        request partly refused answers HTTP 4xx with the sequences naming what was stored and what not).
        """
        try:
            return self._client.store_instances(datasets=list(datasets))
        except requests.RequestException as exc:
            raise _translated(exc, stow=True) from None

    def search_instances(
        self, study_instance_uid: str, *, offset: int = 0, fields: Sequence[str] = ()
    ) -> list[Mapping[str, object]]:
        """QIDO-RS ``GET {root}/studies/{uid}/instances`` from ``offset``: the DICOM JSON objects answered."""
        try:
            page = self._client.search_for_instances(
                study_instance_uid=study_instance_uid, offset=offset or None, fields=list(fields) or None
            )
        except requests.RequestException as exc:
            raise _translated(exc) from None
        except ValueError as exc:  # the body is not JSON
            raise DicomWebError(
                "the answer cannot be read", failure=Failure.UNREADABLE, cause=type(exc).__name__
            ) from None
        return [item for item in page if isinstance(item, dict)]

    def search_studies(
        self, search_filters: Mapping[str, str], *, fields: Sequence[str] = ()
    ) -> list[Mapping[str, object]]:
        """QIDO-RS ``GET {root}/studies`` with ``search_filters``: the DICOM JSON objects answered."""
        try:
            studies = self._client.search_for_studies(
                search_filters=dict(search_filters), fields=list(fields) or None
            )
        except requests.RequestException as exc:
            raise _translated(exc) from None
        except ValueError as exc:
            raise DicomWebError(
                "the answer cannot be read", failure=Failure.UNREADABLE, cause=type(exc).__name__
            ) from None
        return [item for item in studies if isinstance(item, dict)]

    def iter_study(self, study_instance_uid: str) -> Iterator[Dataset]:
        """WADO-RS: every instance of a study, as stored, one data set at a time (streamed, not all at once)."""
        try:
            datasets = iter(self._client.iter_study(study_instance_uid, media_types=_AS_STORED))
        except requests.RequestException as exc:
            raise _translated(exc) from exc
        while True:
            try:
                dataset = next(datasets)
            except StopIteration:
                return
            except requests.RequestException as exc:
                raise _translated(exc) from exc
            except (InvalidDicomError, ValueError, KeyError, EOFError) as exc:
                raise DicomWebError(str(exc), failure=Failure.UNREADABLE, cause=type(exc).__name__) from exc
            yield dataset

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> DicomWebClient:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()


def value_of(item: Mapping[str, object], tag: str) -> str | None:
    """The first value of ``tag`` (``"00080018"``) in a DICOM JSON object, as text."""
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]) if isinstance(values, list) and values else None


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
