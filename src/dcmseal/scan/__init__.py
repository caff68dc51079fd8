"""Threat scanning of DICOM files and media: preamble and body classifiers, medium checks, sanitizer, quarantine."""
