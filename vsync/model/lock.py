"""The repository lock: an flock on ``lock``, shared for readers, exclusive for writers.

An flock goes with the process that holds it: the kernel releases it when
that process dies, so a repository lock is never stale. To say *who* holds
it, an exclusive holder writes one line into the lock file once it has the
lock, ``<pid> <command line>`` (docs/format.md, "The lock file"), and
empties the file again before it lets go. A command that cannot get the
lock within its timeout reads that line and names the holder, if that
process is still alive: a line left by a process that died is ignored.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

from vsync.errors import LockTimeout

LOCK_TIMEOUT = float(os.environ.get("VSYNC_LOCK_TIMEOUT", "60"))
_RECORD_MAX = 4096


class RepoLock:
    """``record``: an exclusive holder writes its pid and command into the file."""

    def __init__(self, path: Path, exclusive: bool, timeout: float, record: bool = True) -> None:
        self.path = path
        self.exclusive = exclusive
        self.timeout = timeout
        self.record = record and exclusive
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        op = (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, op)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(self._busy_message()) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        self._fd = fd
        if self.record:
            _write_record(fd, f"{os.getpid()} {command_line()}\n".encode())

    def _busy_message(self) -> str:
        held = holder(self.path)
        who = f" (pid {held[0]}: {held[1]})" if held is not None else ""
        return (
            f"another vsync process{who} holds the repository lock ({self.path}); "
            "wait for it to finish and try again"
        )

    def release(self) -> None:
        if self._fd is not None:
            if self.record:
                _write_record(self._fd, b"")
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RepoLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def command_line() -> str:
    """This process's command as a user would type it: ``vsync push origin``."""
    words = ["vsync", *sys.argv[1:]]
    text = " ".join(words)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:200]


def holder(path: Path) -> tuple[int, str] | None:
    """``(pid, command)`` the lock file at ``path`` records, if that process is alive."""
    try:
        with open(path, "rb") as f:
            line = f.read(_RECORD_MAX).split(b"\n", 1)[0].decode("utf-8", "replace")
    except OSError:
        return None
    pid_text, _sep, command = line.partition(" ")
    if not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid <= 0 or pid == os.getpid() or not _alive(pid):
        return None
    return pid, "".join(ch if ch.isprintable() else "?" for ch in command) or "?"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _write_record(fd: int, data: bytes) -> None:
    """Replace the lock file's content; a full disk or a read-only file only costs
    the record (a command must never fail for it)."""
    try:
        os.ftruncate(fd, 0)
        if data:
            os.pwrite(fd, data, 0)
    except OSError:
        pass
