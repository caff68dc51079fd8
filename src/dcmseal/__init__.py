"""dcmseal: Secure DICOM Files (PS3.10 §7.4) and the Basic DICOM Media Security Profile (PS3.15 Annex D)."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
