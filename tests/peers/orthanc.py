"""A real Orthanc with its DICOMweb plugin on loopback ports, as a PACS peer for WADO-RS, STOW-RS and C-STORE tests.

Recipe from ../shared/docs/peers.md §5.2. Orthanc binds both ports on 0.0.0.0 whatever we say (no bind-address
option in 1.10); ``RemoteAccessAllowed=false`` makes its HTTP server refuse clients that are not local.

Use :func:`require_orthanc` (skip locally, fail under CI when a piece is missing) and :func:`running_orthanc`
(a context manager); ``tests/media/conftest.py`` shows the session fixture.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers.tools import in_ci, require_tool

__all__ = [
    "ORTHANC_BINARY",
    "ORTHANC_DICOMWEB_PLUGIN",
    "OrthancError",
    "OrthancPeer",
    "free_port",
    "require_orthanc",
    "running_orthanc",
]

ORTHANC_BINARY = "/usr/sbin/Orthanc"
ORTHANC_DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 30.0
#: Attempts to start when a port picked as free was taken in between.
START_ATTEMPTS = 3


class OrthancError(RuntimeError):
    """Orthanc did not start, or answered a REST call with an error."""


@dataclass(frozen=True, slots=True)
class OrthancBinaries:
    orthanc: str
    dicomweb_plugin: str


def require_orthanc() -> OrthancBinaries:
    """Return the Orthanc binary and DICOMweb plugin; skip locally (fail under CI) when one is missing."""
    orthanc = require_tool(ORTHANC_BINARY, "orthanc")
    if not os.path.isfile(ORTHANC_DICOMWEB_PLUGIN):
        message = f"{ORTHANC_DICOMWEB_PLUGIN} not installed: apt-get install orthanc-dicomweb"
        if in_ci():
            pytest.fail(f"{message} (CI must have every peer; run `make system-deps`)")
        pytest.skip(message)
    return OrthancBinaries(orthanc=orthanc, dicomweb_plugin=ORTHANC_DICOMWEB_PLUGIN)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it; a race with other processes is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(slots=True)
class OrthancPeer:
    """A running Orthanc: where to reach it, and a few REST helpers to seed and inspect it."""

    http_port: int
    dicom_port: int
    aet: str
    workdir: Path
    pid: int
    log_path: Path
    #: (user, password) for HTTP basic authentication when Orthanc was started with ``users``.
    credentials: tuple[str, str] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root (``.../dicom-web``), what dicomweb-client takes as ``url``."""
        return f"{self.http_url}/dicom-web"

    def study_url(self, study_instance_uid: str) -> str:
        """The WADO-RS URL of a study, ``http://127.0.0.1:PORT/dicom-web/studies/<uid>``."""
        return f"{self.dicomweb_url}/studies/{study_instance_uid}"

    # --- REST ---------------------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None
    ) -> bytes:
        """Send one REST request to ``path`` (``/system``); return the body, raise OrthancError on HTTP errors."""
        try:
            return _http(
                method, f"{self.http_url}{path}", body=body, content_type=content_type, auth=self.credentials
            )
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise OrthancError(f"{method} {path}: HTTP {exc.code}: {detail}") from None

    def get_json(self, path: str) -> object:
        return json.loads(self.request("GET", path))

    def upload(self, path: Path) -> str:
        """Store the Part 10 file ``path`` through ``POST /instances``; return Orthanc's instance ID."""
        answer = json.loads(
            self.request("POST", "/instances", body=Path(path).read_bytes(), content_type="application/dicom")
        )
        if not isinstance(answer, dict) or answer.get("Status") not in {"Success", "AlreadyStored"}:
            raise OrthancError(f"POST /instances {path}: {answer!r}")
        return str(answer["ID"])

    def sop_instance_uids(self) -> set[str]:
        """The SOP Instance UIDs of every instance stored."""
        found: set[str] = set()
        for instance_id in self.ids("/instances"):
            tags = self.get_json(f"/instances/{instance_id}/simplified-tags")
            if isinstance(tags, dict) and "SOPInstanceUID" in tags:
                found.add(str(tags["SOPInstanceUID"]))
        return found

    def instance_file(self, instance_id: str) -> bytes:
        """The Part 10 file Orthanc stored for ``instance_id`` (preamble included)."""
        return self.request("GET", f"/instances/{instance_id}/file")

    def clear(self) -> None:
        """Delete every patient (and so every study, series and instance), for a clean state between tests."""
        for patient_id in self.ids("/patients"):
            self.request("DELETE", f"/patients/{patient_id}")

    def ids(self, path: str) -> list[str]:
        """The IDs Orthanc lists at ``path`` (``/instances``, ``/patients``); OrthancError if it is no list."""
        answer = self.get_json(path)
        if not isinstance(answer, list):
            raise OrthancError(f"GET {path}: expected a list, got {answer!r}")
        return [str(item) for item in answer]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    timeout_s: float = HTTP_TIMEOUT_S,
    auth: tuple[str, str] | None = None,
) -> bytes:
    """One HTTP request to the loopback Orthanc; only ``http://127.0.0.1`` URLs are ever opened."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"not a loopback Orthanc URL: {url}")
    req = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - http://127.0.0.1 checked above
    if content_type is not None:
        req.add_header("Content-Type", content_type)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=timeout_s) as response:  # noqa: S310 - http://127.0.0.1 checked above
        return bytes(response.read())


def _config(workdir: Path, http_port: int, dicom_port: int, aet: str, plugin: str) -> dict[str, object]:
    storage = workdir / "db"
    return {
        "Name": "DCMSEAL-PEERTEST",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
    }


def _wait_ready(
    process: subprocess.Popen[bytes], url: str, timeout_s: float, auth: tuple[str, str] | None = None
) -> bool:
    """Poll ``GET /system`` until it answers 200; False if Orthanc exited first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            _http("GET", f"{url}/system", timeout_s=2, auth=auth)
            return True
        time.sleep(0.1)
    raise OrthancError(f"Orthanc did not answer {url}/system within {timeout_s:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, wait up to STOP_TIMEOUT_S, then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def running_orthanc(
    workdir: Path,
    *,
    aet: str = "ORTHANC",
    extra_config: Mapping[str, object] | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
    users: Mapping[str, str] | None = None,
    ports: tuple[int, int] | None = None,
) -> Iterator[OrthancPeer]:
    """Start Orthanc with the DICOMweb plugin on free loopback ports, storing under ``workdir``; stop it after.

    ``extra_config`` is merged over the base configuration (e.g. ``{"OverwriteInstances": True}`` or
    ``{"DicomModalities": {...}}`` for C-MOVE tests). ``users`` ({user: password}) turns HTTP authentication
    on (RegisteredUsers); the peer's REST helpers then log in as the first user. ``ports`` (HTTP, DICOM)
    restarts an Orthanc where it was (same ``workdir`` and ports: same storage, same target URL).
    Skips (fails under CI) when Orthanc is not installed.
    """
    binaries = require_orthanc()
    workdir = Path(workdir)
    (workdir / "db").mkdir(parents=True, exist_ok=True)
    last_log = ""
    for attempt in range(1, START_ATTEMPTS + 1):
        http_port, dicom_port = ports or (free_port(), free_port())
        while dicom_port == http_port:
            dicom_port = free_port()
        config = _config(workdir, http_port, dicom_port, aet, binaries.dicomweb_plugin)
        credentials = next(iter(users.items())) if users else None
        if users:
            config["AuthenticationEnabled"] = True
            config["RegisteredUsers"] = dict(users)
        config.update(extra_config or {})
        config_path = workdir / "orthanc.json"
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        log_path = workdir / f"orthanc-{attempt}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [binaries.orthanc, str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        peer = OrthancPeer(
            http_port=http_port,
            dicom_port=dicom_port,
            aet=aet,
            workdir=workdir,
            pid=process.pid,
            log_path=log_path,
            credentials=credentials,
        )
        try:
            ready = _wait_ready(process, peer.http_url, ready_timeout_s, credentials)
        except BaseException:
            _stop(process)
            raise
        if not ready:
            last_log = peer.log_tail()
            _stop(process)
            continue  # most likely a port taken between free_port() and Orthanc's bind: try new ones
        try:
            yield peer
        finally:
            _stop(process)
        return
    raise OrthancError(f"Orthanc exited during startup {START_ATTEMPTS} times; last log:\n{last_log}")
