"""Regenerate the DICOMDIR known-answer vectors in ``tests/media/vectors/dicomdir/`` (run by hand, never by pytest).

Usage, from the repository root::

    .venv/bin/python -m tests.media.vectors.make_dicomdir_vectors            # every scenario
    .venv/bin/python -m tests.media.vectors.make_dicomdir_vectors mixed      # some scenarios, by name

For each scenario of ``dicomdir_scenarios.SCENARIOS`` it builds the inputs (fixed UIDs, pydicom's test files),
plans the File-set and writes ``<scenario>.dcm`` (the DICOMDIR, byte for byte) and ``<scenario>.json`` (profile,
File-set UID and ID, the File Meta identity, the SHA-256 of the DICOMDIR and of every pydicom input, the planned
files with their File IDs, and the notes). ``tests/media/test_fileset_records.py`` compares the planner with them.

Where they came from: the vectors were first made by the DICOMDIR planner as it was before dcmseal encoded the
records itself (pydicom 3.0.2's ``FileSet`` building and writing every record, formerly
``tests/media/fileset_reference.py``); the new planner gave the same bytes, files and notes for every scenario.
pydicom's identity (``PYDICOM 3.0.2``) is therefore the one in their File Meta; this script and the test give
dcmseal's writer the same.

Regenerate only when a change to the DICOMDIR is intended (a new record key, a fix in a record), and review the
difference before committing, e.g. ``dcmdump +dc old.dcm > a; dcmdump +dc new.dcm > b; diff a b``
(``git show HEAD:tests/media/vectors/dicomdir/<scenario>.dcm > old.dcm``). A new scenario goes into
``dicomdir_scenarios.SCENARIOS`` and then here by name.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

from dcmseal.media import dicomdir as dicomdir_module
from dcmseal.media.fileset import build_fileset
from tests.media.vectors.dicomdir_scenarios import (
    FILESET_UID,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    SCENARIOS,
    Scenario,
    save_vector,
)


def make(scenario: Scenario, work: Path) -> None:
    root = (work / scenario.name / "root").resolve()
    root.mkdir(parents=True)
    inputs = scenario.build(root)
    plan = build_fileset(
        inputs.sources,
        work / scenario.name / "fs",
        fileset_id=scenario.fileset_id,
        profile=scenario.profile,
        fileset_uid=FILESET_UID,
    )
    save_vector(scenario, inputs, root, plan)
    print(
        f"{scenario.name}: {plan.dicomdir.stat().st_size} bytes, {len(plan.files)} files, {len(plan.notes)} notes"
    )


def main(names: list[str]) -> int:
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    # The vectors name pydicom as the DICOMDIR's implementation (see the docstring).
    dicomdir_module._IMPLEMENTATION_CLASS_UID = IMPLEMENTATION_CLASS_UID
    dicomdir_module._IMPLEMENTATION_VERSION_NAME = IMPLEMENTATION_VERSION_NAME
    with tempfile.TemporaryDirectory() as work, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about its samples' invalid values
        for name in names or list(SCENARIOS):
            make(SCENARIOS[name], Path(work))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
