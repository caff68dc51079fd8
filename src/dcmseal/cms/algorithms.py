"""The closed sets of algorithms the CMS layer speaks, with their OIDs and primitives (one place for each fact)."""

from __future__ import annotations

import enum
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

__all__ = [
    "OID_AUTH_ENVELOPED_DATA",
    "OID_DATA",
    "OID_DIGESTED_DATA",
    "OID_ENVELOPED_DATA",
    "OID_PWRI_KEK",
    "OID_SIGNED_DATA",
    "ContentCipher",
    "DigestAlgorithm",
    "KeyTransport",
    "Prf",
    "RecipientIdType",
]

# RFC 5652 §3-§8, RFC 3211, RFC 5083 (standards.md §3.1).
OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_DIGESTED_DATA = "1.2.840.113549.1.7.5"
OID_AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23"
OID_PWRI_KEK = "1.2.840.113549.1.9.16.3.9"


class ContentCipher(enum.StrEnum):
    """Content (and, for password recipients, KEK) ciphers of PS3.15 D.1: AES per RFC 3565, 3DES per RFC 3370."""

    AES128_CBC = "aes128"
    AES192_CBC = "aes192"
    AES256_CBC = "aes256"
    DES3_CBC = "3des"

    @property
    def key_size(self) -> int:
        """Key length in bytes."""
        return {"aes128": 16, "aes192": 24, "aes256": 32, "3des": 24}[self.value]

    @property
    def block_size(self) -> int:
        """Block (and IV) length in bytes."""
        return 8 if self is ContentCipher.DES3_CBC else 16

    @property
    def asn1_name(self) -> str:
        """asn1crypto's name for the algorithm identifier."""
        return {
            "aes128": "aes128_cbc",
            "aes192": "aes192_cbc",
            "aes256": "aes256_cbc",
            "3des": "tripledes_3key",
        }[self.value]

    @property
    def oid(self) -> str:
        return {
            "aes128": "2.16.840.1.101.3.4.1.2",
            "aes192": "2.16.840.1.101.3.4.1.22",
            "aes256": "2.16.840.1.101.3.4.1.42",
            "3des": "1.2.840.113549.3.7",
        }[self.value]

    @classmethod
    def from_asn1_name(cls, name: str) -> ContentCipher | None:
        for cipher in cls:
            if cipher.asn1_name == name:
                return cipher
        return None

    def cbc(self, key: bytes, iv: bytes) -> Cipher[modes.CBC]:
        """A CBC cipher object for ``key`` and ``iv``."""
        if len(key) != self.key_size or len(iv) != self.block_size:
            raise ValueError(
                f"{self.value}: key must be {self.key_size} bytes and IV {self.block_size} bytes"
            )
        algorithm: Any = TripleDES(key) if self is ContentCipher.DES3_CBC else algorithms.AES(key)
        return Cipher(algorithm, modes.CBC(iv))

    def encryptor(self, key: bytes, iv: bytes) -> CipherContext:
        return self.cbc(key, iv).encryptor()

    def decryptor(self, key: bytes, iv: bytes) -> CipherContext:
        return self.cbc(key, iv).decryptor()


class Prf(enum.StrEnum):
    """PBKDF2 pseudo-random functions (RFC 8018 §B.1.2); the ASN.1 default is HMAC-SHA1."""

    SHA1 = "sha1"
    SHA224 = "sha224"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return _HASHES[self.value]()


class DigestAlgorithm(enum.StrEnum):
    """Digests for DigestedData and SignedData (PS3.15 D.1: SHA-1, SHA-256, SHA-384 or SHA-512)."""

    SHA1 = "sha1"
    SHA224 = "sha224"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return _HASHES[self.value]()

    @property
    def digest_size(self) -> int:
        return self.hash_algorithm().digest_size

    @property
    def in_profile(self) -> bool:
        """Whether PS3.15 D.1 names this digest (SHA-224 is readable but not in the profile)."""
        return self is not DigestAlgorithm.SHA224


class KeyTransport(enum.StrEnum):
    """RSA key transport for certificate recipients; PS3.15 D.1 names PKCS#1 v1.5 (RFC 3370)."""

    RSA_PKCS1V15 = "rsa-pkcs1v15"
    RSA_OAEP = "rsa-oaep"

    @property
    def in_profile(self) -> bool:
        return self is KeyTransport.RSA_PKCS1V15


class RecipientIdType(enum.StrEnum):
    """How a KeyTransRecipientInfo names its certificate (RFC 5652 §6.2.1)."""

    ISSUER_SERIAL = "issuer-serial"
    SUBJECT_KEY_ID = "subject-key-id"


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
