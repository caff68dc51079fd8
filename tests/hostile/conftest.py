"""The command-line fixtures (isolated environment, in-process runner, password file) for the hostile tests."""

from __future__ import annotations

from tests.cli.conftest import _isolated, invoke, password_file

__all__ = ["_isolated", "invoke", "password_file"]
