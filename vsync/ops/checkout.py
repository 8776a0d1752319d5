"""``vsync checkout``: make the working folder, or some of its paths, equal a snapshot.

:func:`apply_snapshot` is shared with ``vsync restore``. It works in two steps:

*plan*: compare the target flat map with the working folder (hashed through
the stat cache) and with HEAD, and list what would be written, deleted or
removed because it is in the way: a file where a folder must go, a folder
(with everything in it) where a file must go, a symlink as a parent folder,
a name spelled differently on disk (not NFC).

*apply*: only when every working file the plan overwrites or removes is
recorded in the repository (its manifest or symlink blob is in the git
object store) or ``force`` is given; otherwise :class:`UncommittedChanges`
and nothing is touched. Files are written atomically and verified
(:mod:`vsync.model.materialize`); a file that changed on disk since it was
planned is never overwritten. Folders left empty by deletions are removed.

The branch never moves: checkout is "put this content here", and the next
commit goes on top of HEAD. Checkout makes the *whole* folder that version:
files that are in neither HEAD nor the target but whose content is recorded
(left there by an earlier checkout) go too; untracked files recorded nowhere
stay. Restore keeps every untracked file, as ``git restore`` does.

On a file system that folds case, a target holding two names that differ only
by case gets the later one under a conflict-copy name, with a warning
(:mod:`vsync.ops.case_fold`); HEAD's entry of that name is then never removed
(on such a file system its name opens its twin).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vsync.errors import DamagedRepository, UncommittedChanges
from vsync.model.folder_scan import MODE_LINK
from vsync.model.folder_snapshot import WorkingState, read_working
from vsync.model.gitdb import ObjectReader, blob_id
from vsync.model.holdback import Holds
from vsync.model.ingest import Ingester
from vsync.model.paths import ancestors, is_under
from vsync.model.prefill import Prefill
from vsync.model.repository import Repository
from vsync.model.revisions import resolve
from vsync.model.snapshot import FlatMap, flatten_commit
from vsync.model.stable_read import content_id_if_unchanged
from vsync.model.statcache import Stat, StatKey, stat_key
from vsync.ops.case_fold import folds_case, keep_case_twins
from vsync.ops.folder_writer import (
    FolderWriter,
    Remove,
    SetMode,
    Write,
    check_stored,
    disk_path,
    lstat_or_none,
)

Warn = Callable[[str], None]


@dataclass
class ApplyResult:
    written: list[str] = field(default_factory=list)  # files and symlinks written or chmod-ed
    deleted: list[str] = field(default_factory=list)  # HEAD paths removed from the folder


@dataclass
class CheckoutResult:
    commit_id: bytes
    head: bytes | None
    written: int
    deleted: int


@dataclass(slots=True)
class _Doomed:
    """A file or symlink on disk that applying the plan overwrites or removes."""

    path: str  # repository path (the stat cache's and holds' name for it)
    label: str  # path as spelled on disk, shown to the user
    key: StatKey  # its stat when planned; a change since then stops the apply
    content: bytes | None  # manifest or symlink blob id; None when unknown


@dataclass
class _Plan:
    writes: list[Write] = field(default_factory=list)
    held: list[Write] = field(default_factory=list)  # holdback: not written, only recorded
    chmods: list[SetMode] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    doomed: dict[str, _Doomed] = field(default_factory=dict)  # by disk path
    in_place: set[str] = field(default_factory=set)  # doomed, replaced by os.replace

    def unsafe(self, db: ObjectReader) -> list[str]:
        return sorted(
            d.label for d in self.doomed.values() if d.content is None or not db.has(d.content)
        )


def normalise_scope(paths: Iterable[str]) -> list[str]:
    """Distinct scope paths, without any that lie inside another."""
    kept: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(is_under(p, q) for q in kept):
            kept.append(p)
    return kept


class DiskShape:
    """What the parent folders of repository paths are on disk, looked at once each.

    ``lstat`` follows symlinks in every component but the last, so a path is
    looked at on disk only when all its parents are real folders.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._kind: dict[str, str] = {}  # folder -> "dir" | "missing" | "other"

    def kind(self, folder: str) -> str:
        kind = self._kind.get(folder)
        if kind is None:
            st = lstat_or_none(disk_path(self.root, folder))
            kind = "missing" if st is None else "dir" if stat.S_ISDIR(st.st_mode) else "other"
            self._kind[folder] = kind
        return kind

    def first_blocked(self, path: str) -> tuple[str, str] | None:
        """The first parent folder of ``path`` that is not a real folder, and what it is."""
        for folder in ancestors(path):
            kind = self.kind(folder)
            if kind != "dir":
                return folder, kind
        return None

    def obstacles(self, paths: Iterable[str]) -> list[str]:
        """Parent folders of ``paths`` that are a file or symlink on disk."""
        out: dict[str, None] = {}
        for path in paths:
            blocked = self.first_blocked(path)
            if blocked is not None and blocked[1] == "other":
                out[blocked[0]] = None
        return list(out)


def _check_shape(target: FlatMap) -> None:
    folders = {folder for p in target for folder in ancestors(p)}
    clash = sorted(folders & target.keys())
    if clash:
        raise DamagedRepository(f"the snapshot has both a file and a folder named '{clash[0]}'")


@dataclass
class _Planner:
    root: str
    shape: DiskShape
    state: WorkingState
    ingester: Ingester
    recorded: Callable[[bytes], bool]
    drop_recorded: bool
    holds: Holds
    plan: _Plan = field(default_factory=_Plan)

    def __post_init__(self) -> None:
        self.by_disk = {wf.disk: wf for wf in self.state.files.values()}

    def make(self, target: FlatMap, base: FlatMap, obstacles: list[str]) -> _Plan:
        flat, files, plan = self.state.flat, self.state.files, self.plan
        held = self.state.held
        for path in sorted(target):
            mode, blob = target[path]
            disk = disk_path(self.root, path)
            wf = files.get(path)
            if path in held and flat.get(path) == (mode, blob):
                continue  # held back, and the folder is as its hold left it
            if self.holds.decide(path, mode) is None:
                # Held back (holdback): nothing is written, but a file there must be
                # recorded, as if overwritten, so no later step can lose it.
                st = None if self.shape.first_blocked(path) else lstat_or_none(disk)
                if st is not None and not stat.S_ISDIR(st.st_mode):
                    self.doom(disk, st)
                    plan.in_place.add(disk)
                plan.held.append(Write(path, (mode, blob), self.expect(disk)))
                continue
            if wf is not None and wf.disk == disk:
                have = flat.get(path)
                if have == (mode, blob):
                    continue
                if have is not None and have[1] == blob and MODE_LINK not in (mode, have[0]):
                    plan.chmods.append(SetMode(path, (mode, blob), stat_key(wf.st)))
                    continue
            elif wf is not None:
                self.doom(wf.disk)  # the same name spelled otherwise (not NFC) on disk
            st = None if self.shape.first_blocked(path) else lstat_or_none(disk)
            if st is not None:
                self.doom(disk, st)
                if not stat.S_ISDIR(st.st_mode):
                    plan.in_place.add(disk)
            plan.writes.append(Write(path, (mode, blob), self.expect(disk)))
        for path in sorted(base.keys() - target.keys()):
            wf = files.get(path)
            if wf is not None:
                disk, st = wf.disk, lstat_or_none(wf.disk)
            elif self.shape.first_blocked(path) is None:
                disk = disk_path(self.root, path)
                st = lstat_or_none(disk)
            else:
                continue  # behind a symlink or a file: nothing of it is in the folder
            if st is not None and not stat.S_ISDIR(st.st_mode):
                self.doom(disk, st)
                plan.deletes.append(path)
        leftovers = flat.keys() - target.keys() - base.keys() if self.drop_recorded else set()
        for path in sorted(leftovers):
            # In neither HEAD nor the target, but its content is in history: a file an
            # earlier checkout or restore wrote. It goes, so the folder equals the
            # target; files whose content is recorded nowhere stay untouched.
            wf = files.get(path)
            if wf is not None and self.recorded(flat[path][1]):
                self.doom(wf.disk, wf.st)
                plan.deletes.append(path)
        for path in obstacles:
            self.doom(disk_path(self.root, path))
        return plan

    def expect(self, disk: str) -> StatKey | None:
        """What a write at ``disk`` must find there: the file it replaces, or nothing."""
        return self.plan.doomed[disk].key if disk in self.plan.in_place else None

    def doom(self, disk: str, st: Stat | None = None) -> None:
        if disk in self.plan.doomed:
            return
        st = st or lstat_or_none(disk)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(disk) as it:
                entries = list(it)
            for entry in entries:
                self.doom(entry.path, entry.stat(follow_symlinks=False))
            return
        label = os.path.relpath(disk, self.root).replace(os.sep, "/")
        wf = self.by_disk.get(disk)
        if wf is not None:
            have = self.state.flat.get(wf.path)
            if wf.path in self.state.held:  # flat has the tree's entry, not the disk's
                have = self.state.held[wf.path][1]
            content = have[1] if have is not None else None
            self.plan.doomed[disk] = _Doomed(wf.path, label, stat_key(wf.st), content)
        else:
            self.plan.doomed[disk] = _Doomed(label, label, stat_key(st), self._hash(disk, st))

    def _hash(self, disk: str, st: Stat) -> bytes | None:
        """Content id of a file the scan did not report (ignored); None if unknown."""
        if stat.S_ISLNK(st.st_mode):
            return blob_id(os.fsencode(os.readlink(disk)))
        if not stat.S_ISREG(st.st_mode):
            return None
        return content_id_if_unchanged(disk, st, self.ingester)


def _refuse(unsafe: list[str]) -> UncommittedChanges:
    return UncommittedChanges.naming(
        unsafe,
        "uncommitted changes would be overwritten",
        "commit them first or use --force",
    )


def _apply(repo: Repository, plan: _Plan, ready: Prefill | None) -> ApplyResult:
    removes = [
        Remove(d.path, d.key, d.label if d.label != d.path else "")
        for disk, d in sorted(plan.doomed.items())
        if disk not in plan.in_place
    ]
    with FolderWriter(repo, ready=ready) as writer:
        writer.apply([*removes, *plan.held, *plan.writes, *plan.chmods])
    written = [w.path for w in plan.writes] + [c.path for c in plan.chmods]
    return ApplyResult(written, list(plan.deletes))


def apply_snapshot(
    repo: Repository,
    target: FlatMap,
    scope: list[str],
    force: bool,
    warn: Warn,
    whole_folder: bool = False,
    ready: Prefill | None = None,
    working: WorkingState | None = None,
) -> ApplyResult:
    """Make the working folder under ``scope`` ('' is everything) equal ``target``.

    ``whole_folder`` (checkout): files in neither HEAD nor the target whose
    content some commit holds (left by an earlier checkout) are removed too.

    ``target`` holds the snapshot's entries under ``scope``. Raises
    UncommittedChanges (changing nothing) when a working file that would be
    overwritten or removed is not recorded in the repository, unless ``force``.
    ``ready``: files a fetch has filled already (:class:`FolderWriter`).
    ``working``: the whole folder as :func:`read_working` read it under the
    repository lock the caller still holds (``vsync checkout`` reads it first for
    its undo journal): the plan starts from it instead of walking the folder
    again. A file changed since is caught as always, by the writer's last look.
    """
    root_path = repo.require_worktree()
    root = str(root_path)
    scope = normalise_scope(scope)
    if working is not None and (scope != [""] or not working.whole):
        raise ValueError("a working state read earlier stands only for the whole folder")
    _check_shape(target)
    db = repo.gitdb
    with repo.lock():
        head = repo.head()
        base = flatten_commit(db, head, scope)
        if folds_case(root_path):
            target, moved = keep_case_twins(target, repo.config.identity().host, warn)
            for path in moved:
                base.pop(path, None)  # never removed through the name its twin answers to
        with repo.ingester() as ingester:
            shape = DiskShape(root)
            holds = repo.holds
            obstacles = shape.obstacles(
                p for p, (mode, _blob) in target.items() if holds.decide(p, mode) is not None
            )
            prefixes: list[str] | None = None
            if "" not in scope:
                outside = [p for p in obstacles if not any(is_under(p, s) for s in scope)]
                prefixes = scope + outside
            if working is None:
                working = read_working(repo, ingester, warn, None, prefixes=prefixes)
            state = working
            _release_holds(repo, state)
            planner = _Planner(root, shape, state, ingester, db.has, whole_folder, repo.holds)
            plan = planner.make(target, base, obstacles)
        unsafe = plan.unsafe(db)
        if unsafe and not force:
            raise _refuse(unsafe)
        check_stored(repo, plan.writes)
        result = _apply(repo, plan, ready)
        for path in [p for p in holds.records if p not in target]:
            if any(is_under(path, s) for s in scope):
                holds.release(path)  # the snapshot does not have it: nothing to hold
        holds.save()
        holds.report(warn)
        return result


def _release_holds(repo: Repository, state: WorkingState) -> None:
    """Held paths that the holdback no longer refuses (the user opted in) read as what
    the folder really has, so that the plan writes them."""
    for path, (target, real) in list(state.held.items()):
        if repo.holds.decide(path, target[0]) == target[0]:
            del state.held[path]
            if real is None:
                state.flat.pop(path, None)
            else:
                state.flat[path] = real


def checkout(repo: Repository, rev: str, force: bool, warn: Warn) -> CheckoutResult:
    """Put ``rev``'s whole content in the working folder; the branch stays where it is."""
    repo.require_worktree()
    commit_id = resolve(repo, rev)
    return checkout_flat(repo, commit_id, flatten_commit(repo.gitdb, commit_id), force, warn)


def checkout_flat(
    repo: Repository,
    commit_id: bytes,
    target: FlatMap,
    force: bool,
    warn: Warn,
    working: WorkingState | None = None,
) -> CheckoutResult:
    """:func:`checkout` of ``commit_id``, whose flat map ``target`` the caller has
    (``working``: as in :func:`apply_snapshot`)."""
    result = apply_snapshot(repo, target, [""], force, warn, whole_folder=True, working=working)
    return CheckoutResult(commit_id, repo.head(), len(result.written), len(result.deleted))
