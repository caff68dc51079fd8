"""Process pools for work spread over every core: each worker dies with the process that started it."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

from dcmseal import cms
from dcmseal.fsutil import die_with_parent

__all__ = ["fork_context", "pool_context", "process_pool", "start_pool_server", "workers_skip_main"]


def fork_context() -> multiprocessing.context.BaseContext:
    """Workers forked from this process: they inherit what it holds (open files, prepared keys) unpickled."""
    return multiprocessing.get_context("fork")


def pool_context(*, preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """How workers start: forked from this process on Linux, else as forks of a fork server preloading ``preload``.

    A fork costs milliseconds and the worker inherits every imported module and the derived keys; a fork
    server costs a fresh interpreter importing the preloaded modules (0.2-0.4 s on the 2-core dev machine),
    which a batch of a few seconds feels. Forking is safe for workers that only run dcmseal's own code: they
    replace the package's log handlers, start helper threads of their own (the parent's are not copied) and
    never touch the parent's console. macOS cannot fork safely once system frameworks are loaded, so every
    other platform uses the fork server (or spawn, where there is none).
    """
    if sys.platform.startswith("linux"):
        return fork_context()
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return context


def process_pool(
    max_workers: int,
    *,
    mp_context: multiprocessing.context.BaseContext | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[object, ...] = (),
    cms_context: cms.Context | None = None,
) -> ProcessPoolExecutor:
    """A pool of ``max_workers`` processes (started as :func:`pool_context` says unless ``mp_context`` is
    given), each of which the kernel kills when this process dies, then runs ``initializer(*initargs)``.

    A run killed with SIGKILL runs no cleanup: without that rule its workers would go on writing plaintext,
    and keep its staging record locked so the next run could not remove its staging folder (Linux; elsewhere
    the workers end when they find the pool's pipes closed).

    With ``cms_context`` (the run's), each worker gets a context of its own that takes over the keys derived
    so far (:meth:`dcmseal.cms.Context.handover`), so a set opened or sealed in parallel still derives each
    key once; it hashes inline when the pool keeps every core busy (a helper thread would only add
    hand-offs). The initializer then receives that context first: ``initializer(context, *initargs)``.
    """
    handover = cms_context.handover() if cms_context is not None else None
    background = max_workers < (os.cpu_count() or 1)
    return ProcessPoolExecutor(
        max_workers=max_workers,
        mp_context=mp_context if mp_context is not None else pool_context(),
        initializer=_start_worker,
        initargs=(os.getpid(), handover, background, initializer, initargs),
    )


def _start_worker(
    parent_pid: int,
    handover: cms.Handover | None,
    background: bool,
    initializer: Callable[..., object] | None,
    initargs: tuple[object, ...],
) -> None:
    die_with_parent(parent_pid)
    if handover is not None:
        context = cms.Context.from_handover(handover, background=background)
        initargs = (context, *initargs)
    if initializer is not None:
        initializer(*initargs)


def start_pool_server(context: multiprocessing.context.BaseContext) -> None:
    """Start the fork server of ``context`` now rather than at the first submit (a failure shows at the submit).

    Nothing happens for other start methods. The server then imports its preloaded modules on another core
    while this one works on.
    """
    if context.get_start_method() != "forkserver":
        return
    with contextlib.suppress(OSError, ValueError), workers_skip_main():
        multiprocessing.forkserver.ensure_running()


@contextlib.contextmanager
def workers_skip_main() -> Iterator[None]:
    """While workers start, hide the main script's path so they do not run it again.

    A spawned or forkserver worker re-runs the parent's main script (as ``__mp_main__``) so that
    functions defined there can be unpickled. Ours live in the package, so for the command line that
    re-run only costs time: importing the whole CLI application in every worker. (Preloading
    ``__main__`` in the fork server would do it once, but CPython 3.11's forkserver never receives
    the main path.) Workers start during the first submit: submit the first tasks inside this context.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield  # run as a module (-m): multiprocessing already skips it
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path
