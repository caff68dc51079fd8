"""UDF-only images (``mkudffs``, DVD and Blu-ray authoring tools), read through 7-Zip (Debian ``p7zip-full``).

pycdlib reads UDF only beside an ISO 9660 tree, so an image with no ISO 9660 descriptor is listed with
``7z l -slt -ba -tudf -- IMAGE`` and each file read with ``7z x -so -tudf -spd -- IMAGE MEMBER`` (``-spd``: the
member is a name, not a wildcard). 7z runs without a shell, with argv lists, on the image read-only; nothing is
extracted to disk by it (its output is piped). Member names pass the same checks as zip members
(:func:`~dcmseal.reader.containers.zip_name_problem`: no ``..``, no absolute path, no control characters), links
are marked and never read, the member count is bounded, and a member is read to at most its listed size (one more
byte proves a lie): a 7z failure on one member raises for that member only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any

from dcmseal.errors import InputError, ResourceLimitError
from dcmseal.reader.iso import UDF_ONLY_MESSAGE

__all__ = ["SEVEN_ZIP", "UdfEntry", "list_udf", "parse_listing", "read_udf_member", "seven_zip"]

#: The program (Debian ``p7zip-full``, 7-Zip 26: its UDF handler reads UDF 1.02 to 2.60).
SEVEN_ZIP = "7z"
#: Listing a hostile image must not hang a scan; a DVD's directory lists in well under a second.
LIST_TIMEOUT_SECONDS = 300
#: A member is held in memory up to this, then in an unlinked temporary file (gone even after kill -9).
_SPOOL_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024
#: 7z's output in UTF-8 whatever the caller's locale (names are UTF-8 or OSTA CS0 in UDF).
_ENV_LOCALE = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def seven_zip() -> str | None:
    """The path of ``7z``, or None when it is not installed."""
    return shutil.which(SEVEN_ZIP)


class UdfEntry:
    """One file or folder of a 7z technical listing."""

    __slots__ = ("is_dir", "path", "size", "symlink")

    def __init__(self, path: str, size: int, *, is_dir: bool, symlink: bool) -> None:
        self.path = path
        self.size = size
        self.is_dir = is_dir
        self.symlink = symlink


def parse_listing(text: str) -> list[UdfEntry]:
    """The entries of ``7z l -slt -ba`` output: blocks of ``Key = Value`` lines, one block per entry.

    A block starts at its ``Path =`` line. Attributes ``l...`` (a Unix mode) or a ``Symbolic Link`` value mark a
    link; ``Folder = +`` or a ``D`` attribute a folder.
    """
    entries: list[UdfEntry] = []
    block: dict[str, str] = {}

    def flush() -> None:
        if "Path" not in block:
            return
        attributes = block.get("Attributes", "")
        mode = attributes.rpartition(" ")[2] if " " in attributes else attributes
        is_dir = block.get("Folder", "-") == "+" or attributes.startswith("D")
        symlink = bool(block.get("Symbolic Link")) or mode.startswith("l")
        size_text = block.get("Size", "").strip()
        size = int(size_text) if size_text.isdigit() else 0
        entries.append(UdfEntry(block["Path"], size, is_dir=is_dir, symlink=symlink))

    for line in text.split("\n"):
        key, sep, value = line.partition(" = ")
        if not sep:
            key, sep, value = line.partition(" =")  # an empty value: "Size = " after rstrip
        if not sep:
            continue
        if key == "Path":
            flush()
            block = {}
        block[key] = value
    flush()
    return entries


def list_udf(image: Path, *, max_members: int) -> list[UdfEntry]:
    """Every entry of the UDF image ``image`` as 7z lists it.

    Raises
    ------
    InputError
        7z is not installed, or cannot read the image as UDF.
    ResourceLimitError
        More than ``max_members`` entries.
    """
    program = seven_zip()
    if program is None:
        raise InputError(UDF_ONLY_MESSAGE, path=image)
    try:
        done = subprocess.run(  # argv list, no shell; the image only read
            [program, "l", "-slt", "-ba", "-tudf", "--", str(image)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=LIST_TIMEOUT_SECONDS,
            env={**os.environ, **_ENV_LOCALE},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"7z did not list the UDF image within {LIST_TIMEOUT_SECONDS} s", path=image
        ) from None
    except OSError as exc:
        raise InputError(f"cannot run 7z: {exc.strerror or exc}", path=image) from exc
    entries = parse_listing(done.stdout.decode("utf-8", "replace"))
    if done.returncode != 0 and not entries:
        raise InputError(f"not a readable UDF image (7z: {_last_line(done.stderr)})", path=image)
    # 7z lists what it read and exits 2 on a "headers error" (an image cut short): the files listed are
    # each read, and checked, on their own; those whose data is gone fail alone.
    if len(entries) > max_members:
        raise ResourceLimitError(f"more than {max_members} entries", path=image)
    return entries


def read_udf_member(image: Path, name: str, size: int) -> IO[bytes]:
    """The bytes of the member ``name`` (as 7z lists it) of ``image``: a stream at its start, at most ``size``.

    Raises
    ------
    OSError
        7z fails on this member, or the member holds more or fewer bytes than its listing says.
    """
    program = seven_zip()
    if program is None:
        raise OSError("7z is not installed (apt-get install p7zip-full)")
    spool: Any = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - returned to the caller
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(  # argv list, no shell; the image only read
            [program, "x", "-so", "-tudf", "-spd", "--", str(image), name],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            env={**os.environ, **_ENV_LOCALE},
        )
        assert process.stdout is not None
        held = 0
        try:
            while held <= size:
                chunk = process.stdout.read(min(_CHUNK, size + 1 - held))
                if not chunk:
                    break
                spool.write(chunk)
                held += len(chunk)
        finally:
            process.stdout.close()
            if held > size:
                process.kill()
            code = process.wait()
        errors.seek(0)
        said = errors.read()
        # 7z exits 2 for every member of an image with a "Headers Error" (cut short); a member whose own data
        # is bad has an "ERROR: Data Error : NAME" line, and one whose data is gone comes out short.
        if held <= size and code != 0 and (held != size or b"ERROR:" in said):
            spool.close()
            raise OSError(f"7z could not read it: {_last_line(said)}")
    if held != size:
        spool.close()
        raise OSError(f"its image lists {size} bytes, it holds {'more' if held > size else held}")
    spool.seek(0)
    stream: IO[bytes] = spool
    return stream


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no reason given"
