"""Write the tables of docs/conformance.md from dcmseal's own tables, so the statement and the code agree.

The statement holds each table between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``.
``python scripts/conformance_tables.py`` rewrites them in place; ``--check`` exits 1 (naming the tables) when the
document says something else than the code. tests/test_conformance_statement.py runs the check.

Sources of the facts, all in src/dcmseal: media/profiles.py (the PS3.11 profiles and their transfer syntaxes,
the additional DICOMDIR keys), part10/transcode.py (which syntaxes are lossy), media/fileset/keys.py (the directory
record types and their keys), cms/algorithms.py (ciphers, PRFs, digests, key transport and what PS3.15 D.1
names), config.py (the defaults), uids.py (the UID root, Implementation Class UID and Version Name).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from pydicom._uid_dict import UID_dictionary
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from dcmseal import cms
from dcmseal.config import Settings
from dcmseal.media.fileset import keys as fileset_keys
from dcmseal.media.profiles import EXPLICIT_VR_LITTLE_ENDIAN, Profile, general_purpose_name
from dcmseal.part10 import transcode
from dcmseal.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, UID_ROOT

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "conformance.md"
_BASIC_DIRECTORY = "1.2.840.10008.1.3.10"
_BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=name) -->)", re.S
)


def _ts(uid: str) -> str:
    return f"{UID(uid).name} `{uid}`"


def _annex(profile: Profile) -> str:
    return {"D": "D.3-1", "H": "H.3-1", "J": "J.3-1"}[profile.annex]


def profiles() -> str:
    """Tables D.3-1, H.3-1 and J.3-1 as dcmseal applies them, one row per profile and transfer syntax."""
    rows = [
        "| Profile (plain twin) | PS3.11 table | Information Object Definition | SOP Class UID | Transfer Syntax "
        "| FSC | FSR |",
        "|---|---|---|---|---|---|---|",
    ]
    for profile in Profile:
        name = f"{profile.value} ({general_purpose_name(profile)})"
        table = _annex(profile)
        rows.append(
            f"| {name} | {table} | Basic Directory | `{_BASIC_DIRECTORY}` | "
            f"{_ts(EXPLICIT_VR_LITTLE_ENDIAN)} | Yes | Yes |"
        )
        for uid in sorted(profile.transfer_syntaxes, key=lambda u: (u != EXPLICIT_VR_LITTLE_ENDIAN, u)):
            rows.append(f"| {name} | {table} | Composite IODs (all) | (any) | {_ts(uid)} | Yes | Yes |")
    return "\n".join(rows) + "\n"


def _lossy(uid: str) -> str:
    if uid in transcode.ALWAYS_LOSSY:
        return "always"
    if uid in transcode.MAYBE_LOSSY:
        return "may be (trusts 0028,2110)"
    return "no"


def _decodable(uid: str) -> str:
    syntax = UID(uid)
    if not syntax.is_compressed:
        return "re-encoded"
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        return "no decoder: file left out"
    return "decoded" if decoder.is_available else "no plugin: file left out"


def conversions() -> str:
    """What each profile does with each transfer syntax a source may use."""
    names = [p.value.replace("STD-GEN-SEC-", "") for p in Profile]
    rows = [
        "| Transfer Syntax | Lossy | When not kept | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    # Every uncompressed syntax (retired Explicit VR Big Endian included: old media have it), and the compressed
    # ones dcmseal can decode; video and other syntaxes without a decoder are said in the text below the table.
    known = sorted(
        uid
        for uid, entry in UID_dictionary.items()
        if entry[1] == "Transfer Syntax"
        and UID(uid).is_transfer_syntax
        and (not UID(uid).is_compressed or (entry[3] != "Retired" and _decodable(uid) == "decoded"))
    )
    for uid in known:
        cells = ["kept" if uid in p.transfer_syntaxes else "converted" for p in Profile]
        rows.append(f"| {_ts(uid)} | {_lossy(uid)} | {_decodable(uid)} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def records() -> str:
    """Directory record types, the keys checked (Type 1) and the keys copied into the record."""
    rows = ["| Record type | Type 1 keys (supplied when missing, see below) | Keys copied |", "|---|---|---|"]
    for record_type, (checks, fields) in fileset_keys.RECORD_KEYS.items():
        copied = ", ".join(f"{keyword} ({mode})" for keyword, mode in fields) or "-"
        rows.append(f"| {record_type} | {', '.join(checks) or '-'} | {copied} |")
    return "\n".join(rows) + "\n"


def additional_keys() -> str:
    """Tables D.3-2 and H.3-2: keys a profile adds to records when the instance has them."""
    rows = [
        "| Profiles | PS3.11 table | Record type | Keys (1C: when present in the instance) |",
        "|---|---|---|---|",
    ]
    seen: dict[tuple[tuple[str, tuple[str, ...]], ...], list[Profile]] = {}
    for profile in Profile:
        seen.setdefault(tuple(profile.additional_keys.items()), []).append(profile)
    for items, group in seen.items():
        table = "D.3-2" if group[0] is Profile.CD else "H.3-2 (J.3.3.1 for USB)"
        for record_type, keys in items:
            rows.append(
                f"| {', '.join(p.value for p in group)} | {table} | {record_type} | {', '.join(keys)} |"
            )
    return "\n".join(rows) + "\n"


def security() -> str:
    """The algorithms dcmseal writes and reads, and which PS3.15 D.1 names."""
    defaults = Settings()
    rows = ["| What | Values | Outside D.1 | Default |", "|---|---|---|---|"]
    rows.append(
        f"| Content cipher (CBC) | {', '.join(c.value for c in cms.ContentCipher)} | none | {defaults.cipher} |"
    )
    rows.append(
        f"| Digest (DigestedData, SignedData) | {', '.join(d.value for d in cms.DigestAlgorithm)} | "
        f"{', '.join(d.value for d in cms.DigestAlgorithm if not d.in_profile)} | {defaults.digest} |"
    )
    rows.append(
        f"| RSA key transport | {', '.join(k.value for k in cms.KeyTransport)} | "
        f"{', '.join(k.value for k in cms.KeyTransport if not k.in_profile)} | {cms.KeyTransport.RSA_PKCS1V15.value} |"
    )
    rows.append(
        f"| PBKDF2 PRF (HMAC) | {', '.join(p.value for p in cms.Prf)} | none | {defaults.pbkdf2_prf} |"
    )
    rows.append(
        f"| PBKDF2 iterations | 1 and more (reader: at most {defaults.max_pbkdf2_iterations:,}) | - | "
        f"{defaults.pbkdf2_iterations:,} |"
    )
    rows.append(f"| PBKDF2 salt | random, 8 octets and more | - | {defaults.salt_bytes} octets |")
    return "\n".join(rows) + "\n"


def identity() -> str:
    """The UID root, Implementation Class UID and Version Name."""
    return (
        "| What | Value |\n|---|---|\n"
        f"| UID root (PS3.5 B.2, UUID-derived) | `{UID_ROOT}` |\n"
        f"| Implementation Class UID (0002,0012) | `{IMPLEMENTATION_CLASS_UID}` |\n"
        f"| Implementation Version Name (0002,0013) | `{IMPLEMENTATION_VERSION_NAME}` |\n"
    )


TABLES: dict[str, Callable[[], str]] = {
    "profiles": profiles,
    "conversions": conversions,
    "records": records,
    "additional-keys": additional_keys,
    "security": security,
    "identity": identity,
}


def render(text: str) -> str:
    """``text`` with every generated block rewritten; an unknown block name is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"{DOCUMENT.name}: unknown generated table {name!r}")
        return match.group(1) + TABLES[name]() + match.group(4)

    return _BLOCK.sub(replace, text)


def stale(text: str) -> list[str]:
    """The generated tables of ``text`` that disagree with the code, and those the text lacks."""
    found = {m["name"]: m["body"] for m in _BLOCK.finditer(text)}
    return [name for name, make in TABLES.items() if found.get(name) != make()]


def main(argv: list[str]) -> int:
    text = DOCUMENT.read_text(encoding="utf-8")
    if "--check" in argv:
        names = stale(text)
        if names:
            print(
                f"{DOCUMENT}: tables disagree with the code: {', '.join(names)}; run scripts/conformance_tables.py"
            )
            return 1
        return 0
    DOCUMENT.write_text(render(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
