"""Find and run external programs: skip locally when one is missing, fail under CI."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

__all__ = ["in_ci", "require_tool", "run_tool"]


def in_ci() -> bool:
    """Return True when CI is set to anything but "", "0", "false" or "no" (CI must have every peer)."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def require_tool(binary: str, debian_package: str) -> str:
    """Return the absolute path of `binary`; skip the test when it is missing, or fail it under CI."""
    path = shutil.which(binary)
    if path is not None:
        return os.path.abspath(path)
    message = f"{binary} not installed: apt-get install {debian_package}"
    if in_ci():
        pytest.fail(f"{message} (CI must have every peer; run `make system-deps`)")
    pytest.skip(message)


def run_tool(
    args: list[str], *, input: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """Run `args` with `input` on stdin; return the result with stdout and stderr captured, rc unchecked."""
    return subprocess.run(args, input=input, capture_output=True, check=False, timeout=timeout)
