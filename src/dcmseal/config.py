"""The frozen Settings, their security defaults, and how they are loaded (flag > env > TOML > default).

The TOML files, each over the one below it: ``--config`` (else ``$DCMSEAL_CONFIG``), the user's
``~/.config/dcmseal/config.toml``, and the station's ``/etc/dcmseal/config.toml`` (``$DCMSEAL_SYSTEM_CONFIG``
names another). A shared station sets ``state_dir`` there, so every operator account uses one registry,
escrow certificate, audit log and import journal.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from dcmseal.errors import UsageError

__all__ = [
    "DEFAULT_KDF_BUDGET_PER_MEDIUM",
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_PBKDF2_ITERATIONS",
    "DEFAULT_PBKDF2_ITERATIONS",
    "DEFAULT_SALT_BYTES",
    "SYSTEM_CONFIG",
    "Settings",
    "config_files",
    "default_audit_log",
    "default_escrow_directory",
    "default_import_journal",
    "default_quarantine_directory",
    "load_settings",
    "private_state_directory",
    "state_directory",
]

#: OWASP (2023) guidance for PBKDF2-HMAC-SHA256; about 73 ms per derivation on the 2-core dev machine.
#: PS3.15 D.1 sets no count; one derivation per medium keeps the cost to the reader negligible.
DEFAULT_PBKDF2_ITERATIONS = 600_000
#: RFC 8018 asks for at least 8 octets; 16 defeats precomputation for good.
DEFAULT_SALT_BYTES = 16
#: A reader's guard against a hostile envelope asking for hours of PBKDF2 work: 10 million
#: SHA-256 iterations cost about 1.2 s on the dev machine, the most a legitimate writer asks.
DEFAULT_MAX_PBKDF2_ITERATIONS = 10_000_000
#: Everything of an envelope before the encrypted content (recipients, algorithms) must fit here.
DEFAULT_MAX_HEADER_BYTES = 16 * 1024 * 1024
#: PBKDF2 work one medium (or one batch, or one scan) may cost, iterations summed over the derivations
#: that run: ten at the iteration cap, about 12 s here. A dcmseal medium needs one derivation (one salt
#: per set; two after ``rekey --keep-recipients``); media made file by file with ``openssl cms`` (a new
#: salt per file, 2,048 iterations) need one per file, about 48,000 files' worth. A hostile medium with a
#: new salt per file at the cap is cut off after ten files; the others are refused, each named.
DEFAULT_KDF_BUDGET_PER_MEDIUM = 10 * DEFAULT_MAX_PBKDF2_ITERATIONS


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Settings every workflow receives explicitly; domain functions receive only the values they use."""

    cipher: str = "aes256"
    pbkdf2_iterations: int = DEFAULT_PBKDF2_ITERATIONS
    pbkdf2_prf: str = "sha256"
    salt_bytes: int = DEFAULT_SALT_BYTES
    digest: str = "sha256"
    max_pbkdf2_iterations: int = DEFAULT_MAX_PBKDF2_ITERATIONS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    kdf_budget_per_medium: int = DEFAULT_KDF_BUDGET_PER_MEDIUM
    workers: int = 0  # 0 = one process per core
    registry: str = ""  # SQLAlchemy URL; "" = SQLite in the user data directory
    escrow_certificate: str = ""  # "" = escrow-cert.pem in the user data directory, if it exists
    audit_log: str = ""  # "" = audit.log in the user data directory
    syslog: str = ""  # udp://host:port or tcp://host:port; "" = none
    sender: str = ""  # contact printed in README.TXT and the cover letter
    ae_title: str = "DCMSEAL"  # our calling AE title for C-STORE (dcmseal import --aet)
    #: "" = the user data directory; a shared station names one folder for every operator (/var/lib/dcmseal):
    #: the registry, escrow/escrow-cert.pem, audit.log, the import journal and the quarantine live there.
    state_dir: str = ""

    def __post_init__(self) -> None:
        if self.pbkdf2_iterations < 1:
            raise UsageError(f"pbkdf2_iterations must be at least 1, not {self.pbkdf2_iterations}")
        if self.salt_bytes < 8:
            raise UsageError(f"salt_bytes must be at least 8 (RFC 8018), not {self.salt_bytes}")
        if self.max_pbkdf2_iterations < 1:
            raise UsageError("max_pbkdf2_iterations must be at least 1")
        if self.kdf_budget_per_medium < 1:
            raise UsageError("kdf_budget_per_medium must be at least 1")


def state_directory(settings: Settings) -> Path:
    """Where dcmseal keeps its state: ``state_dir`` (a shared station), else the user data directory."""
    if settings.state_dir:
        return Path(settings.state_dir)
    return _user_data_directory()


def default_escrow_directory(settings: Settings) -> Path:
    """Where ``dcmseal keys init`` puts the escrow certificate (and, unless told otherwise, the key)."""
    return state_directory(settings) / "escrow"


def default_audit_log(settings: Settings) -> Path:
    """The local audit log: one DICOM audit message (PS3.15 A.5) per line."""
    return state_directory(settings) / "audit.log"


def default_import_journal(settings: Settings) -> Path:
    """The import journal (SQLite): every file of every imported medium and what became of it."""
    return state_directory(settings) / "import-journal.sqlite3"


def default_quarantine_directory(settings: Settings) -> Path:
    """Where an import puts the files it could not make safe."""
    return state_directory(settings) / "quarantine"


def _user_data_directory() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_path("dcmseal"))


def private_state_directory(settings: Settings | None = None) -> Path:
    """Where a user's own run records go (staging folders to clean up, unseal outputs to resume).

    The user data directory; on a shared station (``state_dir``) a folder of this user's inside it, so that
    nothing goes to the operator's own folders and no operator's records get in another's way.
    """
    if settings is not None and settings.state_dir:
        return Path(settings.state_dir) / f"user-{os.getuid()}"
    return _user_data_directory()


_ENV_PREFIX = "DCMSEAL_"
#: The station-wide settings file, read under the user's; ``$DCMSEAL_SYSTEM_CONFIG`` names another.
SYSTEM_CONFIG = Path("/etc/dcmseal/config.toml")


def config_files(config_file: Path | None, environ: Mapping[str, str]) -> list[Path]:
    """The TOML files to read, lowest precedence first: the station's, the user's, then the one named.

    The one named (``--config``, else ``$DCMSEAL_CONFIG``) must exist; the other two are read when they do.
    """
    system = Path(environ.get("DCMSEAL_SYSTEM_CONFIG") or SYSTEM_CONFIG)
    base = Path(environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    files = [path for path in (system, base / "dcmseal" / "config.toml") if path.is_file()]
    named = config_file or (Path(environ["DCMSEAL_CONFIG"]) if environ.get("DCMSEAL_CONFIG") else None)
    if named is not None:
        files.append(named)
    return files


def _coerce(name: str, raw: object) -> object:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if kind == "int":
        try:
            return int(str(raw))
        except ValueError:
            raise UsageError(f"setting {name} must be an integer, not {raw!r}") from None
    return str(raw)


def load_settings(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object | None] | None = None,
) -> Settings:
    """Build Settings from the TOML files, then ``DCMSEAL_*`` variables, then explicit overrides (flags).

    The TOML files are those of :func:`config_files` (``config_file`` is ``--config``), each over the one
    before it. Passwords are never settings.
    """
    env = os.environ if environ is None else environ
    names = {f.name for f in fields(Settings)}
    values: dict[str, object] = {}
    for path in config_files(config_file, env):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(
                f"cannot read the configuration file: {exc.strerror or exc}", path=path
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"the configuration file is not TOML: {exc}", path=path) from None
        for key, raw in data.items():
            if key not in names:
                raise UsageError(f"unknown setting {key!r}", path=path)
            values[key] = _coerce(key, raw)
    for name in names:
        raw_env = env.get(_ENV_PREFIX + name.upper())
        if raw_env is not None:
            values[name] = _coerce(name, raw_env)
    for name, raw in (overrides or {}).items():
        if raw is not None:
            values[name] = _coerce(name, raw)
    return replace(Settings(), **values)  # type: ignore[arg-type]
