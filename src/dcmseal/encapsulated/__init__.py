"""Encapsulated documents as DICOM data (PS3.3 C.24, A.45, A.85): kinds of documents and their instances.

A domain package, not a workflow: ``scan`` judges encapsulated documents with it, ``media.burn`` puts documents on
a medium with it and ``documents`` (the encapsulate/extract workflow) is built on it. It sits beside ``part10``
rather than inside it because ``part10`` holds facts of the Part 10 file format whatever its IOD, and this
package holds one family of IODs; neither imports a workflow.
"""

from __future__ import annotations

from dcmseal.encapsulated.kinds import (
    CdaHeader,
    DocumentKind,
    ascii_stl_to_binary,
    detect_kind,
    read_cda_header,
)

__all__ = ["CdaHeader", "DocumentKind", "ascii_stl_to_binary", "detect_kind", "read_cda_header"]
