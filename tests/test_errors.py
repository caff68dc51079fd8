"""Errors keep their class, message and path between processes; a bug stays a bug; each class has its kind."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from dcmseal import errors
from dcmseal.errors import (
    WRONG_KEY_MESSAGE,
    DcmsealError,
    DecryptionError,
    InputError,
    MissingInputError,
    OutputExistsError,
    WireError,
    from_wire,
    to_wire,
)
from dcmseal.outcomes import ReasonKind

#: Every error class dcmseal exports, each as it is raised (with the arguments its own __init__ takes).
_RAISED: list[DcmsealError] = [
    DcmsealError("a base error", path="/m/a"),
    errors.UsageError("give a password", path=None),
    InputError("not readable", path="/m/b"),
    MissingInputError("/m/absent"),
    OutputExistsError("/out/IM1"),
    errors.NotPart10Error("not a DICOM PS3.10 file", path="/m/c"),
    errors.MalformedEnvelopeError("EnvelopedData: truncated at offset 12", path="/m/d"),
    errors.UnsupportedAlgorithmError("RC2 is not supported"),
    errors.ResourceLimitError("PBKDF2 iterations beyond the limit", path="/m/e"),
    errors.HostileMediumError("a name escapes the root", path="/m/f.iso"),
    DecryptionError(path="/m/IM0001"),
    errors.UnprotectedContentError("no digest inside", path="/m/g"),
    errors.WeakPasswordError("too short"),
    errors.PeerError("the PACS refused"),
]


class _RefusedError(errors.PeerError):
    """A peer error that carries more than its message, as an adapter's errors do (an HTTP status)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def _raise(exc: BaseException) -> None:
    """In a worker: raise ``exc`` (sent to the worker by pickle, and its failure sent back the same way)."""
    raise exc


def _raise_decryption_error(path: str) -> None:
    """In a worker: fail as a wrong key fails deep in cms, with no object from the parent."""
    raise DecryptionError(path=path)


def _a_bug() -> None:
    """In a worker: a programming error, not a user error."""
    raise KeyError("list index out of range")


def _wire_of(path: str) -> WireError:
    """In a worker: a wrong key's error as the data a worker returns instead of raising."""
    try:
        _raise_decryption_error(path)
    except DcmsealError as exc:
        return to_wire(exc)
    raise AssertionError("not reached")


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as executor:
        yield executor


def test_a_decryption_error_raised_in_a_worker_arrives_as_itself(pool: ProcessPoolExecutor) -> None:
    with pytest.raises(DcmsealError) as info:
        pool.submit(_raise_decryption_error, "/media/IM0001").result()
    assert type(info.value) is DecryptionError
    assert info.value.message == WRONG_KEY_MESSAGE
    assert info.value.path == Path("/media/IM0001")
    assert str(info.value) == str(DecryptionError(path="/media/IM0001"))
    assert info.value.kind is ReasonKind.WRONG_KEY


def test_a_returned_wire_error_is_raised_as_its_class(pool: ProcessPoolExecutor) -> None:
    wire = pool.submit(_wire_of, "/media/IM0002").result()
    exc = from_wire(wire)
    assert type(exc) is DecryptionError
    assert str(exc) == f"/media/IM0002: {WRONG_KEY_MESSAGE}"


@pytest.mark.parametrize("raised", _RAISED, ids=lambda e: type(e).__name__)
def test_every_error_crosses_with_its_class_message_and_path(
    raised: DcmsealError, pool: ProcessPoolExecutor
) -> None:
    with pytest.raises(DcmsealError) as info:
        pool.submit(_raise, raised).result()
    assert type(info.value) is type(raised)
    assert (info.value.message, info.value.path, str(info.value)) == (
        raised.message,
        raised.path,
        str(raised),
    )
    assert info.value.exit_code == raised.exit_code


def test_what_a_subclass_adds_crosses_too(pool: ProcessPoolExecutor) -> None:
    with pytest.raises(_RefusedError) as info:
        pool.submit(_raise, _RefusedError("STOW-RS refused", status=409)).result()
    assert info.value.status == 409
    assert str(info.value) == "STOW-RS refused"


def test_a_bug_in_a_worker_stays_a_bug(pool: ProcessPoolExecutor) -> None:
    with pytest.raises(KeyError) as info:
        pool.submit(_a_bug).result()
    assert not isinstance(info.value, DcmsealError)


def test_a_class_the_receiver_does_not_know_arrives_as_its_nearest_known_base() -> None:
    wire = to_wire(DecryptionError(path="/m/x"))
    unknown = WireError(("elsewhere.errors.GoneError", *wire.classes), wire.message, wire.path)
    exc = from_wire(unknown)
    assert type(exc) is DecryptionError
    assert str(exc) == "/m/x: " + WRONG_KEY_MESSAGE
    nothing_known = from_wire(WireError(("os.system",), "not imported", None))
    assert type(nothing_known) is DcmsealError  # the data names a class; only the registry is looked in
    assert str(nothing_known) == "not imported"


def test_subclasses_defined_outside_errors_are_registered_too() -> None:
    class LocalPeerError(errors.PeerError):
        """A peer error of some adapter module."""

    exc = from_wire(to_wire(LocalPeerError("refused", path="pacs")))
    assert type(exc) is LocalPeerError
    assert exc.kind is ReasonKind.PEER
    assert exc.exit_code == errors.ExitCode.PEER


def test_each_exported_error_class_names_its_own_kind() -> None:
    classes = [type(e) for e in _RAISED]
    exported = {
        obj
        for name in errors.__all__
        if isinstance(obj := getattr(errors, name), type) and issubclass(obj, DcmsealError)
    }
    assert exported == set(classes)  # _RAISED covers every class
    # A subclass says what it is; only the base and InputError share the generic kind.
    kinds = [c.kind for c in classes if c not in (DcmsealError, InputError)]
    assert len(kinds) == len(set(kinds))
    assert ReasonKind.INPUT not in kinds
