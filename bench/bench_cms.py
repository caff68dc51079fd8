"""dcmseal seal/unseal side by side with ``openssl cms``, on one big file and on many small ones.

One run measures, on this machine:

1. the primitives (the "limits"): AES-256-CBC encrypt and decrypt and SHA-256 with ``cryptography``
   on 1 MiB chunks on one core, the serial "digest + CBC" limit 1/(1/enc + 1/sha), and
   PBKDF2-HMAC-SHA256 at the default 600,000 iterations (median of 5);
2. (a) one Part 10 file of ``--size-mib``: ``dcmseal seal``/``unseal`` (CLI, one process) against
   ``openssl cms -encrypt``/``-decrypt`` with a password recipient, wall clock (median of ``--runs``),
   MB/s, ratios and the peak RSS of each process;
3. (b) ``--files`` Part 10 files of ``--file-kib``: ``dcmseal seal``/``unseal`` of the folder (CLI,
   default workers: one per core) against one ``openssl cms`` process per file run in a loop, as a
   user would script it.

Writes ``bench/results/bench-<UTC time>[-quick].json`` and prints a markdown table. MB = 10^6 bytes.

    .venv/bin/python bench/bench_cms.py            # the full run (1 GiB, 2000 x 0.5 MiB): minutes
    .venv/bin/python bench/bench_cms.py --quick    # smoke run (64 MiB, 200 files)
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import secrets
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

MB = 1_000_000
MIB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent
DEFAULT_ITERATIONS = 600_000

# Targets from the issue.
TARGET_SEAL_FRACTION_OF_LIMIT = 0.80  # (a) seal >= 80 % of the single-core digest + CBC limit
TARGET_UNSEAL_VS_OPENSSL = 2.0  # (a) unseal >= 2x openssl cms
TARGET_MANY_VS_LOOP = 10.0  # (b) >= 10x the openssl per-file loop, both ways
TARGET_PEAK_RSS_MB = 150.0  # (a) peak memory of the dcmseal process


# -- measured processes ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Proc:
    """One finished child process: wall clock, peak RSS (its own and its reaped descendants'; 0: not measured)."""

    wall_s: float
    maxrss_mb: float
    returncode: int
    stdout: str
    stderr: str


# Forks and execs the command from a small fresh interpreter, then reports its peak RSS and wall clock.
# ru_maxrss survives exec: a child forked straight from this (large) process would inherit this process's
# high-water mark; forked from the launcher it inherits only the launcher's few MB.
_LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as fp:
    fp.write(f"{usage.ru_maxrss} {wall}")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_measured(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, capture: bool = True, rss: bool = True
) -> Proc:
    """Run ``cmd``: its wall clock and, with ``rss``, its own peak RSS (and its reaped descendants').

    With ``rss`` the command runs under a small launcher (about 20 ms to start, not counted in the wall
    clock; a floor of about 7 MB on the peak RSS). Without it, the command is spawned directly and
    the peak RSS is not known (0).
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rep,
    ):
        argv = [sys.executable, "-I", "-S", "-c", _LAUNCHER, rep.name, *cmd] if rss else list(cmd)
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdout=out if capture else subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env
        )
        proc.wait()
        wall, maxrss_kib = time.perf_counter() - started, 0
        if rss:
            report = rep.read().split()
            if len(report) == 2:
                maxrss_kib, wall = int(report[0]), float(report[1])
        out.seek(0)
        err.seek(0)
        return Proc(
            wall_s=wall,
            maxrss_mb=maxrss_kib * 1024 / MB,  # Linux: KiB
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


def check(proc: Proc, what: str) -> Proc:
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed with exit code {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


# -- a shared machine: wait for quiet, account for every busy core -----------------------------------
@dataclass(slots=True)
class Quiet:
    """Before each timed run, wait up to ``max_wait_s`` for the machine to be idle (other users' jobs)."""

    max_wait_s: float = 60.0
    threshold_cores: float = 0.25
    #: A run during which other jobs used more than this many cores on average is run again ...
    max_other_cores: float = 0.15
    #: ... at most this many times.
    retries: int = 2


QUIET = Quiet()


def system_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot (``/proc/stat``: all but idle, iowait)."""
    with open("/proc/stat") as fp:
        fields = [int(x) for x in fp.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet() -> bool:
    """Wait until less than ``threshold_cores`` are busy over one second; False if it never happened."""
    deadline = time.monotonic() + QUIET.max_wait_s
    while True:
        before = system_busy_s()
        time.sleep(0.5)
        if system_busy_s() - before < QUIET.threshold_cores * 0.5:
            return True
        if time.monotonic() > deadline:
            return False


def settle() -> None:
    """Write back dirty pages left by the previous step, so no run pays for another's writes."""
    os.sync()


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``), so their CPU time is ours to count.

    dcmseal's worker processes hang off a forkserver that outlives the command by a moment; adopted and
    reaped here, their CPU time lands in this process's ``RUSAGE_CHILDREN``.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(36, 1, 0, 0, 0) == 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_orphans(timeout_s: float = 5.0) -> None:
    """Reap every adopted descendant that is still exiting (no child of ours runs between measurements)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def our_cpu_s() -> float:
    """CPU seconds of this process and of every descendant reaped so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass(slots=True)
class Timed:
    """Several runs of one measurement: wall clock, peak RSS, cores used by us and by other jobs."""

    runs_s: list[float] = field(default_factory=list)
    maxrss_mb: float = 0.0
    our_cores: list[float] = field(default_factory=list)
    other_cores: list[float] = field(default_factory=list)
    quiet: list[bool] = field(default_factory=list)
    discarded_s: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def measure(self, prepare: Callable[[], object], action: Callable[[], tuple[float, float]]) -> None:
        """``prepare`` untimed; ``action`` returns (wall seconds, peak RSS MB) of what it ran.

        A run during which other jobs kept more than ``QUIET.max_other_cores`` busy is discarded and
        run again, up to ``QUIET.retries`` times; the last attempt counts whatever happened.
        """
        for attempt in range(QUIET.retries + 1):
            prepare()
            settle()
            quiet = wait_for_quiet() if QUIET.max_wait_s > 0 else True
            kept = {k: len(v) for k, v in self.extra.items() if isinstance(v, list)}
            busy, ours = system_busy_s(), our_cpu_s()
            wall, rss = action()
            reap_orphans()
            ours_s = our_cpu_s() - ours
            other = max(0.0, system_busy_s() - busy - ours_s) / wall
            if other > QUIET.max_other_cores and attempt < QUIET.retries:
                self.discarded_s.append(wall)
                for key in [k for k, v in self.extra.items() if isinstance(v, list)]:
                    del self.extra[key][kept.get(key, 0) :]  # what the discarded run appended
                continue
            break
        self.quiet.append(quiet)
        self.our_cores.append(ours_s / wall)
        self.other_cores.append(other)
        self.runs_s.append(wall)
        self.maxrss_mb = max(self.maxrss_mb, rss)

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    def to_json(self, nbytes: int, nfiles: int) -> dict[str, Any]:
        out = {
            "median_s": round(self.median_s, 3),
            "runs_s": [round(x, 3) for x in self.runs_s],
            "mb_per_s": round(nbytes / self.median_s / MB, 1),
            "files_per_s": round(nfiles / self.median_s, 1),
            "peak_rss_mb": round(self.maxrss_mb, 1),
            "our_cores": round(statistics.median(self.our_cores), 2),
            "other_cores": [round(x, 2) for x in self.other_cores],
            "all_runs_quiet": all(self.quiet) and max(self.other_cores) <= QUIET.max_other_cores,
            "discarded_runs_s": [round(x, 3) for x in self.discarded_s],
            **self.extra,
        }
        if "own_elapsed_s" in self.extra:
            out["own_mb_per_s"] = round(nbytes / statistics.median(self.extra["own_elapsed_s"]) / MB, 1)
        return out


# -- the machine and the primitives ------------------------------------------------------------------
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_model": platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                info["cpu_model"] = value.strip()
            elif key.strip() == "Hypervisor vendor":
                info["hypervisor"] = value.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    with open("/proc/meminfo") as fp:
        for line in fp:
            if line.startswith("MemTotal:"):
                info["mem_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    import cryptography
    from cryptography.hazmat.backends.openssl import backend

    info["cryptography"] = cryptography.__version__
    info["cryptography_openssl"] = backend.openssl_version_text()
    info["openssl_cli"] = subprocess.run(
        ["openssl", "version"], capture_output=True, text=True
    ).stdout.strip()
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=REPO, capture_output=True, text=True
        )
        info["git"] = head.stdout.strip() + ("+dirty-src" if dirty.stdout.strip() else "")
    except OSError:
        pass
    info["src_sha256"] = src_fingerprint()
    return info


def src_fingerprint() -> str:
    """SHA-256 (first 12 hex) of every source file of the package: shows whether src changed during a run."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "dcmseal").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _throughput(step: Callable[[memoryview], object], total: int, chunk: memoryview, repeats: int) -> float:
    """Median MB/s of ``repeats`` passes of ``total`` bytes through ``step`` in ``chunk``-sized calls."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(total // len(chunk)):
            step(chunk)
        rates.append(total / (time.perf_counter() - started) / MB)
    return statistics.median(rates)


def measure_primitives(total_mib: int) -> dict[str, Any]:
    """Single-core limits with cryptography on 1 MiB chunks.

    ``*_into`` reuse one output buffer (``update_into``): the cipher's own speed. The plain numbers use
    ``update()``, which returns a fresh 1 MiB ``bytes`` per call, as most streaming code does; on glibc
    such buffers come from mmap and every call pays page faults for them.
    """
    chunk = memoryview(os.urandom(MIB))
    total = total_mib * MIB
    key, iv = os.urandom(32), os.urandom(16)
    out = bytearray(MIB + 16)

    def cbc(decrypt: bool) -> Any:
        cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
        return cipher.decryptor() if decrypt else cipher.encryptor()

    enc, dec = cbc(False), cbc(True)
    enc_into = _throughput(lambda c: enc.update_into(c, out), total, chunk, 3)
    dec_into = _throughput(lambda c: dec.update_into(c, out), total, chunk, 3)
    enc_alloc = _throughput(enc.update, total, chunk, 3)
    dec_alloc = _throughput(dec.update, total, chunk, 3)
    sha = hashes.Hash(hashes.SHA256())
    sha_mbs = _throughput(sha.update, total, chunk, 3)
    pbkdf2 = []
    for _ in range(5):
        started = time.perf_counter()
        PBKDF2HMAC(hashes.SHA256(), 32, os.urandom(16), DEFAULT_ITERATIONS).derive(b"benchmark password")
        pbkdf2.append((time.perf_counter() - started) * 1000)
    return {
        "aes256_cbc_encrypt_mbs": round(enc_into, 1),
        "aes256_cbc_decrypt_mbs": round(dec_into, 1),
        "aes256_cbc_encrypt_alloc_mbs": round(enc_alloc, 1),
        "aes256_cbc_decrypt_alloc_mbs": round(dec_alloc, 1),
        "sha256_mbs": round(sha_mbs, 1),
        "digest_plus_cbc_encrypt_mbs": round(1 / (1 / enc_into + 1 / sha_mbs), 1),
        "digest_plus_cbc_decrypt_mbs": round(1 / (1 / dec_into + 1 / sha_mbs), 1),
        "pbkdf2_sha256_600k_ms": round(statistics.median(pbkdf2), 1),
        "pbkdf2_sha256_600k_ms_all": [round(x, 1) for x in pbkdf2],
    }


# -- input files -------------------------------------------------------------------------------------
def part10_header(index: int, payload_length: int) -> bytes:
    """Preamble (zeros) + DICM + File Meta + a small data set + the header of an OB PixelData of ``payload_length``."""
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    uid = UID(f"2.25.{int.from_bytes(hashlib.sha256(b'dcmseal-bench-%d' % index).digest()[:15], 'big')}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")  # Secondary Capture Image Storage
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = bytes(128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = uid
    ds.PatientName = "Bench^Mark"
    ds.PatientID = "BENCH0001"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    # (7FE0,0010) OB, explicit VR little endian: tag, "OB", 2 reserved bytes, 4-byte length.
    return buffer.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, payload_length)


def write_part10(path: Path, size: int, index: int) -> None:
    """A valid Part 10 header followed by random pixel bytes, ``size`` bytes in all (``size`` even)."""
    header_len = len(part10_header(index, 0))
    payload = size - header_len
    if payload < 0 or payload % 2:
        raise ValueError(f"cannot make a Part 10 file of {size} bytes")
    with open(path, "wb") as fp:
        fp.write(part10_header(index, payload))
        while payload:
            n = min(payload, 4 * MIB)
            fp.write(os.urandom(n))
            payload -= n


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def clear(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def retire(path: Path) -> None:
    """Move the previous run's output out of the way, without deleting it until the benchmark ends.

    On ext4 without a journal (this VM's root file system) the inode allocator skips every inode freed in the
    last minute or more, so a run that follows the deletion of thousands of files pays a scan per file it
    creates (`recently_deleted` in `perf`, up to 1.6 ms per file). Deleting before each run charged that to
    every run but the first of each tool (2,000 outputs each in (b)); renaming frees nothing, and the work
    folder goes at the very end. (a) writes one file per run and deletes as before.
    """
    if path.exists():
        graveyard = path.parent / ".retired"
        graveyard.mkdir(exist_ok=True)
        path.rename(graveyard / f"{path.name}.{time.monotonic_ns()}")


# -- the commands ------------------------------------------------------------------------------------
def dcmseal_cli() -> list[str]:
    script = Path(sys.executable).with_name("dcmseal")
    if script.exists():
        return [str(script)]
    found = shutil.which("dcmseal")
    if not found:
        raise SystemExit("dcmseal is not installed in this environment (make venv)")
    return [found]


def child_env() -> dict[str, str]:
    """The environment without DCMSEAL_* settings: every default applies (600k iterations, one worker per core)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DCMSEAL_")}


def openssl_encrypt(src: Path, dst: Path, password: str) -> list[str]:
    return ["openssl", "cms", "-encrypt", "-binary", "-aes-256-cbc", "-pwri_password", password,
            "-in", str(src), "-outform", "DER", "-out", str(dst)]  # fmt: skip


def openssl_decrypt(src: Path, dst: Path, password: str) -> list[str]:
    return ["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-pwri_password", password,
            "-in", str(src), "-out", str(dst)]  # fmt: skip


def summary_of(proc: Proc) -> dict[str, Any]:
    report = json.loads(proc.stdout)
    summary = report["summary"]
    if summary["failed"]:
        raise SystemExit(f"dcmseal reported failures: {json.dumps(report)[:4000]}")
    return dict(summary)


def openssl_sync_cost(write: Callable[[], object]) -> float:
    """Seconds ``sync`` takes right after ``write``: the durability cost dcmseal pays (fsync) and openssl defers."""
    settle()
    write()
    started = time.perf_counter()
    os.sync()
    return time.perf_counter() - started


def dcmseal_run(
    timed: Timed, args: list[str], password_file: Path, what: str
) -> Callable[[], tuple[float, float]]:
    """An action running ``dcmseal <args> --password-file P --json``, its summary recorded in ``timed.extra``."""

    def action() -> tuple[float, float]:
        cmd = [*dcmseal_cli(), *args, "--password-file", str(password_file), "--json"]
        proc = check(run_measured(cmd, env=child_env()), what)
        summary = summary_of(proc)
        timed.extra["pbkdf2_derivations"] = summary["pbkdf2_derivations"]
        timed.extra["workers"] = summary["workers"]
        timed.extra.setdefault("own_elapsed_s", []).append(summary["elapsed_s"])
        return proc.wall_s, proc.maxrss_mb

    return action


def cli_startup_s() -> float:
    """Median wall clock of ``dcmseal --version``: interpreter start and imports, paid once per command."""
    runs = [check(run_measured([*dcmseal_cli(), "--version"], env=child_env()), "dcmseal --version").wall_s
            for _ in range(5)]  # fmt: skip
    return round(statistics.median(runs), 3)


# -- (a) one big file --------------------------------------------------------------------------------
def bench_big(work: Path, size_mib: int, runs: int, password: str, password_file: Path) -> dict[str, Any]:
    src = work / "big" / "big.dcm"
    src.parent.mkdir(parents=True)
    write_part10(src, size_mib * MIB, 0)
    nbytes = src.stat().st_size
    sealed_dir, unsealed_dir = work / "big-sealed", work / "big-unsealed"
    p7m, ossl_out = work / "big.p7m", work / "big.openssl.out"
    sealed = sealed_dir / src.name

    def openssl(cmd: list[str], what: str) -> Callable[[], tuple[float, float]]:
        def action() -> tuple[float, float]:
            proc = check(run_measured(cmd), what)
            return proc.wall_s, proc.maxrss_mb

        return action

    seal_d, seal_o, unseal_d, unseal_o = Timed(), Timed(), Timed(), Timed()
    for _ in range(runs):  # alternate the tools, so a slow minute of the machine hits both
        seal_d.measure(
            lambda: clear(sealed_dir),
            dcmseal_run(seal_d, ["seal", str(src), "--out", str(sealed_dir)], password_file, "dcmseal seal"),
        )
        seal_o.measure(
            lambda: clear(p7m), openssl(openssl_encrypt(src, p7m, password), "openssl cms -encrypt")
        )
    clear(p7m)
    seal_o.extra["sync_after_s"] = round(
        openssl_sync_cost(lambda: check(run_measured(openssl_encrypt(src, p7m, password)), "openssl")), 3
    )
    for _ in range(runs):
        unseal_d.measure(
            lambda: clear(unsealed_dir),
            dcmseal_run(
                unseal_d, ["unseal", str(sealed), "--out", str(unsealed_dir)], password_file, "dcmseal unseal"
            ),
        )
        unseal_o.measure(
            lambda: clear(ossl_out), openssl(openssl_decrypt(p7m, ossl_out, password), "openssl cms -decrypt")
        )

    # Correctness, untimed: both round trips give the input back (its preamble is already zero).
    expected = sha256_file(src)
    verified = sha256_file(unsealed_dir / src.name) == expected and sha256_file(ossl_out) == expected
    if not verified:
        raise SystemExit("(a) a round trip did not give the input back")
    result = {
        "bytes": nbytes,
        "runs": runs,
        "sealed_bytes": sealed.stat().st_size,
        "openssl_p7m_bytes": p7m.stat().st_size,
        "verified": verified,
        "seal": {"dcmseal": seal_d.to_json(nbytes, 1), "openssl": seal_o.to_json(nbytes, 1)},
        "unseal": {"dcmseal": unseal_d.to_json(nbytes, 1), "openssl": unseal_o.to_json(nbytes, 1)},
    }
    for path in (src.parent, sealed_dir, unsealed_dir, p7m, ossl_out):
        clear(path)
    return result


# -- (b) many small files ----------------------------------------------------------------------------
def openssl_loop(
    jobs: list[tuple[Path, Path]], make: Callable[[Path, Path, str], list[str]], password: str
) -> Callable[[], tuple[float, float]]:
    """An action running one openssl process per file, sequentially, as a shell loop would."""

    def action() -> tuple[float, float]:
        started = time.perf_counter()
        for src, dst in jobs:
            proc = run_measured(make(src, dst, password), capture=False, rss=False)
            if proc.returncode != 0:
                raise SystemExit(f"openssl failed on {src}: {proc.stderr[-2000:]}")
        return time.perf_counter() - started, 0.0

    return action


def openssl_sample_rss(
    job: tuple[Path, Path], make: Callable[[Path, Path, str], list[str]], password: str
) -> float:
    """Peak RSS of one openssl run of the loop, measured apart (the timed loop spawns openssl directly)."""
    src, dst = job
    sample = dst.with_name(dst.name + ".rss-sample")
    proc = check(run_measured(make(src, sample, password)), "openssl (RSS sample)")
    sample.unlink()
    return proc.maxrss_mb


def fresh_dir(path: Path) -> None:
    retire(path)
    path.mkdir()


def bench_many(
    work: Path, files: int, file_kib: int, runs: int, loop_runs: int, password: str, password_file: Path
) -> dict[str, Any]:
    in_dir = work / "many"
    in_dir.mkdir(parents=True)
    names = [f"IM{i:05d}.dcm" for i in range(files)]
    for i, name in enumerate(names):
        write_part10(in_dir / name, file_kib * 1024, i + 1)
    nbytes = sum((in_dir / n).stat().st_size for n in names)
    sealed_dir, unsealed_dir = work / "many-sealed", work / "many-unsealed"
    p7m_dir, ossl_out_dir = work / "many-p7m", work / "many-openssl-out"

    seal_d, seal_o, unseal_d, unseal_o = Timed(), Timed(), Timed(), Timed()
    for _ in range(runs):
        seal_d.measure(
            lambda: retire(sealed_dir),
            dcmseal_run(
                seal_d, ["seal", str(in_dir), "--out", str(sealed_dir)], password_file, "dcmseal seal"
            ),
        )
    for _ in range(loop_runs):
        jobs = [(in_dir / n, p7m_dir / (n + ".p7m")) for n in names]
        seal_o.measure(lambda: fresh_dir(p7m_dir), openssl_loop(jobs, openssl_encrypt, password))
    for _ in range(runs):
        unseal_d.measure(
            lambda: retire(unsealed_dir),
            dcmseal_run(
                unseal_d,
                ["unseal", str(sealed_dir), "--out", str(unsealed_dir)],
                password_file,
                "dcmseal unseal",
            ),
        )
    for _ in range(loop_runs):
        jobs = [(p7m_dir / (n + ".p7m"), ossl_out_dir / n) for n in names]
        unseal_o.measure(lambda: fresh_dir(ossl_out_dir), openssl_loop(jobs, openssl_decrypt, password))

    seal_o.maxrss_mb = openssl_sample_rss(
        (in_dir / names[0], p7m_dir / (names[0] + ".p7m")), openssl_encrypt, password
    )
    unseal_o.maxrss_mb = openssl_sample_rss(
        (p7m_dir / (names[0] + ".p7m"), ossl_out_dir / names[0]), openssl_decrypt, password
    )
    # Correctness, untimed: every file came back, byte for byte (inputs have a zero preamble).
    verified = all(
        sha256_file(unsealed_dir / n) == sha256_file(in_dir / n) == sha256_file(ossl_out_dir / n)
        for n in names
    )
    if not verified:
        raise SystemExit("(b) a round trip did not give the input back")
    result = {
        "files": files,
        "file_bytes": file_kib * 1024,
        "bytes": nbytes,
        "runs": runs,
        "loop_runs": loop_runs,
        "verified": verified,
        "seal": {"dcmseal": seal_d.to_json(nbytes, files), "openssl_loop": seal_o.to_json(nbytes, files)},
        "unseal": {
            "dcmseal": unseal_d.to_json(nbytes, files),
            "openssl_loop": unseal_o.to_json(nbytes, files),
        },
    }
    for path in (in_dir, sealed_dir, unsealed_dir, p7m_dir, ossl_out_dir):
        clear(path)
    return result


# -- verdicts and the table --------------------------------------------------------------------------
def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    prim, big, many = result["primitives"], result["big"], result["many"]
    limit = prim["digest_plus_cbc_encrypt_mbs"]
    rows = [
        ("(a) seal vs single-core digest+CBC limit", big["seal"]["dcmseal"]["mb_per_s"] / limit,
         TARGET_SEAL_FRACTION_OF_LIMIT),
        ("(a) unseal vs openssl cms", big["unseal"]["dcmseal"]["mb_per_s"] / big["unseal"]["openssl"]["mb_per_s"],
         TARGET_UNSEAL_VS_OPENSSL),
        ("(b) seal vs openssl loop", many["seal"]["dcmseal"]["mb_per_s"] / many["seal"]["openssl_loop"]["mb_per_s"],
         TARGET_MANY_VS_LOOP),
        ("(b) unseal vs openssl loop",
         many["unseal"]["dcmseal"]["mb_per_s"] / many["unseal"]["openssl_loop"]["mb_per_s"], TARGET_MANY_VS_LOOP),
    ]  # fmt: skip
    out = [{"target": n, "value": round(v, 2), "needed": t, "met": v >= t} for n, v, t in rows]
    peak = max(big["seal"]["dcmseal"]["peak_rss_mb"], big["unseal"]["dcmseal"]["peak_rss_mb"])
    out.append({"target": "(a) dcmseal peak RSS, MB", "value": peak, "needed": TARGET_PEAK_RSS_MB,
                "met": peak < TARGET_PEAK_RSS_MB})  # fmt: skip
    return out


def markdown(result: dict[str, Any]) -> str:
    m, prim, big, many = result["machine"], result["primitives"], result["big"], result["many"]
    lines = [
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m.get('mem_gib', '?')} GiB; {m['openssl_cli']}; "
        f"cryptography {m['cryptography']} ({m['cryptography_openssl']}); Python {m['python']}; "
        f"dcmseal {m.get('git', '?')} (src {m.get('src_sha256', '?')}"
        + (
            ""
            if result.get("src_sha256_at_end", m.get("src_sha256")) == m.get("src_sha256")
            else ", changed during the run"
        )
        + f"). {result['date']}.",
        "",
        "| primitive (cryptography, 1 MiB chunks, one core) | MB/s |",
        "|---|---:|",
        f"| AES-256-CBC encrypt (`update_into`, reused buffer) | {prim['aes256_cbc_encrypt_mbs']:,.0f} |",
        f"| AES-256-CBC decrypt (`update_into`, reused buffer) | {prim['aes256_cbc_decrypt_mbs']:,.0f} |",
        f"| AES-256-CBC encrypt (`update`, new 1 MiB bytes per call) | {prim['aes256_cbc_encrypt_alloc_mbs']:,.0f} |",
        f"| AES-256-CBC decrypt (`update`, new 1 MiB bytes per call) | {prim['aes256_cbc_decrypt_alloc_mbs']:,.0f} |",
        f"| SHA-256 | {prim['sha256_mbs']:,.0f} |",
        f"| digest + CBC encrypt, serial limit 1/(1/enc+1/sha) | {prim['digest_plus_cbc_encrypt_mbs']:,.0f} |",
        f"| digest + CBC decrypt, serial limit | {prim['digest_plus_cbc_decrypt_mbs']:,.0f} |",
        f"| PBKDF2-HMAC-SHA256, 600,000 iterations (median of 5) | {prim['pbkdf2_sha256_600k_ms']} ms |",
        "",
        f"(a) one file of {big['bytes'] / MIB:,.0f} MiB, median of {big['runs']} runs. MB/s is the wall clock of the "
        "whole process (interpreter start, PBKDF2, fsync included); *own* is dcmseal's `elapsed_s` (no interpreter "
        f"start, {result['cli_startup_s']:.2f} s here):",
        "",
        "| | tool | median s | MB/s | own MB/s | peak RSS MB | PBKDF2 | cores used | dcmseal/openssl |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for op in ("seal", "unseal"):
        d, o = big[op]["dcmseal"], big[op]["openssl"]
        ratio = d["mb_per_s"] / o["mb_per_s"]
        lines.append(
            f"| {op} | dcmseal (SHA-256 + CBC) | {d['median_s']:.2f} | {d['mb_per_s']:,.0f} | "
            f"{d['own_mb_per_s']:,.0f} | {d['peak_rss_mb']:.0f} | {d['pbkdf2_derivations']} x 600k | "
            f"{d['our_cores']:.2f} | **{ratio:.2f}x** |"
        )
        lines.append(
            f"| {op} | openssl cms (CBC only) | {o['median_s']:.2f} | {o['mb_per_s']:,.0f} | | "
            f"{o['peak_rss_mb']:.0f} | 1 x 2048 | {o['our_cores']:.2f} | |"
        )
    lines += [
        "",
        f"(b) {many['files']:,} files of {many['file_bytes'] / 1024:,.0f} KiB ({many['bytes'] / MIB:,.0f} MiB), "
        f"dcmseal median of {many['runs']} runs on the folder, openssl one process per file "
        f"({many['loop_runs']} run(s) of the loop):",
        "",
        "| | tool | s | files/s | MB/s | own MB/s | PBKDF2 | workers | cores used | dcmseal/openssl |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for op in ("seal", "unseal"):
        d, o = many[op]["dcmseal"], many[op]["openssl_loop"]
        ratio = d["mb_per_s"] / o["mb_per_s"]
        lines.append(
            f"| {op} | dcmseal (folder) | {d['median_s']:.2f} | {d['files_per_s']:,.0f} | {d['mb_per_s']:,.0f} | "
            f"{d['own_mb_per_s']:,.0f} | {d['pbkdf2_derivations']} x 600k | {d['workers']} | "
            f"{d['our_cores']:.2f} | **{ratio:.1f}x** |"
        )
        lines.append(
            f"| {op} | openssl cms loop | {o['median_s']:.2f} | {o['files_per_s']:,.0f} | {o['mb_per_s']:,.0f} | | "
            f"{many['files']:,} x 2048 | 1 | {o['our_cores']:.2f} | |"
        )
    lines += ["", "| target | measured | needed | |", "|---|---:|---:|---|"]
    for v in result["verdicts"]:
        unit = "" if "RSS" in v["target"] else "x"
        needed = f"< {v['needed']:g}" if "RSS" in v["target"] else f">= {v['needed']:g}{unit}"
        lines.append(
            f"| {v['target']} | {v['value']:g}{unit} | {needed} | {'met' if v['met'] else '**missed**'} |"
        )
    own = big["seal"]["dcmseal"]["own_mb_per_s"] / prim["digest_plus_cbc_encrypt_mbs"]
    quiet = all(r[op][t]["all_runs_quiet"] for r in (big, many) for op in ("seal", "unseal") for t in r[op])
    lines += [
        "",
        f"(a) seal by dcmseal's own `elapsed_s` (no interpreter start): {own:.2f}x the digest + CBC limit. "
        f"openssl's deferred write-back (`sync` right after it): {big['seal']['openssl']['sync_after_s']:.2f} s. "
        + ("Every timed run started on an idle machine." if quiet else
           "**Some timed runs started while other jobs kept the machine busy** (see `all_runs_quiet`)."),
    ]  # fmt: skip
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the one big file (a)")
    parser.add_argument("--files", type=int, default=2000, help="number of small files (b)")
    parser.add_argument("--file-kib", type=int, default=512, help="size of each small file (b)")
    parser.add_argument("--runs", type=int, default=3, help="runs per dcmseal/openssl measurement (median)")
    parser.add_argument("--loop-runs", type=int, default=1, help="runs of the openssl per-file loop (b)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a new temp dir)")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="smoke run: 64 MiB and 200 files")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument(
        "--retries", type=int, default=2, help="re-runs of a measurement other jobs disturbed (default 2)"
    )
    parser.add_argument(
        "--render", type=Path, default=None, help="only print the table of a results JSON file"
    )
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=60.0,
        help="seconds to wait for an idle machine before each run (0: never)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mib, args.files = 64, 200
    if args.render is not None:
        print(markdown(json.loads(args.render.read_text())))
        return 0
    QUIET.max_wait_s = args.idle_wait
    QUIET.retries = args.retries
    subreaper = become_subreaper()
    if shutil.which("openssl") is None:
        raise SystemExit("openssl is not on PATH (make system-deps)")

    base = args.workdir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dcmseal-bench-", dir=base))
    password = "pw-" + secrets.token_urlsafe(24)  # random, so the password policy accepts it
    password_file = work / "password.txt"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    started = time.perf_counter()
    date = dt.datetime.now(dt.UTC)
    try:
        result: dict[str, Any] = {
            "schema": "dcmseal.bench/1",
            "date": date.strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": machine(),
            "subreaper": subreaper,
        }
        print("measuring the primitives ...", file=sys.stderr)
        result["load_average_at_start"] = os.getloadavg()
        if QUIET.max_wait_s > 0:
            wait_for_quiet()
        result["primitives"] = measure_primitives(128 if args.quick else 512)
        result["cli_startup_s"] = cli_startup_s()
        print(f"(a) one file of {args.size_mib} MiB ...", file=sys.stderr)
        result["big"] = bench_big(work, args.size_mib, args.runs, password, password_file)
        print(f"(b) {args.files} files of {args.file_kib} KiB ...", file=sys.stderr)
        result["many"] = bench_many(
            work, args.files, args.file_kib, args.runs, args.loop_runs, password, password_file
        )
        result["verdicts"] = verdicts(result)
        result["src_sha256_at_end"] = src_fingerprint()
        if result["src_sha256_at_end"] != result["machine"]["src_sha256"]:
            print("warning: src/dcmseal changed during the run", file=sys.stderr)
        result["total_s"] = round(time.perf_counter() - started, 1)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"bench-{date.strftime('%Y%m%dT%H%M%SZ')}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwritten {out} ({result['total_s']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
