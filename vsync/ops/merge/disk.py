"""The working-folder side of merging: what a path holds now, and writing entries.

Shared by apply, abort and resolve. Reading a path gives its flat-map entry
(hashed through the stat cache) and its stat key, so a later write can check
that nothing changed in between. Writes are atomic and verified
(:mod:`vsync.model.materialize`) and recorded in the stat cache.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from vsync.errors import UncommittedChanges
from vsync.model.filemode import file_mode
from vsync.model.folder_scan import MODE_EXEC, MODE_LINK, git_mode_of
from vsync.model.gitdb import blob_id
from vsync.model.holdback import Holds
from vsync.model.ingest import Ingester
from vsync.model.materialize import write_file, write_symlink
from vsync.model.repository import Repository
from vsync.model.snapshot import Entry
from vsync.model.stable_read import content_id_if_unchanged
from vsync.model.statcache import StatCache, stat_key

StatKey = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class OnDisk:
    """What a repository path is in the working folder right now."""

    kind: str  # "absent" | "file" (file or symlink) | "dir" | "blocked" | "other"
    entry: Entry | None = None  # for "file": its mode and content id
    key: StatKey | None = None  # for "file": its stat when read
    blocker: str = ""  # for "blocked": the parent that is not a folder


def disk_path(root: Path, path: str) -> str:
    return os.path.join(root, *path.split("/"))


def lstat_or_none(disk: str) -> os.stat_result | None:
    try:
        return os.lstat(disk)
    except (FileNotFoundError, NotADirectoryError):
        return None


def ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


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


def changed_since(root: Path, path: str, key: StatKey | None) -> bool:
    """True if ``path`` is no longer what was read (``key`` None: was absent)."""
    st = lstat_or_none(disk_path(root, path))
    if st is None or stat.S_ISDIR(st.st_mode):
        return key is not None
    return key is None or stat_key(st) != key


def make_parents(root: Path, path: str) -> list[str]:
    """Create missing parent folders of ``path``; returns the ones created."""
    made: list[str] = []
    for folder in ancestors(path):
        disk = disk_path(root, folder)
        st = lstat_or_none(disk)
        if st is None:
            os.mkdir(disk)
            made.append(folder)
        elif not stat.S_ISDIR(st.st_mode):
            raise UncommittedChanges(
                f"'{folder}' is in the way of '{path}' (it is not a folder); "
                "move it away and run the command again"
            )
    return made


def write_entry(repo: Repository, path: str, entry: Entry, cache: StatCache) -> None:
    """Atomically put ``entry`` (stored content) at ``path``; records it in the stat cache.

    What the holdback refuses is not written (or written without its exec bit)
    and recorded as held (:mod:`vsync.model.holdback`).
    """
    root = repo.require_worktree()
    holds = repo.holds
    disk = disk_path(root, path)
    how = holds.decide(path, entry[0])
    if how is None:
        holds.settle(path, entry, None, lstat_or_none(disk))
        holds.save()
        return
    make_parents(root, path)
    st = lstat_or_none(disk)
    if st is not None and stat.S_ISDIR(st.st_mode):
        try:
            os.rmdir(disk)
        except OSError:
            raise UncommittedChanges(
                f"the folder '{path}' is in the way and not empty; move it away and retry"
            ) from None
    mode, oid = entry
    hashed_at = time.time_ns()
    if mode == MODE_LINK:
        written = write_symlink(repo.gitdb.link_target(oid), Path(disk))
        cache.forget(path)
    else:
        manifest = repo.gitdb.manifest(oid, f"manifest of '{path}'")
        written = write_file(repo.chunks, manifest, Path(disk), how)
        cache.record(path, written, oid, hashed_at)
    holds.settle(path, entry, how, written)
    holds.save()


def set_exec(repo: Repository, path: str, entry: Entry, cache: StatCache) -> None:
    """Give the file at ``path`` the exec bit of ``entry`` (as the holdback allows)."""
    holds = repo.holds
    disk = disk_path(repo.require_worktree(), path)
    how = holds.decide(path, entry[0])
    if how is not None:
        hashed_at = time.time_ns()
        os.chmod(disk, file_mode(how == MODE_EXEC))
        cache.record(path, os.lstat(disk), entry[1], hashed_at)
    holds.settle(path, entry, how, lstat_or_none(disk))
    holds.save()


def remove_file(root: Path, path: str, cache: StatCache, holds: Holds) -> bool:
    """Remove the file or symlink at ``path`` if there is one; True if removed."""
    disk = disk_path(root, path)
    st = lstat_or_none(disk)
    cache.forget(path)
    if path in holds.records:
        holds.release(path)
        holds.save()
    if st is None or stat.S_ISDIR(st.st_mode):
        return False
    os.unlink(disk)
    return True


def prune(root: Path, folders: set[str]) -> None:
    """Remove these folders, and parents, while they are empty (deepest first)."""
    for folder in sorted(folders, key=lambda f: f.count("/"), reverse=True):
        f = folder
        while f:
            try:
                os.rmdir(disk_path(root, f))
            except OSError:
                break
            f = f.rpartition("/")[0]
