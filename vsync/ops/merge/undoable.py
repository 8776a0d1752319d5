"""Resolutions that can be taken back (the conflict shell's ``undo``, ``vsync resolve --undo``).

- :func:`save_conflict` stores what the folder holds at a conflict's path and
  at its conflict copy, and returns an :class:`Undo`.
- :func:`choose` settles one conflict through :func:`.resolve.resolve` after
  saving it; :func:`restore` plays an :class:`Undo` back: the saved files are
  written again and the path gets its resolved flag back.
- :func:`reopen` undoes a resolution made earlier: the path gets back what the
  merge left there (markers, ours, the conflict copy) and is unresolved again.
- :func:`edit_target` and :func:`changed_since` frame an edit of a conflicted
  file by an editor the caller runs.

Nothing is lost: whatever the folder holds that a restore replaces, and
whatever is saved for a later undo, is stored in the repository and named in
a ``V`` record of the merge state (:func:`.resolve.keep_version`), so ``vsync
gc`` keeps it while the merge lasts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vsync.errors import UsageError
from vsync.model.repository import Repository
from vsync.model.snapshot import Entry
from vsync.ops.merge.disk import disk_path, put, read_path
from vsync.ops.merge.resolve import (
    folder_tools,
    keep_version,
    require_conflict,
    require_state,
    resolve,
)
from vsync.ops.merge.state import PathState


@dataclass(frozen=True)
class Saved:
    """What the folder held at a path: a stored entry, nothing, or something left alone."""

    path: str
    kind: str  # "file" (file or symlink) | "absent" | "dir" | "other"
    entry: Entry | None = None


@dataclass
class Undo:
    """How to put a conflict back as it was before one action."""

    path: str
    action: str  # "ours", "theirs", "base", "both", "mark", "edit", "reopen"
    saved: list[Saved] = field(default_factory=list)
    was_resolved: bool = False


def _paths_of(s: PathState) -> list[str]:
    return [s.path] + ([s.copy] if s.copy else [])


def save_conflict(repo: Repository, path: str, action: str) -> Undo:
    """Store what the folder holds at a conflict's path and copy, for a later :func:`restore`."""
    root = repo.require_worktree()
    with repo.lock(exclusive=True):
        state = require_state(repo)
        s = require_conflict(state, path)
        saved: list[Saved] = []
        try:
            with folder_tools(repo) as (cache, ing):
                for p in _paths_of(s):
                    d = read_path(root, p, cache, ing, repo.holds)
                    if d.kind == "file":
                        saved.append(Saved(p, "file", keep_version(repo, state, p, d, ing)))
                    else:
                        saved.append(Saved(p, d.kind if d.kind in ("absent", "dir") else "other"))
        finally:
            state.save()
        return Undo(path, action, saved, s.resolved)


def choose(repo: Repository, path: str, how: str) -> Undo:
    """Resolve ``path`` with ``how`` (ours/theirs/base/both/mark); returns its undo."""
    with repo.lock(exclusive=True):
        undo = save_conflict(repo, path, how)
        resolve(repo, [path], how)
    return undo


def restore(repo: Repository, undo: Undo) -> None:
    """Put back the saved files of ``undo`` and its resolved flag."""
    root = repo.require_worktree()
    with repo.lock(exclusive=True):
        state = require_state(repo)
        s = require_conflict(state, undo.path)
        try:
            with folder_tools(repo) as (cache, ing):
                for saved in undo.saved:
                    if saved.kind not in ("file", "absent"):
                        continue  # a folder (file/folder conflict) or a fifo: left alone
                    now = read_path(root, saved.path, cache, ing, repo.holds)
                    if now.kind == "file" and saved.kind == "file" and now.entry == saved.entry:
                        continue
                    if now.kind == "file":  # whatever is there now is kept, never lost
                        keep_version(repo, state, saved.path, now, ing)
                    if saved.entry is not None or now.kind == "file":
                        put(repo, saved.path, saved.entry, cache)
                s.resolved = undo.was_resolved
        finally:
            state.save()


def reopen(repo: Repository, path: str) -> Undo:
    """Unresolve ``path``: write back what the merge left there; returns how to redo it."""
    with repo.lock(exclusive=True):
        state = require_state(repo)
        s = require_conflict(state, path)
        if not s.resolved:
            raise UsageError(f"'{path}' is not resolved; nothing to undo")
        redo = save_conflict(repo, path, "reopen")
        merge_left: list[Saved] = []
        if s.kind != "file-folder" or s.in_place is not None:
            kind = "file" if s.in_place is not None else "absent"
            merge_left.append(Saved(path, kind, s.in_place))
        if s.copy:
            kind = "file" if s.copy_entry is not None else "absent"
            merge_left.append(Saved(s.copy, kind, s.copy_entry))
        restore(repo, Undo(path, "reopen", merge_left, False))
    return redo


def edit_target(repo: Repository, path: str) -> str:
    """The folder file an editor may open for conflict ``path``; refuses a folder or symlink."""
    s = require_conflict(require_state(repo), path)
    disk = disk_path(repo.require_worktree(), path)
    if os.path.isdir(disk) and not os.path.islink(disk):
        copy = f" its conflict copy '{s.copy}' or" if s.copy else ""
        raise UsageError(
            f"'{path}' is a folder now; edit{copy} the files in it, then 'mark' it resolved"
        )
    if os.path.islink(disk):
        raise UsageError(f"'{path}' is a symlink; choose a side or change it by hand, then 'mark'")
    return disk


def changed_since(repo: Repository, before: Saved) -> bool:
    """Whether the folder now holds something else at ``before.path`` than was saved."""
    with repo.lock(exclusive=True), folder_tools(repo) as (cache, ing):
        now = read_path(repo.require_worktree(), before.path, cache, ing, repo.holds)
    return not (
        (now.kind == "file" and before.kind == "file" and now.entry == before.entry)
        or (now.kind == before.kind == "absent")
    )
