"""The safe recipes: seal and unseal one DICOM file, Dataset or byte string, policy and defaults inside.

In the shape of cryptography's Fernet (``pyca/cryptography src/cryptography/fernet.py``): the caller names
what to protect and for whom, and the recipe decides everything it can get wrong. A password is checked
by the policy and its salt drawn (:func:`dcmseal.keys.sealing_password`, with the patient's name and ID as
context), the PBKDF2 count, PRF, cipher and digest are the named defaults of :class:`dcmseal.config.Settings`,
and the result says whether the envelope keeps to PS3.15 D.1. Underneath, :func:`dcmseal.part10.seal_file` and :mod:`dcmseal.cms` stay for experts.

Passwords may be ``str`` or ``bytes``. To seal, a ``str`` is NFC-normalised and must be ISO-IR 6
(PS3.15 D.1), so its octets are its ASCII bytes; ``bytes`` must be ISO-IR 6 too. To unseal, a ``str`` is
NFC-normalised and UTF-8 encoded (RFC 8018 §3), so a password of another writer's envelope that is not
ASCII still opens it; ``bytes`` are used as given.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dcmseal import cms
from dcmseal.config import Settings
from dcmseal.errors import (
    DcmsealError,
    InputError,
    MissingInputError,
    NotPart10Error,
    OutputExistsError,
    UsageError,
)
from dcmseal.fsutil import atomic_write
from dcmseal.keys.passwords import password_octets, sealing_password
from dcmseal.outcomes import Integrity
from dcmseal.part10.batch import SealPlan
from dcmseal.part10.fileformat import (
    HEADER_BYTES,
    PREAMBLE_BYTES,
    ZERO_PREAMBLE,
    PreambleKind,
    classify_preamble,
    is_part10,
    parse_meta_group,
    require_part10,
)
from dcmseal.part10.secure import refuse_plain, refuse_sealed, seal_file, unseal_file

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["SealedFile", "UnsealedFile", "seal", "unseal"]

logger = logging.getLogger(__name__)

#: How an in-memory input is named in messages (it has no path).
_IN_MEMORY = Path("<bytes>")
#: File Meta group elements PS3.10 §7.1 requires and the envelope's result reports.
_SOP_CLASS_UID, _SOP_INSTANCE_UID = 0x00020002, 0x00020003


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedFile:
    """A Secure DICOM File (PS3.10 §7.4) that :func:`seal` wrote.

    Attributes
    ----------
    path : Path
        The file written.
    size : int
        Its size in bytes.
    sop_class_uid, sop_instance_uid : str
        From the File Meta Information of what was sealed.
    envelope : EnvelopeInfo
        What the envelope says of itself: recipients, algorithms, sizes.
    outside_profile : tuple of str
        What of the sealing PS3.15 D.1 does not name, one sentence each; empty when in profile.
    password_problems : tuple of str
        Why the policy would refuse the password, when ``allow_weak_password`` let it through.
    notes : tuple of str
        What was changed on the way (a non-zero preamble zeroed, PS3.10 §7.5).
    """

    path: Path
    size: int
    sop_class_uid: str
    sop_instance_uid: str
    envelope: cms.EnvelopeInfo
    outside_profile: tuple[str, ...] = ()
    password_problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def in_profile(self) -> bool:
        """Whether the file keeps to PS3.15 D.1: every recipient, the content type and the digest."""
        return self.envelope.in_profile and not self.outside_profile

    def to_json(self) -> dict[str, object]:
        """Return the result as JSON-ready data with stable snake_case keys."""
        return {
            "path": str(self.path),
            "size": self.size,
            "status": "sealed",
            "sop_class_uid": self.sop_class_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "in_profile": self.in_profile,
            "outside_profile": list(self.outside_profile),
            "password_problems": list(self.password_problems),
            "envelope": self.envelope.to_json(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsealedFile:
    """A PS3.10 file that :func:`unseal` opened, verified and wrote.

    Attributes
    ----------
    path : Path
        The file written.
    size : int
        Its size in bytes.
    sop_instance_uid : str or None
        From its File Meta Information.
    verified : bool
        A digest or signature vouched for the content (False only with ``accept_unprotected``).
    conformant : bool
        The envelope and its content keep to PS3.15 D.1.
    notes : tuple of str
        What was changed on the way (a non-zero preamble zeroed) or is worth knowing.
    """

    path: Path
    size: int
    sop_instance_uid: str | None
    verified: bool
    conformant: bool
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """Return the result as JSON-ready data with stable snake_case keys."""
        return {
            "path": str(self.path),
            "size": self.size,
            "status": "unsealed",
            "sop_instance_uid": self.sop_instance_uid,
            "integrity": Integrity.of(self.verified).value,
            "conformant": self.conformant,
            "notes": list(self.notes),
        }


# -- seal ----------------------------------------------------------------------------------------------


@overload
def seal(
    source: str | os.PathLike[str] | bytes | Dataset,
    dest: None = None,
    /,
    *,
    password: str | bytes | None = None,
    certificates: Iterable[x509.Certificate | bytes] = (),
    allow_weak_password: bool = False,
    settings: Settings | None = None,
    overwrite: bool = False,
    context: cms.Context | None = None,
) -> bytes: ...


@overload
def seal(
    source: str | os.PathLike[str] | bytes | Dataset,
    dest: str | os.PathLike[str],
    /,
    *,
    password: str | bytes | None = None,
    certificates: Iterable[x509.Certificate | bytes] = (),
    allow_weak_password: bool = False,
    settings: Settings | None = None,
    overwrite: bool = False,
    context: cms.Context | None = None,
) -> SealedFile: ...


def seal(
    source: str | os.PathLike[str] | bytes | Dataset,
    dest: str | os.PathLike[str] | None = None,
    /,
    *,
    password: str | bytes | None = None,
    certificates: Iterable[x509.Certificate | bytes] = (),
    allow_weak_password: bool = False,
    settings: Settings | None = None,
    overwrite: bool = False,
    context: cms.Context | None = None,
) -> bytes | SealedFile:
    """Seal a DICOM file into a Secure DICOM File (PS3.10 §7.4, PS3.15 D.1) for a password and/or certificates.

    The whole PS3.10 file (preamble zeroed, ``DICM``, File Meta, data set) goes inside DigestedData inside
    CMS EnvelopedData: PBKDF2 + RFC 3211 key wrap for the password, RSA key transport for each
    certificate.

    Parameters
    ----------
    source : str, os.PathLike, bytes or pydicom.Dataset
        A path of a PS3.10 file, the bytes of one, or a Dataset (written as PS3.10 first; it needs its
        ``file_meta`` Transfer Syntax UID, as :func:`pydicom.dcmwrite` does).
    dest : str or os.PathLike, optional
        Where to write the Secure DICOM File, atomically (all or nothing). Without it the sealed bytes
        are returned.
    password : str or bytes, optional
        Checked by the password policy with the patient's name and ID as context: at least 12
        characters, no date, not all digits, hard to guess (:func:`dcmseal.keys.check_password`).
    certificates : iterable of x509.Certificate or bytes
        RSA recipient certificates (objects, or PEM/DER bytes).
    allow_weak_password : bool
        Seal for a password the policy refuses; ``password_problems`` of the result says why it would
        have (with ``dest``), and a warning is logged.
    settings : Settings, optional
        Cipher, digest and PBKDF2 iterations, PRF and salt length; :class:`~dcmseal.config.Settings`
        defaults (AES-256-CBC, SHA-256, PBKDF2-HMAC-SHA256 x 600,000, 16-byte salt) unless given.
    overwrite : bool
        Replace an existing ``dest``.
    context : cms.Context, optional
        The run's :class:`dcmseal.cms.Context` (caches and helper threads shared by the calls given it);
        each call has its own without it.

    Returns
    -------
    bytes or SealedFile
        The Secure DICOM File's bytes without ``dest``; with it, what was written.

    Raises
    ------
    UsageError
        Neither a password nor a certificate.
    WeakPasswordError
        The policy refuses the password (the message never contains it).
    InputError
        The password is not ISO-IR 6; ``source`` does not exist or cannot be read; ``dest`` exists.
    NotPart10Error
        ``source`` is not a PS3.10 file, or is already a Secure DICOM File.
    TypeError, ValueError
        A wrong type of argument, or a certificate that is not RSA or does not parse.

    Examples
    --------
    >>> sealed = dcmseal.seal(ds, password="Kestrel-amber-Lantern-orbit-velvet")  # doctest: +SKIP
    >>> dcmseal.unseal(sealed, password="Kestrel-amber-Lantern-orbit-velvet")  # doctest: +SKIP
    """
    settings = settings or Settings()
    path, data = _read_source(source)
    plan, problems = _seal_plan(path, data, password, certificates, allow_weak_password, settings)
    recipients, outside = plan.recipients(), plan.outside_profile()
    if path is not None and dest is not None:
        written = seal_file(
            path,
            Path(dest),
            recipients=recipients,
            cipher=plan.cipher,
            digest=plan.digest,
            overwrite=overwrite,
            context=context,
        )
        return SealedFile(
            path=written.destination,
            size=written.destination.stat().st_size,
            sop_class_uid=written.sop_class_uid,
            sop_instance_uid=written.sop_instance_uid,
            envelope=written.envelope,
            outside_profile=outside,
            password_problems=problems,
            notes=written.notes,
        )
    if data is None:
        assert path is not None  # _read_source gives a path or the bytes
        data = _read_bytes(path)
    name = path or _IN_MEMORY
    uids, preamble = _part10_facts(data, name)
    sealed = io.BytesIO()
    spec = cms.EnvelopeSpec(
        recipients=recipients, content_cipher=plan.cipher, inner=cms.DigestedContent(digest=plan.digest)
    )
    # PS3.10 §7.5: the preamble of what is sealed is zeros, whatever the source had (CVE-2019-11687).
    payload = ZERO_PREAMBLE + data[PREAMBLE_BYTES:]
    envelope = cms.encrypt(io.BytesIO(payload), sealed, spec, payload_size=len(payload), context=context)
    notes = (
        (f"non-zero preamble ({preamble.value}) zeroed before sealing (PS3.10 §7.5)",)
        if preamble is not PreambleKind.ZERO
        else ()
    )
    if dest is None:
        return sealed.getvalue()
    target = Path(dest)
    _write(target, sealed.getvalue(), overwrite=overwrite)
    return SealedFile(
        path=target,
        size=len(sealed.getvalue()),
        sop_class_uid=uids[_SOP_CLASS_UID],
        sop_instance_uid=uids[_SOP_INSTANCE_UID],
        envelope=envelope,
        outside_profile=outside,
        password_problems=problems,
        notes=notes,
    )


def _seal_plan(
    path: Path | None,
    data: bytes | None,
    password: str | bytes | None,
    certificates: Iterable[x509.Certificate | bytes],
    allow_weak: bool,
    settings: Settings,
) -> tuple[SealPlan, tuple[str, ...]]:
    """The plan every recipient comes from, once the policy accepted the password; and its problems."""
    secret: bytes | None = None
    kdf: cms.Pbkdf2Params | None = None
    problems: tuple[str, ...] = ()
    if password is not None:
        sealing = sealing_password(
            password,
            context=_patient_context(path, data),
            allow_weak=allow_weak,
            iterations=settings.pbkdf2_iterations,
            prf=settings.pbkdf2_prf,
            salt_bytes=settings.salt_bytes,
        )
        secret, kdf, problems = sealing.password, sealing.kdf, sealing.problems
        if problems:
            logger.warning("weak password accepted (allow_weak_password): %s", "; ".join(problems))
    plan = SealPlan(
        password=secret,
        kdf=kdf,
        certificates=tuple(_certificate_der(c) for c in certificates),
        cipher=cms.ContentCipher(settings.cipher),
        digest=cms.DigestAlgorithm(settings.digest),
    )
    return plan, problems


def _patient_context(path: Path | None, data: bytes | None) -> tuple[str, ...]:
    """Patient name and ID, which the password must not contain (read without the pixels)."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    source: Path | io.BytesIO | None = io.BytesIO(data) if data is not None else path
    if source is None:
        return ()
    try:
        ds = dcmread(source, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return ()  # not readable as DICOM: the Part 10 check that follows says so, precisely
    return tuple(
        str(ds.get(keyword, "") or "") for keyword in ("PatientName", "PatientID") if ds.get(keyword)
    )


def _certificate_der(certificate: x509.Certificate | bytes) -> bytes:
    if isinstance(certificate, x509.Certificate):
        return certificate.public_bytes(serialization.Encoding.DER)
    if isinstance(certificate, bytes):
        loaded = (
            x509.load_pem_x509_certificate(certificate)
            if certificate.lstrip().startswith(b"-----BEGIN")
            else x509.load_der_x509_certificate(certificate)
        )
        return loaded.public_bytes(serialization.Encoding.DER)
    raise TypeError(
        f"a certificate is an x509.Certificate or PEM/DER bytes, not {type(certificate).__name__}"
    )


def _read_source(source: object) -> tuple[Path | None, bytes | None]:
    """A path to read (``str`` and path-likes), or the bytes of a PS3.10 file (bytes, or a Dataset written)."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise MissingInputError(path)
        return path, None
    if isinstance(source, bytes | bytearray | memoryview):
        return None, bytes(source)
    from pydicom.dataset import Dataset

    if isinstance(source, Dataset):
        return None, _dataset_bytes(source)
    raise TypeError(f"source is a path, bytes or a pydicom Dataset, not {type(source).__name__}")


def _dataset_bytes(ds: Dataset) -> bytes:
    """The Dataset as a PS3.10 file: preamble, ``DICM``, File Meta (completed by pydicom), data set."""
    from pydicom import dcmwrite

    buffer = io.BytesIO()
    try:
        dcmwrite(buffer, ds, enforce_file_format=True)
    except (AttributeError, ValueError) as exc:
        # A Dataset pydicom cannot write as PS3.10 is the caller's to fix (no Transfer Syntax UID...).
        raise ValueError(f"the Dataset cannot be written as a PS3.10 file: {exc}") from exc
    return buffer.getvalue()


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from exc


def _part10_facts(data: bytes, name: Path) -> tuple[dict[int, str], PreambleKind]:
    """The File Meta UIDs and the preamble kind of a PS3.10 file held in memory."""
    refuse_sealed(data, name)
    require_part10(data, name)
    uids, _end = parse_meta_group(data, len(data), name)
    return uids, classify_preamble(data[:PREAMBLE_BYTES])


def _write(target: Path, data: bytes, *, overwrite: bool) -> None:
    try:
        with atomic_write(target, overwrite=overwrite) as out:
            out.write(data)
    except FileExistsError:
        raise OutputExistsError(target) from None
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path=target) from exc


# -- unseal --------------------------------------------------------------------------------------------


@overload
def unseal(
    source: str | os.PathLike[str] | bytes,
    dest: None = None,
    /,
    *,
    password: str | bytes | None = None,
    private_key: rsa.RSAPrivateKey | bytes | None = None,
    certificate: x509.Certificate | bytes | None = None,
    as_bytes: Literal[False] = False,
    accept_unprotected: bool = False,
    settings: Settings | None = None,
    overwrite: bool = False,
    context: cms.Context | None = None,
) -> Dataset: ...


@overload
def unseal(
    source: str | os.PathLike[str] | bytes,
    dest: None = None,
    /,
    *,
    password: str | bytes | None = None,
    private_key: rsa.RSAPrivateKey | bytes | None = None,
    certificate: x509.Certificate | bytes | None = None,
    as_bytes: Literal[True],
    accept_unprotected: bool = False,
    settings: Settings | None = None,
    overwrite: bool = False,
    context: cms.Context | None = None,
) -> bytes: ...


@overload
def unseal(
    source: str | os.PathLike[str] | bytes,
    dest: str | os.PathLike[str],
    /,
    *,
    password: str | bytes | None = None,
    private_key: rsa.RSAPrivateKey | bytes | None = None,
    certificate: x509.Certificate | bytes | None = None,
    as_bytes: bool = False,
    accept_unprotected: bool = False,
    settings: Settings | None = None,
    overwrite: bool = False,
    context: cms.Context | None = None,
) -> UnsealedFile: ...


def unseal(
    source: str | os.PathLike[str] | bytes,
    dest: str | os.PathLike[str] | None = None,
    /,
    *,
    password: str | bytes | None = None,
    private_key: rsa.RSAPrivateKey | bytes | None = None,
    certificate: x509.Certificate | bytes | None = None,
    as_bytes: bool = False,
    accept_unprotected: bool = False,
    settings: Settings | None = None,
    overwrite: bool = False,
    context: cms.Context | None = None,
) -> Dataset | bytes | UnsealedFile:
    """Open a Secure DICOM File, verify its digest or signature, and return or write the PS3.10 file inside.

    Nothing is returned or written before the check passed: a wrong key and altered content raise the
    one :class:`~dcmseal.errors.DecryptionError`. A non-zero preamble inside (another writer's) comes out
    zeroed (PS3.10 §7.5). PBKDF2 work is bounded by the settings (``max_pbkdf2_iterations``).

    Parameters
    ----------
    source : str, os.PathLike or bytes
        A path of a Secure DICOM File, or its bytes.
    dest : str or os.PathLike, optional
        Where to write the PS3.10 file, atomically. Without it the file is returned.
    password : str or bytes, optional
        A ``str`` is NFC-normalised and UTF-8 encoded (RFC 8018 §3); no policy applies to opening.
    private_key : rsa.RSAPrivateKey or bytes, optional
        The RSA key of a certificate recipient (an object, or unencrypted PKCS#8 PEM/DER bytes).
    certificate : x509.Certificate or bytes, optional
        The key's certificate, to find its recipient at once.
    as_bytes : bool
        Without ``dest``: return the PS3.10 file's bytes instead of a pydicom Dataset.
    accept_unprotected : bool
        Also open an envelope with no digest or signature inside (plain ``openssl cms -encrypt``);
        its content is NOT verified (``verified`` is False, with ``dest``).
    settings : Settings, optional
        Limits against hostile envelopes (PBKDF2 iterations, header size).
    overwrite : bool
        Replace an existing ``dest``.
    context : cms.Context, optional
        The run's :class:`dcmseal.cms.Context`: given to every call of a run, a password derives its key
        once per salt (files sealed together share one), not once per file. Each call has its own without it.

    Returns
    -------
    pydicom.Dataset, bytes or UnsealedFile
        The Dataset (or bytes with ``as_bytes``) without ``dest``; with it, what was written.

    Raises
    ------
    UsageError
        Neither a password nor a private key.
    DecryptionError
        Wrong password or key, or the content was altered.
    MalformedEnvelopeError, UnsupportedAlgorithmError, ResourceLimitError, UnprotectedContentError
        The envelope does not parse, uses what dcmseal does not implement, asks for too much work, or
        holds no digest or signature (without ``accept_unprotected``).
    NotPart10Error
        ``source`` is a plain PS3.10 file, or what it holds is not one.
    InputError
        ``source`` does not exist or cannot be read; ``dest`` exists.
    """
    settings = settings or Settings()
    credentials = _credentials(password, private_key, certificate)
    path, data = _read_source(source)
    if path is not None and dest is not None:
        opened = unseal_file(
            path,
            Path(dest),
            credentials=credentials,
            strict=True,
            max_iterations=settings.max_pbkdf2_iterations,
            max_header_bytes=settings.max_header_bytes,
            overwrite=overwrite,
            accept_unprotected=accept_unprotected,
            context=context,
        )
        return UnsealedFile(
            path=opened.destination,
            size=opened.destination.stat().st_size,
            sop_instance_uid=opened.sop_instance_uid,
            verified=opened.verified,
            conformant=opened.conformant,
            notes=opened.notes,
        )
    name = path or _IN_MEMORY
    if data is None:
        assert path is not None
        data = _read_bytes(path)
    payload, result, notes = _open(
        data, name, credentials, settings, accept_unprotected=accept_unprotected, context=context
    )
    if dest is not None:
        target = Path(dest)
        _write(target, payload, overwrite=overwrite)
        uids, _ = _part10_facts(payload, name)
        return UnsealedFile(
            path=target,
            size=len(payload),
            sop_instance_uid=uids.get(_SOP_INSTANCE_UID),
            verified=result.inner.verified,
            conformant=result.conformant,
            notes=notes,
        )
    if as_bytes:
        return payload
    from pydicom import dcmread

    return dcmread(io.BytesIO(payload))


def _credentials(
    password: str | bytes | None,
    private_key: rsa.RSAPrivateKey | bytes | None,
    certificate: x509.Certificate | bytes | None,
) -> tuple[cms.Credential, ...]:
    credentials: list[cms.Credential] = []
    if password is not None:
        credentials.append(cms.PasswordCredential(password=password_octets(password)))
    if private_key is not None:
        if isinstance(private_key, bytes):
            loaded = (
                serialization.load_pem_private_key(private_key, password=None)
                if private_key.lstrip().startswith(b"-----BEGIN")
                else serialization.load_der_private_key(private_key, password=None)
            )
        else:
            loaded = private_key
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise TypeError("only RSA private keys open certificate recipients (PS3.15 D.1)")
        cert = (
            x509.load_der_x509_certificate(_certificate_der(certificate)) if certificate is not None else None
        )
        credentials.append(cms.PrivateKeyCredential(private_key=loaded, certificate=cert))
    elif certificate is not None:
        raise UsageError("a certificate opens nothing without its private key")
    if not credentials:
        raise UsageError("nothing to open with: give a password or a private key")
    return tuple(credentials)


def _open(
    data: bytes,
    name: Path,
    credentials: tuple[cms.Credential, ...],
    settings: Settings,
    *,
    accept_unprotected: bool,
    context: cms.Context | None,
) -> tuple[bytes, cms.DecryptResult, tuple[str, ...]]:
    """Decrypt and verify in memory; the PS3.10 file (preamble zeroed), the result and the notes."""
    refuse_plain(data, name)
    sink = io.BytesIO()
    try:
        result = cms.decrypt(
            io.BytesIO(data),
            sink,
            credentials,
            max_iterations=settings.max_pbkdf2_iterations,
            size=len(data),
            max_header_bytes=settings.max_header_bytes,
            accept_unprotected=accept_unprotected,
            kdf_budget=cms.KdfBudget.for_limits(
                settings.max_pbkdf2_iterations, settings.kdf_budget_per_medium
            ),
            context=context,
        )
    except DcmsealError as exc:
        raise exc.with_path(name) from None
    payload = sink.getvalue()
    if not is_part10(payload[:HEADER_BYTES]):
        raise NotPart10Error("the decrypted payload is not a DICOM PS3.10 file", path=name)
    notes = list(result.inner.notes)
    preamble = classify_preamble(payload[:PREAMBLE_BYTES])
    if preamble is not PreambleKind.ZERO:
        # PS3.10 §7.5: a reader that does not use the preamble may zero it; what could run never leaves here.
        payload = ZERO_PREAMBLE + payload[PREAMBLE_BYTES:]
        notes.append(f"the payload's preamble was not zero ({preamble.value}): zeroed (PS3.10 §7.5)")
    return payload, result, tuple(notes)
