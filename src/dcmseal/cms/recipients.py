"""RecipientInfo for passwords (RFC 3211 PWRI) and RSA certificates (RFC 5652 KTRI): build, describe, open."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from dcmseal.cms.algorithms import OID_PWRI_KEK, ContentCipher, KeyTransport, Prf, RecipientIdType
from dcmseal.cms.asn1 import PWRI_KEK
from dcmseal.cms.der import encode_header
from dcmseal.cms.kdf import KdfBudget, Pbkdf2Cache, Pbkdf2Params, meets_rfc8018
from dcmseal.cms.keywrap import unwrap_key, wrap_key
from dcmseal.errors import (
    DecryptionError,
    MalformedEnvelopeError,
    ResourceLimitError,
    UnsupportedAlgorithmError,
)

__all__ = [
    "CertificateRecipient",
    "Credential",
    "PasswordCredential",
    "PasswordRecipient",
    "PrivateKeyCredential",
    "Recipient",
    "RecipientDescription",
    "RecipientTemplates",
    "build_recipient_info",
    "describe_recipient_info",
    "encode_recipient_info",
    "open_recipient_infos",
]


# -- what a writer addresses ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordRecipient:
    """A password recipient: PBKDF2 parameters and the password (ASCII bytes; policy is the caller's)."""

    password: bytes = field(repr=False)
    kdf: Pbkdf2Params
    #: OpenSSL omits keyLength and derives it from the cipher; some readers want it.
    include_key_length: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateRecipient:
    """An RSA certificate recipient (key transport)."""

    certificate: x509.Certificate
    key_transport: KeyTransport = KeyTransport.RSA_PKCS1V15
    identifier: RecipientIdType = RecipientIdType.ISSUER_SERIAL

    def __post_init__(self) -> None:
        if not isinstance(self.certificate.public_key(), rsa.RSAPublicKey):
            raise ValueError("only RSA certificates can be key transport recipients (PS3.15 D.1)")


Recipient = PasswordRecipient | CertificateRecipient


# -- what a reader holds ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordCredential:
    """A password to try on password recipients."""

    password: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateKeyCredential:
    """An RSA private key, with its certificate when known (to match the recipient identifier)."""

    private_key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate | None = None


Credential = PasswordCredential | PrivateKeyCredential


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientDescription:
    """What a RecipientInfo says, without any secret: for ``inspect`` and reports."""

    kind: str  # "password", "certificate", or the RFC 5652 name of an unsupported kind
    version: int
    key_encryption: str
    in_profile: bool
    issuer: str | None = None
    serial_number: int | None = None
    subject_key_identifier: str | None = None
    kdf: str | None = None
    prf: str | None = None
    salt: str | None = None
    iterations: int | None = None
    key_length: int | None = None
    kek_cipher: str | None = None

    def to_json(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


# -- writing ----------------------------------------------------------------------------------------
def _subject_key_identifier(certificate: x509.Certificate) -> bytes:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        # RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value.
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def _oaep_parameters() -> algos.RSAESOAEPParams:
    # SHA-256 with MGF1-SHA-256, what `openssl cms -keyopt rsa_oaep_md:sha256` writes; readers take any.
    sha256 = {"algorithm": "sha256"}
    return algos.RSAESOAEPParams(
        {"hash_algorithm": sha256, "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": sha256}}
    )


def build_recipient_info(
    recipient: Recipient,
    cek: bytes,
    content_cipher: ContentCipher,
    *,
    kdf_cache: Pbkdf2Cache,
    rng: Callable[[int], bytes] = os.urandom,
) -> cms.RecipientInfo:
    """The RecipientInfo that gives ``recipient`` the content-encryption key ``cek``."""
    if isinstance(recipient, PasswordRecipient):
        # The KEK cipher is the content cipher, as OpenSSL writes and expects (kekciph = NULL).
        kek = kdf_cache.derive(recipient.password, recipient.kdf, content_cipher.key_size)
        kek_iv = rng(content_cipher.block_size)
        encrypted_key = wrap_key(kek, kek_iv, cek, content_cipher, rng=rng)
        kdf_params: dict[str, object] = {
            "salt": core.OctetString(recipient.kdf.salt),
            "iteration_count": recipient.kdf.iterations,
        }
        if recipient.include_key_length:
            kdf_params["key_length"] = content_cipher.key_size
        if recipient.kdf.prf is not Prf.SHA1:  # DEFAULT algid-hmacWithSHA1 is omitted in DER
            kdf_params["prf"] = {"algorithm": recipient.kdf.prf.value, "parameters": core.Null()}
        pwri = cms.PasswordRecipientInfo(
            {
                "version": "v0",
                "key_derivation_algorithm": {"algorithm": "pbkdf2", "parameters": kdf_params},
                "key_encryption_algorithm": {
                    "algorithm": PWRI_KEK,
                    "parameters": {"algorithm": content_cipher.asn1_name, "parameters": kek_iv},
                },
                "encrypted_key": encrypted_key,
            }
        )
        return cms.RecipientInfo(name="pwri", value=pwri)

    public_key = recipient.certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    if recipient.key_transport is KeyTransport.RSA_OAEP:
        encrypted = public_key.encrypt(
            cek, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        )
        key_encryption: dict[str, object] = {"algorithm": "rsaes_oaep", "parameters": _oaep_parameters()}
    else:
        encrypted = public_key.encrypt(cek, padding.PKCS1v15())
        key_encryption = {"algorithm": "rsaes_pkcs1v15", "parameters": core.Null()}
    if recipient.identifier is RecipientIdType.SUBJECT_KEY_ID:
        rid = cms.RecipientIdentifier(
            name="subject_key_identifier", value=_subject_key_identifier(recipient.certificate)
        )
        version = "v2"
    else:
        cert = asn1_x509.Certificate.load(recipient.certificate.public_bytes(serialization.Encoding.DER))
        rid = cms.RecipientIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": cert.issuer, "serial_number": cert.serial_number},
        )
        version = "v0"
    ktri = cms.KeyTransRecipientInfo(
        {
            "version": version,
            "rid": rid,
            "key_encryption_algorithm": key_encryption,
            "encrypted_key": encrypted,
        }
    )
    return cms.RecipientInfo(name="ktri", value=ktri)


# -- the same, fast: DER templates per recipient ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Template:
    """The constant DER around one recipient's per-file values, and its description."""

    head: bytes  # PWRI: version + [0] keyDerivationAlgorithm; KTRI: version + rid + keyEncryptionAlgorithm
    description: RecipientDescription


def _template_key(recipient: Recipient, content_cipher: ContentCipher) -> tuple[object, ...]:
    """What a recipient's template is made of, without a secret (issue 12 §5: no cache holds a password)."""
    if isinstance(recipient, PasswordRecipient):
        return ("pwri", recipient.kdf, recipient.include_key_length, content_cipher)
    return ("ktri", recipient.certificate, recipient.key_transport, recipient.identifier, content_cipher)


def _oid_der(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


_OID_PWRI_KEK_DER = _oid_der(OID_PWRI_KEK)


class RecipientTemplates:
    """The constant DER of each recipient seen so far, built once (at most ``max_entries``).

    Building asn1crypto objects costs milliseconds per file; a set of thousands of files repeats the
    same recipients, so their constant DER is built once. The key is what the DER depends on, never the
    recipient itself: a password recipient holds the password, and the templates outlive the call.
    """

    def __init__(self, *, max_entries: int = 64) -> None:
        self._templates: OrderedDict[tuple[object, ...], _Template] = OrderedDict()
        self._max_entries = max_entries

    def __repr__(self) -> str:
        return f"RecipientTemplates(entries={len(self._templates)})"

    def get(self, recipient: Recipient, content_cipher: ContentCipher) -> _Template:
        key = _template_key(recipient, content_cipher)
        found = self._templates.get(key)
        if found is not None:
            return found
        template = self._templates[key] = _build_template(recipient, content_cipher)
        while len(self._templates) > self._max_entries:
            self._templates.popitem(last=False)
        return template


def _build_template(recipient: Recipient, content_cipher: ContentCipher) -> _Template:
    # Build one RecipientInfo the slow, certain way, then keep the bytes that never change; the
    # password is left out (no derivation runs here, and nothing built may reference it).
    placeholder = bytes(content_cipher.key_size)
    if isinstance(recipient, PasswordRecipient):
        recipient = replace(recipient, password=b"")
    info = build_recipient_info(
        recipient, placeholder, content_cipher, kdf_cache=_NoDerivation(), rng=lambda n: bytes(n)
    )
    chosen = info.chosen
    if isinstance(recipient, PasswordRecipient):
        head = bytes(chosen["version"].dump()) + bytes(chosen["key_derivation_algorithm"].dump())
    else:
        head = (
            bytes(chosen["version"].dump())
            + bytes(chosen["rid"].dump())
            + bytes(chosen["key_encryption_algorithm"].dump())
        )
    return _Template(head=head, description=describe_recipient_info(info))


class _NoDerivation(Pbkdf2Cache):
    """Templates need the structure, not a key: skip PBKDF2 (the real KEK is derived per set)."""

    def derive(self, password: bytes, params: Pbkdf2Params, length: int) -> bytes:
        return bytes(length)


def encode_recipient_info(
    recipient: Recipient,
    cek: bytes,
    content_cipher: ContentCipher,
    *,
    kdf_cache: Pbkdf2Cache,
    templates: RecipientTemplates | None,
    rng: Callable[[int], bytes] = os.urandom,
) -> tuple[bytes, RecipientDescription]:
    """DER of the RecipientInfo for ``recipient`` (identical to :func:`build_recipient_info`'s), and its description.

    With ``templates``, the constant DER around the per-file values comes from there (fast); without,
    the RecipientInfo is built the slow, certain way. The randomness is drawn in the same order either
    way (KEK IV, then wrap padding).
    """
    if templates is None:
        info = build_recipient_info(recipient, cek, content_cipher, kdf_cache=kdf_cache, rng=rng)
        return bytes(info.dump()), describe_recipient_info(info)
    template = templates.get(recipient, content_cipher)
    if isinstance(recipient, PasswordRecipient):
        kek = kdf_cache.derive(recipient.password, recipient.kdf, content_cipher.key_size)
        kek_iv = rng(content_cipher.block_size)
        encrypted_key = wrap_key(kek, kek_iv, cek, content_cipher, rng=rng)
        cipher_alg = _sequence(_oid_der(content_cipher.oid) + encode_header(0x04, len(kek_iv)) + kek_iv)
        kek_alg = _sequence(_OID_PWRI_KEK_DER + cipher_alg)
        body = template.head + kek_alg + encode_header(0x04, len(encrypted_key)) + encrypted_key
        return encode_header(0xA3, len(body)) + body, template.description  # [3] IMPLICIT (RFC 5652 §6.2)
    public_key = recipient.certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    if recipient.key_transport is KeyTransport.RSA_OAEP:
        encrypted = public_key.encrypt(
            cek, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        )
    else:
        encrypted = public_key.encrypt(cek, padding.PKCS1v15())
    body = template.head + encode_header(0x04, len(encrypted)) + encrypted
    return _sequence(body), template.description


def _sequence(content: bytes) -> bytes:
    return encode_header(0x30, len(content)) + content


def _absent(value: core.Asn1Value) -> bool:
    """Whether an OPTIONAL field is missing; ``.native`` would build the whole value just to say so."""
    return isinstance(value, core.Void)


# -- describing -------------------------------------------------------------------------------------
def describe_recipient_info(info: cms.RecipientInfo) -> RecipientDescription:
    """A secret-free description of one RecipientInfo."""
    chosen = info.chosen
    raw_version = chosen["version"].native if info.name in ("ktri", "pwri", "kekri", "kari") else 0
    # asn1crypto names v0..v5 ("v3") and gives other values as plain integers.
    version = int(raw_version[1:]) if isinstance(raw_version, str) else int(raw_version)
    if info.name == "pwri":
        kdf = chosen["key_derivation_algorithm"]
        kea = chosen["key_encryption_algorithm"]
        kek_cipher = None
        if kea["algorithm"].native == PWRI_KEK:
            kek_cipher = kea["parameters"]["algorithm"].native
        desc = RecipientDescription(
            kind="password",
            version=version,
            key_encryption=str(kea["algorithm"].native),
            in_profile=kea["algorithm"].native == PWRI_KEK and not _absent(kdf),
            kek_cipher=kek_cipher,
        )
        if not _absent(kdf) and kdf["algorithm"].native == "pbkdf2":
            params = kdf["parameters"]
            salt = params["salt"]
            iterations = int(params["iteration_count"].native)
            # Below RFC 8018's minimums (a 1-byte salt, 1 iteration) a recipient never passes for D.1 (issue 17).
            salt_bytes = len(salt.chosen.native) if salt.name == "specified" else 0
            return RecipientDescription(
                kind=desc.kind,
                version=desc.version,
                key_encryption=desc.key_encryption,
                in_profile=desc.in_profile and meets_rfc8018(salt_bytes=salt_bytes, iterations=iterations),
                kek_cipher=desc.kek_cipher,
                kdf="pbkdf2",
                prf=str(params["prf"]["algorithm"].native),
                salt=salt.chosen.native.hex() if salt.name == "specified" else None,
                iterations=iterations,
                key_length=params["key_length"].native,
            )
        return desc
    if info.name == "ktri":
        rid = chosen["rid"]
        algorithm = str(chosen["key_encryption_algorithm"]["algorithm"].native)
        common = {
            "kind": "certificate",
            "version": version,
            "key_encryption": algorithm,
            "in_profile": algorithm == "rsaes_pkcs1v15",
        }
        if rid.name == "issuer_and_serial_number":
            return RecipientDescription(
                **common,  # type: ignore[arg-type]
                issuer=rid.chosen["issuer"].human_friendly,
                serial_number=int(rid.chosen["serial_number"].native),
            )
        return RecipientDescription(**common, subject_key_identifier=rid.chosen.native.hex())  # type: ignore[arg-type]
    names = {"kari": "key agreement", "kekri": "KEK", "ori": "other"}
    return RecipientDescription(
        kind=names.get(info.name, info.name), version=version, key_encryption="-", in_profile=False
    )


# -- opening ----------------------------------------------------------------------------------------
def _pwri_kek_inputs(
    pwri: cms.PasswordRecipientInfo, content_cipher: ContentCipher, max_iterations: int
) -> tuple[Pbkdf2Params, ContentCipher, bytes] | None:
    """(KDF parameters, KEK cipher, KEK IV) of a PWRI we can open, or None; raises on hostile parameters."""
    kdf = pwri["key_derivation_algorithm"]
    kea = pwri["key_encryption_algorithm"]
    if _absent(kdf) or kdf["algorithm"].native != "pbkdf2":
        raise UnsupportedAlgorithmError("password recipient without PBKDF2 key derivation")
    if kea["algorithm"].native != PWRI_KEK:
        raise UnsupportedAlgorithmError(
            f"password recipient key wrap {kea['algorithm'].native} (expected PWRI-KEK)"
        )
    kek_alg = kea["parameters"]
    kek_cipher = ContentCipher.from_asn1_name(kek_alg["algorithm"].native)
    if kek_cipher is None:
        raise UnsupportedAlgorithmError(f"password recipient KEK cipher {kek_alg['algorithm'].native}")
    params = kdf["parameters"]
    if params["salt"].name != "specified":
        raise UnsupportedAlgorithmError("PBKDF2 salt from another source")
    iterations = int(params["iteration_count"].native)
    if iterations > max_iterations:
        raise ResourceLimitError(
            f"PBKDF2 asks for {iterations:,} iterations, above the limit of {max_iterations:,} "
            "(raise max_pbkdf2_iterations if you trust this file)"
        )
    prf_name = params["prf"]["algorithm"].native
    try:
        prf = Prf(prf_name)
    except ValueError:
        raise UnsupportedAlgorithmError(f"PBKDF2 PRF {prf_name}") from None
    key_length = params["key_length"].native
    if key_length is not None and key_length != kek_cipher.key_size:
        raise UnsupportedAlgorithmError(f"PBKDF2 keyLength {key_length} does not fit {kek_cipher.value}")
    iv = kek_alg["parameters"].native
    if not isinstance(iv, bytes) or len(iv) != kek_cipher.block_size:
        raise UnsupportedAlgorithmError("password recipient KEK IV of the wrong size")
    try:
        kdf_params = Pbkdf2Params(salt=params["salt"].chosen.native, iterations=iterations, prf=prf)
    except ValueError as exc:  # an empty salt or a count below 1 (RFC 8018 A.2)
        raise MalformedEnvelopeError(f"PBKDF2 parameters: {exc}") from None
    return kdf_params, kek_cipher, iv


def _ktri_matches(ktri: cms.KeyTransRecipientInfo, credential: PrivateKeyCredential) -> bool:
    rid = ktri["rid"]
    if rid.name == "subject_key_identifier":
        if credential.certificate is not None:
            return bool(rid.chosen.native == _subject_key_identifier(credential.certificate))
        computed = x509.SubjectKeyIdentifier.from_public_key(credential.private_key.public_key()).digest
        return bool(rid.chosen.native == computed)
    if credential.certificate is None:
        return True  # no certificate to compare with: try the key
    cert = asn1_x509.Certificate.load(credential.certificate.public_bytes(serialization.Encoding.DER))
    return bool(
        rid.chosen["serial_number"].native == cert.serial_number and rid.chosen["issuer"] == cert.issuer
    )


def _ktri_decrypt(ktri: cms.KeyTransRecipientInfo, key: rsa.RSAPrivateKey) -> bytes:
    algorithm = ktri["key_encryption_algorithm"]
    name = algorithm["algorithm"].native
    encrypted = ktri["encrypted_key"].native
    if name == "rsaes_pkcs1v15":
        return key.decrypt(encrypted, padding.PKCS1v15())
    if name == "rsaes_oaep":
        params = algorithm["parameters"]
        try:
            hash_name = params["hash_algorithm"]["algorithm"].native
            if params["mask_gen_algorithm"]["algorithm"].native != "mgf1":
                raise UnsupportedAlgorithmError("RSA-OAEP with a mask generation function other than MGF1")
            mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
            label = params["p_source_algorithm"]["parameters"].native or None
        except (TypeError, KeyError, ValueError):
            raise UnsupportedAlgorithmError("RSA-OAEP parameters we cannot use") from None
        try:
            oaep = padding.OAEP(
                mgf=padding.MGF1(Prf(mgf_hash).hash_algorithm()),
                algorithm=Prf(hash_name).hash_algorithm(),
                label=label,
            )
        except ValueError:
            raise UnsupportedAlgorithmError(f"RSA-OAEP with {hash_name}/{mgf_hash}") from None
        return key.decrypt(encrypted, oaep)
    raise UnsupportedAlgorithmError(f"key transport algorithm {name}")


def open_recipient_infos(
    infos: Sequence[cms.RecipientInfo],
    credentials: Sequence[Credential],
    content_cipher: ContentCipher,
    *,
    kdf_cache: Pbkdf2Cache,
    max_iterations: int,
    budget: KdfBudget | None = None,
) -> tuple[bytes, int]:
    """Return (CEK, index of the RecipientInfo that gave it).

    Work is bounded: password recipients whose key is already derived are tried first (free); the
    others are tried only if all of them together fit ``budget.per_file`` (by default two derivations at
    ``max_iterations``), and each derivation that runs is charged to ``budget``'s total.

    Raises
    ------
    DecryptionError
        No credential opens any recipient (one message, whatever the reason).
    ResourceLimitError, UnsupportedAlgorithmError
        A recipient that a credential could open uses parameters we refuse, or trying the password
        recipients would exceed the budget, and no other recipient opened.
    """
    budget = budget if budget is not None else KdfBudget.for_limits(max_iterations)
    refused: Exception | None = None
    passwords = [c for c in credentials if isinstance(c, PasswordCredential)]
    keys = [c for c in credentials if isinstance(c, PrivateKeyCredential)]
    # Every (password recipient, password) pair that can be tried, and whether its key is derived already.
    tries: list[tuple[int, Pbkdf2Params, ContentCipher, bytes, PasswordCredential, bool]] = []
    for index, info in enumerate(infos):
        if info.name != "pwri" or not passwords:
            continue
        try:
            inputs = _pwri_kek_inputs(info.chosen, content_cipher, max_iterations)
        except (ResourceLimitError, UnsupportedAlgorithmError, MalformedEnvelopeError) as exc:
            refused = exc
            continue
        if inputs is None:
            continue
        params, kek_cipher, kek_iv = inputs
        for password in passwords:
            known = kdf_cache.has(password.password, params, kek_cipher.key_size)
            tries.append((index, params, kek_cipher, kek_iv, password, known))
    work: dict[tuple[bytes, Pbkdf2Params, int], int] = {}
    for _index, params, kek_cipher, _iv, password, known in tries:
        if not known:
            work[(password.password, params, kek_cipher.key_size)] = params.iterations
    try:
        budget.check_file(sum(work.values()), len({t[0] for t in tries if not t[5]}))
        affordable = True
    except ResourceLimitError as exc:
        refused, affordable = exc, False

    def unwrap(
        index: int, params: Pbkdf2Params, kek_cipher: ContentCipher, iv: bytes, password: bytes
    ) -> bytes:
        kek = kdf_cache.derive(password, params, kek_cipher.key_size)
        return unwrap_key(
            kek,
            iv,
            infos[index].chosen["encrypted_key"].native,
            kek_cipher,
            expected_length=content_cipher.key_size,
        )

    # Keys derived already (for this medium's other files) first: they cost nothing.
    for index, params, kek_cipher, iv, password, known in tries:
        if known:
            try:
                return unwrap(index, params, kek_cipher, iv, password.password), index
            except DecryptionError:
                continue
    for index, info in enumerate(infos):
        if info.name == "pwri" and affordable:
            for tried, params, kek_cipher, iv, password, known in tries:
                if tried != index or known:
                    continue
                if not kdf_cache.has(password.password, params, kek_cipher.key_size):
                    try:
                        budget.charge(params.iterations)
                    except ResourceLimitError as exc:  # the medium's budget is spent: no more derivations
                        refused, affordable = exc, False
                        break
                try:
                    return unwrap(index, params, kek_cipher, iv, password.password), index
                except DecryptionError:
                    continue
        elif info.name == "ktri" and keys:
            for key in keys:
                if not _ktri_matches(info.chosen, key):
                    continue
                try:
                    cek = _ktri_decrypt(info.chosen, key.private_key)
                except UnsupportedAlgorithmError as exc:
                    refused = exc
                    continue
                except ValueError:
                    continue
                # OpenSSL 3.2+ answers a bad PKCS#1 v1.5 block with a synthetic message (implicit
                # rejection); a CEK of the wrong length is how that shows here.
                if len(cek) == content_cipher.key_size:
                    return cek, index
    if refused is not None:
        raise refused
    raise DecryptionError() from None
