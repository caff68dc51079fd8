"""The receiving pipeline: open a medium, scan, sanitize or quarantine, reconcile, send to a PACS, journal."""
