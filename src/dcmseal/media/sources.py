"""Collect the instances a burn starts from: files, folders, zips, DICOMDIR sets, and studies on a PACS (WADO-RS).

Every input is accounted for in the result: a Part 10 instance is collected, anything else is rejected with
a reason (not DICOM, already sealed, broken) or noted (files a DICOMDIR does not reference, duplicates).
Zips and ISO images are extracted safely under the work directory (:func:`dcmseal.reader.medium.medium_as_folder`);
a study URL is retrieved with WADO-RS (PS3.18 §10.4) into the work directory as Part 10 files.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import dcmwrite

from dcmseal.dicomweb import DicomWebClient, DicomWebError, Failure
from dcmseal.errors import InputError, MissingInputError, NotPart10Error, PeerError
from dcmseal.fsutil import atomic_write, make_dirs
from dcmseal.part10 import FileMeta, is_secure_file, read_file_meta
from dcmseal.reader.extraction import DEFAULT_MAX_EXPANSION, DEFAULT_MAX_EXTRACT_BYTES
from dcmseal.reader.iso import is_iso_image
from dcmseal.reader.medium import medium_as_folder
from dcmseal.uids import stamp_implementation
from dcmseal.webauth import HttpCredentials

__all__ = [
    "ALREADY_SEALED",
    "DEFAULT_TIMEOUT_S",
    "WADO_ATTEMPTS",
    "Rejected",
    "SourceCollection",
    "SourceInstance",
    "collect",
]

logger = logging.getLogger(__name__)

#: The reason given for a Secure DICOM File among the sources: sealing twice helps nobody.
ALREADY_SEALED = "already sealed: unseal first"
DEFAULT_TIMEOUT_S = 60.0
#: Each WADO-RS request is tried this often (connection errors, 408/429/503/504), waiting 0.5 s, then 1 s:
#: dicomweb-client's default (5 attempts, exponential from 2 s) keeps a burn waiting 30 s for a PACS that is off.
WADO_ATTEMPTS = 3
_WADO_BACKOFF_MULTIPLIER_MS = 250
#: Media Storage Directory Storage (PS3.4 Annex B): the SOP Class of a DICOMDIR, which is not an instance.
MEDIA_STORAGE_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"
_DICOMDIR = "DICOMDIR"
# PS3.18 §10.4.1.1.1: the Retrieve Study resource is {service}/studies/{study}; a UID is at most 64 characters.
_STUDY_PATH = re.compile(r"^(?P<prefix>.*)/studies/(?P<study>[0-9]{1,64}(?:\.[0-9]{1,64}){0,63})/?$")
_UID_MAX_CHARS = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceInstance:
    """One Part 10 instance to burn: where it is now, which source it came from, its File Meta facts."""

    path: Path
    origin: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    #: The file as the user knows it: its own path, ``archive.zip:member.dcm``, or the study URL it came from.
    name: str = ""

    @property
    def shown(self) -> str:
        return self.name or str(self.path)

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "name": self.shown,
            "origin": self.origin,
            "sop_class_uid": self.sop_class_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "transfer_syntax_uid": self.transfer_syntax_uid,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """An input left out, and why; ``path`` is None when the whole source was refused."""

    origin: str
    path: Path | None
    reason: str
    #: The file as the user knows it (``archive.zip:member.dcm``), never a path in a staging folder.
    name: str = ""
    #: A DICOM instance that could not go on the medium (not a file that never was DICOM): a partial medium.
    instance: bool = False

    @property
    def shown(self) -> str:
        return self.name or (str(self.path) if self.path is not None else self.origin)

    def to_json(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "path": None if self.path is None else str(self.path),
            "name": self.shown,
            "reason": self.reason,
            "instance": self.instance,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceCollection:
    """What :func:`collect` found: the instances (first of each SOP Instance UID), the rejects, and notes."""

    instances: tuple[SourceInstance, ...]
    rejected: tuple[Rejected, ...]
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "instances": [i.to_json() for i in self.instances],
            "rejected": [r.to_json() for r in self.rejected],
            "notes": list(self.notes),
        }


def _is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


@dataclass(frozen=True, slots=True)
class _StudyUrl:
    base: str  # the DICOMweb service root, without credentials
    study: str
    safe: str  # the whole URL without credentials, for messages and origins
    username: str | None
    password: str | None


def _parse_study_url(url: str) -> _StudyUrl:
    parts = urlsplit(url)
    host_port = parts.netloc.rpartition("@")[2]
    # Neither the user information nor a query (which may carry a token) ever reaches a message.
    safe = urlunsplit((parts.scheme, host_port, parts.path, "", ""))
    match = _STUDY_PATH.match(parts.path)
    if (
        not host_port
        or match is None
        or len(match["study"]) > _UID_MAX_CHARS
        or parts.query
        or parts.fragment
    ):
        raise InputError(
            f"{safe}: not a WADO-RS study URL (expected http(s)://host[:port]/dicom-web/studies/<StudyInstanceUID>)"
        )
    base = urlunsplit((parts.scheme, host_port, match["prefix"], "", ""))
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return _StudyUrl(base=base, study=match["study"], safe=safe, username=username, password=password)


def _resolve_file_id(root: Path, components: Sequence[str]) -> Path | None:
    """The file a Referenced File ID names under ``root``: exact first, then ignoring case (copied discs)."""
    exact = root.joinpath(*components)
    if exact.is_file():
        return exact
    current = root
    for component in components:
        try:
            names = os.listdir(current)
        except OSError:
            return None
        matches = [n for n in names if n.upper() == component.upper()]
        if len(matches) != 1:
            return None
        current = current / matches[0]
    return current if current.is_file() else None


def _file_id_components(value: object) -> list[str] | None:
    """The components of a Referenced File ID (0004,1500), or None if one is unsafe (PS3.10 §8.2)."""
    if isinstance(value, str):
        components = [value]
    elif isinstance(value, Iterable):
        components = [str(v) for v in value]
    else:
        return None
    cleaned = [c.strip() for c in components]
    if not cleaned or any(c in {"", ".", ".."} or "/" in c or "\\" in c or "\x00" in c for c in cleaned):
        return None
    return cleaned


class _Collector:
    def __init__(
        self,
        workdir: Path,
        *,
        timeout_s: float,
        max_extract_bytes: int,
        max_expansion: int,
        credentials: HttpCredentials | None,
    ) -> None:
        self.workdir = workdir
        self.credentials = credentials
        self.timeout_s = timeout_s
        self.max_extract_bytes = max_extract_bytes
        self.max_expansion = max_expansion
        self.instances: list[SourceInstance] = []
        self.rejected: list[Rejected] = []
        self.notes: list[str] = []
        self.first_of: dict[str, Path] = {}
        self.skipped: set[Path] = set()
        #: Where each archive or image given as a source was extracted, and its name as given.
        self.archives: dict[Path, str] = {}
        #: Where each study fetched from a PACS was written, and its URL (passwords left out).
        self.fetched: dict[Path, str] = {}

    def name(self, path: Path) -> str:
        """``path`` as the user knows it: ``archive.zip:member.dcm`` for an extracted member, the study URL for
        a fetched instance, else the path itself (a staging path never reaches a message)."""
        for root, archive in self.archives.items():
            if root in path.parents:
                return f"{archive}:{path.relative_to(root).as_posix()}"
        for root, url in self.fetched.items():
            if root in path.parents:
                return f"{url} (instance {path.stem.lstrip('0') or '0'})"
        return str(path)

    # --- outcomes -------------------------------------------------------------------------------------------

    def reject(self, origin: str, path: Path | None, reason: str) -> None:
        name = self.name(path) if path is not None else origin
        logger.info("%s: left out: %s", name, reason)
        self.rejected.append(Rejected(origin=origin, path=path, reason=reason, name=name))

    def note(self, text: str) -> None:
        logger.info("%s", text)
        self.notes.append(text)

    def add(self, path: Path, origin: str, meta: FileMeta) -> None:
        first = self.first_of.get(meta.sop_instance_uid)
        if first is not None:
            self.note(
                f"{self.name(path)}: duplicate SOP Instance UID {meta.sop_instance_uid} "
                f"(already taken from {self.name(first)}); left out"
            )
            return
        self.first_of[meta.sop_instance_uid] = path
        logger.info("%s: collected (%s)", path, meta.sop_instance_uid)
        self.instances.append(
            SourceInstance(
                path=path,
                origin=origin,
                sop_class_uid=meta.sop_class_uid,
                sop_instance_uid=meta.sop_instance_uid,
                transfer_syntax_uid=meta.transfer_syntax_uid,
                name=self.name(path),
            )
        )

    # --- files and folders ----------------------------------------------------------------------------------

    def source(self, source: str) -> None:
        if _is_url(source):
            self.study(source)
            return
        path = Path(source)
        if path.is_dir():
            self.folder(path, source)
        elif path.is_file():
            self.file(path, source, top_level=True)
        elif not path.exists():
            raise MissingInputError(path)
        else:
            self.reject(source, path, "neither a regular file nor a folder")

    def file(self, path: Path, origin: str, *, top_level: bool, expected_uid: str | None = None) -> None:
        try:
            meta = read_file_meta(path)
        except NotPart10Error as exc:
            self.not_part10(path, origin, exc.message, top_level=top_level)
            return
        except OSError as exc:
            self.reject(origin, path, f"cannot read: {exc.strerror or exc}")
            return
        if meta.sop_class_uid == MEDIA_STORAGE_DIRECTORY_STORAGE:
            if top_level:
                self.fileset(path.parent, path, origin)
            else:
                self.note(f"{self.name(path)}: a DICOMDIR, not an instance; left out")
            return
        if expected_uid is not None and expected_uid != meta.sop_instance_uid:
            self.note(
                f"{self.name(path)}: the DICOMDIR records SOP Instance UID {expected_uid}, the file has "
                f"{meta.sop_instance_uid}; the file is trusted"
            )
        self.add(path, origin, meta)

    def not_part10(self, path: Path, origin: str, reason: str, *, top_level: bool) -> None:
        try:
            sealed = is_secure_file(path)
        except OSError as exc:
            self.reject(origin, path, f"cannot read: {exc.strerror or exc}")
            return
        if sealed:
            self.reject(origin, path, ALREADY_SEALED)
        elif top_level and (zipfile.is_zipfile(path) or is_iso_image(path)):
            try:
                root = medium_as_folder(
                    path,
                    self.workdir,
                    max_total_bytes=self.max_extract_bytes,
                    max_expansion=self.max_expansion,
                )
            except InputError as exc:
                self.reject(origin, path, exc.message)
                return
            self.archives[root] = origin
            self.folder(root, origin)
        elif zipfile.is_zipfile(path) or is_iso_image(path):
            self.reject(
                origin,
                path,
                "an archive or image inside a source is not opened; give it as a source of its own",
            )
        else:
            self.reject(origin, path, reason)

    def skip(self, path: Path, why: str) -> None:
        if path not in self.skipped:  # a File-set's folder is walked twice: note once
            self.skipped.add(path)
            self.note(f"{self.name(path)}: {why}")

    def _walk(self, root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
        """os.walk, sorted; hidden entries and links to folders are noted and skipped."""
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            for name in sorted(dirnames):
                if name.startswith(".") or (here / name).is_symlink():
                    self.skip(here / name, "hidden folder or link to a folder; not followed")
                    dirnames.remove(name)
            dirnames.sort()
            visible = []
            for name in sorted(filenames):
                if name.startswith("."):
                    self.skip(here / name, "hidden file; left out")
                else:
                    visible.append(name)
            yield here, dirnames, visible

    def folder(self, root: Path, origin: str) -> None:
        for here, dirnames, filenames in self._walk(root):
            dicomdir = next((n for n in filenames if n.upper() == _DICOMDIR), None)
            if dicomdir is not None:
                # The folder is a File-set: its DICOMDIR decides, for everything below it (PS3.10 §8).
                dirnames[:] = []
                self.fileset(here, here / dicomdir, origin)
                continue
            for name in filenames:
                self.file(here / name, origin, top_level=False)

    def plain(self, root: Path, origin: str, *, skip: Path) -> None:
        for here, _dirnames, filenames in self._walk(root):
            for name in filenames:
                if here / name != skip:
                    self.file(here / name, origin, top_level=False)

    def fileset(self, root: Path, dicomdir: Path, origin: str) -> None:
        """Take the files the DICOMDIR references; note the others. Falls back to every file if it is unusable."""
        records = self.dicomdir_records(dicomdir, origin)
        if records is None:
            self.plain(root, origin, skip=dicomdir)
            return
        root_resolved = root.resolve()
        referenced: dict[Path, str | None] = {}
        for record in records:
            if "ReferencedFileID" not in record:
                continue
            components = _file_id_components(record.ReferencedFileID)
            if components is None:
                self.reject(origin, dicomdir, f"unsafe Referenced File ID {record.ReferencedFileID!r}")
                continue
            found = _resolve_file_id(root, components)
            if found is None:
                self.reject(origin, root.joinpath(*components), "referenced by the DICOMDIR but missing")
                continue
            if root_resolved not in found.resolve().parents:
                self.reject(origin, found, "referenced by the DICOMDIR but outside its File-set")
                continue
            if found in referenced:
                self.note(f"{self.name(found)}: referenced twice by {self.name(dicomdir)}")
                continue
            uid = record.get("ReferencedSOPInstanceUIDInFile")
            referenced[found] = None if uid is None else str(uid)
        for here, _dirnames, filenames in self._walk(root):
            for name in filenames:
                path = here / name
                if path != dicomdir and path not in referenced:
                    self.note(f"{self.name(path)}: not referenced by {self.name(dicomdir)}; left out")
        for path, uid in referenced.items():
            self.file(path, origin, top_level=False, expected_uid=uid)

    def dicomdir_records(self, dicomdir: Path, origin: str) -> list[Dataset] | None:
        try:
            read_file_meta(dicomdir)
        except NotPart10Error as exc:
            try:
                sealed = is_secure_file(dicomdir)
            except OSError:
                sealed = False
            if sealed:
                self.reject(origin, dicomdir, ALREADY_SEALED)
            else:
                self.note(
                    f"{self.name(dicomdir)}: not a usable DICOMDIR ({exc.message}); every file of its folder is taken"
                )
            return None
        except OSError as exc:
            self.note(
                f"{self.name(dicomdir)}: cannot read ({exc.strerror or exc}); every file of its folder is taken"
            )
            return None
        try:
            ds = dcmread(dicomdir)
            records = list(ds.DirectoryRecordSequence)
        except (InvalidDicomError, AttributeError, KeyError, ValueError, TypeError, EOFError, OSError) as exc:
            self.note(
                f"{self.name(dicomdir)}: the DICOMDIR does not parse ({exc}); every file of its folder is taken"
            )
            return None
        return records

    # --- WADO-RS --------------------------------------------------------------------------------------------

    def study(self, url: str) -> None:
        target = _parse_study_url(url)
        credentials = self.credentials
        if credentials is None and target.username is not None:
            credentials = HttpCredentials(username=target.username, password=target.password)
        try:
            client = DicomWebClient(
                target.base,
                credentials=credentials,
                timeout_s=self.timeout_s,
                attempts=WADO_ATTEMPTS,
                backoff_ms=_WADO_BACKOFF_MULTIPLIER_MS,
            )
        except ValueError as exc:
            raise InputError(f"{target.safe}: not a usable DICOMweb URL: {exc}") from None
        make_dirs(self.workdir)
        dest = Path(tempfile.mkdtemp(prefix="wado-", dir=self.workdir))
        self.fetched[dest] = target.safe
        count = 0
        with client:
            datasets = self.retrieve(client, target)
            while True:
                dataset = self.next_dataset(datasets, target)
                if dataset is None:
                    break
                count += 1
                path = dest / f"{count:06d}.dcm"
                try:
                    with atomic_write(path) as fp:
                        stamp_implementation(dataset)
                        dcmwrite(fp, dataset, enforce_file_format=True)
                except (ValueError, AttributeError, KeyError, TypeError) as exc:
                    self.reject(
                        target.safe,
                        None,
                        f"instance {count} of the study cannot be written as Part 10: {exc}",
                    )
                    continue
                self.file(path, target.safe, top_level=False)
        if count == 0:
            dest.rmdir()
            raise PeerError(
                f"{target.safe}: WADO-RS retrieve returned no instances (is the Study Instance UID right?)"
            )
        logger.info("%s: %d instances retrieved", target.safe, count)

    def retrieve(self, client: DicomWebClient, target: _StudyUrl) -> Iterator[Dataset]:
        return client.iter_study(target.study)

    def next_dataset(self, datasets: Iterator[Dataset], target: _StudyUrl) -> Dataset | None:
        try:
            return next(datasets)
        except StopIteration:
            return None
        except DicomWebError as exc:
            if exc.failure is Failure.UNREADABLE:
                raise PeerError(
                    f"{target.safe}: WADO-RS answer is not a multipart of DICOM files: {exc}"
                ) from exc
            raise PeerError(
                f"{target.safe}: WADO-RS retrieve failed: {exc.describe(self.timeout_s)}"
            ) from exc


def collect(
    sources: Sequence[str],
    workdir: Path,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_extract_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
    max_expansion: int = DEFAULT_MAX_EXPANSION,
    credentials: HttpCredentials | None = None,
) -> SourceCollection:
    """Collect the Part 10 instances of ``sources``, in order, each SOP Instance UID once.

    Each source is one of:

    - a file: a Part 10 file is collected; a DICOMDIR stands for its File-set (its folder); a zip archive
      or an ISO 9660 image is extracted safely under ``workdir`` and taken as a folder; anything else is
      rejected with the reason;
    - a folder: walked; a folder holding a DICOMDIR is a File-set, of which only the files the DICOMDIR
      references are taken (the others are noted); the DICOMDIR itself is never an instance;
    - ``http(s)://host[:port]/<service>/studies/<StudyInstanceUID>``: every instance of the study is
      retrieved with WADO-RS, as stored, into ``workdir`` as Part 10 files, signed in with ``credentials``
      (else with a user and password in the URL, as HTTP Basic); credentials never appear in results or
      messages.

    Secure DICOM Files are rejected with :data:`ALREADY_SEALED`. A SOP Instance UID seen again is noted
    and left out; the first one found is kept.

    Parameters
    ----------
    sources
        Paths or study URLs, as the user gave them: they become each result's ``origin`` (URLs without
        their user information).
    workdir
        Where archives, images and retrieved studies are written; it is created if needed.
    timeout_s
        Connect and read timeout of each WADO-RS request.
    max_extract_bytes, max_expansion
        Limits for archives and images (see :func:`dcmseal.reader.zipfiles.extract_zip`).
    credentials
        HTTP Basic or bearer-token authentication for every WADO-RS request.

    Returns
    -------
    SourceCollection

    Raises
    ------
    InputError
        A source path does not exist, or a URL is not a WADO-RS study URL.
    PeerError
        A WADO-RS retrieve failed (refused, not found, timed out, not DICOM) or returned no instances.
    """
    workdir = Path(workdir)
    collector = _Collector(
        workdir,
        timeout_s=timeout_s,
        max_extract_bytes=max_extract_bytes,
        max_expansion=max_expansion,
        credentials=credentials,
    )
    for source in sources:
        collector.source(source)
    return SourceCollection(
        instances=tuple(collector.instances), rejected=tuple(collector.rejected), notes=tuple(collector.notes)
    )
