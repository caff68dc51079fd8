"""The RELAX NG schema of PS3.15 A.5.1, read with lxml straight from the repository (not through dcmseal)."""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "src" / "dcmseal" / "audit" / "schema"


@functools.cache
def relax_ng() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMA_DIR / "audit-message.rng")))


def schema_errors(xml: bytes) -> list[str]:
    """The schema's complaints about one message; empty when it validates."""
    schema = relax_ng()
    if schema.validate(etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))):
        return []
    return [f"{e.line}: {e.message}" for e in schema.error_log]
