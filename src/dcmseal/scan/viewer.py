"""dcmseal's own offline viewer on a medium, recognised by the SHA-256 of every file of the bundle.

``dcmseal burn`` puts the viewer on every medium: ``INDEX.HTM`` in the root and its assets in ``VIEWER/``
(:mod:`dcmseal.media.webviewer`). That is HTML and JavaScript outside the File-set, which the medium checks
flag; the exact bundle this installation ships is known, so it is reported as a note instead. The known
hashes are read from the package data (``dcmseal/media/viewer/``, built by ``make viewer``) as resources,
without importing :mod:`dcmseal.media` (the layers forbid it), once per process. A bundle counts only when
every one of its files is there, at its place relative to ``INDEX.HTM``, with the same size and SHA-256;
anything else (a changed byte, a missing or renamed file) is flagged as any other active content. Only
files whose name and size match a bundle file are hashed, so a large medium costs nothing more.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.resources
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import BinaryIO

__all__ = [
    "INDEX_NAME",
    "KnownBundle",
    "ViewerMatch",
    "find_viewers",
    "known_bundle",
    "load_bundle",
    "sha256_of",
]

#: The viewer's page; the bundle's other files are named relative to the folder that holds it.
INDEX_NAME = "INDEX.HTM"
_CHUNK_BYTES = 1024 * 1024
#: Deeper than this the package data holds nothing of the bundle (INDEX.HTM, VIEWER/*).
_MAX_DEPTH = 3


@dataclass(frozen=True, slots=True)
class KnownBundle:
    """The files of the viewer bundle: name relative to INDEX.HTM's folder (upper case) -> (size, SHA-256)."""

    files: Mapping[str, tuple[int, str]]
    label: str  # "0.1.0 (sha256 1a2b3c4d5e6f)": the dcmseal version that ships it and a digest of the set


@dataclass(frozen=True, slots=True)
class ViewerMatch:
    """One copy of the known bundle found on a medium."""

    root: str  # the folder holding INDEX.HTM, "" or "SUB/" (as named on the medium)
    names: frozenset[str]  # the bundle's files, as named on the medium
    label: str


def sha256_of(fp: BinaryIO) -> str:
    """The SHA-256 (hex) of a stream read from where it stands to its end, in 1 MiB chunks."""
    digest = hashlib.sha256()
    while chunk := fp.read(_CHUNK_BYTES):
        digest.update(chunk)
    return digest.hexdigest()


def _walk(folder: Traversable, prefix: str, depth: int) -> Iterable[tuple[str, Traversable]]:
    for child in sorted(folder.iterdir(), key=lambda c: c.name):
        if child.name.startswith(".") or child.name == "__pycache__":
            continue
        if child.is_dir():
            if depth < _MAX_DEPTH:
                yield from _walk(child, f"{prefix}{child.name}/", depth + 1)
        elif child.is_file():
            yield f"{prefix}{child.name}", child


def load_bundle(folder: Traversable) -> KnownBundle | None:
    """The bundle built into ``folder`` (INDEX.HTM and its assets), or None when there is none."""
    if not folder.is_dir() or not folder.joinpath(INDEX_NAME).is_file():
        return None
    files: dict[str, tuple[int, str]] = {}
    for name, resource in _walk(folder, "", 1):
        digest, size = hashlib.sha256(), 0
        with resource.open("rb") as fp:
            while chunk := fp.read(_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
        files[name.upper()] = (size, digest.hexdigest())
    overall = hashlib.sha256(
        "".join(f"{name}\0{sha}\n" for name, (_size, sha) in sorted(files.items())).encode()
    ).hexdigest()
    try:
        version = importlib.metadata.version("dcmseal")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    return KnownBundle(files=files, label=f"{version} (sha256 {overall[:12]})")


@functools.cache
def known_bundle() -> KnownBundle | None:
    """The bundle this installation burns (package data ``dcmseal/media/viewer``), hashed once per process.

    ``importlib.resources.files("dcmseal")`` and a path below it: ``dcmseal.media`` is neither imported
    nor run. None when the viewer is not built (then no viewer is ever recognised).
    """
    return load_bundle(importlib.resources.files("dcmseal").joinpath("media", "viewer"))


def find_viewers(
    names: Iterable[str],
    *,
    size_of: Callable[[str], int],
    digest_of: Callable[[str], str],
    bundle: KnownBundle | None,
) -> list[ViewerMatch]:
    """Every complete, unmodified copy of ``bundle`` among the files ``names`` of a medium.

    Parameters
    ----------
    names
        The medium's files (POSIX paths relative to its root).
    size_of, digest_of
        A file's size and SHA-256 (hex), called only for files whose name matches a bundle file (and, for
        ``digest_of``, whose size matches too). Either may raise OSError: that copy is not recognised.
    bundle
        :func:`known_bundle`, or None (nothing is recognised).
    """
    if bundle is None or INDEX_NAME not in bundle.files:
        return []
    basenames = {name.rpartition("/")[2] for name in bundle.files}
    # The last character first: most names of a medium (File IDs end in a digit) fail that test at once.
    last = frozenset(c for base in basenames for c in (base[-1].upper(), base[-1].lower()))
    candidates: dict[str, str] = {}
    for name in [n for n in names if n[-1:] in last]:
        upper = name.upper()
        if upper.rpartition("/")[2] in basenames:
            candidates.setdefault(upper, name)
    matches: list[ViewerMatch] = []
    for upper, name in candidates.items():
        if upper.rpartition("/")[2] != INDEX_NAME:
            continue
        root_upper = upper[: -len(INDEX_NAME)]
        found = {rel: candidates.get(root_upper + rel) for rel in bundle.files}
        present = {rel: on_medium for rel, on_medium in found.items() if on_medium is not None}
        if len(present) != len(bundle.files):
            continue
        try:
            # Sizes first (a stat or a directory entry), then the hashes: a near miss costs no read.
            if any(size_of(present[rel]) != size for rel, (size, _sha) in bundle.files.items()):
                continue
            if any(digest_of(present[rel]) != sha for rel, (_size, sha) in bundle.files.items()):
                continue
        except OSError:
            continue
        matches.append(
            ViewerMatch(root=name[: -len(INDEX_NAME)], names=frozenset(present.values()), label=bundle.label)
        )
    return matches
