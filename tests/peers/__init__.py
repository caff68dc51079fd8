"""Helpers for the real external programs the interop tests run (OpenSSL, GDCM, DCMTK, dicom3tools)."""
