"""The one exception tree of vsync.

Every error a user can cause derives from :class:`VsyncError` and carries the
exit code the CLI returns for it::

    VsyncError (exit 2 unless a subclass says otherwise)
    +-- UsageError                 2  bad arguments or input
    |   +-- NotARepository         2  no .vsync/ here or above
    |   +-- UnknownRevision        2  a revision that names nothing
    |   +-- PathNotInRevision      2  a path the revision does not hold
    |   +-- UnsafePath             2  a path that would leave the working tree
    +-- StoppedError               1  ran, but stopped on something to act on
    |   +-- UncommittedChanges     1  checkout would overwrite local edits
    |   +-- HookFailed             1  a hook exited non-zero
    |   +-- LockTimeout            1  another vsync holds the repository lock
    |   +-- MassChangeRefused      1  too many tracked files would go (vsync.ops.mass_change)
    |   +-- EnvironmentFailure     1  the OS refused (permissions, I/O errors)
    |       +-- DiskFull           1  no space left (ENOSPC, EDQUOT, SQLite's SQLITE_FULL)
    +-- DamagedRepository          3  corrupt or unreadable repository data
        +-- ChunkCorrupt           3  a chunk whose bytes do not match its id
        +-- ChunkMissing           3  a chunk the index does not know
        +-- GitObjectDamaged       3  a git object missing, unreadable or malformed
        +-- UnsupportedFormat      3  written by a newer vsync

Bugs are any other exception; the CLI reports them in one line too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

# Set by the CLI: attaches its stderr handler to the "vsync" logger. Called by
# notices() the first time a layer reports something, so a command that reports
# nothing never loads logging (a clean status is mostly start-up).
attach_notice_handler: Callable[[logging.Logger], None] | None = None


def notices() -> logging.Logger:
    """The logger through which the layers below the CLI report what they did without
    stopping (a stale lock file removed): one ``vsync: warning:`` line each."""
    import logging

    log = logging.getLogger("vsync")
    if not log.handlers and attach_notice_handler is not None:
        attach_notice_handler(log)
    return log


class VsyncError(Exception):
    """Base of every error a user can meet; ``exit_code`` is what the CLI returns."""

    exit_code = 2

    def lines(self) -> list[str]:
        """What the CLI prints, one ``vsync: error:`` line each (one, but for an error
        about several paths that names each)."""
        return [str(self)]


class UsageError(VsyncError):
    """Bad usage or bad input."""

    exit_code = 2


class NotARepository(UsageError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"not a vsync repository (or any parent up to /): {path}; run 'vsync init' first"
        )


class UnknownRevision(UsageError):
    def __init__(self, rev: str, detail: str = "") -> None:
        msg = f"unknown revision '{rev}'"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class PathNotInRevision(UsageError):
    def __init__(self, path: str, rev: str) -> None:
        super().__init__(f"path '{path}' does not exist in revision {rev}")


class UnsafePath(UsageError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"refusing unsafe path {path!r}: {reason}")


class StoppedError(VsyncError):
    """The command ran but stopped on something the user must act on."""

    exit_code = 1


class UncommittedChanges(StoppedError):
    SHOWN = 3

    @classmethod
    def naming(cls, paths: list[str], what: str, advice: str) -> UncommittedChanges:
        """ "<what>: 'a', 'b', 'c' (and N more); nothing was changed; <advice>"."""
        names = ", ".join(f"'{p}'" for p in paths[: cls.SHOWN])
        more = f" (and {len(paths) - cls.SHOWN} more)" if len(paths) > cls.SHOWN else ""
        return cls(f"{what}: {names}{more}; nothing was changed; {advice}")

    def advising(self, advice: str, before: str = "") -> UncommittedChanges:
        """This refusal with other advice after "nothing was changed" (and ``before`` it)."""
        what = str(self).split("; nothing was changed")[0]
        return UncommittedChanges(f"{before}{what}; nothing was changed; {advice}")


class HookFailed(StoppedError):
    pass


class LockTimeout(StoppedError):
    pass


class EnvironmentFailure(StoppedError):
    """The operating system refused an operation (disk full, permission denied)."""


class DiskFull(EnvironmentFailure):
    """No space left where vsync was writing: never damage (exit 1, nothing set aside).

    ``writing`` names what was being written; ``needed`` (bytes, when the
    command knows it) and ``free`` (bytes free there, when known) complete
    the message. What a full disk interrupted was never half-written: the
    ref moves last, temporary files are removed, so running the command again
    once space is freed completes it.
    """

    def __init__(self, writing: str, needed: int | None = None, free: int | None = None) -> None:
        msg = f"the disk is full: could not write {writing}"
        if needed is not None:
            have = f", {_size(free)} is free" if free is not None else ""
            msg += f" (this needs about {_size(needed)} free{have})"
        elif free is not None:
            msg += f" ({_size(free)} free there)"
        super().__init__(
            msg + "; nothing was half-written and the repository is intact: free some space "
            "and run the command again"
        )


def _size(n: int) -> str:
    """``n`` bytes, briefly: "812 B", "3.4 MiB"."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


FSCK_HINT = "run 'vsync fsck'"


class DamagedRepository(VsyncError):
    """Corrupt or unreadable repository data."""

    exit_code = 3


class ChunkCorrupt(DamagedRepository):
    def __init__(self, chunk_id: bytes, where: str) -> None:
        super().__init__(
            f"chunk {chunk_id.hex()[:16]} is damaged ({where}); "
            "its bytes do not match its BLAKE3 id"
        )
        self.where = where


class ChunkMissing(DamagedRepository):
    def __init__(self, chunk_id: bytes) -> None:
        super().__init__(f"chunk {chunk_id.hex()[:16]} is missing from the chunk store")


class GitObjectDamaged(DamagedRepository):
    """A git object that history needs is missing, unreadable, malformed or of the wrong type.

    ``problem`` completes "git <what> <id> ...", e.g. "is missing" or
    "cannot be read (zlib.error: ...)"; fsck reports it per object.
    """

    def __init__(self, oid: bytes, what: str, problem: str) -> None:
        name = oid.decode("ascii", "replace")
        super().__init__(f"git {what} {name} {problem}; {FSCK_HINT}")
        self.oid = oid
        self.problem = problem


class UnsupportedFormat(DamagedRepository):
    pass
