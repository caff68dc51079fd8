"""Extract a zip archive under a folder, every member checked first (names, links, sizes, zip bombs)."""

from __future__ import annotations

import logging
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from dcmseal.errors import HostileMediumError, InputError, MissingInputError, ResourceLimitError
from dcmseal.fsutil import make_dirs
from dcmseal.reader.containers import printable_name, zip_name_problem
from dcmseal.reader.extraction import (
    DEFAULT_MAX_EXPANSION,
    DEFAULT_MAX_EXTRACT_BYTES,
    DEFAULT_MAX_MEMBERS,
    EXPANSION_GRACE_BYTES,
    CreatedFiles,
    contained_target,
    copy_limited,
)

__all__ = ["extract_zip"]

logger = logging.getLogger(__name__)


def _zip_member_path(name: str, archive: Path) -> PurePosixPath:
    problem = zip_name_problem(name)
    if problem is not None:
        raise HostileMediumError(f"refusing the member {printable_name(name)!r}: {problem}", path=archive)
    return PurePosixPath(*[p for p in name.replace("\\", "/").split("/") if p])


def extract_zip(
    path: Path,
    dest: Path,
    *,
    max_total_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
    max_expansion: int = DEFAULT_MAX_EXPANSION,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> list[Path]:
    """Extract the zip archive ``path`` under ``dest`` safely; return the files written, in archive order.

    Every member is checked before anything is written: no absolute paths, no ``..``, no symbolic links,
    no encrypted members, no duplicates; the announced content must stay within ``max_total_bytes`` and
    within ``max_expansion`` times the archive's size (zip bombs). The bytes actually written are counted
    against the same limits, as the announced sizes may lie.

    Raises
    ------
    InputError
        Not a zip archive, a refused member (named), or a member whose data is corrupt. Whatever was
        extracted before the failure is removed.
    ResourceLimitError
        Too much content, too high an expansion ratio, or more than ``max_members`` members.
    """
    path, dest = Path(path), Path(dest)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise MissingInputError(path) from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"not a readable zip archive: {exc}", path=path) from exc
    created = CreatedFiles()
    extracted: list[Path] = []
    with archive:
        try:
            infos = archive.infolist()
            if len(infos) > max_members:
                raise ResourceLimitError(f"more than {max_members} members", path=path)
            plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
            seen: set[PurePosixPath] = set()
            total = 0
            for info in infos:
                member = _zip_member_path(info.filename, path)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise InputError(f"refusing the member {info.filename!r}: symbolic link", path=path)
                if info.flag_bits & 0x1:
                    raise InputError(f"refusing the member {info.filename!r}: encrypted", path=path)
                if member in seen:
                    raise InputError(f"refusing the member {info.filename!r}: duplicated name", path=path)
                seen.add(member)
                total += info.file_size
                plan.append((info, member))
            archive_size = max(path.stat().st_size, 1)
            if total > max_total_bytes:
                raise ResourceLimitError(
                    f"the archive announces {total} bytes, more than the limit of {max_total_bytes}",
                    path=path,
                )
            if total > EXPANSION_GRACE_BYTES and total > max_expansion * archive_size:
                raise ResourceLimitError(
                    f"the archive expands {total / archive_size:.0f} times ({total} bytes from {archive_size}), "
                    f"more than the limit of {max_expansion} (zip bomb?)",
                    path=path,
                )
            make_dirs(dest)
            written_total = 0
            for info, member in plan:
                target = contained_target(dest, member, path)
                if info.is_dir():
                    for parent in reversed(member.parents[:-1]):
                        created.mkdir(contained_target(dest, parent, path))
                    created.mkdir(target)
                    continue
                for parent in reversed(member.parents[:-1]):
                    created.mkdir(contained_target(dest, parent, path))
                try:
                    out = open(target, "xb")  # noqa: SIM115 - closed below; "x" never follows a planted file
                except FileExistsError:
                    raise InputError(
                        f"refusing the member {info.filename!r}: {target} exists", path=path
                    ) from None
                created.files.append(target)
                with out, archive.open(info) as data:
                    # zipfile stops at the announced size and checks the CRC at the end of the member.
                    written = copy_limited(data.read, out, info.file_size)
                    if data.read(1):
                        raise InputError(f"the member {info.filename!r} is longer than announced", path=path)
                written_total += written
                if written != info.file_size:
                    raise InputError(f"the member {info.filename!r} is shorter than announced", path=path)
                if written_total > max_total_bytes:
                    raise ResourceLimitError(f"more than {max_total_bytes} bytes extracted", path=path)
                extracted.append(target)
        except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, zlib.error) as exc:
            created.rollback()
            raise InputError(f"corrupt zip archive: {exc}", path=path) from exc
        except BaseException:
            created.rollback()
            raise
    logger.info("%s: %d files extracted to %s", path, len(extracted), dest)
    return extracted
