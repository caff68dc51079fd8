"""Typed access to the JSON documents the code under test returns (``to_json()``, ``--json`` output).

A document is ``dict[str, object]``: indexing into a member needs its shape checked first. These helpers
check it with an assertion, so a document of the wrong shape fails the test instead of being cast away.
"""

from __future__ import annotations

__all__ = ["array_at", "member", "object_at"]


def member(document: object, *path: str | int) -> object:
    """The value at ``path`` (``"summary", "failed"`` or ``"files", 0, "status"``) inside ``document``."""
    value = document
    for step in path:
        if isinstance(step, int):
            assert isinstance(value, list), f"{path}: {step!r} indexes {value!r}, not a JSON array"
            value = value[step]
        else:
            assert isinstance(value, dict), f"{path}: {step!r} indexes {value!r}, not a JSON object"
            value = value[step]
    return value


def object_at(document: object, *path: str | int) -> dict[str, object]:
    """The JSON object at ``path`` inside ``document`` (``document`` itself when ``path`` is empty)."""
    value = member(document, *path)
    assert isinstance(value, dict), f"{path}: {value!r} is not a JSON object"
    return value


def array_at(document: object, *path: str | int) -> list[object]:
    """The JSON array at ``path`` inside ``document``."""
    value = member(document, *path)
    assert isinstance(value, list), f"{path}: {value!r} is not a JSON array"
    return value
