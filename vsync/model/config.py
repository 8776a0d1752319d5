"""The repository config file (git-config syntax, read and written with dulwich)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from vsync.errors import UnsupportedFormat, UsageError

if TYPE_CHECKING:
    from dulwich.config import ConfigFile

    from vsync.store.chunker import ChunkerParams

FORMAT_VERSION = 1
DEFAULT_COMPRESSION_LEVEL = 3
DEFAULT_IDLE_TIMEOUT = 60.0  # seconds; rsync --timeout and ssh ServerAlive* are off by default
IDLE_TIMEOUT_ENV = "VSYNC_IDLE_TIMEOUT"
# The messages of the commits sync and watch make themselves (``commit.autoMessage``
# replaces both): {host}, {date} and {command} are filled in.
AUTO_MESSAGES = {"sync": "sync from {host} at {date}", "watch": "watch: {host} at {date}"}
AUTO_MESSAGE_LIMIT = 4096  # characters of the template


class Identity(NamedTuple):
    name: str
    email: str
    host: str

    def git_ident(self) -> bytes:
        return f"{self.name} <{self.email}>".encode()


class RepoConfig:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._cf: ConfigFile | None = None
        try:
            self._data: bytes | None = path.read_bytes()
        except FileNotFoundError:
            self._data = None
        # Opening a repository reads its config, so every command does, a clean status
        # included: a file in the plain shape dulwich writes is read here, without
        # loading dulwich (and logging); any other shape, and every change, by dulwich.
        self._plain = read_plain(self._data) if self._data is not None else {}
        if self._plain is None:
            self._cf = self._dulwich()

    @property
    def cf(self) -> ConfigFile:
        """The file as dulwich reads it (parsed on first use)."""
        if self._cf is None:
            self._cf = self._dulwich()
        return self._cf

    def _dulwich(self) -> ConfigFile:
        from io import BytesIO

        from dulwich.config import ConfigFile

        if self._data is None:
            cf = ConfigFile()
        else:
            try:
                cf = ConfigFile.from_file(BytesIO(self._data))
            except (ValueError, UnicodeDecodeError) as exc:
                raise UnsupportedFormat(f"cannot parse {self.path}: {exc}") from None
        cf.path = str(self.path)
        self._plain = None  # from now on dulwich's view is the one (it may change)
        return cf

    def get(self, section: tuple[str, ...], key: str, default: str | None = None) -> str | None:
        if self._plain is not None:
            return plain_get(self._plain, section, key, default)
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

    def portability_strict(self) -> bool:
        """``portability.strict``: commit refuses names that cannot exist on Windows or
        macOS (see :mod:`vsync.model.portability`) instead of warning."""
        from vsync.model.portability import strict

        value = self.get(("portability",), "strict")
        return strict(None if value is None else value.lower(), str(self.path))

    @property
    def trust_git_folders(self) -> bool:
        """``safety.trustGitFolders``: write incoming git configs and hooks (see holdback)."""
        value = (self.get(("safety",), "trustGitFolders") or "false").lower()
        if value not in ("true", "false"):  # as dulwich's get_boolean
            raise UsageError(f"{self.path}: safety.trustGitFolders must be true or false")
        return value == "true"

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
        host = os.environ.get("VSYNC_HOST") or _hostname()
        name = os.environ.get("VSYNC_AUTHOR_NAME") or self.get(("user",), "name")
        email = os.environ.get("VSYNC_AUTHOR_EMAIL") or self.get(("user",), "email")
        if not name or not email:
            try:
                from dulwich.config import StackedConfig

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


def _hostname() -> str:
    """The machine's name, as ``socket.gethostname`` gives it (the same system call on
    POSIX), without loading socket for it (commit asks for it on every run)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    import socket

    return socket.gethostname()


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


# The plain shape of a config file, as dulwich writes one: section headers
# ``[name]`` or ``[name "sub"]`` and ``key = value`` lines whose values need no
# quoting or escapes. What read_plain accepts, dulwich reads the same way
# (tests/test_config.py checks both on generated files).
_PLAIN_SECTION = re.compile(rb'\[([A-Za-z0-9-]+)(?: "([^"\\\n]*)")?\]')
_PLAIN_ENTRY = re.compile(rb"([A-Za-z][A-Za-z0-9-]*)[ \t]*=[ \t]*([^\"\\#;\x00-\x1f\x7f]*)")

Plain = dict[tuple[tuple[str, ...], str], str]


def read_plain(data: bytes) -> Plain | None:
    """The settings of a config file in the plain shape, keyed by (section with its
    name lower-cased, key lower-cased); None if any line is of another shape."""
    out: Plain = {}
    section: tuple[str, ...] | None = None
    try:
        for raw in data.split(b"\n"):
            line = raw.strip(b" \t\r")
            if not line or line[:1] in (b"#", b";"):
                continue
            m = _PLAIN_SECTION.fullmatch(line)
            if m is not None:
                name = m.group(1).decode().lower()
                section = (name,) if m.group(2) is None else (name, m.group(2).decode("utf-8"))
                continue
            m = _PLAIN_ENTRY.fullmatch(line)
            if m is None or section is None:
                return None
            out[(section, m.group(1).decode().lower())] = m.group(2).decode("utf-8").rstrip(" ")
    except UnicodeDecodeError:
        return None
    return out


def plain_get(plain: Plain, section: tuple[str, ...], key: str, default: str | None) -> str | None:
    """``key`` of ``section`` as dulwich's ``Config.get`` finds it: a subsection's key,
    else the same key of the section without its subsection."""
    name, key = (section[0].lower(), *section[1:]), key.lower()
    value = plain.get((name, key))
    if value is None and len(name) > 1:
        value = plain.get(((name[0],), key))
    return default if value is None else value
