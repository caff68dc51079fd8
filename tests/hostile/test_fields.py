"""Every field an attacker controls that changes what is verified, one test case each (issue 12 §1).

Each hostile inner structure is encrypted under a key the reader holds (anyone with a recipient's
certificate, or a recipient, can do that), and the envelope declares either id-data or the type of the
structure (the declared type is not authenticated, so both must end the same way). The reader must
refuse with the one wrong-key answer, write nothing, and derive the key once; a few legitimate shapes
are controls that must still open and verify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import core

from dcmseal import cms
from dcmseal.cms.algorithms import OID_DATA, OID_DIGESTED_DATA, OID_ENVELOPED_DATA, OID_SIGNED_DATA
from dcmseal.cms.der import encode_header
from dcmseal.errors import WRONG_KEY_MESSAGE, DecryptionError, UnprotectedContentError
from dcmseal.part10 import unseal_file
from tests.hostile.envelopes import (
    Signer,
    attribute,
    counting_cache,
    credentials,
    digest_algorithm,
    digested_der,
    load_signer,
    oid_der,
    seal,
    seal_inner,
    signed_der,
)
from tests.part10.dicomfiles import leftovers

PAYLOAD = b"\x00" * 128 + b"DICM" + b"pixel data that must not change " * 4


@pytest.fixture(scope="module")
def signer(test_cert_and_key: tuple[Path, Path]) -> Signer:
    return load_signer(*test_cert_and_key)


def _sequence(content: bytes, tag: int = 0x30) -> bytes:
    return encode_header(tag, len(content)) + content


def _content_info(oid: str, inner: bytes) -> bytes:
    return _sequence(oid_der(oid) + _sequence(inner, 0xA0))


def _append_inside(der: bytes, extra: bytes) -> bytes:
    """``der`` (a SEQUENCE) with ``extra`` added as its last element (lengths re-encoded)."""
    reader_skip = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    return _sequence(der[reader_skip:] + extra)


def _attrs(signed: asn1_cms.SignedData) -> list[asn1_cms.CMSAttribute]:
    return list(signed["signer_infos"][0]["signed_attrs"])


def _set_attrs(signed: asn1_cms.SignedData, attrs: list[asn1_cms.CMSAttribute]) -> None:
    signed["signer_infos"][0]["signed_attrs"] = asn1_cms.CMSAttributes(attrs)


def _message_digest_replaced(value: bytes) -> Callable[[asn1_cms.SignedData], None]:
    def edit(signed: asn1_cms.SignedData) -> None:
        attrs = [a for a in _attrs(signed) if a["type"].native != "message_digest"]
        _set_attrs(signed, [*attrs, attribute("message_digest", value)])

    return edit


def _second_message_digest(signed: asn1_cms.SignedData) -> None:
    _set_attrs(signed, [*_attrs(signed), attribute("message_digest", bytes(32))])


def _message_digest_with_two_values(signed: asn1_cms.SignedData) -> None:
    true = hashlib.sha256(PAYLOAD).digest()
    attrs = [a for a in _attrs(signed) if a["type"].native != "message_digest"]
    _set_attrs(signed, [*attrs, attribute("message_digest", true, bytes(32))])


def _no_signer(signed: asn1_cms.SignedData) -> None:
    signed["signer_infos"] = asn1_cms.SignerInfos([])


def _detached(signed: asn1_cms.SignedData) -> None:
    signed["encap_content_info"] = {"content_type": "data"}


def _econtent_type(signed: asn1_cms.SignedData) -> None:
    signed["encap_content_info"] = {"content_type": "1.2.3.4.5", "content": core.OctetString(PAYLOAD)}


def _no_certificates(signed: asn1_cms.SignedData) -> None:
    del signed["certificates"]


def _digest_not_listed(signed: asn1_cms.SignedData) -> None:
    signed["digest_algorithms"] = [digest_algorithm("sha512")]


def _md5_signer(signed: asn1_cms.SignedData) -> None:
    signed["digest_algorithms"] = [digest_algorithm("md5")]
    signed["signer_infos"][0]["digest_algorithm"] = digest_algorithm("md5")
    _message_digest_replaced(hashlib.md5(PAYLOAD).digest())(signed)  # noqa: S324 - the weak digest under test


def _no_signed_attributes(signed: asn1_cms.SignedData) -> None:
    del signed["signer_infos"][0]["signed_attrs"]


def _unsigned_version(signed: asn1_cms.SignedData) -> None:
    signed["version"] = 0


#: Inner structures that must be refused: name -> (builder of the inner DER, the structure's own type).
REFUSED: dict[str, tuple[Callable[[Signer], bytes], str]] = {
    "digested-md5": (lambda _s: digested_der(PAYLOAD, algorithm="md5"), OID_DIGESTED_DATA),
    "digested-sha3": (lambda _s: digested_der(PAYLOAD, algorithm="sha3_256"), OID_DIGESTED_DATA),
    "digested-unknown-oid": (
        lambda _s: digested_der(PAYLOAD, algorithm="2.16.840.1.101.3.4.2.99", digest=bytes(32)),
        OID_DIGESTED_DATA,
    ),
    "digested-econtent-type": (
        lambda _s: digested_der(PAYLOAD, content_type="1.2.3.4.5"),
        OID_DIGESTED_DATA,
    ),
    "digested-detached": (lambda _s: digested_der(PAYLOAD, detached=True), OID_DIGESTED_DATA),
    "digested-version-2": (lambda _s: digested_der(PAYLOAD, version="v2"), OID_DIGESTED_DATA),
    "digested-mismatch": (lambda _s: digested_der(PAYLOAD, digest=bytes(32)), OID_DIGESTED_DATA),
    "digested-short-digest": (
        lambda _s: digested_der(PAYLOAD, digest=hashlib.sha256(PAYLOAD).digest()[:16]),
        OID_DIGESTED_DATA,
    ),
    "digested-two-digests": (
        lambda _s: _append_inside(digested_der(PAYLOAD), b"\x04\x20" + bytes(32)),
        OID_DIGESTED_DATA,
    ),
    "digested-trailing-bytes": (lambda _s: digested_der(PAYLOAD) + b"\x00\x00trailing", OID_DIGESTED_DATA),
    "digested-in-wrong-label": (
        lambda _s: _content_info(OID_SIGNED_DATA, digested_der(PAYLOAD)),
        OID_DIGESTED_DATA,
    ),
    "digested-nested-twice": (
        lambda _s: _content_info(OID_DIGESTED_DATA, _content_info(OID_DIGESTED_DATA, digested_der(PAYLOAD))),
        OID_DIGESTED_DATA,
    ),
    "signed-no-signer": (lambda s: signed_der(s, PAYLOAD, _no_signer), OID_SIGNED_DATA),
    "signed-detached": (lambda s: signed_der(s, PAYLOAD, _detached), OID_SIGNED_DATA),
    "signed-econtent-type": (lambda s: signed_der(s, PAYLOAD, _econtent_type), OID_SIGNED_DATA),
    "signed-message-digest-mismatch": (
        lambda s: signed_der(s, PAYLOAD, _message_digest_replaced(bytes(32))),
        OID_SIGNED_DATA,
    ),
    "signed-two-message-digests": (lambda s: signed_der(s, PAYLOAD, _second_message_digest), OID_SIGNED_DATA),
    "signed-message-digest-two-values": (
        lambda s: signed_der(s, PAYLOAD, _message_digest_with_two_values),
        OID_SIGNED_DATA,
    ),
    "signed-no-certificates": (lambda s: signed_der(s, PAYLOAD, _no_certificates), OID_SIGNED_DATA),
    "signed-digest-not-listed": (lambda s: signed_der(s, PAYLOAD, _digest_not_listed), OID_SIGNED_DATA),
    "signed-md5": (lambda s: signed_der(s, PAYLOAD, _md5_signer), OID_SIGNED_DATA),
    "signed-version-0": (lambda s: signed_der(s, PAYLOAD, _unsigned_version), OID_SIGNED_DATA),
    "signed-no-attributes-payload-changed": (
        lambda s: signed_der(s, PAYLOAD, _no_signed_attributes).replace(b"must not", b"MUST not"),
        OID_SIGNED_DATA,
    ),
    "signed-signature-flipped": (
        lambda s: signed_der(s, PAYLOAD)[:-1] + bytes([signed_der(s, PAYLOAD)[-1] ^ 1]),
        OID_SIGNED_DATA,
    ),
    "nested-enveloped-data": (
        lambda _s: seal(PAYLOAD),  # a whole envelope inside the envelope
        OID_ENVELOPED_DATA,
    ),
}

#: Legitimate shapes that must still open and verify.
ACCEPTED: dict[str, tuple[Callable[[Signer], bytes], str]] = {
    "digested": (lambda _s: digested_der(PAYLOAD), OID_DIGESTED_DATA),
    "digested-sha1": (lambda _s: digested_der(PAYLOAD, algorithm="sha1"), OID_DIGESTED_DATA),
    "digested-in-content-info": (
        lambda _s: _content_info(OID_DIGESTED_DATA, digested_der(PAYLOAD)),
        OID_DIGESTED_DATA,
    ),
    "signed": (lambda s: signed_der(s, PAYLOAD), OID_SIGNED_DATA),
    "signed-two-digest-algorithms": (
        lambda s: signed_der(
            s,
            PAYLOAD,
            lambda signed: signed.__setitem__(
                "digest_algorithms", [digest_algorithm("sha512"), digest_algorithm("sha256")]
            ),
        ),
        OID_SIGNED_DATA,
    ),
    # RFC 5652 §5.3: without signed attributes the signature covers the content digest itself.
    "signed-no-attributes": (lambda s: signed_der(s, PAYLOAD, _no_signed_attributes), OID_SIGNED_DATA),
}


def _open(tmp_path: Path, data: bytes, *, accept_unprotected: bool) -> tuple[Path, cms.Pbkdf2Cache]:
    """Write ``data`` as a file and try to unseal it; return the output folder and the KDF cache used."""
    src = tmp_path / "hostile.p7m"
    src.write_bytes(data)
    cache = counting_cache()
    out = tmp_path / "out"
    try:
        unseal_file(
            src,
            out / "payload",
            credentials=credentials(),
            context=cms.Context(kdf_cache=cache),
            accept_unprotected=accept_unprotected,
            durable=False,
        )
    finally:
        assert cache.derivations == 1  # bounded work: one key derived, whatever the content
    return out, cache


@pytest.mark.parametrize("accept_unprotected", [False, True], ids=["default", "accept-unprotected"])
@pytest.mark.parametrize("declared", ["id-data", "own-type"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_inner_structure_is_the_one_answer(
    tmp_path: Path, signer: Signer, case: str, declared: str, accept_unprotected: bool
) -> None:
    build, own = REFUSED[case]
    inner = build(signer)
    kind = own if own in (OID_DIGESTED_DATA, OID_SIGNED_DATA) else OID_DIGESTED_DATA
    data = seal_inner(inner, declared=OID_DATA if declared == "id-data" else kind)
    with pytest.raises(DecryptionError) as info:
        _open(tmp_path, data, accept_unprotected=accept_unprotected)
    assert str(info.value) == f"{tmp_path / 'hostile.p7m'}: {WRONG_KEY_MESSAGE}"
    assert info.value.exit_code == 1
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize("declared", ["id-data", "own-type"])
@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_legitimate_inner_structures_verify(tmp_path: Path, signer: Signer, case: str, declared: str) -> None:
    build, own = ACCEPTED[case]
    data = seal_inner(build(signer), declared=OID_DATA if declared == "id-data" else own)
    src = tmp_path / "good.p7m"
    src.write_bytes(data)
    result = unseal_file(src, tmp_path / "payload", credentials=credentials(), durable=False)
    assert result.destination.read_bytes() == PAYLOAD
    assert result.verified
    assert result.to_json()["integrity"] == "verified"


def test_raw_content_is_refused_by_default_and_opens_unverified_on_request(tmp_path: Path) -> None:
    """What ``openssl cms -encrypt`` makes: no digest inside. Refused unless asked for, then said so."""
    data = seal(PAYLOAD, cms.RawContent())
    with pytest.raises(UnprotectedContentError, match="no digest or signature") as info:
        _open(tmp_path, data, accept_unprotected=False)
    assert info.value.exit_code == 1
    assert leftovers(tmp_path / "out") == []
    out, _ = _open(tmp_path, data, accept_unprotected=True)
    assert (out / "payload").read_bytes() == PAYLOAD


@pytest.mark.parametrize("label", [OID_DIGESTED_DATA, OID_SIGNED_DATA])
def test_raw_content_under_a_digest_label_is_refused_even_when_accepted(tmp_path: Path, label: str) -> None:
    """The envelope's label can only add refusals: content it calls DigestedData is never taken as raw."""
    data = seal_inner(PAYLOAD, declared=label)
    with pytest.raises(DecryptionError, match=WRONG_KEY_MESSAGE):
        _open(tmp_path, data, accept_unprotected=True)
    assert leftovers(tmp_path / "out") == []


def test_raw_content_in_an_id_data_content_info(tmp_path: Path) -> None:
    data = seal_inner(_content_info(OID_DATA, _sequence(PAYLOAD, 0x04)))
    with pytest.raises(UnprotectedContentError):
        _open(tmp_path, data, accept_unprotected=False)
    out, _ = _open(tmp_path, data, accept_unprotected=True)
    assert (out / "payload").read_bytes() == PAYLOAD
