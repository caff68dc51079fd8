"""Every process pool of dcmseal comes from dcmseal.workers: its workers die with their parent."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from pathlib import Path

import pytest

from dcmseal import cms, workers

_PR_GET_PDEATHSIG = 2  # <linux/prctl.h>

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")


def _death_signal() -> int:
    """In a worker: the signal the kernel sends this process when its parent dies (0: none)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    value = ctypes.c_int(0)
    assert libc.prctl(_PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0) == 0
    return value.value


_INITIALIZED: list[str] = []


def _remember(word: str) -> None:
    _INITIALIZED.append(word)


def _initialized() -> list[str]:
    return list(_INITIALIZED)


@linux_only
@pytest.mark.parametrize("context", [workers.fork_context, workers.pool_context])
def test_a_pool_worker_dies_with_its_parent(context: object) -> None:
    assert callable(context)
    with workers.process_pool(1, mp_context=context()) as pool:
        assert pool.submit(_death_signal).result() == signal.SIGKILL
        assert pool.submit(os.getppid).result() == os.getpid()


def test_the_initializer_runs_in_each_worker_after_the_rule() -> None:
    with workers.process_pool(
        1, mp_context=workers.fork_context(), initializer=_remember, initargs=("ready",)
    ) as pool:
        assert pool.submit(_initialized).result() == ["ready"]
    assert _INITIALIZED == []  # this process is untouched


_KDF = cms.Pbkdf2Params(salt=b"dcmseal tests/test_workers.py", iterations=1000, prf=cms.Prf.SHA256)
_WORKER_CONTEXT: list[cms.Context] = []


def _keep_context(context: cms.Context, word: str) -> None:
    assert word == "ready"
    _WORKER_CONTEXT.append(context)


def _context_facts() -> tuple[bool, int, bool, bool]:
    (context,) = _WORKER_CONTEXT
    return (
        context.kdf_cache.has(b"password", _KDF, 32),
        context.kdf_cache.derivations,
        context.background,
        context.fast,
    )


def test_a_worker_takes_over_the_run_context() -> None:
    """The keys derived by the run reach each worker; a pool on every core hashes inline."""
    run = cms.Context(fast=False)
    run.kdf_cache.derive(b"password", _KDF, 32)
    cores = os.cpu_count() or 1
    with workers.process_pool(
        cores,
        mp_context=workers.fork_context(),
        cms_context=run,
        initializer=_keep_context,
        initargs=("ready",),
    ) as pool:
        assert pool.submit(_context_facts).result() == (True, 0, False, False)
    assert _WORKER_CONTEXT == []


def test_every_process_pool_is_made_by_dcmseal_workers() -> None:
    """One place creates pools (issue 17 §5): no other module builds a ProcessPoolExecutor itself."""
    root = Path(workers.__file__).parent
    makers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "ProcessPoolExecutor(" in path.read_text(encoding="utf-8") and path != Path(workers.__file__)
    )
    assert makers == []
