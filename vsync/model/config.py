"""The repository config file (git-config syntax, read and written with dulwich)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dulwich.config import ConfigFile, StackedConfig

from vsync.errors import UnsupportedFormat, UsageError

if TYPE_CHECKING:
    from vsync.store.chunker import ChunkerParams

FORMAT_VERSION = 1
DEFAULT_COMPRESSION_LEVEL = 3
DEFAULT_IDLE_TIMEOUT = 60.0  # seconds; rsync --timeout and ssh ServerAlive* are off by default
IDLE_TIMEOUT_ENV = "VSYNC_IDLE_TIMEOUT"
# The messages of the commits sync and watch make themselves (``commit.autoMessage``
# replaces both): {host}, {date} and {command} are filled in.
AUTO_MESSAGES = {"sync": "sync from {host} at {date}", "watch": "watch: {host} at {date}"}
AUTO_MESSAGE_LIMIT = 4096  # characters of the template


@dataclass(frozen=True)
class Identity:
    name: str
    email: str
    host: str

    def git_ident(self) -> bytes:
        return f"{self.name} <{self.email}>".encode()


class RepoConfig:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.cf = ConfigFile.from_path(str(path))
        except FileNotFoundError:
            self.cf = ConfigFile()
        except (ValueError, UnicodeDecodeError) as exc:
            raise UnsupportedFormat(f"cannot parse {path}: {exc}") from None

    def get(self, section: tuple[str, ...], key: str, default: str | None = None) -> str | None:
        try:
            return self.cf.get(tuple(s.encode() for s in section), key.encode()).decode()
        except KeyError:
            return default

    def set(self, section: tuple[str, ...], key: str, value: str | int | bool) -> None:
        if isinstance(value, bool):
            value = "true" if value else "false"
        self.cf.set(tuple(s.encode() for s in section), key.encode(), str(value).encode())

    def remove_section(self, section: tuple[str, ...]) -> bool:
        key = tuple(s.encode() for s in section)
        if key in self.cf:
            del self.cf[key]
            return True
        return False

    def sections(self) -> list[tuple[str, ...]]:
        return [tuple(p.decode() for p in s) for s in self.cf.sections()]

    def save(self) -> None:
        # GitFile: lock file, fsync, rename; one left by a killed process is broken
        from vsync.model.gitdb.lockfiles import write_locked

        write_locked(self.path.parent, lambda: self.cf.write_to_path(str(self.path)))

    # -- typed views -----------------------------------------------------------

    def check_format(self) -> None:
        raw = self.get(("vsync",), "format")
        if raw is None:
            raise UnsupportedFormat(f"{self.path} has no vsync format version")
        try:
            version = int(raw)
        except ValueError:
            raise UnsupportedFormat(f"{self.path}: bad format version {raw!r}") from None
        if version > FORMAT_VERSION:
            raise UnsupportedFormat(
                f"repository format {version} is newer than this vsync reads "
                f"({FORMAT_VERSION}); upgrade vsync"
            )

    @property
    def bare(self) -> bool:
        return self.get(("vsync",), "bare", "false") == "true"

    @property
    def trust_git_folders(self) -> bool:
        """``safety.trustGitFolders``: write incoming git configs and hooks (see holdback)."""
        try:
            return bool(self.cf.get_boolean((b"safety",), b"trustGitFolders", False))
        except ValueError:
            raise UsageError(f"{self.path}: safety.trustGitFolders must be true or false") from None

    def chunker_params(self) -> ChunkerParams:
        """The chunking section, checked: a bad value is a UsageError naming the file."""
        from vsync.store.chunker import ALGORITHM, ChunkerParams

        algo = self.get(("chunking",), "algorithm", ALGORITHM)
        if algo != ALGORITHM:
            raise UnsupportedFormat(f"unknown chunking algorithm {algo!r}")
        d = ChunkerParams()
        try:
            params = ChunkerParams(
                min_size=int(self.get(("chunking",), "minSize", str(d.min_size)) or d.min_size),
                avg_size=int(self.get(("chunking",), "avgSize", str(d.avg_size)) or d.avg_size),
                max_size=int(self.get(("chunking",), "maxSize", str(d.max_size)) or d.max_size),
                normalization=int(
                    self.get(("chunking",), "normalization", str(d.normalization)) or 1
                ),
            )
            params.validate()
        except ValueError as exc:
            raise UsageError(f"{self.path}: bad [chunking] settings: {exc}") from None
        return params

    def auto_message(self, command: str, host: str, date: str) -> str:
        """The message of a commit ``command`` (sync, watch) makes by itself:
        ``commit.autoMessage`` if set, else the default of :data:`AUTO_MESSAGES`, with
        ``{host}``, ``{date}`` and ``{command}`` filled in (plain text replacement)."""
        template = self.get(("commit",), "autoMessage")
        where = f"{self.path}: commit.autoMessage"
        if template is None:
            template = AUTO_MESSAGES[command]
        elif len(template) > AUTO_MESSAGE_LIMIT:
            raise UsageError(f"{where} is longer than {AUTO_MESSAGE_LIMIT} characters")
        message = template
        for token, value in (("{host}", host), ("{date}", date), ("{command}", command)):
            message = message.replace(token, value)
        if not message.strip():
            raise UsageError(f"{where} is empty; set a message or remove the key")
        return message

    def compression_level(self) -> int:
        return int(self.get(("compression",), "level", str(DEFAULT_COMPRESSION_LEVEL)) or 3)

    def identity(self) -> Identity:
        import socket  # (here: status and commit never ask for the host)

        host = os.environ.get("VSYNC_HOST") or socket.gethostname()
        name = os.environ.get("VSYNC_AUTHOR_NAME") or self.get(("user",), "name")
        email = os.environ.get("VSYNC_AUTHOR_EMAIL") or self.get(("user",), "email")
        if not name or not email:
            try:
                user_cfg = StackedConfig.default()
                name = name or user_cfg.get((b"user",), b"name").decode()
                email = email or user_cfg.get((b"user",), b"email").decode()
            except (KeyError, OSError, UnicodeDecodeError):
                pass
        login = _login()
        return Identity(name or login, email or f"{login}@{host}", host)


def idle_timeout(cfg: RepoConfig | None = None) -> float | None:
    """Seconds a transfer waits for its peer to send a byte (or take one) before it
    stops: ``VSYNC_IDLE_TIMEOUT``, else ``transfer.idleTimeout`` of ``cfg``, else 60.
    0 waits for ever (None). The one place that reads the setting."""
    raw = os.environ.get(IDLE_TIMEOUT_ENV)
    where = IDLE_TIMEOUT_ENV
    if raw is None and cfg is not None:
        raw = cfg.get(("transfer",), "idleTimeout")
        where = f"{cfg.path}: transfer.idleTimeout"
    if raw is None:
        return DEFAULT_IDLE_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{where} must be a number of seconds (0: no limit), not {raw!r}")
    return value or None


def _login() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):
        return "vsync"


def write_new_config(path: Path, bare: bool, params: ChunkerParams, level: int) -> None:
    from vsync.store.chunker import ALGORITHM

    cfg = RepoConfig(path)
    cfg.set(("vsync",), "format", FORMAT_VERSION)
    cfg.set(("vsync",), "bare", bare)
    cfg.set(("chunking",), "algorithm", ALGORITHM)
    cfg.set(("chunking",), "minSize", params.min_size)
    cfg.set(("chunking",), "avgSize", params.avg_size)
    cfg.set(("chunking",), "maxSize", params.max_size)
    cfg.set(("chunking",), "normalization", params.normalization)
    cfg.set(("compression",), "algorithm", "zstd")
    cfg.set(("compression",), "level", level)
    cfg.save()


def check_remote_name(name: str) -> None:
    if not name or any(c in name for c in ' \t\n"\\/[]') or name.startswith("-"):
        raise UsageError(f"invalid remote name {name!r}")
