"""Ask the PACS which of the instances it confirmed, and nobody has checked yet, it holds.

A confirmation is the peer's word (C-STORE status, STOW-RS ReferencedSOPSequence), and some peers give it for an
instance they then discard: Orthanc answers C-STORE success, and its DICOMweb plugin lists the instance as
stored, when a Lua ``ReceivedInstanceFilter`` filtered it out. After the send, :func:`verify_held` asks the peer
once per study (QIDO-RS or C-FIND, through :meth:`dcmseal.importer.send.Sender.held`) which instances it holds;
each instance confirmed but not found is named, so the import marks it failed and a rerun sends it again; each
one found is named too, so the journal records it verified and no later run asks again. The instances are those
confirmed in this run and those an earlier run left unchecked (killed after the confirmation, or ``--no-verify``).

A peer that cannot be asked (no QIDO-RS, no C-FIND SCP) or stays unreachable through the retry policy leaves the
confirmations as they are, unchecked, with one note saying why and how many: verification never fails an import
on its own.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dcmseal.importer.send import NotQueryableError, PeerUnavailableError, RetryPolicy, Sender, Target

__all__ = ["Confirmed", "Verification", "not_held_reason", "verify_held"]


@dataclass(frozen=True, slots=True)
class Confirmed:
    """An instance the peer confirmed, with the UIDs it was sent with (after ``--uids regenerate``)."""

    key: str  # the journal row: the file's path on the medium
    study_instance_uid: str
    sop_instance_uid: str
    earlier_run: bool = False  # confirmed by an earlier run that did not check it


@dataclass(frozen=True, slots=True)
class Verification:
    """What the queries found: the keys held and not held, how many studies were asked, and any note."""

    query: str
    not_held: tuple[str, ...]
    studies_checked: int
    studies: int
    queries: int
    note: str | None = None  # "not verified: ..." when some or all studies could not be checked
    held: tuple[str, ...] = ()
    carried_over: int = 0  # instances checked that an earlier run confirmed (and left unchecked)
    unverified: int = 0  # instances left unchecked (their studies could not be asked about)


def not_held_reason(query: str) -> str:
    """The journal reason of an instance the peer confirmed and does not hold."""
    return f"the PACS confirmed it but does not hold it ({query} found no such instance)"


def verify_held(
    sender: Sender,
    confirmed: Sequence[Confirmed],
    policy: RetryPolicy,
    *,
    target: Target,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Verification:
    """Ask ``sender``'s peer, one study at a time, which of ``confirmed`` it holds.

    An unreachable peer is asked again within ``policy`` (attempts, backoff, total time, counted over the whole
    verification); a peer that cannot be queried is not. Either stops the verification: the studies checked
    before keep their findings, the others keep their confirmations, and the note says why.
    """
    by_study: dict[str, list[Confirmed]] = defaultdict(list)
    for item in confirmed:
        by_study[item.study_instance_uid].append(item)
    started = clock()
    missing: list[str] = []
    found: list[str] = []
    checked = queries = failures = carried = 0
    note: str | None = None
    for study, items in by_study.items():
        wanted = {i.sop_instance_uid for i in items}
        held: set[str] | None = None
        while held is None:
            queries += 1
            try:
                held = sender.held(study, wanted)
            except NotQueryableError as exc:
                note = f"not verified: {target} cannot be asked which instances it holds ({exc.message})"
                break
            except PeerUnavailableError as exc:
                failures += 1
                elapsed = clock() - started
                pause = policy.next_pause(failures, elapsed)
                if pause is None:
                    note = (
                        f"not verified: {target}: {exc.message}; gave up asking after {failures} attempt(s) "
                        f"in {elapsed:.1f} s"
                    )
                    break
                sleep(pause)
        if held is None:
            break
        checked += 1
        missing.extend(i.key for i in items if i.sop_instance_uid not in held)
        found.extend(i.key for i in items if i.sop_instance_uid in held)
        carried += sum(1 for i in items if i.earlier_run)
        if progress is not None:
            progress(checked, len(by_study))
    unverified = len(confirmed) - len(found) - len(missing)
    if note is not None:
        if checked:
            note += f" ({checked} of {len(by_study)} studies were checked)"
        note += f"; {unverified} instance(s) remain unverified, a rerun with --verify asks again"
    return Verification(
        query=sender.query,
        not_held=tuple(missing),
        studies_checked=checked,
        studies=len(by_study),
        queries=queries,
        note=note,
        held=tuple(found),
        carried_over=carried,
        unverified=unverified,
    )
