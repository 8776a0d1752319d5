"""One watcher per folder: ``.vsync/watch.lock``, held with flock while it runs.

The kernel releases the lock when the process ends however it ends (a SIGKILL
too), so a stale file never blocks the next watcher; the pid written in it only
names the holder in the refusal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from vsync.errors import StoppedError

LOCK_NAME = "watch.lock"


class WatchRunning(StoppedError):
    """Another ``vsync watch`` holds the folder (exit 1)."""

    def __init__(self, folder: Path, holder: str) -> None:
        who = f" (pid {holder})" if holder else ""
        super().__init__(
            f"another 'vsync watch' is already running on {folder}{who}; stop it first"
        )


class WatchLock:
    def __init__(self, control: Path, folder: Path) -> None:
        self.path = control / LOCK_NAME
        self.folder = folder
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise WatchRunning(self.folder, holder if holder.isdigit() else "") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> WatchLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
