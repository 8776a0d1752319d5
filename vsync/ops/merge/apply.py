"""Applying a merge plan to the working folder, and the merge commit's tree.

:func:`apply_merge` makes the working folder hold :meth:`MergePlan.target`
wherever it differs from ours (HEAD); every other path, uncommitted edits
included, is left as it is. In order:

1. Check, changing nothing: the branch still points at ours; no merge is in
   progress; every path the merge writes or removes holds exactly ours'
   version (or, where ours has nothing, nothing or already the merge's
   version); no untracked file or folder is in the way (a folder where a
   file goes must hold only files the merge removes). Otherwise
   :class:`UncommittedChanges` naming the paths.
2. Store the content the merge made (merged text, text with conflict
   markers): chunks into a sealed pack, then its manifest blob into git.
   Check that every chunk the writes need exists.
3. Record the merge state (:mod:`.state`): the conflicts, a backup entry of
   every path about to change and the folders about to be created. From
   here on ``vsync merge --abort`` can undo everything, even after a crash.
4. Remove, then write, each file through :mod:`vsync.ops.folder_writer`
   (atomically, each only if it is unchanged since step 1; folders left
   empty are removed; the stat cache learns every written file).

:func:`build_merge_tree` gives the tree of the merge commit, built from the
plan (not from a scan of the folder, so unrelated uncommitted edits stay
uncommitted). Call it after :func:`apply_merge`, which stores the merged
content its tree names.
"""

from __future__ import annotations

import io
import stat
from dataclasses import dataclass, field
from pathlib import Path

from vsync.errors import DamagedRepository, StoppedError, UncommittedChanges
from vsync.model.folder_scan import MODE_LINK
from vsync.model.gitdb import RawObject, blob_object
from vsync.model.holdback import Holds
from vsync.model.ingest import Ingester
from vsync.model.paths import ancestors
from vsync.model.repository import Repository
from vsync.model.snapshot import Entry, FlatMap, build_tree
from vsync.model.statcache import StatCache
from vsync.ops.folder_writer import (
    Action,
    FolderWriter,
    Remove,
    SetMode,
    Write,
    check_stored,
    disk_path,
    lstat_or_none,
)
from vsync.ops.merge.disk import OnDisk, files_under, read_path
from vsync.ops.merge.plan import MergePlan
from vsync.ops.merge.state import MergeState, PathState, new_state


@dataclass
class ApplyOutcome:
    written: list[str] = field(default_factory=list)  # files written or chmod-ed
    removed: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)  # conflict copies written
    conflicts: list[str] = field(default_factory=list)  # unresolved paths
    state: MergeState | None = None


def build_merge_tree(plan: MergePlan) -> tuple[bytes, list[RawObject]]:
    """The merge commit's root tree id and its tree objects, from a clean plan."""
    if not plan.clean:
        raise StoppedError("the merge has conflicts; resolve them before committing")
    return build_tree(plan.merged)


def _changes(plan: MergePlan) -> dict[str, Entry | None]:
    target, ours = plan.target(), plan.ours
    paths = sorted(ours.keys() | target.keys())
    return {p: target.get(p) for p in paths if ours.get(p) != target.get(p)}


def _refuse(paths: list[str]) -> UncommittedChanges:
    return UncommittedChanges.naming(
        paths,
        "the merge would overwrite uncommitted changes or untracked files",
        "commit or move them, then merge again",
    )


def _check_folder(
    root: Path,
    changes: dict[str, Entry | None],
    ours: FlatMap,
    cache: StatCache,
    ingester: Ingester,
    holds: Holds,
) -> dict[str, OnDisk]:
    deletes = {p for p, want in changes.items() if want is None}
    seen: dict[str, OnDisk] = {}
    unsafe: list[str] = []
    for path, want in changes.items():
        d = read_path(root, path, cache, ingester, holds)
        seen[path] = d
        have = ours.get(path)
        if d.kind == "file":
            ok = d.entry in (have, want)
        elif d.kind == "absent":
            ok = have is None or want is None
        elif d.kind == "blocked":
            ok = d.blocker in deletes and (have is None or want is None)
        elif d.kind == "dir":
            ok = want is not None and all(f in deletes for f in files_under(root, path))
        else:
            ok = False
        if not ok:
            unsafe.append(path)
    kinds: dict[str, bool] = {}
    for path, want in changes.items():
        if want is None:
            continue
        for folder in ancestors(path):
            if folder not in kinds:
                st = lstat_or_none(disk_path(root, folder))
                kinds[folder] = st is None or stat.S_ISDIR(st.st_mode) or folder in deletes
            if not kinds[folder]:
                unsafe.append(folder)
    if unsafe:
        raise _refuse(sorted(set(unsafe)))
    return seen


def _check_conflicts(
    root: Path,
    plan: MergePlan,
    changes: dict[str, Entry | None],
    cache: StatCache,
    ingester: Ingester,
    holds: Holds,
) -> dict[str, OnDisk]:
    """Conflicted paths the merge leaves as they are must hold ours, too."""
    seen: dict[str, OnDisk] = {}
    unsafe: list[str] = []
    for c in plan.conflicts:
        if c.path in changes:
            continue
        d = read_path(root, c.path, cache, ingester, holds)
        have = plan.ours.get(c.path)
        if d.kind == "file" and d.entry == have:
            seen[c.path] = d
        elif not (have is None and d.kind in ("absent", "dir")):
            unsafe.append(c.path)
    if unsafe:
        raise _refuse(sorted(unsafe))
    return seen


def _store_new_content(repo: Repository, plan: MergePlan, ingester: Ingester) -> None:
    db = repo.gitdb
    missing = {oid: data for oid, data in plan.new_content.items() if not db.has(oid)}
    if not missing:
        return
    blobs: list[RawObject] = []
    with repo.chunks.writer() as w:
        for oid, data in sorted(missing.items()):
            blob = blob_object(ingester.ingest(io.BytesIO(data), w).to_bytes())
            if blob.id != oid:
                raise DamagedRepository(
                    "merged content hashed differently when stored; the chunking settings "
                    "changed during the merge; run it again"
                )
            blobs.append(blob)
    db.add(blobs)


def _record(
    repo: Repository,
    plan: MergePlan,
    changes: dict[str, Entry | None],
    seen: dict[str, OnDisk],
) -> MergeState:
    root = repo.require_worktree()
    labels = plan.labels
    state = new_state(repo.control, labels.ours.commit, labels.theirs.commit or b"")
    state.bases = list(plan.bases)
    state.labels = (labels.ours.marker, labels.theirs.marker, labels.base)
    for c in plan.conflicts:
        state.files[c.path] = PathState(
            c.path, c.kind, c.code, c.base, c.ours, c.theirs, c.in_place, c.copy, c.copy_entry
        )
    for path in changes:
        d = seen[path]
        # A file where a folder stood counts as created (abort removes it first); the
        # folder's files have backups of their own, restored after it is gone.
        state.backups[path] = d.entry if d.kind == "file" else None
    deletes = {p for p, want in changes.items() if want is None}
    created: set[str] = set()
    for path, want in changes.items():
        if want is None:
            continue
        for folder in ancestors(path):
            st = lstat_or_none(disk_path(root, folder))
            if st is None or (not stat.S_ISDIR(st.st_mode) and folder in deletes):
                created.add(folder)
    state.created_dirs = sorted(created)
    return state


def _write(
    repo: Repository,
    changes: dict[str, Entry | None],
    seen: dict[str, OnDisk],
    state: MergeState,
) -> ApplyOutcome:
    out = ApplyOutcome(state=state, conflicts=state.unresolved())
    copies = {s.copy for s in state.files.values() if s.copy}
    actions: list[Action] = []
    deletes = [p for p, want in changes.items() if want is None]
    for path in sorted(deletes, key=lambda p: p.count("/"), reverse=True):
        d = seen[path]
        if d.kind == "file":
            actions.append(Remove(path, d.key))
            out.removed.append(path)
    for path, want in changes.items():
        d = seen[path]
        if want is None or (d.kind == "file" and d.entry == want):
            continue
        key = d.key if d.kind == "file" else None
        have = d.entry
        if have is not None and have[1] == want[1] and MODE_LINK not in (have[0], want[0]):
            actions.append(SetMode(path, want, key))
        else:
            actions.append(Write(path, want, key))
        (out.copies if path in copies else out.written).append(path)
    with FolderWriter(repo, MERGE_RETRY) as writer:
        writer.apply(actions)
    return out


MERGE_RETRY = "run 'vsync merge --abort' and merge again"


def apply_merge(repo: Repository, plan: MergePlan) -> ApplyOutcome:
    """Write the plan into the working folder and record the merge state."""
    root = repo.require_worktree()
    with repo.lock(exclusive=True):
        if MergeState.load(repo) is not None:
            raise StoppedError(
                "a merge is already in progress; resolve it and commit, or run "
                "'vsync merge --abort'"
            )
        if repo.head() != plan.labels.ours.commit:
            raise StoppedError("the branch moved since the merge was planned; nothing was changed")
        changes = _changes(plan)
        cache = StatCache(repo.control)
        with repo.ingester() as ingester:
            seen = _check_folder(root, changes, plan.ours, cache, ingester, repo.holds)
            untouched = _check_conflicts(root, plan, changes, cache, ingester, repo.holds)
            _store_new_content(repo, plan, ingester)
        cache.flush()
        check_stored(repo, [Write(p, want, None) for p, want in changes.items() if want])
        state = _record(repo, plan, changes, seen)
        for path, d in untouched.items():  # so resolve, then abort, can restore them
            state.backups[path] = d.entry
        state.writing = True
        state.save()
        out = _write(repo, changes, seen, state)
        state.writing = False
        state.save()
        return out
