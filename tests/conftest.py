"""Suite-wide settings: hypothesis profiles, fixtures for the external programs, generated test identities."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, settings

from tests.hermetic import forbid_pydicom_downloads, forbid_shared_reads
from tests.peers.tools import in_ci, require_tool
from tests.pydicom_data import pydicom_file
from tests.vectors import vector_path
from tests.viewer_bundle import missing_bundle_reason, require_viewer_bundle, viewer_bundle_built

if TYPE_CHECKING:
    from tests.foreign.corpus import ForeignMedium

# CI gets a bounded number of examples to stay inside its time budget; locally we search harder.
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile("ci" if in_ci() else "dev")


# --- hermetic: nothing from the network, nothing from ../shared (issue 17 §5) ------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Installed before collection, so module-level uses of pydicom's data are guarded too."""
    config.add_cleanup(forbid_pydicom_downloads())
    forbid_shared_reads()
    viewer_bundle_built()  # the state at the start, before any test points dcmseal elsewhere


# --- the offline viewer bundle (`make viewer`): skip without it, fail under CI --------------------------------


@pytest.fixture(scope="session")
def viewer_bundle() -> None:
    """For a test that needs the bundle and whose failure could not say it is missing."""
    require_viewer_bundle()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failure because the viewer bundle is not built: a skip with that reason locally, a failure under CI."""
    report = yield
    reason = missing_bundle_reason(report)
    if reason is None:
        return report
    if in_ci():
        report.sections.append(("why", f"{reason} (CI builds it before the tests)"))
    else:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {reason}")
    return report


# --- inputs the suite must never change ---------------------------------------------------------------------


def _file_states(root: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.iterdir() if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def pydicom_test_files_stay_untouched() -> Iterator[None]:
    """Many tests read pydicom's bundled files in place; none may change them.

    One did, through a hard link in a staging folder (a staged copy that was not a copy): the guard makes the
    next such slip an error instead of silently different inputs for every later run.
    """
    root = pydicom_file("CT_small.dcm").parent
    before = _file_states(root)
    yield
    after = _file_states(root)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"the tests changed pydicom's test files in {root}: {changed}"


# --- every audit message written in this process validates (PS3.15 A.5.1) ----------------------------------


@pytest.fixture(autouse=True)
def audit_messages_validate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every message a sink writes during any test is checked against the A.5.1 RELAX NG schema with lxml."""
    from dcmseal.audit import AuditEvent
    from dcmseal.audit import to_xml as real
    from tests.audit.schema import schema_errors

    invalid: list[str] = []

    def checked(event: AuditEvent) -> bytes:
        xml = real(event)
        errors = schema_errors(xml)
        if errors:
            invalid.append(f"{event.kind} message fails the A.5.1 schema: {errors}")
        return xml

    monkeypatch.setattr("dcmseal.audit.sinks.to_xml", checked)
    yield
    assert not invalid, invalid


# --- real external programs ---------------------------------------------------------------------------------

_TOOL_FIXTURES = frozenset({"openssl_bin", "gdcmanon_bin", "dcmdump_bin", "dciodvfy_bin", "dcmftest_bin"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that runs an external program as `interop`, so `-m "not interop"` leaves them out."""
    for item in items:
        if _TOOL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session")
def openssl_bin() -> str:
    return require_tool("openssl", "openssl")


@pytest.fixture(scope="session")
def gdcmanon_bin() -> str:
    return require_tool("gdcmanon", "libgdcm-tools")


@pytest.fixture(scope="session")
def dcmdump_bin() -> str:
    return require_tool("dcmdump", "dcmtk")


@pytest.fixture(scope="session")
def dciodvfy_bin() -> str:
    return require_tool("dciodvfy", "dicom3tools")


@pytest.fixture(scope="session")
def dcmftest_bin() -> str:
    return require_tool("dcmftest", "dcmtk")


# --- certificates and keys ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_cert_and_key() -> tuple[Path, Path]:
    """The test-only RSA-2048 pair the OpenSSL vectors were made for: (certificate PEM, private key PEM)."""
    return vector_path("testonly-rsa2048-cert.pem"), vector_path("testonly-rsa2048-key.pem")


class RsaIdentityFactory(Protocol):
    def __call__(
        self,
        tmp_dir: Path,
        cn: str,
        *,
        key_size: int = 2048,
        with_ski: bool = True,
        not_valid_after_days: int = 365,
    ) -> tuple[Path, Path]: ...


@pytest.fixture(scope="session")
def rsa_identity_factory() -> RsaIdentityFactory:
    """Return `make(tmp_dir, cn, ...) -> (cert_path, key_path)`: a self-signed RSA certificate and its key.

    The private key is written as unencrypted PKCS#8 PEM. Keys are generated once per (cn, key_size) for the
    whole session; the certificate is built on each call, so options such as `not_valid_after_days` (negative
    for an expired certificate) take effect.
    """
    keys: dict[tuple[str, int], rsa.RSAPrivateKey] = {}

    def make(
        tmp_dir: Path,
        cn: str,
        *,
        key_size: int = 2048,
        with_ski: bool = True,
        not_valid_after_days: int = 365,
    ) -> tuple[Path, Path]:
        key = keys.get((cn, key_size))
        if key is None:
            key = keys[(cn, key_size)] = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        now = dt.datetime.now(dt.UTC)
        not_after = now + dt.timedelta(days=not_valid_after_days)
        not_before = min(now, not_after) - dt.timedelta(days=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
        )
        if with_ski:
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        cert = builder.sign(key, hashes.SHA256())

        stem = _file_stem(cn, key_size)
        cert_path = tmp_dir / f"{stem}-cert.pem"
        key_path = tmp_dir / f"{stem}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path

    return make


def _file_stem(cn: str, key_size: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", cn).strip("-").lower() or "identity"
    return f"{slug}-rsa{key_size}"


@pytest.fixture(autouse=True)
def _restore_dcmseal_logging() -> Iterator[None]:
    """CLI invocations in-process configure the ``dcmseal`` and ``py.warnings`` loggers; undo that after each test.

    Without this, a CLI test that ran first (random order) leaves the package logger at ERROR without
    propagation, and a later test's ``caplog`` sees nothing.
    """
    import logging

    saved = []
    for name in ("dcmseal", "py.warnings"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, list(logger.handlers), logger.propagate))
    yield
    for logger, level, handlers, propagate in saved:
        logger.setLevel(level)
        logger.handlers = handlers
        logger.propagate = propagate
    logging.captureWarnings(False)


# --- foreign media (tests/foreign/corpus.py): for open, scan and import ---------------------------------------


@pytest.fixture(scope="session")
def foreign_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ForeignMedium]:
    """Media other systems make, built once per session with real tools (a few seconds): by name.

    Each says where ``open`` puts every file and what ``scan`` reports (:class:`tests.foreign.corpus.ForeignMedium`).
    """
    from tests.foreign.corpus import build_corpus  # imported here: it pulls in the media test helpers

    for binary, package in (
        ("dcmconv", "dcmtk"),
        ("dcmmkdir", "dcmtk"),
        ("genisoimage", "genisoimage"),
        ("mkudffs", "udftools"),
        ("7z", "p7zip-full"),
    ):
        require_tool(binary, package)
    return build_corpus(Path(tmp_path_factory.mktemp("foreign")))


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own ``$XDG_DATA_HOME``: what dcmseal records there (staging runs, unseal records, the
    registry, the audit log) never reaches the developer's own data folder nor another test. Tests that need
    a particular one set it again. (Beside the test's ``tmp_path``, not in it: tests count what is there.)"""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))
