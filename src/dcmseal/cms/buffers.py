"""Per-thread buffers reused from one envelope to the next."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__: list[str] = []


class _Scratch(threading.local):
    """Per-thread buffers reused from one envelope to the next (a fresh 1 MiB buffer costs page faults)."""

    def __init__(self) -> None:
        self.buffers: list[bytearray] = []
        self.in_use = False


_SCRATCH = _Scratch()


@contextlib.contextmanager
def scratch_buffers(*sizes: int) -> Iterator[list[memoryview]]:
    """Views of ``sizes`` bytes each, on this thread's reused buffers (fresh ones if they are taken)."""
    scratch = _SCRATCH
    if scratch.in_use:  # re-entered from a sink: never share
        yield [memoryview(bytearray(n)) for n in sizes]
        return
    while len(scratch.buffers) < len(sizes):
        scratch.buffers.append(bytearray())
    for index, n in enumerate(sizes):
        if len(scratch.buffers[index]) < n:
            scratch.buffers[index] = bytearray(n)
    scratch.in_use = True
    try:
        yield [memoryview(scratch.buffers[i])[:n] for i, n in enumerate(sizes)]
    finally:
        scratch.in_use = False
