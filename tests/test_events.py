"""Notification events: dispatch by class and base class, in binding order, handler failures logged not raised."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from dcmseal.events import (
    Emitter,
    Event,
    FileFailed,
    FileOpened,
    FileQuarantined,
    FileSealed,
    InstanceStored,
    Progress,
    StudyHeld,
    on_progress,
)


def test_a_handler_receives_the_events_of_its_class_only() -> None:
    sealed: list[Event] = []
    failed: list[Event] = []
    emitter = Emitter([(FileSealed, sealed.append), (FileFailed, failed.append)])

    one = FileSealed(path=Path("a"), output=Path("b"))
    two = FileFailed(path=Path("c"), reason="not DICOM")
    emitter.emit(one)
    emitter.emit(two)
    emitter.emit(InstanceStored(path=Path("d"), sop_instance_uid="1.2.3"))

    assert sealed == [one]
    assert failed == [two]


def test_a_handler_bound_to_a_base_class_receives_its_subclasses() -> None:
    class Special(FileSealed):
        pass

    everything: list[Event] = []
    sealed: list[Event] = []
    emitter = Emitter([(Event, everything.append), (FileSealed, sealed.append)])
    events = [
        FileSealed(path=Path("a")),
        Special(path=Path("b")),
        FileOpened(path=Path("c")),
        StudyHeld(study_instance_uid="1.2", reason="unmatched"),
        Progress(stage="scan", done=1, total=2),
    ]
    for event in events:
        emitter.emit(event)

    assert everything == events
    assert sealed == events[:2]


def test_handlers_run_in_binding_order_including_bind_after_construction() -> None:
    calls: list[str] = []
    emitter = Emitter(
        [(FileQuarantined, lambda _e: calls.append("first")), (Event, lambda _e: calls.append("base"))]
    )
    emitter.bind(FileQuarantined, lambda _e: calls.append("third"))

    emitter.emit(FileQuarantined(path=Path("x"), reason="executable preamble"))
    emitter.emit(FileSealed(path=Path("y")))

    assert calls == ["first", "base", "third", "base"]


def test_a_failing_handler_is_logged_with_its_traceback_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(_event: Event) -> None:
        raise RuntimeError("the progress bar fell over")

    after: list[Event] = []
    emitter = Emitter([(Progress, broken), (Progress, after.append)])
    event = Progress(stage="open", done=3, total=9)

    with caplog.at_level(logging.WARNING, logger="dcmseal.events"):
        emitter.emit(event)  # must not raise

    assert after == [event]
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "Progress" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "the progress bar fell over" in caplog.text  # the traceback is in the log


def test_keyboard_interrupt_in_a_handler_still_stops_the_workflow() -> None:
    def interrupted(_event: Event) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Emitter([(Event, interrupted)]).emit(FileSealed(path=Path("a")))


def test_progress_and_the_old_style_adapter() -> None:
    calls: list[tuple[str, int, int]] = []
    seen: list[Event] = []
    emitter = Emitter([on_progress(lambda *args: calls.append(args)), (Event, seen.append)])

    emitter.progress("scan", 0, 4)
    emitter.progress("scan", 4, 4)
    emitter.emit(FileSealed(path=Path("a")))  # not a Progress: the adapter ignores it

    assert calls == [("scan", 0, 4), ("scan", 4, 4)]
    assert seen[:2] == [Progress(stage="scan", done=0, total=4), Progress(stage="scan", done=4, total=4)]
    assert on_progress(print)[0] is Progress


def test_an_emitter_without_handlers_accepts_everything() -> None:
    emitter = Emitter()
    emitter.progress("scan", 1, 1)
    emitter.emit(FileFailed(path=Path("a"), reason="r"))


@pytest.mark.parametrize("bad", [object, int, "Progress", Progress(stage="s", done=0, total=0)])
def test_binding_something_other_than_an_event_class_is_a_bug(bad: object) -> None:
    with pytest.raises(TypeError):
        Emitter([(bad, print)])  # type: ignore[list-item]


def test_binding_a_non_callable_is_a_bug() -> None:
    with pytest.raises(TypeError):
        Emitter().bind(Progress, "not callable")  # type: ignore[arg-type]


def test_events_are_frozen_keyword_only_values() -> None:
    event = InstanceStored(path=Path("a"), sop_instance_uid="1.2.3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.path = Path("b")  # type: ignore[misc]
    with pytest.raises(TypeError):
        FileSealed(Path("a"))  # type: ignore[call-arg]
    assert not hasattr(event, "__dict__")  # slotted
    assert event == InstanceStored(path=Path("a"), sop_instance_uid="1.2.3")
