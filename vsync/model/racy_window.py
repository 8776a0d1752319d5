"""How long after its last change a working file's stat cannot yet vouch for its content.

A file hashed at ``h`` could be written again right after, in the same timestamp
tick, without its ``lstat`` changing (git's "racily clean" problem). How long that
tick is depends on who stamps the file:

- a local Linux file system that keeps nanosecond stamps (ext4 with large inodes,
  XFS, btrfs, tmpfs, ...) stamps from the kernel's coarse clock, which lags the clock
  ``time.time_ns()`` reads by at most one scheduler tick (1-10 ms). A write after
  ``h`` is stamped no earlier than ``h`` less that tick; :data:`FINE_NS` (100 ms) is ten
  times the longest tick;
- anything else is given :data:`COARSE_NS` (2 s): FAT's 2-second stamps on a USB drive,
  ext3's or a small ext4's whole seconds, and file systems whose server stamps files
  with its own clock (NFS, SMB, FUSE), whose skew nothing here can measure.

The fine window applies only where everything below the working folder is one local
file system of the kinds in :data:`FINE_FILESYSTEMS` (a mount point inside the folder
gets the coarse window for all of it), and per file only when its stamps have a
sub-second part (:func:`window_for`): a file system that keeps whole seconds is caught
by its stamps even when its type is on the list.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache

COARSE_NS = 2_000_000_000
FINE_NS = 100_000_000
SECOND_NS = 1_000_000_000
MOUNTINFO = "/proc/self/mountinfo"

# Linux file systems stamped by the local kernel's clock in nanoseconds (given large
# enough inodes, which the per-file check below covers).
FINE_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs", "zfs", "bcachefs", "overlay"}
)


def window_for(st_mtime_ns: int, st_ctime_ns: int, folder_ns: int) -> int:
    """The window for one file in a folder whose window is ``folder_ns``: the coarse
    one when either stamp has no sub-second part (a file system keeping whole seconds,
    or one stamp in a billion by chance, for which the coarse window is merely slow)."""
    if folder_ns < COARSE_NS and (st_mtime_ns % SECOND_NS == 0 or st_ctime_ns % SECOND_NS == 0):
        return COARSE_NS
    return folder_ns


@lru_cache(maxsize=8)
def folder_window_ns(folder: str) -> int:
    """The racy window for the working folder at ``folder`` (see the module docstring)."""
    if not sys.platform.startswith("linux"):
        return COARSE_NS
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
        fstype = folder_filesystem(text, os.path.realpath(folder))
    except OSError:
        return COARSE_NS
    return FINE_NS if fstype in FINE_FILESYSTEMS else COARSE_NS


def folder_filesystem(mountinfo: str, folder: str) -> str | None:
    """The type of the one file system holding ``folder`` (an absolute real path) and
    everything below it, from the text of ``/proc/self/mountinfo``; None when that
    cannot be told or when another file system is mounted inside the folder."""
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        try:
            dash = fields.index("-", 6)
            point, fstype = _unescape(fields[4]), fields[dash + 1]
        except (ValueError, IndexError):
            return None  # a line this parser does not know: make no claim
        if _inside(point, folder) and point != folder.rstrip("/"):
            return None  # something is mounted below the folder
        if _inside(folder, point) and (best is None or len(point) >= best[0]):
            best = (len(point), fstype)  # later lines mount over earlier ones
    return None if best is None else best[1]


def _inside(path: str, top: str) -> bool:
    top = top.rstrip("/")
    return path == top or path.startswith(top + "/") or top == ""


def _unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash are written as octal escapes."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
