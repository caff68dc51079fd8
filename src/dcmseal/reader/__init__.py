"""Reading any medium: folders, ISO 9660 images (Joliet, Rock Ridge, ISO/UDF bridges), UDF-only images and zips.

One reader for ``scan``, ``open`` and ``import`` (what one refuses the other reports), and the detection of
what each file is (:func:`sniff`: Part 10, Secure DICOM, a data set without File Meta, or not DICOM).
"""

from __future__ import annotations

from dcmseal.reader.containers import (
    Archive,
    Member,
    NestingBudget,
    NestingLimits,
    iter_folder,
    open_archive,
    open_nested,
    printable_name,
)
from dcmseal.reader.detect import Sniffed, detect_dataset_encoding, sniff
from dcmseal.reader.iso import is_iso_image, is_udf_only_image

__all__ = [
    "Archive",
    "Member",
    "NestingBudget",
    "NestingLimits",
    "Sniffed",
    "detect_dataset_encoding",
    "is_iso_image",
    "is_udf_only_image",
    "iter_folder",
    "open_archive",
    "open_nested",
    "printable_name",
    "sniff",
]
