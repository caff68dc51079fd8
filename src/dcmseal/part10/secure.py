"""The Secure DICOM File (PS3.10 §7.4): seal a Part 10 file in CMS EnvelopedData, unseal and verify it."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cryptography import x509

from dcmseal import cms
from dcmseal.config import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_PBKDF2_ITERATIONS
from dcmseal.errors import DcmsealError, InputError, MissingInputError, NotPart10Error, OutputExistsError
from dcmseal.fsutil import BatchCommit, Extent, ExtentReader, atomic_write, start_writeback
from dcmseal.outcomes import Integrity
from dcmseal.part10.fileformat import (
    HEADER_BYTES,
    PREAMBLE_BYTES,
    ZERO_PREAMBLE,
    FileMeta,
    PreambleKind,
    classify_preamble,
    is_part10,
    read_file_meta,
)

__all__ = [
    "SECURE_HEAD_BYTES",
    "InspectResult",
    "SealResult",
    "SealedStream",
    "UnsealResult",
    "inspect_file",
    "is_secure_file",
    "is_secure_head",
    "prepare_seal",
    "refuse_plain",
    "refuse_sealed",
    "seal_file",
    "unseal_file",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class SealResult:
    """One Part 10 file sealed into a Secure DICOM File."""

    source: Path
    destination: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    preamble: PreambleKind  # as found in the source; the sealed payload always has a zero preamble
    payload_size: int
    envelope: cms.EnvelopeInfo
    notes: tuple[str, ...]

    @property
    def preamble_zeroed(self) -> bool:
        return self.preamble is not PreambleKind.ZERO

    def to_json(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "destination": str(self.destination),
            "status": "sealed",
            "sop_class_uid": self.sop_class_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "preamble": self.preamble.value,
            "preamble_zeroed": self.preamble_zeroed,
            "payload_size": self.payload_size,
            "envelope": self.envelope.to_json(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsealResult:
    """One Secure DICOM File opened, verified and written out."""

    source: Path
    destination: Path
    payload_size: int
    is_part10: bool
    sop_instance_uid: str | None
    preamble: PreambleKind | None  # as sealed (the written file's is zero unless kept)
    decrypted: cms.DecryptResult
    notes: tuple[str, ...]
    #: The payload's preamble was not zero and the written file has it zeroed (PS3.10 §7.5).
    preamble_zeroed: bool = False

    @property
    def conformant(self) -> bool:
        return self.decrypted.conformant and self.is_part10

    @property
    def verified(self) -> bool:
        """Whether a digest or signature vouched for the payload (False: opened as unprotected content)."""
        return self.decrypted.inner.verified

    def to_json(self) -> dict[str, object]:
        inner = self.decrypted.inner
        return {
            "source": str(self.source),
            "destination": str(self.destination),
            "status": "unsealed",
            "integrity": Integrity.of(self.verified).value,
            "payload_size": self.payload_size,
            "is_part10": self.is_part10,
            "sop_instance_uid": self.sop_instance_uid,
            "preamble": self.preamble.value if self.preamble else None,
            "preamble_zeroed": self.preamble_zeroed,
            "content": inner.kind,
            "digest": inner.digest.value if inner.digest else None,
            "signers": [s.to_json() for s in inner.signers],
            "recipient_used": self.decrypted.recipient_index,
            "conformant": self.conformant,
            "envelope": self.decrypted.envelope.to_json(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InspectResult:
    """A Secure DICOM File described without opening it."""

    path: Path
    size: int
    envelope: cms.EnvelopeInfo

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "size": self.size, **self.envelope.to_json()}


class _ZeroedPreamble:
    """A Part 10 file as a byte source whose 128-byte preamble reads as zeros (the input is untouched)."""

    def __init__(self, fp: io.BufferedReader) -> None:
        self._fp = fp
        self._position = 0

    def read(self, n: int = -1, /) -> bytes:
        if self._position < PREAMBLE_BYTES:
            # Hand out the preamble on its own (as zeros), so later reads pass through uncopied.
            want = PREAMBLE_BYTES - self._position if n < 0 else min(n, PREAMBLE_BYTES - self._position)
            data = self._fp.read(want)
            self._position += len(data)
            return bytes(len(data))
        data = self._fp.read(n)
        self._position += len(data)
        return data

    def readinto(self, buffer: memoryview, /) -> int:
        """Fill ``buffer`` (after the preamble: straight from the file, no copy in between)."""
        if self._position < PREAMBLE_BYTES:
            data = self.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        n = self._fp.readinto(buffer) or 0
        self._position += n
        return n


#: How much of a file :func:`is_secure_head` needs to see.
SECURE_HEAD_BYTES = 32


def is_secure_head(head: bytes) -> bool:
    """Whether ``head``, a file's first bytes (:data:`SECURE_HEAD_BYTES` are enough), begins a Secure DICOM
    File: a CMS EnvelopedData, recognised by content (never by name), PS3.10 §7.4.

    The one test of "is this file sealed" that media, scan and the reader share.
    """
    return cms.is_enveloped_data(head[:SECURE_HEAD_BYTES])


def is_secure_file(path: Path) -> bool:
    """Whether ``path`` holds a Secure DICOM File (:func:`is_secure_head` of its first bytes)."""
    with open(path, "rb") as fp:
        return is_secure_head(fp.read(SECURE_HEAD_BYTES))


def refuse_sealed(head: bytes, path: Path) -> None:
    """Refuse to seal what ``head`` (the first bytes of ``path``) shows is sealed already: one message everywhere."""
    if is_secure_head(head):
        raise NotPart10Error("already a Secure DICOM File (CMS EnvelopedData); unseal it first", path=path)


def refuse_plain(head: bytes, path: Path) -> None:
    """Refuse to unseal a plain PS3.10 file (``head``: the first bytes of ``path``): one message everywhere."""
    if not is_secure_head(head) and is_part10(head):
        raise InputError("not a Secure DICOM File: a plain DICOM PS3.10 file (nothing to unseal)", path=path)


def _preamble_notes(kind: PreambleKind) -> tuple[str, ...]:
    if kind is PreambleKind.TIFF:
        return ("TIFF dual-personality preamble zeroed (PS3.10 §7.5); the sealed file is DICOM only",)
    if kind is PreambleKind.OTHER:
        return ("non-zero preamble zeroed before sealing (PS3.10 §7.5, CVE-2019-11687)",)
    if kind is PreambleKind.DICM_ZERO:
        return ("preamble 'DICM' + zeros (PS3.10 §8.3) zeroed",)
    return ()


def seal_file(
    src: Path,
    dst: Path,
    /,
    *,
    recipients: Sequence[cms.Recipient],
    cipher: cms.ContentCipher = cms.ContentCipher.AES256_CBC,
    digest: cms.DigestAlgorithm = cms.DigestAlgorithm.SHA256,
    signer: cms.SignedContent | None = None,
    context: cms.Context | None = None,
    overwrite: bool = False,
    rng: Callable[[int], bytes] = os.urandom,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    durable: bool = True,
    batch: BatchCommit | None = None,
) -> SealResult:
    """Seal the whole Part 10 file ``src`` (preamble zeroed) into the Secure DICOM File ``dst``.

    The payload is the entire PS3.10 file, preamble + ``DICM`` + File Meta + data set (PS3.10 §7.4,
    standards.md §1.2), inside DigestedData, or SignedData when ``signer`` is given (PS3.15 D.1.1).
    Passwords in ``recipients`` should share one salt across a set so readers derive the key once;
    ``context`` (:class:`dcmseal.cms.Context`, one per run) derives it once for the set here too.
    ``durable=False`` skips the fsyncs (scratch output); with ``batch`` the output is committed with the
    rest of its batch (:class:`dcmseal.fsutil.BatchCommit`).

    Raises
    ------
    NotPart10Error
        ``src`` is not a Part 10 file (a Secure DICOM File is refused too: sealing twice helps nobody).
    InputError
        ``dst`` exists and ``overwrite`` is false, or ``src`` cannot be read.
    """
    src, dst = Path(src), Path(dst)
    meta, spec, size = _seal_spec(src, recipients=recipients, cipher=cipher, digest=digest, signer=signer)
    try:
        with (
            open(src, "rb") as fp,
            atomic_write(dst, overwrite=overwrite, durable=durable, batch=batch) as out,
        ):
            envelope = cms.encrypt(
                _ZeroedPreamble(fp),
                out,
                spec,
                payload_size=size,
                context=context,
                rng=rng,
                now=now,
            )
    except FileExistsError:
        raise OutputExistsError(dst) from None
    except OSError as exc:
        raise InputError(f"cannot seal: {exc.strerror or exc}", path=src) from exc
    notes = _preamble_notes(meta.preamble)
    for note in notes:
        logger.warning("%s: %s", src, note)
    logger.debug("%s: sealed to %s (%s)", src, dst, meta.sop_instance_uid)
    return SealResult(
        source=src,
        destination=dst,
        sop_class_uid=meta.sop_class_uid,
        sop_instance_uid=meta.sop_instance_uid,
        transfer_syntax_uid=meta.transfer_syntax_uid,
        preamble=meta.preamble,
        payload_size=size,
        envelope=envelope,
        notes=notes,
    )


def _seal_spec(
    src: Path,
    *,
    recipients: Sequence[cms.Recipient],
    cipher: cms.ContentCipher,
    digest: cms.DigestAlgorithm,
    signer: cms.SignedContent | None,
) -> tuple[FileMeta, cms.EnvelopeSpec, int]:
    """Check that ``src`` can be sealed; its File Meta, the envelope to build and the payload size."""
    if not src.is_file():
        raise MissingInputError(src)
    with open(src, "rb") as fp:
        refuse_sealed(fp.read(SECURE_HEAD_BYTES), src)
    meta: FileMeta = read_file_meta(src)
    inner: cms.InnerSpec = signer if signer is not None else cms.DigestedContent(digest=digest)
    spec = cms.EnvelopeSpec(recipients=tuple(recipients), content_cipher=cipher, inner=inner)
    return meta, spec, src.stat().st_size


class SealedStream:
    """A Part 10 file to be sealed into a container being written: the Secure DICOM File's exact size is known
    now, its bytes are made later by :meth:`write_at`, once.

    This is how a medium image is written without a sealed copy of every file on disk first: the image
    reserves each file's extent from its :attr:`size`, then the file is sealed straight into it.
    """

    def __init__(self, source: Path, envelope: cms.PreparedEnvelope, meta: FileMeta) -> None:
        self.source = source
        self.size = envelope.size
        self.meta = meta
        self.envelope_info = envelope.info
        self.notes = _preamble_notes(meta.preamble)
        self._envelope = envelope

    def write_at(self, fd: int, offset: int, *, context: cms.Context | None = None) -> None:
        """Seal the source into the open file ``fd`` from ``offset`` on, with positional writes.

        Other processes may write other streams into the same file meanwhile (each its own range). The
        range's write-back starts at the end, so the file's final fsync finds little left. ``context`` is a
        worker process's own (its buffers and threads); by default the one the stream was prepared with.

        Raises
        ------
        InputError
            The source cannot be read, or its size changed since it was planned.
        """
        position = offset
        try:
            with open(self.source, "rb") as fp:
                for chunk in self._envelope.chunks(_ZeroedPreamble(fp), context=context):
                    view = memoryview(chunk)
                    while view:
                        written = os.pwrite(fd, view, position)
                        position += written
                        view = view[written:]
        except OSError as exc:
            raise InputError(f"cannot seal: {exc.strerror or exc}", path=self.source) from exc
        except ValueError as exc:  # the file changed size since it was planned
            raise InputError(
                f"cannot seal: {exc} (did it change after it was planned?)", path=self.source
            ) from exc
        if position - offset != self.size:  # the plan and the stream disagree: a bug, never a user error
            raise AssertionError(f"{self.source}: sealed {position - offset} bytes, planned {self.size}")
        start_writeback(fd, offset, self.size)


def prepare_seal(
    src: Path,
    /,
    *,
    recipients: Sequence[cms.Recipient],
    cipher: cms.ContentCipher = cms.ContentCipher.AES256_CBC,
    digest: cms.DigestAlgorithm = cms.DigestAlgorithm.SHA256,
    signer: cms.SignedContent | None = None,
    context: cms.Context | None = None,
    rng: Callable[[int], bytes] = os.urandom,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SealedStream:
    """Plan the sealing of ``src`` as :func:`seal_file` would, without writing: see :class:`SealedStream`.

    Raises
    ------
    NotPart10Error
        ``src`` is not a Part 10 file, or is already sealed.
    InputError
        ``src`` does not exist.
    """
    src = Path(src)
    meta, spec, size = _seal_spec(src, recipients=recipients, cipher=cipher, digest=digest, signer=signer)
    envelope = cms.prepare(spec, payload_size=size, context=context, rng=rng, now=now)
    return SealedStream(src, envelope, meta)


class _HeadCapture:
    """A sink that writes through and keeps the first 132 bytes (to check the payload is Part 10)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.head = b""

    def write(self, data: bytes | memoryview, /) -> int:
        if len(self.head) < HEADER_BYTES:
            self.head += bytes(data[: HEADER_BYTES - len(self.head)])
        return self._out.write(data)


def _open_source(src: Path, extent: Extent | None) -> io.BufferedReader:
    """The file ``src``, or the bytes of ``extent`` read in place, as a buffered binary file."""
    if extent is None:
        return open(src, "rb")
    return io.BufferedReader(ExtentReader(extent))


def unseal_file(
    src: Path,
    dst: Path,
    /,
    *,
    credentials: Sequence[cms.Credential],
    strict: bool = False,
    context: cms.Context | None = None,
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    trusted_certificates: tuple[x509.Certificate, ...] = (),
    overwrite: bool = False,
    durable: bool = True,
    batch: BatchCommit | None = None,
    extent: Extent | None = None,
    accept_unprotected: bool = False,
    keep_preamble: bool = False,
    kdf_budget: cms.KdfBudget | None = None,
) -> UnsealResult:
    """Open the Secure DICOM File ``src``, verify its digest or signature, and write the payload to ``dst``.

    A Part 10 payload whose 128-byte preamble is not zero (another writer's envelope: dcmseal seals zero
    preambles) is written with the preamble zeroed, as PS3.10 §7.5 lets a reader that does not use it do:
    what could run on its own (CVE-2019-11687) never lands on disk. The digest or signature was checked over
    the payload as sealed. ``keep_preamble`` writes the payload byte for byte instead, with a note.

    ``dst`` appears only after every check passed: a wrong key, a failed integrity check or (with
    ``strict``) a payload that is not Part 10 leaves nothing behind. ``durable=False`` skips the fsyncs
    (scratch output); with ``batch`` the output is committed with the rest of its batch. With
    ``extent``, the file's bytes are read from there (a file inside an ISO image, read in place) and
    ``src`` only names it.

    The payload must be DigestedData or SignedData inside (PS3.15 D.1.1), whatever the envelope
    declares; an envelope without either (plain ``openssl cms -encrypt``) opens only with
    ``accept_unprotected``, and the result then says its integrity was not verified. PBKDF2 work is
    bounded by ``kdf_budget`` (shared by the files of a medium; by default this file's own budget); keys
    are derived through ``context`` (:class:`dcmseal.cms.Context`, one per run: each key once per run).

    Raises
    ------
    DecryptionError, MalformedEnvelopeError, UnsupportedAlgorithmError, ResourceLimitError
        From the CMS layer, with ``src`` named. A wrong key and altered content are one DecryptionError.
    UnprotectedContentError
        No digest or signature inside, and ``accept_unprotected`` is false.
    NotPart10Error
        ``strict`` and the payload is not a Part 10 file.
    """
    src, dst = Path(src), Path(dst)
    if extent is None and not src.is_file():
        raise MissingInputError(src)
    try:
        size = extent.length if extent is not None else src.stat().st_size
        with _open_source(src, extent) as probe:
            head = probe.read(HEADER_BYTES)
    except OSError as exc:
        raise InputError(f"cannot unseal: {exc.strerror or exc}", path=src) from exc
    refuse_plain(head, src)
    notes: list[str] = []
    try:
        with (
            _open_source(src, extent) as fp,
            atomic_write(dst, overwrite=overwrite, durable=durable, batch=batch) as out,
        ):
            sink = _HeadCapture(out)
            result = cms.decrypt(
                fp,
                sink,
                credentials,
                context=context,
                max_iterations=max_iterations,
                size=size,
                max_header_bytes=max_header_bytes,
                trusted_certificates=trusted_certificates,
                accept_unprotected=accept_unprotected,
                kdf_budget=kdf_budget,
            )
            part10 = is_part10(sink.head)
            if not part10:
                message = "the decrypted payload is not a DICOM PS3.10 file"
                if strict:
                    raise NotPart10Error(message, path=src)
                notes.append(message)
            zeroed = part10 and not keep_preamble and any(sink.head[:PREAMBLE_BYTES])
            if zeroed:
                out.flush()
                os.pwrite(out.fileno(), ZERO_PREAMBLE, 0)  # before the file appears under its name
    except FileExistsError:
        raise OutputExistsError(dst) from None
    except DcmsealError as exc:
        raise exc.with_path(src) from None
    except OSError as exc:
        raise InputError(f"cannot unseal: {exc.strerror or exc}", path=src) from exc
    notes.extend(result.inner.notes)
    preamble: PreambleKind | None = None
    sop_instance_uid: str | None = None
    if part10:
        preamble = classify_preamble(sink.head[:PREAMBLE_BYTES])
        if zeroed:
            notes.append(
                f"the payload's preamble was not zero ({preamble.value}): written zeroed (PS3.10 §7.5; "
                "--keep-preamble writes it as sealed)"
            )
        elif preamble is not PreambleKind.ZERO:
            notes.append(
                f"the payload's preamble is not zero ({preamble.value}), kept as sealed: scan before use"
            )
        try:
            # In a batch, the output is not yet named until the batch commits.
            written = batch.readable_path(dst) if batch is not None else dst
            sop_instance_uid = read_file_meta(written).sop_instance_uid
        except NotPart10Error as exc:
            notes.append(exc.message)
    for note in notes:
        logger.warning("%s: %s", src, note)
    logger.debug("%s: unsealed to %s", src, dst)
    return UnsealResult(
        source=src,
        destination=dst,
        payload_size=result.inner.payload_size,
        is_part10=part10,
        sop_instance_uid=sop_instance_uid,
        preamble=preamble,
        decrypted=result,
        notes=tuple(notes),
        preamble_zeroed=zeroed,
    )


def inspect_file(path: Path, *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> InspectResult:
    """Describe the envelope of a Secure DICOM File: recipients, algorithms, sizes; no key needed."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path)
    size = path.stat().st_size
    with open(path, "rb") as fp:
        head = fp.read(SECURE_HEAD_BYTES)
        if not is_secure_head(head):
            what = (
                "a plain DICOM PS3.10 file"
                if is_part10(head + fp.read(HEADER_BYTES))
                else "not a CMS envelope"
            )
            raise InputError(f"not a Secure DICOM File: {what}", path=path)
        fp.seek(0)
        try:
            envelope = cms.inspect(fp, size=size, max_header_bytes=max_header_bytes)
        except DcmsealError as exc:
            raise exc.with_path(path) from None
    return InspectResult(path=path, size=size, envelope=envelope)
