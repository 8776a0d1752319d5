"""Whether changed files are still being written: open for writing by a process
(Linux: ``/proc/*/fd`` and ``fdinfo``), or still growing between two looks."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")


def open_for_writing(root: Path, paths: Iterable[str]) -> set[str]:
    """The paths (relative to ``root``) some other process holds open for writing.

    Empty where the platform does not tell (no ``/proc``). Processes this user
    cannot inspect are passed over, as are descriptors that close meanwhile."""
    base = os.path.realpath(root)
    targets = {os.path.join(base, rel): rel for rel in paths}
    found: set[str] = set()
    if not targets or not (PROC / "self" / "fd").is_dir():
        return found
    me = str(os.getpid())
    try:
        pids = [e for e in os.listdir(PROC) if e.isdigit() and e != me]
    except OSError:
        return found
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            rel = targets.get(target)
            if rel is not None and rel not in found and _writing(pid, fd):
                found.add(rel)
    return found


def _writing(pid: str, fd: str) -> bool:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"flags:"):
                    flags = int(line.split()[1], 8)
                    return flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    except (OSError, ValueError, IndexError):
        return False
    return False


def sizes(root: Path, paths: Iterable[str]) -> dict[str, int]:
    """Each path's size and mtime folded into one number (-1: gone), to compare two looks."""
    out = {}
    for rel in paths:
        try:
            st = os.lstat(root / rel)
        except OSError:
            out[rel] = -1
            continue
        out[rel] = st.st_size * 1_000_003 + st.st_mtime_ns
    return out
