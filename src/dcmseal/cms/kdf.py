"""PBKDF2 (RFC 8018 §5.2) key derivation through a cache its owner keeps, counting the derivations."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from dcmseal.cms.algorithms import Prf
from dcmseal.errors import ResourceLimitError

__all__ = [
    "DERIVATIONS_PER_FILE",
    "RFC8018_MIN_ITERATIONS",
    "RFC8018_MIN_SALT_BYTES",
    "KdfBudget",
    "Pbkdf2Cache",
    "Pbkdf2Params",
    "meets_rfc8018",
]

#: RFC 8018 §4.1: "the salt should be at least eight octets (64 bits) long". PS3.15 D.1 names PBKDF2 by
#: its RFC (2898, now 8018) and fixes no salt length of its own, so this is the profile's floor.
RFC8018_MIN_SALT_BYTES = 8
#: RFC 8018 §4.2: "a minimum of 1000 iterations is recommended" (as RFC 2898 §4.2 said).
RFC8018_MIN_ITERATIONS = 1000


def meets_rfc8018(*, salt_bytes: int, iterations: int) -> bool:
    """Whether a salt of ``salt_bytes`` octets and ``iterations`` keep to RFC 8018 §4.1 and §4.2.

    A PBKDF2 recipient below either minimum is outside PS3.15 D.1, whatever the profile says of the PRF.

    Parameters
    ----------
    salt_bytes : int
        Length of the salt in octets.
    iterations : int
        PBKDF2 iteration count.

    Returns
    -------
    bool
        True when the salt has at least :data:`RFC8018_MIN_SALT_BYTES` octets and the count is at least
        :data:`RFC8018_MIN_ITERATIONS`.
    """
    return salt_bytes >= RFC8018_MIN_SALT_BYTES and iterations >= RFC8018_MIN_ITERATIONS


@dataclass(frozen=True, slots=True, kw_only=True)
class Pbkdf2Params:
    """PBKDF2-params (RFC 8018 A.2): salt, iteration count, optional keyLength, PRF."""

    salt: bytes
    iterations: int
    prf: Prf = Prf.SHA1
    key_length: int | None = None

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError("PBKDF2 iteration count must be at least 1")
        if not self.salt:
            raise ValueError("PBKDF2 salt must not be empty")


class Pbkdf2Cache:
    """Derive each (password, salt, iterations, PRF, length) once; count the derivations actually run.

    Keys are stored under an HMAC of the password with a random per-cache key, so the cache holds no
    password. Derived KEKs stay in memory for the life of the cache (bounded by ``max_entries``); that
    is the price of deriving once per medium instead of once per file.
    """

    def __init__(self, *, max_entries: int = 64) -> None:
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._hmac_key = os.urandom(32)
        self._max_entries = max_entries
        self._inflight: dict[bytes, threading.Lock] = {}
        self.derivations = 0

    def __repr__(self) -> str:
        return f"Pbkdf2Cache(entries={len(self._entries)}, derivations={self.derivations})"

    def _slot(self, password: bytes, params: Pbkdf2Params, length: int) -> bytes:
        mac = hmac.new(self._hmac_key, password, hashlib.sha256)
        mac.update(b"\x00" + params.salt + b"\x00")
        mac.update(f"{params.iterations}:{params.prf.value}:{length}".encode())
        return mac.digest()

    def has(self, password: bytes, params: Pbkdf2Params, length: int) -> bool:
        """Whether this key is derived already (trying it costs nothing)."""
        slot = self._slot(password, params, length)
        with self._lock:
            return slot in self._entries

    def derive(self, password: bytes, params: Pbkdf2Params, length: int) -> bytes:
        """Return PBKDF2(password, salt, iterations, length) with the given PRF, from the cache if possible.

        Threads asking for the same key at once wait for one derivation instead of each running it.
        """
        slot = self._slot(password, params, length)
        with self._lock:
            cached = self._entries.get(slot)
            if cached is not None:
                self._entries.move_to_end(slot)
                return cached
            inflight = self._inflight.setdefault(slot, threading.Lock())
        with inflight:
            with self._lock:
                cached = self._entries.get(slot)
            if cached is not None:
                return cached
            key = PBKDF2HMAC(
                algorithm=params.prf.hash_algorithm(),
                length=length,
                salt=params.salt,
                iterations=params.iterations,
            ).derive(password)
            with self._lock:
                self.derivations += 1
                self._entries[slot] = key
                self._inflight.pop(slot, None)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        return key

    def export(self) -> list[tuple[bytes, bytes]]:
        """The cache's entries, for handing to a worker process created by this process."""
        with self._lock:
            return list(self._entries.items())

    def import_entries(self, entries: list[tuple[bytes, bytes]], hmac_key: bytes) -> None:
        """Adopt entries (and the slot key that made them) exported by a parent process."""
        with self._lock:
            self._hmac_key = hmac_key
            self._entries.update(entries)

    @property
    def slot_key(self) -> bytes:
        return self._hmac_key


class _Counter:
    """An in-process stand-in for ``multiprocessing.Value("q")``: ``value`` under ``get_lock()``."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def get_lock(self) -> threading.Lock:
        return self._lock


#: Password recipients one envelope may make us derive keys for, at the iteration cap: two, as an
#: envelope re-addressed with ``rekey --keep-recipients`` has (the old password and the new one).
DERIVATIONS_PER_FILE = 2


class KdfBudget:
    """How much PBKDF2 work an operation may spend on untrusted envelopes, in iterations summed.

    ``per_file``: what trying every password recipient of one envelope may cost (the keys already
    derived cost nothing); an envelope asking for more is refused before any derivation. ``total``: what
    the whole operation (a medium, a batch) may spend on derivations actually run; once spent, a file
    whose key is not derived yet is refused, while files with derived keys still open. ``counter``
    (a ``multiprocessing.Value("q")``) shares the total between worker processes.
    """

    def __init__(self, *, per_file: int, total: int | None = None, counter: object | None = None) -> None:
        if per_file < 1 or (total is not None and total < 1):
            raise ValueError("a KDF budget must allow some work")
        self.per_file = per_file
        self.total = total
        self._counter = counter if counter is not None else _Counter()

    @classmethod
    def for_limits(
        cls, max_iterations: int, total: int | None = None, counter: object | None = None
    ) -> KdfBudget:
        """The budget of an operation whose iteration cap is ``max_iterations`` (per file: two at the cap)."""
        per_file = DERIVATIONS_PER_FILE * max_iterations
        return cls(per_file=per_file, total=None if total is None else max(total, per_file), counter=counter)

    def __repr__(self) -> str:
        return f"KdfBudget(per_file={self.per_file}, total={self.total}, spent={self.spent})"

    @property
    def spent(self) -> int:
        return int(self._counter.value)  # type: ignore[attr-defined]

    def check_file(self, work: int, recipients: int) -> None:
        """Refuse an envelope whose password recipients would cost more than ``per_file`` to try."""
        if work > self.per_file:
            raise ResourceLimitError(
                f"{recipients} password recipient(s) would cost {work:,} PBKDF2 iterations to try, above "
                f"the budget of {self.per_file:,} per file (raise max_pbkdf2_iterations if you trust this file)"
            )

    def charge(self, iterations: int) -> None:
        """Count one derivation about to run; refuse it if the operation's total would be exceeded."""
        counter = self._counter
        with counter.get_lock():  # type: ignore[attr-defined]
            spent = int(counter.value)  # type: ignore[attr-defined]
            if self.total is not None and spent + iterations > self.total:
                raise ResourceLimitError(
                    f"the PBKDF2 budget of {self.total:,} iterations for this medium is spent ({spent:,}); "
                    f"this file needs a key not derived yet ({iterations:,} iterations) "
                    "(raise kdf_budget_per_medium if you trust this medium)"
                )
            counter.value = spent + iterations  # type: ignore[attr-defined]
