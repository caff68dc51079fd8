"""Seal planned Part 10 files straight into one open output file (a medium image), each at its offset, on every core."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait

from dcmseal import cms
from dcmseal.errors import DcmsealError, WireError, from_wire, to_wire
from dcmseal.part10.secure import SealedStream
from dcmseal.workers import fork_context, process_pool

__all__ = ["seal_into"]

#: Streams per task: big enough that a task outweighs its hand-off, small enough for smooth progress.
_TASK_STREAMS = 16

#: The job of a fill, set before the workers fork so they inherit it (streams hold their keys: never pickled).
_JOB: tuple[int, Sequence[tuple[SealedStream, int]]] | None = None

#: A fill worker's own CMS context (its buffers; inline hashing when every core runs a worker), set as it starts.
_WORKER_CONTEXT: cms.Context | None = None


def seal_into(
    fd: int,
    placed: Sequence[tuple[SealedStream, int]],
    *,
    workers: int = 0,
    on_done: Callable[[SealedStream], None] | None = None,
) -> None:
    """Seal each stream into the file ``fd`` at its offset: in worker processes when there is more than one
    core and the system can fork them (they inherit ``fd`` and the prepared keys), else here.

    ``on_done`` is called here for each stream once it is written. The first failure stops the fill and is
    raised as the error the stream raised (its class and message, naming the source), whichever process
    wrote it; the caller throws the half-filled file away.
    """
    global _JOB
    workers = min(workers or os.cpu_count() or 1, max(1, len(placed) // _TASK_STREAMS))
    if workers <= 1 or not sys.platform.startswith("linux"):
        for stream, offset in placed:
            stream.write_at(fd, offset)
            if on_done is not None:
                on_done(stream)
        return
    _JOB = (fd, placed)
    try:
        # The streams hold their keys: a worker takes over nothing but gets a CMS context of its own.
        with process_pool(
            workers, mp_context=fork_context(), cms_context=cms.Context(), initializer=_init_worker
        ) as pool:
            futures: dict[Future[tuple[int, WireError] | None], tuple[int, int]] = {}
            for start in range(0, len(placed), _TASK_STREAMS):
                end = min(start + _TASK_STREAMS, len(placed))
                futures[pool.submit(_fill, start, end)] = (start, end)
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    failure = future.result()
                    if failure is not None:
                        for other in pending:
                            other.cancel()
                        index, wire = failure
                        raise from_wire(wire).with_path(placed[index][0].source)
                    if on_done is not None:
                        start, end = futures[future]
                        for stream, _offset in placed[start:end]:
                            on_done(stream)
    finally:
        _JOB = None


def _init_worker(context: cms.Context) -> None:
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = context


def _fill(start: int, end: int) -> tuple[int, WireError] | None:
    """In a worker: seal streams ``start:end`` of the inherited job; the first failure as (index, error).

    Any other exception is a bug and reaches the parent as itself, through the pool.
    """
    assert _JOB is not None, "a fill worker runs forked from seal_into"
    fd, placed = _JOB
    for index in range(start, end):
        stream, offset = placed[index]
        try:
            stream.write_at(fd, offset, context=_WORKER_CONTEXT)
        except DcmsealError as exc:
            return index, to_wire(exc)
    return None
