"""Progress bars: the CLI binds rich bars to a workflow's Progress events, on a terminal and never with --json."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dcmseal import events
from dcmseal.cli.common import err_console, progress_handlers
from tests.cli.runner import run_on_terminal
from tests.scan.corpus import part10

#: The character rich draws the bar with (a finished or unfinished segment).
_BAR = "\u2501"


def _on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """As when ``dcmseal`` starts on a terminal: rich decides "interactive" once, when the console is made."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setattr(err_console, "is_interactive", True)


def test_no_handlers_with_json_or_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stderr is a terminal
    with progress_handlers(False) as handlers:
        assert handlers == []
    monkeypatch.setenv("TTY_COMPATIBLE", "0")  # rich: stderr is not one
    with progress_handlers(True) as handlers:
        assert handlers == []


def test_on_a_terminal_each_stage_gets_its_bar(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _on_a_terminal(monkeypatch)
    with progress_handlers(True) as handlers:
        assert [event_type for event_type, _handler in handlers] == [events.Progress]
        emitter = events.Emitter(handlers)
        emitter.progress("scan", 3, 10)
        emitter.progress("open", 1, 2)
        emitter.emit(events.FileSealed(path=Path("x")))  # not progress: no bar
    drawn = capsys.readouterr().err
    assert "scan" in drawn
    assert "3/10" in drawn
    assert "open" in drawn
    assert "1/2" in drawn


@pytest.mark.skipif(sys.platform != "linux", reason="a pseudo-terminal")
def test_scan_on_a_terminal_draws_its_bar_and_not_with_json(tmp_path: Path) -> None:
    medium = tmp_path / "medium"
    medium.mkdir()
    for index in range(5):
        (medium / f"IM{index}").write_bytes(part10())

    code, screen = run_on_terminal(["scan", str(medium)], tmp_path, lambda _screen: None)
    assert code == 0, screen
    assert _BAR in screen
    assert "5/5" in screen

    code, screen = run_on_terminal(["scan", str(medium), "--json"], tmp_path, lambda _screen: None)
    assert code == 0, screen
    assert _BAR not in screen
