"""The command-line fixtures (isolated environment, in-process runner, password file) and DCMTK storescp
for the hostile tests."""

from __future__ import annotations

from tests.cli.conftest import _isolated, invoke, password_file
from tests.importer.conftest import storescp

__all__ = ["_isolated", "invoke", "password_file", "storescp"]
