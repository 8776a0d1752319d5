"""Permission bits of the files vsync writes into the working folder: the user's umask.

A file is created ``0o666 & ~umask`` and an executable one ``0o777 & ~umask``,
as git and every other tool do, with the owner's read and write bits (and
execute, for an executable) always kept, so vsync can read back what it wrote
and the exec bit it records survives any umask.

The umask is process-wide and can only be read by setting it. It is read
once: from ``/proc/self/status`` where the kernel reports it (Linux 4.7 and
later) without changing anything, else by setting and restoring it, which
the CLI does at start-up (:func:`load_umask`), before any thread exists.
"""

from __future__ import annotations

import os

_umask: int | None = None


def _read_umask() -> int:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8) & 0o777
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def load_umask() -> int:
    """The process's umask, read on the first call (call it at start-up)."""
    global _umask
    if _umask is None:
        _umask = _read_umask()
    return _umask


def file_mode(executable: bool) -> int:
    """The permission bits for a working file vsync creates or chmods."""
    if executable:
        return (0o777 & ~load_umask()) | 0o700
    return (0o666 & ~load_umask()) | 0o600
