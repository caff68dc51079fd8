"""Helper threads for one stream: digests and writes that overlap the cipher on a second core."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Protocol, TypeVar

from dcmseal.cms.algorithms import DigestAlgorithm

_In = TypeVar("_In")
_Out = TypeVar("_Out")

__all__ = ["BackgroundDigest", "BackgroundWriter", "HelperThreads"]

#: Below this size the thread hand-off costs more than the hash.
_MIN_BACKGROUND_BYTES = 64 * 1024


class HelperThreads:
    """One helper thread per role ("digest", "write"), started when first asked for, shut down by :meth:`close`.

    Starting a thread per file cost more than hashing a small file, so the threads serve every stream of
    their owner (a :class:`dcmseal.cms.Context`). A process forked from the owner's process has no copy of
    them: asked there, the threads are started anew for that process.
    """

    def __init__(self) -> None:
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"HelperThreads(roles={sorted(self._executors)})"

    def submit(self, role: str, fn: Callable[[_In], _Out], arg: _In, /) -> Future[_Out]:
        """Run ``fn(arg)`` on the helper thread of ``role``, after what was submitted to it before."""
        if self._pid != os.getpid():
            # Forked: the parent's threads were not copied (nor may its lock be trusted).
            self._executors, self._lock, self._pid = {}, threading.Lock(), os.getpid()
        with self._lock:
            executor = self._executors.get(role)
            if executor is None:
                executor = self._executors[role] = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"dcmseal-{role}"
                )
        return executor.submit(fn, arg)

    def close(self) -> None:
        """Let the threads end once their work is done (a later :meth:`submit` starts new ones)."""
        if self._pid != os.getpid():
            self._executors = {}
            return
        with self._lock:
            executors, self._executors = self._executors, {}
        for executor in executors.values():
            executor.shutdown(wait=False)


class BackgroundDigest:
    """Feed chunks in order; the digests are computed on one helper thread.

    ``hashlib`` releases the GIL while it hashes a large buffer, so while the caller encrypts or
    decrypts chunk *n* (holding the GIL), chunk *n-1* is hashed on the other core: the cost of
    seal and unseal becomes max(cipher, digest) instead of their sum. At most two chunks are in
    flight, so memory stays bounded by the chunk size. With ``threads`` None every chunk is hashed
    inline (a worker of a pool that keeps every core busy: a helper thread would only add hand-offs).
    Use as a context manager.
    """

    def __init__(self, algorithms: list[DigestAlgorithm], *, threads: HelperThreads | None) -> None:
        self._hashes = {alg: hashlib.new(alg.value) for alg in algorithms}
        self._threads = threads
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
        if len(chunk) < _MIN_BACKGROUND_BYTES or self._threads is None:
            self._update_all(chunk)
            return
        self._pending = self._threads.submit("digest", self._update_all, chunk)

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
    for the last chunk and re-raises its error. With ``threads`` None every chunk is written inline.
    """

    def __init__(self, sink: _Writable, *, threads: HelperThreads | None) -> None:
        self._sink = sink
        self._threads = threads
        self._pending: Future[object] | None = None

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def write(self, chunk: bytes | memoryview) -> None:
        self.close()
        if len(chunk) < _MIN_BACKGROUND_BYTES or self._threads is None:
            self._sink.write(chunk)
            return
        self._pending = self._threads.submit("write", self._sink.write, chunk)

    def close(self) -> None:
        """Wait for the chunk in flight (its error, if any, is raised here)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()
