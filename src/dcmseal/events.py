"""Notification events that workflows emit to the handlers their caller binds, in the manner of pynetdicom.

A workflow takes ``handlers: Sequence[HandlerSpec]`` (pairs of an event class and a callable, as
pynetdicom's ``evt_handlers=[(evt.EVT_C_STORE, handle_store)]``), builds an :class:`Emitter` from them
and emits what happens (a file sealed, an instance stored, a file quarantined, progress of a stage).
A handler bound to a class receives that class and its subclasses, so ``(Event, fn)`` sees everything.

These are *notification* events only (pynetdicom/events.py separates them from intervention events,
whose one handler returns a decision): a handler observes, it cannot change the outcome, and an
exception it raises is logged and swallowed. Decisions come from explicit policy objects instead.

This module imports only the standard library, so every layer may import it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Emitter",
    "Event",
    "FileFailed",
    "FileOpened",
    "FileQuarantined",
    "FileSealed",
    "Handler",
    "HandlerSpec",
    "InstanceStored",
    "Progress",
    "StudyHeld",
    "on_progress",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every notification event; bind a handler to it to receive all of them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress(Event):
    """``done`` of ``total`` items of a workflow stage (``"scan"``, ``"open"``, ``"send"``...) are finished."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSealed(Event):
    """``path`` was written as a Secure DICOM File (PS3.10 §7.4), to ``output`` when it is another file."""

    path: Path
    output: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FileOpened(Event):
    """The Secure DICOM File ``path`` was decrypted and verified, to ``output`` when written out."""

    path: Path
    output: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FileQuarantined(Event):
    """``path`` was set aside, not processed, for ``reason``."""

    path: Path
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FileFailed(Event):
    """``path`` could not be processed, for ``reason`` (the one line the user would see)."""

    path: Path
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceStored(Event):
    """The instance read from ``path`` was stored (C-STORE or STOW-RS) and confirmed by the peer."""

    path: Path
    sop_instance_uid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyHeld(Event):
    """The study was held back from sending, for ``reason``."""

    study_instance_uid: str
    reason: str


Handler = Callable[[Any], None]
"""A callable receiving one event. Typed ``Any`` because each is bound to its own event class."""
HandlerSpec = tuple[type[Event], Handler]
"""An event class and the handler it is bound to: ``(FileSealed, on_sealed)``; workflows take a sequence."""


class Emitter:
    """Dispatch each event to the handlers bound to its class or to any of its base classes.

    Handlers run in the order they were bound, in the emitting thread. An exception raised by a
    handler is logged at WARNING with its traceback and never reaches the workflow.

    Parameters
    ----------
    handlers
        ``(event class, handler)`` pairs, bound in this order.

    Raises
    ------
    TypeError
        A pair whose first item is not a subclass of :class:`Event`, or whose handler is not callable.
    """

    __slots__ = ("_handlers",)

    def __init__(self, handlers: Iterable[HandlerSpec] = ()) -> None:
        self._handlers: list[HandlerSpec] = []
        for event_type, handler in handlers:
            self.bind(event_type, handler)

    def bind(self, event_type: type[Event], handler: Handler) -> None:
        """Call ``handler(event)`` for every later event that is an instance of ``event_type``.

        Parameters
        ----------
        event_type
            :class:`Event` or one of its subclasses.
        handler
            Called with the event; its return value is ignored.

        Raises
        ------
        TypeError
            ``event_type`` is not an :class:`Event` class or ``handler`` is not callable (a bug in
            the caller, found when binding rather than when the first event arrives).
        """
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise TypeError(f"events are bound by Event subclass, not {event_type!r}")
        if not callable(handler):
            raise TypeError(f"handler for {event_type.__name__} is not callable: {handler!r}")
        self._handlers.append((event_type, handler))

    def emit(self, event: Event) -> None:
        """Give ``event`` to each handler bound to its class or a base class, in binding order.

        Parameters
        ----------
        event
            The notification to deliver.
        """
        for event_type, handler in self._handlers:
            if not isinstance(event, event_type):
                continue
            try:
                handler(event)
            # A notification handler observes; it must not decide the workflow's outcome. Like
            # pynetdicom's notification events, any Exception it raises is logged and dropped, so a
            # broken progress bar cannot abort a burn half-way. BaseException (KeyboardInterrupt,
            # SystemExit) still propagates: the user asked to stop.
            except Exception:
                logger.warning(
                    "handler %r for %s failed; the workflow goes on",
                    handler,
                    type(event).__name__,
                    exc_info=True,
                )

    def progress(self, stage: str, done: int, total: int) -> None:
        """Emit :class:`Progress` for ``stage``: ``done`` of ``total`` items finished.

        Parameters
        ----------
        stage
            The workflow stage (``"scan"``, ``"open"``, ``"send"``...).
        done, total
            Items finished so far, and in all.
        """
        if self._handlers:  # a hot loop without observers builds no event
            self.emit(Progress(stage=stage, done=done, total=total))


def on_progress(fn: Callable[[str, int, int], None]) -> HandlerSpec:
    """Bind an old-style ``fn(stage, done, total)`` progress callback to :class:`Progress` events.

    Parameters
    ----------
    fn
        The callback, called with the fields of each :class:`Progress` event.

    Returns
    -------
    HandlerSpec
        ``(Progress, handler)``, to pass among a workflow's ``handlers``.
    """

    def handler(event: Progress) -> None:
        fn(event.stage, event.done, event.total)

    return (Progress, handler)
