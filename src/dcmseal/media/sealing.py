"""A burn's files sealed: file by file into the medium folder, or straight into the image as it is written."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from dcmseal import cms
from dcmseal.errors import DcmsealError, InputError
from dcmseal.events import Emitter, FileSealed
from dcmseal.fsutil import link_or_copy, make_dirs
from dcmseal.part10 import (
    FileOutcome,
    FileStatus,
    SealedStream,
    SealPlan,
    prepare_seal,
    seal_into,
)

__all__ = ["SealCounter", "copy_plain", "prepare_streams", "seal_into_image"]


class SealCounter:
    """Counts the medium's files as they are sealed (or copied, on a plain medium) and tells the handlers."""

    def __init__(
        self, events: Emitter, targets: Mapping[Path, Path], sources: Mapping[Path, Path], *, sealed: bool
    ) -> None:
        self._events = events
        self._targets = targets  # staged file -> where it ends up
        self._sources = sources  # staged file -> the source as collected
        self._sealed = sealed
        self.done = 0

    def __call__(self, staged: Path | None) -> None:
        self.done += 1
        self._events.progress("seal", self.done, len(self._targets))
        if self._sealed and staged is not None:
            self._events.emit(
                FileSealed(path=self._sources.get(staged, staged), output=self._targets.get(staged))
            )

    def on_outcome(self, outcome: FileOutcome) -> None:
        self(outcome.source if outcome.status is FileStatus.SEALED else None)

    def on_stream(self, stream: SealedStream) -> None:
        self(stream.source)


def prepare_streams(pairs: list[tuple[Path, Path]], plan: SealPlan) -> tuple[dict[Path, SealedStream], int]:
    """Every file of the medium planned for sealing into the image: its size fixed, its key wrapped.

    The targets are paths in the medium folder that are never written: the image takes their names from
    here. One PBKDF2 derivation serves them all. Returns the streams by target and the derivations run.
    """
    context = cms.Context()  # the medium's: its streams share the one derivation, templates and buffers
    recipients = plan.recipients()
    signer = plan.signer()
    streams: dict[Path, SealedStream] = {}
    for source, target in pairs:
        try:
            streams[target] = prepare_seal(
                source,
                recipients=recipients,
                cipher=plan.cipher,
                digest=plan.digest,
                signer=signer,
                context=context,
            )
        except DcmsealError as exc:
            raise InputError(f"cannot be sealed: {exc.message}", path=source) from exc
    return streams, context.kdf_cache.derivations


def seal_into_image(
    fd: int,
    offsets: Mapping[Path, int],
    *,
    streams: Mapping[Path, SealedStream],
    workers: int,
    on_sealed: Callable[[SealedStream], None],
    names: dict[Path, str],
) -> None:
    """Seal the medium's files into the image being written, at the offsets its layout gave them.

    A file that fails is named as the user knows it (``names``: staged copy -> source), not by its staged copy.
    """
    placed = [(streams[target], offset) for target, offset in offsets.items()]
    try:
        seal_into(fd, placed, workers=workers, on_done=on_sealed)
    except InputError as exc:
        shown = names.get(Path(exc.path)) if exc.path is not None else None
        if shown is None:
            raise
        raise InputError(exc.message, path=shown) from exc


def copy_plain(
    pairs: list[tuple[Path, Path]], on_copied: Callable[[Path | None], None], *, link: bool
) -> None:
    """Place the File-set of a plain medium (--no-encrypt): the conformed files as they are.

    Into an image they go as hard links (pycdlib only reads them); a folder medium gets copies, because the
    staged files may be links to the user's own sources, which the output must never share.
    """
    for source, target in pairs:
        make_dirs(target.parent)
        if link:
            link_or_copy(source, target)
        else:
            shutil.copyfile(source, target)
        on_copied(None)
