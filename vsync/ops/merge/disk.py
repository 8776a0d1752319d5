"""The working-folder side of merging: what a path holds now.

Shared by apply, abort and resolve. Reading a path gives its flat-map entry
(hashed through the stat cache) and its stat key, so a later write can check
that nothing changed in between. All writing goes through
:mod:`vsync.ops.folder_writer`; :func:`put` is its unchecked single action.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vsync.model.folder_scan import MODE_LINK, git_mode_of
from vsync.model.gitdb import blob_id
from vsync.model.holdback import Holds
from vsync.model.ingest import Ingester
from vsync.model.paths import ancestors
from vsync.model.repository import Repository
from vsync.model.snapshot import Entry
from vsync.model.stable_read import content_id_if_unchanged
from vsync.model.statcache import StatCache, StatKey, stat_key
from vsync.ops.folder_writer import ANYTHING, FolderWriter, Remove, Write, lstat_or_none
from vsync.ops.folder_writer import disk_path as disk_path  # also the conflict shell's


@dataclass(frozen=True)
class OnDisk:
    """What a repository path is in the working folder right now."""

    kind: str  # "absent" | "file" (file or symlink) | "dir" | "blocked" | "other"
    entry: Entry | None = None  # for "file": its mode and content id
    key: StatKey | None = None  # for "file": its stat when read
    blocker: str = ""  # for "blocked": the parent that is not a folder


def read_path(root: Path, path: str, cache: StatCache, ingester: Ingester, holds: Holds) -> OnDisk:
    """The path's current state; a file is hashed unless the stat cache knows it.

    A held-back path (:mod:`vsync.model.holdback`) still as its hold left it
    reads as the tree's entry it stands for.
    """
    for folder in ancestors(path):
        st = lstat_or_none(disk_path(root, folder))
        if st is None:
            held = holds.effective(path, None)
            return OnDisk("absent") if held is None else OnDisk("file", held, None)
        if not stat.S_ISDIR(st.st_mode):
            return OnDisk("blocked", blocker=folder)
    disk = disk_path(root, path)
    st = lstat_or_none(disk)
    held = holds.effective(path, st)
    if held is not None:
        return OnDisk("file", held, None if st is None else stat_key(st))
    if st is None:
        return OnDisk("absent")
    if stat.S_ISDIR(st.st_mode):
        return OnDisk("dir")
    if stat.S_ISLNK(st.st_mode):
        target = os.fsencode(os.readlink(disk))
        return OnDisk("file", (MODE_LINK, blob_id(target)), stat_key(st))
    if not stat.S_ISREG(st.st_mode):
        return OnDisk("other")
    oid = cache.lookup(path, st)
    if oid is None:
        oid = content_id_if_unchanged(disk, st, ingester)
        if oid is None:
            return OnDisk("other")  # kept changing while read
    return OnDisk("file", (git_mode_of(st), oid), stat_key(st))


def files_under(root: Path, folder: str) -> list[str]:
    """Every non-folder under ``folder`` (ignored files too), as repository paths."""
    out: list[str] = []
    top = disk_path(root, folder)
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        prefix = folder if rel == "." else f"{folder}/{rel.replace(os.sep, '/')}"
        for name in filenames:
            out.append(f"{prefix}/{name}")
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                out.append(f"{prefix}/{name}")
    return sorted(out)


def put(repo: Repository, path: str, entry: Entry | None, cache: StatCache) -> None:
    """Put ``entry`` at ``path`` (None: remove the file or symlink there) whatever the
    folder holds there now (no plan to check)."""
    action = Write(path, entry, ANYTHING) if entry is not None else Remove(path, ANYTHING)
    with FolderWriter(repo, cache=cache) as writer:
        writer.apply([action], prune_emptied=False)
