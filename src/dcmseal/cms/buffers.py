"""Per-thread buffers reused from one envelope to the next."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["Scratch"]


class Scratch(threading.local):
    """Buffers each thread reuses from one envelope to the next (a fresh 1 MiB buffer costs page faults).

    They hold the last chunks of plaintext and ciphertext until reused: they belong to a
    :class:`dcmseal.cms.Context` and die with it, never to the process.
    """

    def __init__(self) -> None:
        self.buffers: list[bytearray] = []
        self.in_use = False

    def __repr__(self) -> str:
        return f"Scratch(buffers={len(self.buffers)})"

    @contextlib.contextmanager
    def views(self, *sizes: int) -> Iterator[list[memoryview]]:
        """Views of ``sizes`` bytes each, on this thread's reused buffers (fresh ones if they are taken)."""
        if self.in_use:  # re-entered from a sink: never share
            yield [memoryview(bytearray(n)) for n in sizes]
            return
        while len(self.buffers) < len(sizes):
            self.buffers.append(bytearray())
        for index, n in enumerate(sizes):
            if len(self.buffers[index]) < n:
                self.buffers[index] = bytearray(n)
        self.in_use = True
        try:
            yield [memoryview(self.buffers[i])[:n] for i, n in enumerate(sizes)]
        finally:
            self.in_use = False
