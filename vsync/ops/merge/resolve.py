"""Settling a merge: ``vsync resolve`` per path, and ``vsync merge --abort``.

:func:`resolve` with ``how``:

- ``ours`` / ``theirs`` / ``base``: that side's version is written at the
  path (removed if that side has none) and the conflict copy is removed.
  For a file/folder conflict, choosing the side that has the folder removes
  the file's conflict copy; choosing the side that has the file is refused
  (the folder is in the way: move it, rename the copy, then ``--mark``).
- ``both``: a text conflict (both sides text) becomes the merged text with
  ours' lines then theirs' lines in each conflicting region, without markers
  (``git merge-file --union``; the base is empty when it is not a text, as
  for an add/add conflict); for any other conflict the folder stays as it is
  (binary: ours in place and theirs' copy beside it, both kept).
- ``mark``: the path is taken as it now is in the folder.

Whatever resolve replaces or removes that the repository does not already
hold (your edits of a conflicted file, say) is stored first and named in a
``V`` record of the merge state, so nothing is lost.

:func:`abort` puts every path the merge changed back to its backup (the
working folder's content before the merge), removes what the merge created,
and forgets the merge. Uncommitted edits elsewhere were never touched. Edits
made since the merge to the paths it changed are discarded, as with ``git
merge --abort``.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from vsync.errors import StoppedError, UsageError
from vsync.model.folder_scan import MODE_LINK, git_mode_of
from vsync.model.gitdb import blob_object
from vsync.model.ingest import Ingester
from vsync.model.repository import Repository
from vsync.model.snapshot import Entry
from vsync.model.statcache import StatCache
from vsync.ops.folder_writer import (
    ANYTHING,
    FolderWriter,
    Remove,
    Write,
    disk_path,
    lstat_or_none,
)
from vsync.ops.merge.content import RepoContent
from vsync.ops.merge.disk import OnDisk, put, read_path
from vsync.ops.merge.state import MergeState, PathState
from vsync.ops.merge.textmerge import merge_union

HOWS = ("ours", "theirs", "base", "both", "mark")


@dataclass
class ResolveResult:
    resolved: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)


@dataclass
class AbortResult:
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def require_state(repo: Repository) -> MergeState:
    state = MergeState.load(repo)
    if state is None:
        raise UsageError("no merge is in progress")
    return state


# -- abort ------------------------------------------------------------------------------


def abort(repo: Repository) -> AbortResult:
    """Return the working folder exactly to its state before the merge; forget the merge."""
    root = repo.require_worktree()
    result = AbortResult()
    with repo.lock(exclusive=True):
        state = require_state(repo)
        if repo.head() != state.ours:
            raise StoppedError(
                "the branch moved since the merge started (was it committed?); nothing was changed"
            )
        with FolderWriter(repo) as writer:
            gone = [p for p, e in state.backups.items() if e is None]
            gone.sort(key=lambda p: p.count("/"), reverse=True)
            removes = [Remove(p, ANYTHING) for p in gone]
            result.removed = writer.apply(removes, prune_emptied=False)
            for folder in sorted(state.created_dirs, key=lambda f: f.count("/"), reverse=True):
                disk = disk_path(root, folder)
                st = lstat_or_none(disk)
                if st is not None and stat.S_ISDIR(st.st_mode):
                    try:
                        os.rmdir(disk)
                    except OSError:
                        raise StoppedError(
                            f"the folder '{folder}' that the merge created now holds other "
                            "files; move them away and run 'vsync merge --abort' again"
                        ) from None
            backups = sorted((p, e) for p, e in state.backups.items() if e is not None)
            writer.apply([Write(p, e, ANYTHING) for p, e in backups], prune_emptied=False)
            result.restored = [p for p, _e in backups]
        state.clear()
    return result


# -- resolve ----------------------------------------------------------------------------


@contextmanager
def folder_tools(repo: Repository) -> Iterator[tuple[StatCache, Ingester]]:
    """The stat cache and an ingester for reading and storing folder files; flushes the cache."""
    cache = StatCache(repo.control)
    try:
        with repo.ingester() as ing:
            yield cache, ing
    finally:
        cache.flush()


def require_conflict(state: MergeState, path: str) -> PathState:
    s = state.files.get(path)
    if s is None:
        raise UsageError(f"'{path}' is not a conflicted path of this merge")
    return s


def keep_version(
    repo: Repository, state: MergeState, path: str, d: OnDisk, ingester: Ingester
) -> Entry:
    """Make sure file ``d`` read at ``path`` is in the repository and named by the state."""
    assert d.entry is not None
    entry = d.entry
    if not repo.gitdb.has(entry[1]):
        disk = disk_path(repo.require_worktree(), path)
        if entry[0] == MODE_LINK:
            blob = blob_object(os.fsencode(os.readlink(disk)))
            entry = (MODE_LINK, blob.id)
            repo.gitdb.add([blob])
        else:
            with open(disk, "rb") as f:
                entry = _store(repo, f, git_mode_of(os.fstat(f.fileno())), ingester)
    if entry[1] not in state.blob_ids():
        state.kept.append((path, entry))
    return entry


def _keep_folder_version(
    repo: Repository, state: MergeState, path: str, cache: StatCache, ingester: Ingester
) -> None:
    """Store what the folder holds at ``path`` (if a file) and name it in the state."""
    d = read_path(repo.require_worktree(), path, cache, ingester, repo.holds)
    if d.kind == "file":
        keep_version(repo, state, path, d, ingester)


def _both_text(repo: Repository, s: PathState, reader: RepoContent) -> bytes | None:
    if s.ours is None or s.theirs is None or MODE_LINK in (s.ours[0], s.theirs[0]):
        return None
    ours, theirs = reader.text(s.ours), reader.text(s.theirs)
    if ours is None or theirs is None:
        return None
    base = None
    if s.base is not None and s.base[0] != MODE_LINK:
        base = reader.text(s.base)
    return merge_union(base or b"", ours, theirs)


def _store(repo: Repository, f: BinaryIO, mode: int, ingester: Ingester) -> Entry:
    """Store the content read from ``f`` (chunks, then its manifest blob) as ``mode``."""
    with repo.chunks.writer() as w:
        blob = blob_object(ingester.ingest(f, w).to_bytes())
    repo.gitdb.add([blob])
    return mode, blob.id


def _resolve_one(
    repo: Repository,
    state: MergeState,
    s: PathState,
    how: str,
    cache: StatCache,
    ingester: Ingester,
) -> None:
    if how == "mark":
        return
    if how == "both":
        reader = RepoContent(repo, ingester)
        data = _both_text(repo, s, reader)
        if data is None:
            return  # binary, symlink, modify/delete, file/folder: keep the folder as it is
        mode = s.in_place[0] if s.in_place is not None else s.ours[0]  # type: ignore[index]
        entry = _store(repo, io.BytesIO(data), mode, ingester)
        _keep_folder_version(repo, state, s.path, cache, ingester)
        put(repo, s.path, entry, cache)
        return
    chosen = {"ours": s.ours, "theirs": s.theirs, "base": s.base}[how]
    if s.kind == "file-folder":
        if chosen is not None:
            copy = f" '{s.copy}'" if s.copy else ""
            raise UsageError(
                f"'{s.path}' is a folder now, so the {how} file cannot go there; move the "
                f"folder away, rename{copy} to '{s.path}', then run 'vsync resolve --mark'"
            )
    else:
        _keep_folder_version(repo, state, s.path, cache, ingester)
        put(repo, s.path, chosen, cache)
    if s.copy:
        _keep_folder_version(repo, state, s.copy, cache, ingester)
        put(repo, s.copy, None, cache)


def resolve(repo: Repository, paths: list[str], how: str) -> ResolveResult:
    """Settle the conflicts at ``paths`` (see the module docstring for ``how``)."""
    if how not in HOWS:
        raise UsageError(f"unknown resolution '{how}'; use one of {', '.join(HOWS)}")
    repo.require_worktree()
    result = ResolveResult()
    with repo.lock(exclusive=True):
        state = require_state(repo)
        for path in paths:
            require_conflict(state, path)
        try:
            with folder_tools(repo) as (cache, ingester):
                for path in dict.fromkeys(paths):
                    s = state.files[path]
                    _resolve_one(repo, state, s, how, cache, ingester)
                    s.resolved = True
                    result.resolved.append(path)
        finally:
            state.save()
        result.remaining = state.unresolved()
    return result
