"""Seal or unseal a set of files with one plan, on every core, each file accounted for in the report."""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import logging.handlers
import multiprocessing
import multiprocessing.context
import multiprocessing.queues
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dcmseal import cms
from dcmseal.cms.kdf import RFC8018_MIN_ITERATIONS, RFC8018_MIN_SALT_BYTES, meets_rfc8018
from dcmseal.config import (
    DEFAULT_KDF_BUDGET_PER_MEDIUM,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_PBKDF2_ITERATIONS,
)
from dcmseal.errors import (
    DcmsealError,
    ExitCode,
    InputError,
    MissingInputError,
    OutputExistsError,
    UsageError,
)
from dcmseal.fsutil import (
    MAX_PENDING_FILES,
    BatchCommit,
    Extent,
    iter_files,
    make_dirs,
    relative_output_path,
    state_path,
)
from dcmseal.outcomes import ReasonKind
from dcmseal.part10.secure import SealResult, UnsealResult, seal_file, unseal_file
from dcmseal.workers import pool_context, process_pool, start_pool_server, workers_skip_main

__all__ = [
    "BatchReport",
    "FileOutcome",
    "FileStatus",
    "SealPlan",
    "UnsealPlan",
    "seal_files",
    "seal_tree",
    "unseal_files",
    "unseal_tree",
]

logger = logging.getLogger(__name__)


class _Relay(logging.Handler):
    """Hands a record from a worker process to this process's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


#: Below this many files a process pool costs more than it saves.
_MIN_FILES_FOR_POOL = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class SealPlan:
    """How every file of a set is sealed; plain bytes so worker processes can receive it.

    One plan carries one PBKDF2 salt: the whole set derives its KEK once, and so does a reader.
    """

    password: bytes | None = field(default=None, repr=False)
    kdf: cms.Pbkdf2Params | None = None
    certificates: tuple[bytes, ...] = ()  # DER
    key_transport: cms.KeyTransport = cms.KeyTransport.RSA_PKCS1V15
    identifier: cms.RecipientIdType = cms.RecipientIdType.ISSUER_SERIAL
    cipher: cms.ContentCipher = cms.ContentCipher.AES256_CBC
    digest: cms.DigestAlgorithm = cms.DigestAlgorithm.SHA256
    signer_key: bytes | None = field(default=None, repr=False)  # PKCS#8 DER, held in memory only
    signer_certificate: bytes | None = None  # DER

    def __post_init__(self) -> None:
        if self.password is None and not self.certificates:
            raise UsageError("nothing to seal for: give a password, a recipient certificate, or both")
        if (self.password is None) != (self.kdf is None):
            raise ValueError("a password needs its PBKDF2 parameters")
        if (self.signer_key is None) != (self.signer_certificate is None):
            raise UsageError("signing needs both --sign-key and --sign-cert")

    def outside_profile(self) -> tuple[str, ...]:
        """What of this plan PS3.15 D.1 (the Basic DICOM Media Security Profile) does not name, one sentence
        each; empty when every file sealed with it keeps to the profile. Readers of other vendors may refuse
        such files: every deviation is said, never silent."""
        notes: list[str] = []
        if self.kdf is not None and not meets_rfc8018(
            salt_bytes=len(self.kdf.salt), iterations=self.kdf.iterations
        ):
            notes.append(
                f"PBKDF2 with a {len(self.kdf.salt)}-byte salt and {self.kdf.iterations:,} iterations is outside "
                f"PS3.15 D.1 (RFC 8018 asks for at least {RFC8018_MIN_SALT_BYTES} bytes and "
                f"{RFC8018_MIN_ITERATIONS:,} iterations)"
            )
        if self.certificates and not self.key_transport.in_profile:
            notes.append(
                "RSA-OAEP key transport is outside PS3.15 D.1 (which names RSA PKCS#1 v1.5, RFC 3370)"
            )
        if not self.digest.in_profile:
            notes.append(
                f"the {self.digest.value.upper()} digest is outside PS3.15 D.1 "
                "(which names SHA-1, SHA-256, SHA-384 and SHA-512)"
            )
        return tuple(notes)

    def recipients(self) -> tuple[cms.Recipient, ...]:
        recipients: list[cms.Recipient] = []
        if self.password is not None and self.kdf is not None:
            recipients.append(cms.PasswordRecipient(password=self.password, kdf=self.kdf))
        for der in self.certificates:
            recipients.append(
                cms.CertificateRecipient(
                    certificate=x509.load_der_x509_certificate(der),
                    key_transport=self.key_transport,
                    identifier=self.identifier,
                )
            )
        return tuple(recipients)

    def signer(self) -> cms.SignedContent | None:
        if self.signer_key is None or self.signer_certificate is None:
            return None
        key = serialization.load_der_private_key(self.signer_key, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise UsageError("the signing key must be RSA (PS3.15 D.1)")
        certificate = x509.load_der_x509_certificate(self.signer_certificate)
        try:
            return cms.SignedContent(private_key=key, certificate=certificate, digest=self.digest)
        except ValueError as exc:
            raise UsageError(str(exc)) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsealPlan:
    """The credentials and limits every file of a set is opened with; plain bytes for worker processes."""

    passwords: tuple[bytes, ...] = field(default=(), repr=False)
    private_keys: tuple[bytes, ...] = field(default=(), repr=False)  # PKCS#8 DER
    certificates: tuple[bytes | None, ...] = ()  # DER, aligned with private_keys
    strict: bool = False
    max_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    #: Open envelopes without DigestedData or SignedData inside (reported as not verified).
    accept_unprotected: bool = False
    #: Write a non-zero preamble as sealed instead of zeroed (see :func:`dcmseal.part10.unseal_file`).
    keep_preamble: bool = False
    #: PBKDF2 iterations the whole set may cost (None: only each file's own budget).
    kdf_budget_per_medium: int | None = DEFAULT_KDF_BUDGET_PER_MEDIUM

    def __post_init__(self) -> None:
        if not self.passwords and not self.private_keys:
            raise UsageError("nothing to open with: give a password or a private key")

    def budget(self, counter: object | None = None) -> cms.KdfBudget:
        """The PBKDF2 work budget of the set (``counter`` shares it with worker processes)."""
        return cms.KdfBudget.for_limits(self.max_iterations, self.kdf_budget_per_medium, counter)

    def credentials(self) -> tuple[cms.Credential, ...]:
        credentials: list[cms.Credential] = [cms.PasswordCredential(password=p) for p in self.passwords]
        for index, der in enumerate(self.private_keys):
            key = serialization.load_der_private_key(der, password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise UsageError("only RSA private keys open certificate recipients (PS3.15 D.1)")
            cert_der = self.certificates[index] if index < len(self.certificates) else None
            certificate = x509.load_der_x509_certificate(cert_der) if cert_der else None
            credentials.append(cms.PrivateKeyCredential(private_key=key, certificate=certificate))
        return tuple(credentials)


class FileStatus(enum.StrEnum):
    """Where one input file of a batch ended (the values are the ``status`` of the JSON report)."""

    SEALED = "sealed"
    UNSEALED = "unsealed"
    SKIPPED = "skipped"  # unsealed and verified by an earlier run
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileOutcome:
    """What happened to one input file: sealed/unsealed, or failed with a reason and its kind."""

    source: Path
    destination: Path | None
    status: FileStatus
    reason: str | None = None  # one line for a person
    kind: ReasonKind | None = None  # what a program tests (a failure's is its error's kind)
    exit_code: int = 0
    result: SealResult | UnsealResult | None = None

    def to_json(self) -> dict[str, object]:
        if self.result is not None:
            return self.result.to_json()
        return {
            "source": str(self.source),
            "destination": str(self.destination) if self.destination else None,
            "status": self.status.value,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchReport:
    """Every file of a batch, its outcome, and what it cost."""

    operation: str  # "seal" or "unseal"
    outcomes: tuple[FileOutcome, ...]
    pbkdf2_derivations: int
    workers: int
    elapsed_s: float

    @property
    def failed(self) -> tuple[FileOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status is FileStatus.FAILED)

    @property
    def not_verified(self) -> tuple[FileOutcome, ...]:
        """Files opened as unprotected content: no digest or signature vouched for them."""
        return tuple(o for o in self.outcomes if isinstance(o.result, UnsealResult) and not o.result.verified)

    @property
    def exit_code(self) -> int:
        codes = [o.exit_code for o in self.failed]
        return max(codes) if codes else int(ExitCode.OK)

    def to_json(self) -> dict[str, object]:
        return {
            "schema": f"dcmseal.{self.operation}/1",
            "files": [o.to_json() for o in self.outcomes],
            "summary": {
                "total": len(self.outcomes),
                "ok": len(self.outcomes) - len(self.failed),
                "skipped": sum(1 for o in self.outcomes if o.status is FileStatus.SKIPPED),
                "failed": len(self.failed),
                "not_verified": len(self.not_verified),
                "pbkdf2_derivations": self.pbkdf2_derivations,
                "workers": self.workers,
                "elapsed_s": round(self.elapsed_s, 3),
            },
        }


# -- worker side (module level so that process pools can reach it) -------------------------------------
@dataclass(slots=True)
class _WorkerState:
    operation: str
    context: cms.Context  # the run's in the parent; a worker's own, taken over from it, in a worker
    seal_recipients: tuple[cms.Recipient, ...] = ()
    seal_plan: SealPlan | None = None
    signer: cms.SignedContent | None = None
    unseal_plan: UnsealPlan | None = None
    credentials: tuple[cms.Credential, ...] = ()
    kdf_budget: cms.KdfBudget | None = None  # shared by every process of the batch
    overwrite: bool = False
    durable: bool = True


_STATE: _WorkerState | None = None


def _init_worker(
    context: cms.Context,
    operation: str,
    seal_plan: SealPlan | None,
    unseal_plan: UnsealPlan | None,
    overwrite: bool,
    durable: bool,
    log_queue: multiprocessing.queues.Queue[logging.LogRecord],
    log_level: int,
    kdf_spent: object | None,
) -> None:
    global _STATE
    # A worker's log records go to the parent, which hands them to its own handlers.
    package_logger = logging.getLogger("dcmseal")
    package_logger.handlers = [logging.handlers.QueueHandler(log_queue)]
    package_logger.setLevel(log_level)
    package_logger.propagate = False
    # ``context`` holds the parent's derived keys (dcmseal.workers): the set still derives each key once.
    _STATE = _make_state(context, operation, seal_plan, unseal_plan, overwrite, durable, kdf_spent)


def _make_state(
    context: cms.Context,
    operation: str,
    seal_plan: SealPlan | None,
    unseal_plan: UnsealPlan | None,
    overwrite: bool,
    durable: bool = True,
    kdf_spent: object | None = None,
) -> _WorkerState:
    state = _WorkerState(operation=operation, context=context, overwrite=overwrite, durable=durable)
    if seal_plan is not None:
        state.seal_plan = seal_plan
        state.seal_recipients = seal_plan.recipients()
        state.signer = seal_plan.signer()
    if unseal_plan is not None:
        state.unseal_plan = unseal_plan
        state.credentials = unseal_plan.credentials()
        state.kdf_budget = unseal_plan.budget(kdf_spent)
    return state


def _process_one(
    state: _WorkerState, src: Path, dst: Path, batch: BatchCommit | None = None, extent: Extent | None = None
) -> FileOutcome:
    try:
        if state.operation == "seal":
            assert state.seal_plan is not None
            seal_result = seal_file(
                src,
                dst,
                recipients=state.seal_recipients,
                cipher=state.seal_plan.cipher,
                digest=state.seal_plan.digest,
                signer=state.signer,
                context=state.context,
                overwrite=state.overwrite,
                durable=state.durable,
                batch=batch,
            )
            return FileOutcome(source=src, destination=dst, status=FileStatus.SEALED, result=seal_result)
        assert state.unseal_plan is not None
        unseal_result = unseal_file(
            src,
            dst,
            credentials=state.credentials,
            strict=state.unseal_plan.strict,
            context=state.context,
            max_iterations=state.unseal_plan.max_iterations,
            max_header_bytes=state.unseal_plan.max_header_bytes,
            overwrite=state.overwrite,
            durable=state.durable,
            batch=batch,
            extent=extent,
            accept_unprotected=state.unseal_plan.accept_unprotected,
            keep_preamble=state.unseal_plan.keep_preamble,
            kdf_budget=state.kdf_budget,
        )
        return FileOutcome(source=src, destination=dst, status=FileStatus.UNSEALED, result=unseal_result)
    except DcmsealError as exc:
        return FileOutcome(
            source=src,
            destination=None,
            status=FileStatus.FAILED,
            reason=str(exc),
            kind=exc.kind,
            exit_code=int(exc.exit_code),
        )


_Task = list[tuple[int, Path, Path, Extent | None]]


def _worker_task(task: _Task) -> tuple[list[tuple[int, FileOutcome]], int]:
    """Process a chunk of files and commit it: their outcomes and the new derivations.

    The finished files are unnamed files of this process (:class:`dcmseal.fsutil.BatchCommit`), so the
    worker commits its own chunk: one syncfs per chunk, then every file of it is named.
    """
    assert _STATE is not None
    cache = _STATE.context.kdf_cache
    before = cache.derivations
    batch = BatchCommit(durable=_STATE.durable)
    try:
        results = {index: _process_one(_STATE, src, dst, batch, extent) for index, src, dst, extent in task}
        _commit_failures(results, batch.commit(), log=False)  # the parent logs each outcome
    except BaseException:
        batch.abort()
        raise
    return list(results.items()), cache.derivations - before


# -- parent side ----------------------------------------------------------------------------------


def _identity(path: Path) -> dict[str, int]:
    """What changes whenever a file is replaced or written to: inode, size, mtime and ctime (ns)."""
    info = path.stat()
    return {
        "ino": info.st_ino,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "ctime_ns": info.st_ctime_ns,
    }


class _Manifest:
    """The outputs an unseal has put in ``out_dir``, each with the source it came from (JSON lines, 0600, in the
    user's data folder: the output folder holds only the outputs).

    A rerun skips an output only when it is the very file recorded here (same inode, size, mtime, ctime: no
    one has written to it since, and the ctime cannot be set back) and its source is unchanged. Every output
    was linked in complete and verified (:func:`dcmseal.fsutil.atomic_write`), so such a file is finished.
    Anything else at an output's name is never overwritten without ``--force``.
    """

    def __init__(self, out_dir: Path) -> None:
        key = hashlib.sha256(os.fsencode(os.path.abspath(out_dir))).hexdigest()[:32]
        self.path = state_path("unsealed") / f"{key}.jsonl"
        self.entries: dict[str, dict[str, object]] = {}
        try:
            with open(self.path, "rb") as fp:
                for line in fp:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut short by a crash
                    if isinstance(entry, dict) and isinstance(entry.get("output"), str):
                        self.entries[entry["output"]] = entry
        except OSError as exc:  # no record (first run), or not readable: nothing is skipped
            if not isinstance(exc, FileNotFoundError):
                logger.warning(
                    "%s: cannot read the record of earlier runs (%s)", self.path, exc.strerror or exc
                )
        self.out_dir = out_dir

    def finished(self, src: Path, dst: Path) -> bool:
        entry = self.entries.get(dst.relative_to(self.out_dir).as_posix())
        if entry is None:
            return False
        try:
            return bool(
                entry.get("source") == str(src.resolve())
                and entry.get("source_identity") == _identity(src)
                and entry.get("identity") == _identity(dst)
            )
        except OSError:
            return False

    def record(self, outcomes: Iterable[FileOutcome]) -> None:
        """Append the outputs just put in place (after their commit: their names and inodes are final)."""
        lines: list[bytes] = []
        for outcome in outcomes:
            if outcome.status is not FileStatus.UNSEALED or outcome.destination is None:
                continue
            try:
                entry = {
                    "output": outcome.destination.relative_to(self.out_dir).as_posix(),
                    "identity": _identity(outcome.destination),
                    "source": str(outcome.source.resolve()),
                    "source_identity": _identity(outcome.source),
                }
            except OSError:
                continue
            lines.append(json.dumps(entry).encode() + b"\n")
        if not lines:
            return
        try:
            make_dirs(self.path.parent)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, b"".join(lines))
            finally:
                os.close(fd)
        except OSError as exc:  # the outputs are fine; a rerun will only not skip them
            logger.warning("%s: cannot record the outputs for a rerun (%s)", self.path, exc.strerror or exc)


def _jobs(paths: Sequence[Path], out_dir: Path) -> tuple[list[tuple[Path, Path]], list[FileOutcome]]:
    """(source, destination) for every input file, and the inputs refused before any work."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError("the output must be a folder", path=out_dir)
    out_resolved = out_dir.resolve()
    jobs: list[tuple[Path, Path]] = []
    refused: list[FileOutcome] = []
    for path in paths:
        if not path.exists():
            raise MissingInputError(path)
        if path.is_dir() and path.resolve() == out_resolved:
            raise UsageError("the output folder must differ from the input folder", path=path)
    claimed: dict[Path, Path] = {}
    for src, relative in iter_files(list(paths)):
        if out_resolved in src.resolve().parents:
            continue  # never read back what this run writes
        dst = relative_output_path(out_dir, relative)
        first = claimed.setdefault(dst, src)
        if first != src:
            # Two inputs with one relative name would share an output: one would silently replace the other.
            refused.append(
                FileOutcome(
                    source=src,
                    destination=None,
                    status=FileStatus.FAILED,
                    reason=f"same output name as {first}; seal them in separate runs or folders",
                    kind=ReasonKind.INPUT,
                    exit_code=int(ExitCode.INPUT),
                )
            )
            continue
        jobs.append((src, dst))
    if not jobs and not refused:
        # An empty folder is a mistake (the wrong folder, a copy not yet made), not a success with nothing done.
        if len(paths) == 1:
            raise InputError("holds no file (hidden files are left out): nothing to do", path=paths[0])
        raise InputError("the inputs hold no file (hidden files are left out): nothing to do")
    return jobs, refused


#: Files per task sent to a worker: one round trip (and one commit) per chunk instead of per file.
_MAX_FILES_PER_TASK = MAX_PENDING_FILES


def _chunks(
    pending: list[tuple[int, tuple[Path, Path]]], workers: int, extents: Mapping[Path, Extent]
) -> Iterator[_Task]:
    # Small enough that the workers finish together (about eight tasks per worker at least).
    size = max(1, min(_MAX_FILES_PER_TASK, len(pending) // (workers * 8)))
    for start in range(0, len(pending), size):
        yield [(index, src, dst, extents.get(src)) for index, (src, dst) in pending[start : start + size]]


def _pool_context() -> multiprocessing.context.BaseContext:
    """How the workers of a batch start (:func:`dcmseal.workers.pool_context`); a fork server preloads this module."""
    return pool_context(preload=("dcmseal.part10.batch",))


def _commit_failures(
    outcomes: dict[int, FileOutcome], failed: dict[Path, OSError], *, log: bool = True
) -> None:
    """Turn the outcomes of files that could not be named into failures (logged, unless the parent will)."""
    if not failed:
        return
    for index, outcome in list(outcomes.items()):
        if outcome.destination is None or outcome.destination not in failed:
            continue
        exc = failed[outcome.destination]
        error = (
            OutputExistsError(outcome.destination)
            if isinstance(exc, FileExistsError)
            else InputError(f"cannot write: {exc.strerror or exc}", path=outcome.destination)
        )
        outcomes[index] = FileOutcome(
            source=outcome.source,
            destination=None,
            status=FileStatus.FAILED,
            reason=str(error),
            kind=error.kind,
            exit_code=int(error.exit_code),
        )
        if log:
            logger.error("%s", error)


def _run(
    operation: str,
    jobs: list[tuple[Path, Path]],
    refused: list[FileOutcome],
    *,
    seal_plan: SealPlan | None,
    unseal_plan: UnsealPlan | None,
    workers: int,
    overwrite: bool,
    on_outcome: Callable[[FileOutcome], None] | None,
    durable: bool = True,
    extents: Mapping[Path, Extent] | None = None,
    log_failures: bool = True,
    manifest: _Manifest | None = None,
    skipped: Sequence[FileOutcome] = (),
    context: cms.Context | None = None,
) -> BatchReport:
    started = time.perf_counter()
    extents = extents or {}
    # The run's CMS state (derived keys above all); this run's alone unless the caller shares one.
    run_context = context if context is not None else cms.Context()
    cache = run_context.kdf_cache
    before = cache.derivations
    # One file is written as ever (unnamed file, fsync, link); a batch is written as unnamed files, made
    # durable with one syncfs and named every few dozen files, by the process that wrote them (BatchCommit).
    batch = BatchCommit(durable=durable) if len(jobs) > 1 else None
    workers = workers or os.cpu_count() or 1
    use_pool = workers > 1 and len(jobs) >= _MIN_FILES_FOR_POOL
    # The set's PBKDF2 budget is spent by every process: a shared counter when there is a pool.
    kdf_spent = _pool_context().Value("q", 0) if use_pool and unseal_plan is not None else None
    state = _make_state(run_context, operation, seal_plan, unseal_plan, overwrite, durable, kdf_spent)
    if use_pool:
        # A fork server (not on Linux) starts and imports this module on the other core while this one derives.
        start_pool_server(_pool_context())
    if seal_plan is not None and seal_plan.password is not None and seal_plan.kdf is not None:
        # The one derivation of the set, done here so every worker inherits it.
        cache.derive(seal_plan.password, seal_plan.kdf, seal_plan.cipher.key_size)
    outcomes: dict[int, FileOutcome] = {}
    extra_derivations = 0

    def record(index: int, outcome: FileOutcome) -> None:
        outcomes[index] = outcome
        if outcome.status is FileStatus.FAILED and log_failures:
            logger.error("%s", outcome.reason)
        else:
            logger.info("%s: %s to %s", outcome.source, outcome.status, outcome.destination)
        if on_outcome is not None:
            on_outcome(outcome)

    for offset, outcome in enumerate([*refused, *skipped]):
        record(len(jobs) + offset, outcome)
    uncommitted: list[int] = []  # files of this process's batch, not yet named

    def committed(indices: Iterable[int]) -> None:
        if manifest is not None:
            manifest.record(outcomes[i] for i in indices)

    def commit() -> None:
        assert batch is not None
        _commit_failures(outcomes, batch.commit())
        committed(uncommitted)
        uncommitted.clear()

    def run_here(index: int, src: Path, dst: Path) -> None:
        record(index, _process_one(state, src, dst, batch, extents.get(src)))
        if batch is None:
            committed([index])
            return
        uncommitted.append(index)
        if batch.full:
            commit()

    pending = list(enumerate(jobs))
    try:
        if use_pool:
            if operation == "unseal" and pending:
                # Open the first file here: its key derivation then reaches every worker through the cache.
                index, (src, dst) = pending.pop(0)
                run_here(index, src, dst)
            mp_context = _pool_context()
            log_queue: multiprocessing.queues.Queue[logging.LogRecord] = mp_context.Queue()
            listener = logging.handlers.QueueListener(log_queue, _Relay())
            listener.start()
            with contextlib.ExitStack() as stack:
                stack.callback(listener.stop)
                pool = stack.enter_context(
                    process_pool(
                        workers,
                        mp_context=mp_context,
                        cms_context=run_context,
                        initializer=_init_worker,
                        initargs=(
                            operation,
                            seal_plan,
                            unseal_plan,
                            overwrite,
                            durable,
                            log_queue,
                            logging.getLogger("dcmseal").getEffectiveLevel(),
                            kdf_spent,
                        ),
                    )
                )
                futures: set[Future[tuple[list[tuple[int, FileOutcome]], int]]] = set()
                tasks = _chunks(pending, workers, extents)
                with workers_skip_main():
                    for task in tasks:
                        futures.add(pool.submit(_worker_task, task))
                        if len(futures) >= workers * 2:
                            break
                while futures:
                    done, futures = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        results, derived = future.result()
                        extra_derivations += derived
                        for index, outcome in results:
                            record(index, outcome)
                        committed(index for index, _ in results)  # the worker committed them
                        following = next(tasks, None)
                        if following is not None:
                            futures.add(pool.submit(_worker_task, following))
        else:
            workers = 1
            for index, (src, dst) in pending:
                run_here(index, src, dst)
        if batch is not None:
            commit()
    except BaseException:
        if batch is not None:
            batch.abort()  # a worker's unnamed files died with it, or with its own abort
        raise
    return BatchReport(
        operation=operation,
        outcomes=tuple(outcomes[i] for i in sorted(outcomes)),
        pbkdf2_derivations=cache.derivations - before + extra_derivations,
        workers=workers,
        elapsed_s=time.perf_counter() - started,
    )


def seal_tree(
    paths: Sequence[Path],
    out_dir: Path,
    plan: SealPlan,
    *,
    workers: int = 0,
    overwrite: bool = False,
    on_outcome: Callable[[FileOutcome], None] | None = None,
    context: cms.Context | None = None,
    log_failures: bool = True,
) -> BatchReport:
    """Seal every file under ``paths`` into ``out_dir``, keeping relative paths; ``workers=0`` uses every core.

    ``log_failures=False`` leaves the failures to the caller's report (no ERROR line per file).
    ``context`` (:class:`dcmseal.cms.Context`) is the caller's run's, to share its derived keys; by default
    the batch has its own.
    """
    jobs, refused = _jobs(paths, out_dir)
    return _run(
        "seal",
        jobs,
        refused,
        seal_plan=plan,
        unseal_plan=None,
        workers=workers,
        overwrite=overwrite,
        on_outcome=on_outcome,
        context=context,
        log_failures=log_failures,
    )


def unseal_tree(
    paths: Sequence[Path],
    out_dir: Path,
    plan: UnsealPlan,
    *,
    workers: int = 0,
    overwrite: bool = False,
    on_outcome: Callable[[FileOutcome], None] | None = None,
    context: cms.Context | None = None,
    log_failures: bool = True,
) -> BatchReport:
    """Unseal every file under ``paths`` into ``out_dir``; each key is derived at most once for the run.

    A rerun resumes: an output this function wrote earlier for the same, unchanged source, and that nobody
    changed since, is skipped (status ``skipped``); any other file at an output's name is left alone and
    that input fails with "already exists" (``overwrite`` replaces it). ``log_failures=False`` leaves the
    failures to the caller's report (no ERROR line per file).
    ``context`` (:class:`dcmseal.cms.Context`) is the caller's run's, to share its derived keys; by default
    the batch has its own.
    """
    jobs, refused = _jobs(paths, out_dir)
    manifest = _Manifest(out_dir)
    todo: list[tuple[Path, Path]] = []
    skipped: list[FileOutcome] = []
    for src, dst in jobs:
        if not overwrite and manifest.finished(src, dst):
            skipped.append(
                FileOutcome(
                    source=src,
                    destination=dst,
                    status=FileStatus.SKIPPED,
                    reason="unsealed and verified by an earlier run",
                )
            )
        else:
            todo.append((src, dst))
    return _run(
        "unseal",
        todo,
        refused,
        seal_plan=None,
        unseal_plan=plan,
        workers=workers,
        overwrite=overwrite,
        on_outcome=on_outcome,
        context=context,
        log_failures=log_failures,
        manifest=manifest,
        skipped=skipped,
    )


def seal_files(
    pairs: Sequence[tuple[Path, Path]],
    plan: SealPlan,
    *,
    workers: int = 0,
    overwrite: bool = False,
    on_outcome: Callable[[FileOutcome], None] | None = None,
    context: cms.Context | None = None,
    durable: bool = True,
) -> BatchReport:
    """Seal each ``(source, destination)`` pair; for callers that choose the output names themselves.

    ``durable=False`` skips the fsyncs, for intermediate files that a durable output is made from
    (the sealed files packed into an ISO image); outputs are still all or nothing.
    ``context`` (:class:`dcmseal.cms.Context`) is the caller's run's, to share its derived keys; by default
    the batch has its own.
    """
    return _run(
        "seal",
        list(pairs),
        [],
        seal_plan=plan,
        unseal_plan=None,
        workers=workers,
        overwrite=overwrite,
        on_outcome=on_outcome,
        context=context,
        durable=durable,
    )


def unseal_files(
    pairs: Sequence[tuple[Path, Path]],
    plan: UnsealPlan,
    *,
    workers: int = 0,
    overwrite: bool = False,
    on_outcome: Callable[[FileOutcome], None] | None = None,
    context: cms.Context | None = None,
    durable: bool = True,
    extents: Mapping[Path, Extent] | None = None,
    log_failures: bool = True,
) -> BatchReport:
    """Unseal each ``(source, destination)`` pair; each key is derived at most once for the run.

    ``durable=False`` skips the fsyncs (scratch outputs); outputs are still all or nothing. A source
    found in ``extents`` is read from there (a file of an ISO image, read in place); its path only names it.
    ``log_failures=False`` leaves the failures to the caller's report (no ERROR line per file).
    ``context`` (:class:`dcmseal.cms.Context`) is the caller's run's, to share its derived keys; by default
    the batch has its own.
    """
    return _run(
        "unseal",
        list(pairs),
        [],
        seal_plan=None,
        unseal_plan=plan,
        workers=workers,
        overwrite=overwrite,
        on_outcome=on_outcome,
        context=context,
        durable=durable,
        extents=extents,
        log_failures=log_failures,
    )
