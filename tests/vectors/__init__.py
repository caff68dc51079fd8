"""Known-answer vectors made with OpenSSL, opened by file name (README.md says how each one was made)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pytest

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet

__all__ = [
    "PASSWORD",
    "UTF8_PASSWORD",
    "VECTORS_DIR",
    "load_intermediates",
    "open_vector",
    "read_vector",
    "vector_params",
    "vector_path",
]

VECTORS_DIR = Path(__file__).resolve().parent

# The password of every vector except ossl-pwri-aes256-utf8pw.p7m (ISO-IR 6 / ASCII).
PASSWORD = b"Test-Passw0rd!"
# The password of ossl-pwri-aes256-utf8pw.p7m, UTF-8 bytes 50c3a4737377c3b672642dc39f (OpenSSL took argv).
UTF8_PASSWORD = "Pässwörd-ß".encode()


def vector_path(name: str) -> Path:
    """Return the path of the vector file `name` (a bare file name such as "ossl-pwri-aes256.p7m")."""
    if not name or Path(name).name != name:
        raise ValueError(f"vector names are bare file names, not paths: {name!r}")
    path = VECTORS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no such vector: {path}")
    return path


def open_vector(name: str) -> BinaryIO:
    """Open the vector file `name` for reading in binary mode; the caller closes it."""
    return vector_path(name).open("rb")


def read_vector(name: str) -> bytes:
    """Return the bytes of the vector file `name`."""
    return vector_path(name).read_bytes()


def load_intermediates() -> dict[str, dict[str, object]]:
    """Return intermediates.json: vector stem -> salt, iterations, PRF, KEK, CEK, IVs (hex, ints, None)."""
    text = vector_path("intermediates.json").read_text(encoding="utf-8")
    data: dict[str, dict[str, object]] = json.loads(text)
    return data


def vector_params(*names: str) -> list[ParameterSet]:
    """Parametrize over intermediates.json: one `pytest.param(name, values, id=name)` per vector.

    With no argument every entry is used; otherwise only the named ones, in the given order.
    """
    intermediates = load_intermediates()
    chosen = names or tuple(intermediates)
    return [pytest.param(name, intermediates[name], id=name) for name in chosen]
