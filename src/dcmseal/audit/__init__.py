"""DICOM audit messages (PS3.15 A.5) and the sinks they are written to."""
