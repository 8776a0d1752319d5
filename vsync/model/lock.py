"""The repository lock: an flock on ``lock``, shared for readers, exclusive for writers."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from vsync.errors import LockTimeout


class RepoLock:
    def __init__(self, path: Path, exclusive: bool, timeout: float) -> None:
        self.path = path
        self.exclusive = exclusive
        self.timeout = timeout
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
                    raise LockTimeout(
                        f"another vsync process holds the repository lock ({self.path}); "
                        "wait for it to finish and try again"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RepoLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
