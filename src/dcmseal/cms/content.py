"""The content inside the envelope (PS3.15 D.1.1): DigestedData or SignedData, streamed out and verified."""

from __future__ import annotations

import functools
import hmac
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from dcmseal.cms.algorithms import OID_DATA, OID_DIGESTED_DATA, OID_SIGNED_DATA, DigestAlgorithm
from dcmseal.cms.asn1 import load
from dcmseal.cms.der import (
    TAG_CONTEXT_0_CONSTRUCTED,
    TAG_CONTEXT_1_CONSTRUCTED,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    DerReader,
    Header,
    encode_header,
)
from dcmseal.cms.digest import BackgroundDigest, HelperThreads
from dcmseal.errors import (
    DecryptionError,
    MalformedEnvelopeError,
    UnprotectedContentError,
    UnsupportedAlgorithmError,
)

__all__ = [
    "UNPROTECTED_NOTE",
    "ContentKind",
    "DigestedContent",
    "DigestedLayout",
    "InnerPlan",
    "InnerResult",
    "InnerSpec",
    "RawContent",
    "SignedContent",
    "SignerReport",
    "digested_layout",
    "mislabel_note",
    "plan_inner",
    "read_inner",
]

_OID_DER_DATA: bytes = bytes(core.ObjectIdentifier(OID_DATA).dump())
_PKCS7_OID_PREFIX = bytes.fromhex("06092a864886f70d0107")  # OID header + 1.2.840.113549.1.7.
#: How a result says that nothing verified its payload (reports, --json and the audit show it).
UNPROTECTED_NOTE = (
    "integrity NOT verified: no DigestedData or SignedData inside (not conformant to PS3.15 D.1.1); "
    "opened only because unprotected content was accepted"
)
#: Metadata inside the inner structure (algorithms, certificates, signer infos) is small.
_MAX_META_BYTES = 4 * 1024 * 1024


class ContentKind:
    """What was inside the envelope."""

    DIGESTED = "digested-data"
    SIGNED = "signed-data"
    RAW = "raw"


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestedContent:
    """Wrap the payload in DigestedData (integrity without identity)."""

    digest: DigestAlgorithm = DigestAlgorithm.SHA256


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedContent:
    """Wrap the payload in SignedData signed with an RSA key (PKCS#1 v1.5, as PS3.15 D.1 names)."""

    private_key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate
    digest: DigestAlgorithm = DigestAlgorithm.SHA256
    extra_certificates: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, rsa.RSAPrivateKey):
            raise ValueError("PS3.15 D.1 signatures are RSA: the signing key must be RSA")
        cert_key = self.certificate.public_key()
        if not isinstance(cert_key, rsa.RSAPublicKey) or cert_key.public_numbers() != (
            self.private_key.public_key().public_numbers()
        ):
            raise ValueError("the signing certificate does not belong to the signing key")


@dataclass(frozen=True, slots=True, kw_only=True)
class RawContent:
    """The payload itself as id-data, as ``openssl cms -encrypt`` writes: no integrity, not PS3.15 D.1.1.

    For interoperability tests and known-answer reproduction only; the recipes never choose it.
    """

    digest: DigestAlgorithm = DigestAlgorithm.SHA256  # unused; keeps InnerPlan uniform


InnerSpec = DigestedContent | SignedContent | RawContent


# -- writing ----------------------------------------------------------------------------------------
# Memoized process-wide on purpose: a pure function of a public algorithm, one entry per digest, no secret.
@functools.cache
def _digest_algorithm_der(digest: DigestAlgorithm) -> bytes:
    return bytes(algos.DigestAlgorithm({"algorithm": digest.value}).dump())


def _encap_header(payload_size: int) -> bytes:
    """encapContentInfo { id-data, [0] EXPLICIT OCTET STRING } up to the payload octets."""
    octets = encode_header(TAG_OCTET_STRING, payload_size)
    explicit = encode_header(TAG_CONTEXT_0_CONSTRUCTED, len(octets) + payload_size)
    inner_len = len(_OID_DER_DATA) + len(explicit) + len(octets) + payload_size
    return encode_header(TAG_SEQUENCE, inner_len) + _OID_DER_DATA + explicit + octets


@dataclass(slots=True)
class InnerPlan:
    """The DER of the inner structure, known in length before the payload is read.

    ``prefix`` goes before the payload octets; :meth:`trailer` gives what follows once the payload's
    digest is known. ``length`` is the exact total, so the envelope can be written in one pass.
    """

    content_type: str
    digest: DigestAlgorithm
    prefix: bytes
    length: int
    _trailer: Callable[[bytes], bytes]

    def trailer(self, payload_digest: bytes) -> bytes:
        return self._trailer(payload_digest)

    def chunks(self, payload: Iterable[bytes], *, threads: HelperThreads | None = None) -> Iterator[bytes]:
        """The whole inner encoding, streamed: prefix, payload chunks (hashed on the way, on ``threads``
        when given), trailer."""
        with BackgroundDigest([self.digest], threads=threads) as digest:
            yield self.prefix
            for chunk in payload:
                digest.update(chunk)  # hashed on the helper thread while the caller encrypts it
                yield chunk
            trailer = self.trailer(digest.digest(self.digest))
        yield trailer


def _signer_info(spec: SignedContent, payload_digest: bytes, signing_time: datetime, *, dummy: bool) -> bytes:
    cert = asn1_x509.Certificate.load(spec.certificate.public_bytes(serialization.Encoding.DER))
    signed_attrs = cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["data"]},
            {"type": "signing_time", "values": [cms.Time(name="utc_time", value=signing_time)]},
            {"type": "message_digest", "values": [payload_digest]},
        ]
    )
    to_sign = b"\x31" + signed_attrs.dump()[1:]  # RFC 5652 §5.4: signed over the DER SET OF, not [0]
    if dummy:
        signature = bytes(spec.private_key.key_size // 8 + (1 if spec.private_key.key_size % 8 else 0))
    else:
        signature = spec.private_key.sign(to_sign, padding.PKCS1v15(), spec.digest.hash_algorithm())
    info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": cert.issuer, "serial_number": cert.serial_number},
            ),
            "digest_algorithm": {"algorithm": spec.digest.value},
            "signed_attrs": signed_attrs,
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": signature,
        }
    )
    return bytes(info.dump())


def plan_inner(spec: InnerSpec, payload_size: int, *, now: Callable[[], datetime]) -> InnerPlan:
    """Lay out DigestedData or SignedData around ``payload_size`` bytes of id-data content (DER)."""
    if isinstance(spec, RawContent):
        return InnerPlan(OID_DATA, spec.digest, b"", payload_size, lambda _digest: b"")
    digest_alg = _digest_algorithm_der(spec.digest)
    encap = _encap_header(payload_size)
    if isinstance(spec, DigestedContent):
        # RFC 5652 §7: version 0 because the encapsulated type is id-data.
        version = b"\x02\x01\x00"
        digest_len = spec.digest.digest_size
        body_len = len(version) + len(digest_alg) + len(encap) + payload_size + 2 + digest_len
        prefix = encode_header(TAG_SEQUENCE, body_len) + version + digest_alg + encap

        def digested_trailer(payload_digest: bytes) -> bytes:
            return encode_header(TAG_OCTET_STRING, len(payload_digest)) + payload_digest

        return InnerPlan(
            OID_DIGESTED_DATA,
            spec.digest,
            prefix,
            len(prefix) + payload_size + 2 + digest_len,
            digested_trailer,
        )

    signing_time = now().astimezone(UTC).replace(microsecond=0)
    # RFC 5652 §5.1: version 1 (id-data, issuerAndSerialNumber, X.509 certificates only).
    version = b"\x02\x01\x01"
    digest_algs = encode_header(0x31, len(digest_alg)) + digest_alg
    certs = b"".join(
        c.public_bytes(serialization.Encoding.DER) for c in (spec.certificate, *spec.extra_certificates)
    )
    certs_field = encode_header(TAG_CONTEXT_0_CONSTRUCTED, len(certs)) + certs
    dummy = _signer_info(spec, bytes(spec.digest.digest_size), signing_time, dummy=True)
    signer_infos_len = len(encode_header(0x31, len(dummy))) + len(dummy)
    body_len = (
        len(version) + len(digest_algs) + len(encap) + payload_size + len(certs_field) + signer_infos_len
    )
    prefix = encode_header(TAG_SEQUENCE, body_len) + version + digest_algs + encap

    def signed_trailer(payload_digest: bytes) -> bytes:
        info = _signer_info(spec, payload_digest, signing_time, dummy=False)
        if len(info) != len(dummy):
            raise AssertionError("SignerInfo length changed between plan and signature")
        return certs_field + encode_header(0x31, len(info)) + info

    return InnerPlan(
        OID_SIGNED_DATA,
        spec.digest,
        prefix,
        len(prefix) + payload_size + len(certs_field) + signer_infos_len,
        signed_trailer,
    )


# -- reading ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class SignerReport:
    """Who signed, and that the signature verified."""

    subject: str
    issuer: str
    serial_number: int
    sha256_fingerprint: str
    signing_time: datetime | None
    certificate_valid_at_signing: bool | None

    def to_json(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial_number": self.serial_number,
            "sha256_fingerprint": self.sha256_fingerprint,
            "signing_time": self.signing_time.isoformat() if self.signing_time else None,
            "certificate_valid_at_signing": self.certificate_valid_at_signing,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InnerResult:
    """What the decrypted content was, and what was verified."""

    kind: str
    wrapped_in_content_info: bool
    digest: DigestAlgorithm | None
    signers: tuple[SignerReport, ...]
    payload_size: int
    conformant: bool
    notes: tuple[str, ...]

    @property
    def verified(self) -> bool:
        """Whether a digest or signature covered the payload (False only for accepted unprotected content)."""
        return self.kind != ContentKind.RAW


def _digest_of(element: bytes) -> DigestAlgorithm:
    alg = load(algos.DigestAlgorithm, element, "digest algorithm")
    name = alg["algorithm"].native
    try:
        return DigestAlgorithm(name)
    except ValueError:
        raise UnsupportedAlgorithmError(f"digest algorithm {name}") from None


def _read_oid(reader: DerReader, context: str) -> str:
    header = reader.expect(TAG_OID, context)
    value = reader.read_value(header, context, limit=256)
    return str(load(core.ObjectIdentifier, encode_header(TAG_OID, len(value)) + value, context).dotted)


def _stream_econtent(
    reader: DerReader,
    sink: Callable[[bytes], object],
    digest: BackgroundDigest,
    chunk_size: int,
    context: str,
) -> int:
    """Stream the [0] EXPLICIT OCTET STRING eContent of an encapContentInfo into ``sink``; return its size."""
    explicit = reader.expect(TAG_CONTEXT_0_CONSTRUCTED, context)
    octets = reader.read_header(context)
    if octets.tag not in (TAG_OCTET_STRING, TAG_OCTET_STRING | 0x20):
        raise MalformedEnvelopeError(f"{context} at offset {octets.offset}: eContent is not an OCTET STRING")
    size = 0
    for chunk in reader.iter_octets(octets, context, chunk_size=chunk_size):
        digest.update(chunk)
        sink(chunk)
        size += len(chunk)
    reader.close(explicit, context)
    return size


def _read_digested(
    reader: DerReader, sink: Callable[[bytes], object], chunk_size: int, threads: HelperThreads | None
) -> tuple[DigestAlgorithm, int]:
    context = "DigestedData"
    # RFC 5652 §7: version 0 when the encapsulated type is id-data, the only one we take.
    if reader.read_element(context, limit=16) != b"\x02\x01\x00":
        raise MalformedEnvelopeError("DigestedData version is not 0")
    digest = _digest_of(reader.read_element(context, limit=1024))
    encap = reader.expect(TAG_SEQUENCE, context)
    content_type = _read_oid(reader, context)
    if content_type != OID_DATA:
        raise UnsupportedAlgorithmError(f"DigestedData holds {content_type}, expected id-data")
    if reader.at_end_of(encap):
        raise UnsupportedAlgorithmError("DigestedData with detached content")
    with BackgroundDigest([digest], threads=threads) as background:
        size = _stream_econtent(reader, sink, background, chunk_size, context)
        computed = background.digest(digest)
    reader.close(encap, context)
    header = reader.expect(TAG_OCTET_STRING, context)
    expected = reader.read_value(header, context, limit=128)
    if not hmac.compare_digest(expected, computed):
        raise DecryptionError() from None
    return digest, size


def _find_certificate(
    sid: cms.SignerIdentifier, certificates: list[x509.Certificate]
) -> x509.Certificate | None:
    for certificate in certificates:
        if sid.name == "issuer_and_serial_number":
            asn1_cert = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
            if (
                sid.chosen["serial_number"].native == asn1_cert.serial_number
                and sid.chosen["issuer"] == asn1_cert.issuer
            ):
                return certificate
        else:
            try:
                ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                ski = x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
            if sid.chosen.native == ski:
                return certificate
    return None


def _verify_signer(
    info: cms.SignerInfo,
    digests: dict[DigestAlgorithm, bytes],
    certificates: list[x509.Certificate],
    content_type: str,
) -> SignerReport:
    digest_name = info["digest_algorithm"]["algorithm"].native
    try:
        digest = DigestAlgorithm(digest_name)
    except ValueError:
        raise UnsupportedAlgorithmError(f"signer digest algorithm {digest_name}") from None
    if digest not in digests:
        raise MalformedEnvelopeError(f"the signer uses {digest.value}, not listed in digestAlgorithms")
    certificate = _find_certificate(info["sid"], certificates)
    if certificate is None:
        raise MalformedEnvelopeError("the signer's certificate is not in the file")
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise UnsupportedAlgorithmError("signature with a non-RSA key (PS3.15 D.1 signatures are RSA)")
    signing_time: datetime | None = None
    signed_attrs = info["signed_attrs"]
    if signed_attrs.native is not None and len(signed_attrs):
        values: dict[str, object] = {}
        for attribute in signed_attrs:
            kind = attribute["type"].native
            # RFC 5652 §11: each of these attributes appears once, with one value; a second
            # messageDigest or a second value could otherwise be checked while another is trusted.
            if kind in ("message_digest", "content_type", "signing_time"):
                if kind in values or len(attribute["values"]) != 1:
                    raise MalformedEnvelopeError(f"signed attribute {kind} repeated or with several values")
                value = attribute["values"][0]
                values[kind] = value.dotted if kind == "content_type" else value.native
        message_digest = values.get("message_digest")
        if not isinstance(message_digest, bytes) or not hmac.compare_digest(message_digest, digests[digest]):
            raise DecryptionError() from None
        if values.get("content_type") != content_type:
            raise MalformedEnvelopeError("the signed content type differs from the content")
        moment = values.get("signing_time")
        signing_time = moment if isinstance(moment, datetime) else None
        signed = b"\x31" + signed_attrs.dump()[1:]
        prehashed = False
    else:
        signed = digests[digest]
        prehashed = True
    algorithm = info["signature_algorithm"]
    name = algorithm["algorithm"].native
    hash_alg: hashes.HashAlgorithm = digest.hash_algorithm()
    pad: padding.AsymmetricPadding
    if name in ("rsassa_pkcs1v15", "sha1_rsa", "sha224_rsa", "sha256_rsa", "sha384_rsa", "sha512_rsa"):
        pad = padding.PKCS1v15()
    elif name == "rsassa_pss":
        params = algorithm["parameters"]
        names = (
            params["hash_algorithm"]["algorithm"].native,
            params["mask_gen_algorithm"]["parameters"]["algorithm"].native,
        )
        try:
            pss_hash, mgf_hash = (DigestAlgorithm(n) for n in names)
        except ValueError:
            raise UnsupportedAlgorithmError(f"RSASSA-PSS with {names[0]}/{names[1]}") from None
        pad = padding.PSS(
            mgf=padding.MGF1(mgf_hash.hash_algorithm()), salt_length=params["salt_length"].native
        )
        hash_alg = pss_hash.hash_algorithm()
    else:
        raise UnsupportedAlgorithmError(f"signature algorithm {name}")
    try:
        public_key.verify(
            info["signature"].native, signed, pad, Prehashed(hash_alg) if prehashed else hash_alg
        )
    except InvalidSignature:
        raise DecryptionError() from None
    valid_then: bool | None = None
    if signing_time is not None:
        valid_then = certificate.not_valid_before_utc <= signing_time <= certificate.not_valid_after_utc
    return SignerReport(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        serial_number=certificate.serial_number,
        sha256_fingerprint=certificate.fingerprint(hashes.SHA256()).hex(),
        signing_time=signing_time,
        certificate_valid_at_signing=valid_then,
    )


def _read_signed(
    reader: DerReader,
    sink: Callable[[bytes], object],
    chunk_size: int,
    trusted_certificates: tuple[x509.Certificate, ...],
    threads: HelperThreads | None,
) -> tuple[DigestAlgorithm | None, int, tuple[SignerReport, ...]]:
    context = "SignedData"
    # RFC 5652 §5.1: 1, 3, 4 or 5 (0 and 2 are not SignedData versions).
    if reader.read_element(context, limit=16) not in (
        b"\x02\x01\x01",
        *(bytes([2, 1, v]) for v in (3, 4, 5)),
    ):
        raise MalformedEnvelopeError("SignedData version is not 1, 3, 4 or 5")
    digest_set = load(cms.DigestAlgorithms, reader.read_element(context, limit=64 * 1024), "digestAlgorithms")
    algorithms: list[DigestAlgorithm] = []
    for alg in digest_set:
        try:
            algorithms.append(DigestAlgorithm(alg["algorithm"].native))
        except ValueError:
            continue  # a digest we do not know; a signer using it will be refused below

    encap = reader.expect(TAG_SEQUENCE, context)
    content_type = _read_oid(reader, context)
    if content_type != OID_DATA:
        raise UnsupportedAlgorithmError(f"SignedData holds {content_type}, expected id-data")
    if reader.at_end_of(encap):
        raise UnsupportedAlgorithmError("SignedData with detached content")
    with BackgroundDigest(algorithms, threads=threads) as background:
        size = _stream_econtent(reader, sink, background, chunk_size, context)
        digests = background.digests()
    reader.close(encap, context)
    certificates: list[x509.Certificate] = list(trusted_certificates)
    peek = reader.peek(1)
    if peek and peek[0] == TAG_CONTEXT_0_CONSTRUCTED:
        raw = reader.read_element(context, limit=_MAX_META_BYTES)
        cert_set = load(cms.CertificateSet, b"\x31" + raw[1:], "SignedData certificates")
        for choice in cert_set:
            if choice.name == "certificate":
                try:
                    certificates.append(x509.load_der_x509_certificate(choice.chosen.dump()))
                except (ValueError, x509.InvalidVersion) as exc:
                    raise MalformedEnvelopeError(
                        f"a certificate in SignedData does not parse ({exc})"
                    ) from None
        peek = reader.peek(1)
    if peek and peek[0] == TAG_CONTEXT_1_CONSTRUCTED:
        reader.read_element(context, limit=_MAX_META_BYTES)  # CRLs: not used (no path validation here)
    signer_infos = load(cms.SignerInfos, reader.read_element(context, limit=_MAX_META_BYTES), "signerInfos")
    if not len(signer_infos):
        raise MalformedEnvelopeError("SignedData without a signer")
    try:
        reports = tuple(_verify_signer(info, digests, certificates, OID_DATA) for info in signer_infos)
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        UnsupportedAlgorithm,
        x509.InvalidVersion,
    ) as exc:
        # Signer information that cryptography or asn1crypto cannot use (odd keys, unknown PSS
        # hashes, names with unassigned code points): the signature cannot be verified.
        raise MalformedEnvelopeError(f"unusable signer information ({exc})") from None
    return (algorithms[0] if algorithms else None), size, reports


def read_inner(
    reader: DerReader,
    sink: Callable[[bytes], object],
    *,
    declared_type: str,
    chunk_size: int,
    trusted_certificates: tuple[x509.Certificate, ...] = (),
    accept_unprotected: bool = False,
    threads: HelperThreads | None = None,
) -> InnerResult:
    """Parse the decrypted content, stream its payload into ``sink`` and verify it (standards.md §3.3).

    What is verified is decided from the decrypted bytes alone: a bare DigestedData or SignedData, or
    a ContentInfo wrapping one (what ``openssl cms -digest_create`` then ``-encrypt`` makes), is parsed
    to its last byte and its digest or signature checked. Anything else is a payload nothing can
    verify: refused (:class:`UnprotectedContentError`, decided from the first bytes, before the padding
    is seen) unless ``accept_unprotected``, then reported as such. ``declared_type`` (the envelope's
    unauthenticated EncryptedContentInfo contentType) can only add a refusal: content the envelope
    declares DigestedData or SignedData is never taken as unprotected.

    Failures here depend on the content key (a wrong key gives garbage): the caller turns them into the
    one wrong-key answer. Nothing is trusted until this returns: the caller keeps the output provisional.
    """
    notes: list[str] = []
    head = reader.peek(64)
    containers: list[Header] = []
    wrapped = (
        head[:1] == bytes([TAG_SEQUENCE]) and _PKCS7_OID_PREFIX in head[2 : 2 + 8 + len(_PKCS7_OID_PREFIX)]
    )
    if wrapped:
        # ContentInfo { contentType, [0] EXPLICIT content }
        containers.append(reader.expect(TAG_SEQUENCE, "inner ContentInfo"))
        content_type = _read_oid(reader, "inner ContentInfo")
        containers.append(reader.expect(TAG_CONTEXT_0_CONSTRUCTED, "inner ContentInfo"))
        notes.append("the encrypted content is a ContentInfo, not the bare structure RFC 5652 §6.1 names")
        if content_type == OID_DATA:
            # ContentInfo(id-data): an OCTET STRING of raw payload.
            _unprotected_allowed(declared_type, accept_unprotected)
            octets = reader.read_header("inner id-data")
            if octets.tag not in (TAG_OCTET_STRING, TAG_OCTET_STRING | 0x20):
                raise MalformedEnvelopeError("inner id-data: not an OCTET STRING")
            size = 0
            for chunk in reader.iter_octets(octets, "inner id-data", chunk_size=chunk_size):
                sink(chunk)
                size += len(chunk)
            return _finish_raw(reader, containers, size, wrapped, notes)
        if content_type not in _TYPE_NAMES or _structure_shape(reader.peek(64)) != content_type:
            raise MalformedEnvelopeError(
                f"the inner ContentInfo of type {content_type} holds no structure we know"
            )
    else:
        shape = _structure_shape(head)
        if shape is None:
            _unprotected_allowed(declared_type, accept_unprotected)
            size = 0
            while chunk := reader.read_some(chunk_size):
                sink(chunk)
                size += len(chunk)
            return _finish_raw(reader, containers, size, wrapped, notes)
        content_type = shape
    outer = reader.expect(TAG_SEQUENCE, "inner content")
    signers: tuple[SignerReport, ...] = ()
    if content_type == OID_DIGESTED_DATA:
        digest: DigestAlgorithm | None
        digest, size = _read_digested(reader, sink, chunk_size, threads)
        kind = ContentKind.DIGESTED
    else:
        digest, size, signers = _read_signed(reader, sink, chunk_size, trusted_certificates, threads)
        kind = ContentKind.SIGNED
    reader.close(outer, "inner content")
    for container in reversed(containers):
        reader.close(container, "inner ContentInfo")
    if not reader.at_eof():
        raise MalformedEnvelopeError("data after the end of the inner content")
    mislabel = mislabel_note(declared_type, kind)
    if mislabel is not None:
        notes.append(mislabel)
    conformant = digest is not None and digest.in_profile
    if digest is not None and not digest.in_profile:
        notes.append(f"{digest.value} is not one of the digests PS3.15 D.1 names")
    return InnerResult(
        kind=kind,
        wrapped_in_content_info=wrapped,
        digest=digest,
        signers=signers,
        payload_size=size,
        conformant=conformant,
        notes=tuple(notes),
    )


#: Where digest algorithm OIDs live: NIST hashes (2.16.840.1.101.3.4.2), RSADSI digests (MD2, MD5:
#: 1.2.840.113549.2), OIW (SHA-1: 1.3.14.3.2), TeleTrusT (RIPEMD: 1.3.36.3.2). A structure naming one
#: we do not accept (MD5, SHA-3, ...) is still recognised as DigestedData or SignedData, and refused as
#: such, instead of passing for an unprotected payload.
_DIGEST_OID_ARCS = tuple(
    bytes(core.ObjectIdentifier(arc + ".1").dump())[2:-1]
    for arc in ("2.16.840.1.101.3.4.2", "1.2.840.113549.2", "1.3.14.3.2", "1.3.36.3.2")
)


def _is_digest_oid(value: bytes) -> bool:
    return any(value.startswith(arc) and len(value) > len(arc) for arc in _DIGEST_OID_ARCS)


def _structure_shape(probe: bytes) -> str | None:
    """OID_DIGESTED_DATA or OID_SIGNED_DATA if ``probe`` starts one, by its first fields; else None.

    DigestedData is SEQUENCE { INTEGER, AlgorithmIdentifier(digest) ... }, SignedData is SEQUENCE
    { INTEGER, SET { AlgorithmIdentifier(digest) ... } ... }. Checking that a digest OID sits where one
    must keeps look-alikes (a PKCS#8 key is SEQUENCE { INTEGER, SEQUENCE { rsaEncryption } }) raw.
    An empty digestAlgorithms SET is a SignedData too (refused later for having no usable signer).
    """
    reader = DerReader(io.BytesIO(probe), what="probe")
    try:
        if reader.read_header("probe").tag != TAG_SEQUENCE:
            return None
        version = reader.read_header("probe")
        if version.tag != 0x02 or version.length is None or version.length > 1:
            return None
        reader.read_exact(version.length, "probe")
        second = reader.read_header("probe")
        kind = {TAG_SEQUENCE: OID_DIGESTED_DATA, 0x31: OID_SIGNED_DATA}.get(second.tag)
        if kind is None:
            return None
        if kind == OID_SIGNED_DATA:
            if second.length == 0:
                return kind
            if reader.read_header("probe").tag != TAG_SEQUENCE:
                return None
        oid = reader.read_header("probe")
        if oid.tag != TAG_OID or oid.length is None:
            return None
        value = reader.read_exact(oid.length, "probe")
    except MalformedEnvelopeError:
        return None
    return kind if _is_digest_oid(value) else None


_TYPE_NAMES = {OID_DIGESTED_DATA: "DigestedData", OID_SIGNED_DATA: "SignedData"}


def mislabel_note(declared_type: str, kind: str) -> str | None:
    """The note when the envelope's (unauthenticated) content type is not what the content turned out to be."""
    if {ContentKind.DIGESTED: OID_DIGESTED_DATA, ContentKind.SIGNED: OID_SIGNED_DATA}.get(
        kind
    ) == declared_type:
        return None
    label = {OID_DATA: "id-data", **_TYPE_NAMES}.get(declared_type, declared_type)
    return f"the envelope labels its content as {label}; the content is {kind}"


def _unprotected_allowed(declared_type: str, accept_unprotected: bool) -> None:
    """Refuse content without a digest or signature, unless the caller accepts it (and the envelope
    did not declare one: then the content is not what was sealed, or the key is wrong)."""
    if declared_type in _TYPE_NAMES:
        raise MalformedEnvelopeError(
            f"the decrypted content is not the {_TYPE_NAMES[declared_type]} the envelope declares"
        )
    if not accept_unprotected:
        raise UnprotectedContentError(
            "no digest or signature inside the envelope (PS3.15 D.1.1 requires DigestedData or "
            "SignedData): its integrity cannot be verified; refused (--accept-unprotected opens it "
            "anyway, unverified)"
        )


def _finish_raw(
    reader: DerReader, containers: list[Header], size: int, wrapped: bool, notes: list[str]
) -> InnerResult:
    for container in reversed(containers):
        reader.close(container, "inner ContentInfo")
    if not reader.at_eof():
        raise MalformedEnvelopeError("data after the end of the inner content")
    notes.append(UNPROTECTED_NOTE)
    return InnerResult(
        kind=ContentKind.RAW,
        wrapped_in_content_info=wrapped,
        digest=None,
        signers=(),
        payload_size=size,
        conformant=False,
        notes=tuple(notes),
    )


# -- the layout of a plain DigestedData, for the streaming fast path --------------------------------
@dataclass(frozen=True, slots=True)
class DigestedLayout:
    """Where the parts of a DER DigestedData (id-data, primitive OCTET STRING) lie, from its first bytes."""

    digest: DigestAlgorithm
    payload_offset: int
    payload_size: int
    total: int  # bytes of the whole DigestedData encoding; the digest OCTET STRING ends it

    @property
    def trailer_offset(self) -> int:
        return self.payload_offset + self.payload_size


def _definite_tlv(data: bytes, pos: int, tag: int) -> tuple[int, int] | None:
    """(content offset, length) of the DER element with identifier ``tag`` at ``pos``; None otherwise."""
    if pos + 2 > len(data) or data[pos] != tag:
        return None
    first = data[pos + 1]
    if first < 0x80:
        return pos + 2, first
    count = first & 0x7F
    if count == 0 or count > 8 or pos + 2 + count > len(data):
        return None
    return pos + 2 + count, int.from_bytes(data[pos + 2 : pos + 2 + count], "big")


# Memoized, bounded: a pure function of an AlgorithmIdentifier's octets (public structure, never a key).
@functools.lru_cache(maxsize=16)
def _cached_digest_of(element: bytes) -> DigestAlgorithm | None:
    try:
        return _digest_of(element)
    except (MalformedEnvelopeError, UnsupportedAlgorithmError):
        return None


def digested_layout(head: bytes) -> DigestedLayout | None:
    """The layout of the DigestedData that ``head`` (its first bytes, decrypted) starts; None if it is anything else.

    Only the plainest shape qualifies: a bare DER DigestedData of id-data whose eContent is one
    primitive OCTET STRING, every length definite and consistent, a digest algorithm we know. That is
    what dcmseal writes, and what lets a reader know where the payload ends before reading it;
    anything else (BER, SignedData, a ContentInfo wrapper) goes through :func:`read_inner`.
    """
    outer = _definite_tlv(head, 0, TAG_SEQUENCE)
    if outer is None:
        return None
    version = _definite_tlv(head, outer[0], 0x02)
    if version is None or version[1] != 1 or head[version[0]] != 0:  # v0, as read_inner requires
        return None
    alg_start = version[0] + version[1]
    alg = _definite_tlv(head, alg_start, TAG_SEQUENCE)
    if alg is None or alg[0] + alg[1] > len(head):
        return None
    digest = _cached_digest_of(bytes(head[alg_start : alg[0] + alg[1]]))
    if digest is None:
        return None
    encap = _definite_tlv(head, alg[0] + alg[1], TAG_SEQUENCE)
    if encap is None or head[encap[0] : encap[0] + len(_OID_DER_DATA)] != _OID_DER_DATA:
        return None
    explicit = _definite_tlv(head, encap[0] + len(_OID_DER_DATA), TAG_CONTEXT_0_CONSTRUCTED)
    if explicit is None:
        return None
    octets = _definite_tlv(head, explicit[0], TAG_OCTET_STRING)
    if octets is None:
        return None
    payload_offset, payload_size = octets
    trailer = payload_offset + payload_size
    if (
        explicit[0] + explicit[1] != trailer
        or encap[0] + encap[1] != trailer
        or outer[0] + outer[1] != trailer + 2 + digest.digest_size
    ):
        return None
    return DigestedLayout(
        digest=digest, payload_offset=payload_offset, payload_size=payload_size, total=outer[0] + outer[1]
    )
