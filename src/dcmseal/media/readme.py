"""The plain-text README.TXT on every medium and the cover letter for its recipient (no password in either)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["MediumText", "cover_letter", "readers_subjects", "readme_text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MediumText:
    """What the recipient needs to know about a medium; nothing secret, no patient data."""

    medium_id: str
    created: datetime
    profile: str
    file_count: int
    has_password: bool
    certificate_subjects: tuple[str, ...]
    sender: str | None = None
    label: str = ""
    encrypted: bool = True
    viewer: bool = False
    #: Instances of the sources that could not be put on the medium (it is incomplete when not 0).
    left_out: int = 0


def _incomplete(text: MediumText) -> list[str]:
    if not text.left_out:
        return []
    return [
        f"INCOMPLETE: {text.left_out} file(s) of the study could not be put on this",
        "medium. Ask the sender for them if you need them.",
    ]


def readers_subjects(
    certificates: Sequence[x509.Certificate], escrow: x509.Certificate | None
) -> tuple[str, ...]:
    """The subjects README.TXT and the cover letter name: the recipients', not the escrow's.

    The organisation's escrow key opens every medium for recovery; a recipient never holds it, so naming it
    where the recipient reads "you need the private key of" would only mislead.
    """
    return tuple(c.subject.rfc4514_string() for c in certificates if escrow is None or c != escrow)


def _how_to_open(text: MediumText) -> list[str]:
    keys: list[str] = []
    if text.has_password:
        keys.append("the password the sender gives you by another route (telephone, separate message);")
    if text.certificate_subjects:
        # "or" only after the password line: a certificate-only medium starts with the key.
        either = "or " if keys else ""
        only_one = len(text.certificate_subjects) == 1
        keys.append(
            f"{either}the private key of {'this certificate' if only_one else 'one of these certificates'}:"
        )
        keys.extend(f"    {subject}" for subject in text.certificate_subjects)
    if not keys and text.encrypted:  # addressed to the sender's escrow key alone
        keys.append("the sender: only the sender's organisation can open it (quote the medium ID).")
    return keys


def _viewer_lines(text: MediumText) -> list[str]:
    if not text.viewer:
        return []
    lines = [
        "",
        "To look at the images now, without installing anything: open INDEX.HTM in a",
        "web browser (Chrome, Edge, Firefox, Safari) and choose this medium's folder.",
    ]
    if text.encrypted:
        key = {
            (True, False): "Then type the password.",
            (False, True): "Then choose your private key file (PEM).",
            (True, True): "Then type the password, or choose your private key file (PEM).",
        }.get((text.has_password, bool(text.certificate_subjects)), "")
        lines += [key, "Everything stays on your computer; nothing is sent anywhere."]
    return lines


def _nothing_runs(text: MediumText) -> str:
    if text.viewer:
        return "Nothing on this medium runs by itself; INDEX.HTM runs only in your browser."
    return "There is no program on this medium and nothing runs by itself."


def _plain_readme(text: MediumText) -> str:
    lines = [
        "DICOM MEDIUM - NOT ENCRYPTED",
        "============================",
        "",
        "This medium holds medical images and documents in DICOM format. It is NOT",
        "encrypted: anyone who holds it can read the patient data. It was written for",
        "internal use only; keep it physically secure.",
        f"Media profile {text.profile} (DICOM PS3.11).",
        "",
        f"Medium ID:  {text.medium_id}",
        f"Created:    {text.created.strftime('%Y-%m-%d %H:%M %Z').strip()}",
        f"Files:      {text.file_count}",
    ]
    if text.label:
        lines.append(f"Label:      {text.label}")
    if text.left_out:
        lines += ["", *_incomplete(text)]
    lines += _viewer_lines(text)
    lines += ["", _nothing_runs(text)]
    if text.sender:
        lines += ["", f"Sender: {text.sender}"]
    body = "\r\n".join(lines) + "\r\n"
    return body.encode("ascii", errors="replace").decode("ascii")


def readme_text(text: MediumText) -> str:
    """README.TXT for the root of a medium: ASCII, CRLF line ends, readable on any computer."""
    if not text.encrypted:
        return _plain_readme(text)
    lines = [
        "ENCRYPTED DICOM MEDIUM",
        "======================",
        "",
        "This medium holds medical images and documents in DICOM format. Every file,",
        "including the DICOMDIR, is encrypted as a Secure DICOM File (DICOM PS3.10",
        "section 7.4) according to the Basic DICOM Media Security Profile (PS3.15",
        f"Annex D), media profile {text.profile}.",
        "",
        f"Medium ID:  {text.medium_id}",
        f"Created:    {text.created.strftime('%Y-%m-%d %H:%M %Z').strip()}",
        f"Files:      {text.file_count}",
    ]
    if text.label:
        lines.append(f"Label:      {text.label}")
    if text.left_out:
        lines += ["", *_incomplete(text)]
    lines += ["", "To open it you need:"]
    lines += [f"  {line}" for line in _how_to_open(text)]
    lines += [
        "",
        "How to open it:",
        "  - with dcmseal (open source):  dcmseal open <this medium> --out <folder>",
        "  - with any reader that implements the DICOM Basic Media Security Profile;",
        "  - each file is a CMS EnvelopedData (RFC 5652), so OpenSSL opens one too:",
        "      openssl cms -decrypt -binary -inform DER -in <file> -out <file>.cms",
        "    (the result is a CMS DigestedData holding the DICOM file).",
        *_viewer_lines(text),
        "",
        _nothing_runs(text),
    ]
    if text.sender:
        lines += ["", f"Sender: {text.sender}"]
        lines.append("If you cannot open this medium, contact the sender and quote the medium ID.")
    body = "\r\n".join(lines) + "\r\n"
    return body.encode("ascii", errors="replace").decode("ascii")


def cover_letter(text: MediumText) -> str:
    """A letter to send with the medium; it never contains the password (that travels by another route)."""
    lines = [
        "Dear colleague,",
        "",
        f"Enclosed is {'an encrypted' if text.encrypted else 'a NOT encrypted (internal use)'} DICOM medium,"
        f" ID {text.medium_id}, created"
        f" {text.created.strftime('%Y-%m-%d')}, with {text.file_count} files.",
        "",
    ]
    if text.left_out:
        lines += [
            f"It is incomplete: {text.left_out} file(s) of the study could not be put on it.",
            "Please ask us for them if you need them.",
            "",
        ]
    if text.has_password:
        lines.append("You will receive the password separately, by telephone or another message.")
        lines.append("It is not written here or on the medium.")
    if text.certificate_subjects:
        lines.append("It can also be opened with the private key of:")
        lines.extend(f"    {subject}" for subject in text.certificate_subjects)
    lines += [
        "",
        "The medium follows the DICOM Basic Media Security Profile (PS3.15 Annex D); README.TXT",
        "on the medium explains how to open it. It contains no program.",
    ]
    if not text.encrypted:
        lines[-2] = f"The medium follows the DICOM media profile {text.profile} (PS3.11); README.TXT"
    if text.viewer:
        lines[-1] = "on the medium explains how to open it. It contains no program to install: to look at"
        lines.append("the images at once, open INDEX.HTM on the medium in a web browser.")
    if text.sender:
        lines += ["", "With kind regards,", text.sender]
    return "\n".join(lines) + "\n"
