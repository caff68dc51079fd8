"""Helper threads for one stream: digests and writes that overlap the cipher on a second core."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Protocol

from dcmseal.cms.algorithms import DigestAlgorithm

__all__ = ["BackgroundDigest", "BackgroundWriter", "set_background_hashing"]

#: Below this size the thread hand-off costs more than the hash.
_MIN_BACKGROUND_BYTES = 64 * 1024

#: Whether chunks go to the helper thread at all (see :func:`set_background_hashing`).
_BACKGROUND = True


def set_background_hashing(enabled: bool) -> None:
    """Hash and write on helper threads (the default) or inline, for this whole process.

    The helper threads only pay when a core would otherwise sit idle: a worker of a pool that
    already keeps every core busy turns them off, saving the hand-off on every chunk.
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


class _Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


class BackgroundWriter:
    """Writes to ``sink`` in order on a helper thread, one chunk in flight.

    Writing a MiB into the page cache costs about a third of encrypting it; the kernel copy releases the
    GIL, so on its own thread it runs beside the cipher. :meth:`write` returns once the previous chunk is
    written, so a caller alternating two output buffers may refill the one not passed last. Small writes
    (envelope head, trailer) are written inline, in order. Use as a context manager: leaving it waits
    for the last chunk and re-raises its error.
    """

    def __init__(self, sink: _Writable) -> None:
        self._sink = sink
        self._pending: Future[object] | None = None

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def write(self, chunk: bytes | memoryview) -> None:
        self.close()
        if len(chunk) < _MIN_BACKGROUND_BYTES or not _BACKGROUND:
            self._sink.write(chunk)
            return
        self._pending = _executor("write").submit(self._sink.write, chunk)

    def close(self) -> None:
        """Wait for the chunk in flight (its error, if any, is raised here)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()


#: One helper thread per role and process: starting a pool per file cost more than hashing a small file.
_EXECUTORS: dict[str, ThreadPoolExecutor] = {}
_EXECUTOR_LOCK = threading.Lock()


def _executor(role: str = "digest") -> ThreadPoolExecutor:
    with _EXECUTOR_LOCK:
        executor = _EXECUTORS.get(role)
        if executor is None:
            executor = _EXECUTORS[role] = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"dcmseal-{role}"
            )
        return executor


def _forget_executor() -> None:
    """In a forked child: the parent's helper threads were not copied, so start new ones when needed."""
    global _EXECUTOR_LOCK
    _EXECUTORS.clear()
    _EXECUTOR_LOCK = threading.Lock()


# A worker forked from a parent that already hashed would otherwise queue chunks for a thread that is not there.
os.register_at_fork(after_in_child=_forget_executor)
