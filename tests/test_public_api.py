"""The top-level ``dcmseal`` namespace: every public name loads on use (PEP 562), and importing it is cheap."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dcmseal

#: What ``import dcmseal`` must not load: the libraries a recipe or workflow loads when it is used.
HEAVY = ("pydicom", "cryptography", "asn1crypto", "sqlalchemy", "typer", "rich", "lxml", "zxcvbn")
#: The recipes and workflows of architecture.md ("The library surface").
WORKFLOWS = (
    "seal",
    "unseal",
    "burn",
    "open_medium",
    "rekey",
    "scan",
    "sanitize",
    "import_medium",
    "encapsulate",
    "extract",
    "recover",
)


def _python(code: str) -> str:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    return done.stdout


def test_import_dcmseal_loads_no_heavy_library() -> None:
    loaded = json.loads(_python("import sys, json, dcmseal; print(json.dumps(sorted(sys.modules)))"))
    assert [name for name in loaded if name.split(".")[0] in HEAVY] == []
    assert [name for name in loaded if name.startswith("dcmseal.")] == []


def test_a_public_name_loads_its_module_on_first_use() -> None:
    loaded = json.loads(
        _python("import sys, json, dcmseal; dcmseal.DcmsealError; print(json.dumps(sorted(sys.modules)))")
    )
    assert "dcmseal.errors" in loaded
    assert "pydicom" not in loaded


@pytest.mark.parametrize("name", sorted(set(dcmseal.__all__) - {"__version__"}))
def test_every_public_name_resolves_and_is_documented(name: str) -> None:
    value = getattr(dcmseal, name)
    assert value is getattr(dcmseal, name)  # loaded once, then kept
    assert inspect.getdoc(value), f"dcmseal.{name} has no docstring"


def test_the_workflows_are_exported_and_callable() -> None:
    assert set(WORKFLOWS) <= set(dcmseal.__all__)
    for name in WORKFLOWS:
        assert callable(getattr(dcmseal, name)), name


#: The enums of outcomes and the event types a caller binds handlers to (issue 17 items 2 and 3).
OUTCOMES_AND_EVENTS = {
    "FileStatus": "dcmseal.part10.batch",
    "ReasonKind": "dcmseal.outcomes",
    **dict.fromkeys(
        (
            "Event",
            "Progress",
            "FileSealed",
            "FileOpened",
            "FileQuarantined",
            "FileFailed",
            "InstanceStored",
            "StudyHeld",
            "Emitter",
            "HandlerSpec",
        ),
        "dcmseal.events",
    ),
}


@pytest.mark.parametrize(("name", "module"), sorted(OUTCOMES_AND_EVENTS.items()))
def test_outcomes_and_events_are_the_objects_of_their_modules(name: str, module: str) -> None:
    assert name in dcmseal.__all__
    assert getattr(dcmseal, name) is getattr(importlib.import_module(module), name)


def test_a_handler_bound_through_the_top_level_names_receives_its_events() -> None:
    seen: list[object] = []
    emitter = dcmseal.Emitter([(dcmseal.Progress, seen.append)])
    emitter.progress("scan", 1, 2)
    emitter.emit(dcmseal.FileFailed(path=Path("x.dcm"), reason="unreadable"))
    assert seen == [dcmseal.Progress(stage="scan", done=1, total=2)]


def test_dir_lists_the_public_names_before_they_are_loaded() -> None:
    assert set(dcmseal.__all__) <= set(dir(dcmseal))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'seal_everything'"):
        dcmseal.seal_everything  # noqa: B018


def test_hazmat_knobs_are_not_at_the_top_level() -> None:
    # part10.seal_file (durable, batch, kdf_cache) and cms stay one level down, for experts.
    for name in ("seal_file", "unseal_file", "seal_tree", "unseal_tree", "SealPlan", "UnsealPlan"):
        assert name not in dcmseal.__all__
