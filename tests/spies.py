"""Wrap a real function so a test can tell it was called, keeping its signature for the type checker."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["counting"]

P = ParamSpec("P")
R = TypeVar("R")


def counting(real: Callable[P, R], on_call: Callable[[], object]) -> Callable[P, R]:
    """``real``, calling ``on_call()`` first each time it is called (for ``monkeypatch.setattr``)."""

    def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        on_call()
        return real(*args, **kwargs)

    return counted
