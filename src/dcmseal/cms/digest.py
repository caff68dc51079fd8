"""Message digests computed on a helper thread, so hashing overlaps the cipher on a second core."""

from __future__ import annotations

import hashlib
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
        self._executor: ThreadPoolExecutor | None = None
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
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcmseal-digest")
        self._pending = self._executor.submit(self._update_all, chunk)

    def digests(self) -> dict[DigestAlgorithm, bytes]:
        """Wait for the last chunk and return every digest."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        return {alg: h.digest() for alg, h in self._hashes.items()}

    def digest(self, algorithm: DigestAlgorithm) -> bytes:
        return self.digests()[algorithm]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
