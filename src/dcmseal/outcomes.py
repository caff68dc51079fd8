"""The machine-readable kind of the reason a result gives for a file, beside the reason's text for a person.

A program embedding dcmseal tells outcomes apart by this kind, never by parsing the reason's words: the
text may be reworded, the kind may not. Each :class:`~dcmseal.errors.DcmsealError` subclass names its kind
(:attr:`~dcmseal.errors.DcmsealError.kind`), so a failed file's kind is the class of its error; the other
kinds are outcomes that are not errors (a study held for reconciliation, a file that is not DICOM).
"""

from __future__ import annotations

import enum

__all__ = ["Integrity", "ReasonKind"]


class ReasonKind(enum.StrEnum):
    """Why a file ended as it did, as a program tests it."""

    #: Something about the input is wrong (the kind of an :class:`~dcmseal.errors.InputError` not named below).
    INPUT = "input"
    #: The named input does not exist.
    MISSING = "missing"
    #: Not a DICOM PS3.10 file (no DICM at offset 128, or it cannot be read as one).
    NOT_PART10 = "not-part10"
    #: A CMS structure that does not parse, or lengths beyond the file.
    MALFORMED = "malformed"
    #: An algorithm or structure dcmseal does not implement.
    UNSUPPORTED = "unsupported"
    #: A parameter read from the input beyond a configured limit (PBKDF2 iterations, sizes).
    RESOURCE_LIMIT = "resource-limit"
    #: A medium refused as a whole: malformed or hostile structure.
    HOSTILE = "hostile"
    #: Wrong password or key, or content altered: every way a key can be wrong is this one kind.
    WRONG_KEY = "wrong-key"
    #: Content without digest or signature that the caller did not accept.
    UNPROTECTED = "unprotected"
    #: A password the policy refuses.
    WEAK_PASSWORD = "weak-password"  # noqa: S105 (the name of a kind, not a password)
    #: The call cannot work as made (flags, missing credentials).
    USAGE = "usage"
    #: An external program, PACS or service unreachable or refusing.
    PEER = "peer"
    #: An output of that name exists already and was not overwritten.
    EXISTS = "exists"
    #: Not DICOM at all (no Part 10 header, no envelope, no data set): left out, not a failure.
    NOT_DICOM = "not-dicom"
    #: A study waiting for reconciliation (no local identity decided): not sent.
    HELD = "held"
    #: Sent and never answered (the peer broke off, or could not be asked later): it may or may not hold it.
    UNCONFIRMED = "unconfirmed"


class Integrity(enum.StrEnum):
    """What was checked of an opened file's content."""

    VERIFIED = "verified"  # its digest or signature, inside the envelope
    NOT_VERIFIED = "not-verified"  # nothing to check: no digest or signature inside, accepted unprotected

    @classmethod
    def of(cls, verified: bool) -> Integrity:
        """The integrity of a file whose digest or signature was checked (``verified``) or absent."""
        return cls.VERIFIED if verified else cls.NOT_VERIFIED
