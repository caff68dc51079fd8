"""Derive the RELAX NG XML schema (audit-message.rng) from the PS3.15 A.5.1.1 compact schema (audit-message.rnc).

lxml reads RELAX NG in its XML syntax only; the standard gives the schema in the compact syntax. rnc2rng
converts it; the standard's ``##`` lines are documentation annotations placed where RELAX NG Compact allows
none (after the last value of a choice), so they are turned into plain comments first: they carry no
constraint.

Usage: ``python scripts/audit_schema.py`` rewrites the .rng; ``--check`` exits 1 when it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rnc2rng

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "src" / "dcmseal" / "audit" / "schema"
RNC = SCHEMA_DIR / "audit-message.rnc"
RNG = SCHEMA_DIR / "audit-message.rng"


def convert(compact: str) -> str:
    """The XML syntax of ``compact`` (the A.5.1.1 text as published)."""
    without_annotations = "\n".join(line.replace("##", "#", 1) for line in compact.splitlines()) + "\n"
    return str(rnc2rng.dumps(rnc2rng.loads(without_annotations))).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    derived = convert(RNC.read_text(encoding="ascii"))
    if "--check" in argv:
        if RNG.read_text(encoding="utf-8") != derived:
            print(f"{RNG} is not the conversion of {RNC.name}: run python scripts/audit_schema.py")
            return 1
        return 0
    RNG.write_text(derived, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
