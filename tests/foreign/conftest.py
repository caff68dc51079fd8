"""The foreign-media corpus as a fixture (made once per session: real tools, a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.foreign.corpus import ForeignMedium, build_corpus
from tests.peers.tools import require_tool


@pytest.fixture(scope="session")
def foreign_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ForeignMedium]:
    for binary, package in (
        ("dcmconv", "dcmtk"),
        ("dcmmkdir", "dcmtk"),
        ("genisoimage", "genisoimage"),
        ("mkudffs", "udftools"),
    ):
        require_tool(binary, package)
    return build_corpus(Path(tmp_path_factory.mktemp("foreign")))
