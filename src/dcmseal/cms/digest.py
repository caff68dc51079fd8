"""Message digests computed on a helper thread, so hashing overlaps the cipher on a second core."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from dcmseal.cms.algorithms import DigestAlgorithm

__all__ = ["BackgroundDigest", "set_background_hashing"]

#: Below this size the thread hand-off costs more than the hash.
_MIN_BACKGROUND_BYTES = 64 * 1024

#: Whether chunks go to the helper thread at all (see :func:`set_background_hashing`).
_BACKGROUND = True


def set_background_hashing(enabled: bool) -> None:
    """Hash on the helper thread (the default) or inline, for this whole process.

    The helper thread only pays when a core would otherwise sit idle: a worker of a pool that
    already keeps every core busy turns it off, saving the hand-off on every chunk.
    """
    global _BACKGROUND
    _BACKGROUND = enabled


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

    def _update_all(self, chunk: bytes | memoryview) -> None:
        for h in self._hashes.values():
            h.update(chunk)

    def update(self, chunk: bytes | memoryview) -> None:
        """Queue ``chunk`` for hashing; waits for the previous chunk, so order is kept.

        ``chunk`` may be a view of a buffer the caller reuses: it is read until the next call to
        :meth:`update`, :meth:`digests` or :meth:`close`, so a caller alternating two buffers is safe.
        """
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        if len(chunk) < _MIN_BACKGROUND_BYTES or not _BACKGROUND:
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


def _forget_executor() -> None:
    """In a forked child: the parent's helper thread was not copied, so start a new one when needed."""
    global _EXECUTOR, _EXECUTOR_LOCK
    _EXECUTOR = None
    _EXECUTOR_LOCK = threading.Lock()


# A worker forked from a parent that already hashed would otherwise queue chunks for a thread that is not there.
os.register_at_fork(after_in_child=_forget_executor)
