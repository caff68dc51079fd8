"""Message digests computed on a helper thread, so hashing overlaps the cipher on a second core."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from dcmseal.cms.algorithms import DigestAlgorithm

__all__ = ["BackgroundDigest"]

#: Below this size the thread hand-off costs more than the hash.
_MIN_BACKGROUND_BYTES = 64 * 1024


class BackgroundDigest:
    """Feed chunks in order; the digests are computed on one helper thread.

    ``hashlib`` releases the GIL while it hashes a large buffer, so while the caller encrypts or
    decrypts chunk *n* (holding the GIL), chunk *n-1* is hashed on the other core: the cost of
    seal and unseal becomes max(cipher, digest) instead of their sum. At most two chunks are in
    flight, so memory stays bounded by the chunk size. Use as a context manager.
    """

    def __init__(self, algorithms: list[DigestAlgorithm]) -> None:
        self._hashes = {alg: hashlib.new(alg.value) for alg in algorithms}
        self._pending: Future[None] | None = None

    def __enter__(self) -> BackgroundDigest:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _update_all(self, chunk: bytes) -> None:
        for h in self._hashes.values():
            h.update(chunk)

    def update(self, chunk: bytes) -> None:
        """Queue ``chunk`` for hashing; waits for the previous chunk, so order is kept."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        if len(chunk) < _MIN_BACKGROUND_BYTES:
            self._update_all(chunk)
            return
        self._pending = _executor().submit(self._update_all, chunk)

    def digests(self) -> dict[DigestAlgorithm, bytes]:
        """Wait for the last chunk and return every digest."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        return {alg: h.digest() for alg, h in self._hashes.items()}

    def digest(self, algorithm: DigestAlgorithm) -> bytes:
        return self.digests()[algorithm]

    def close(self) -> None:
        """Wait for the chunk in flight (the helper thread itself lives on for the next digest)."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None


_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """One helper thread per process: starting a pool per file cost more than hashing a small file."""
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcmseal-digest")
        return _EXECUTOR
