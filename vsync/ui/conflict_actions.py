"""What the conflict shell does to a merge, without any terminal code.

- :func:`describe` reads the merge state into :class:`ConflictInfo` rows
  (kind, sizes, host and time of each side's commit) for the list.
- :func:`choose` settles one conflict through :func:`vsync.ops.merge.resolve`
  after saving what the folder held at the path and at its conflict copy, and
  returns an :class:`Undo` that :func:`restore` plays back: the saved files
  are written again and the path is unresolved again.
- :func:`reopen` undoes a resolution made outside the shell (or before it
  started): the path gets back what the merge left there (markers, ours, the
  conflict copy) and is unresolved again.
- :func:`edit` runs an editor on a conflicted file.

Nothing is lost: whatever the folder holds that a restore replaces, and
whatever was saved for a later undo, is stored in the repository and named
in a ``V`` record of the merge state (as ``vsync resolve`` does), so ``vsync
gc`` keeps it while the merge lasts.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from vsync.errors import StoppedError, UsageError
from vsync.model.commits import commit_host
from vsync.model.folder_scan import MODE_LINK, git_mode_of
from vsync.model.gitdb import blob_object
from vsync.model.ingest import Ingester
from vsync.model.repository import Repository
from vsync.model.snapshot import Entry
from vsync.model.statcache import StatCache
from vsync.ops.merge import MergeState, PathState, resolve
from vsync.ops.merge.disk import OnDisk, disk_path, read_path, remove_file, write_entry
from vsync.ops.merge.resolve import require_state

MARKERS = (b"<<<<<<< ", b"=======", b">>>>>>> ")
READ_LIMIT = 16 * 1024 * 1024  # a larger file is described, not read, by 'markers'


@dataclass(frozen=True)
class CommitInfo:
    """One side's commit as the shell shows it."""

    commit: bytes | None
    host: str
    when: str  # "YYYY-MM-DD HH:MM" in the commit's own time zone

    @property
    def short(self) -> str:
        return self.commit.decode()[:10] if self.commit else "none"


@dataclass(frozen=True)
class ConflictInfo:
    index: int  # 1-based position in the list
    state: PathState

    @property
    def path(self) -> str:
        return self.state.path


@dataclass(frozen=True)
class Saved:
    """What the folder held at a path: a stored entry, nothing, or something left alone."""

    path: str
    kind: str  # "file" (file or symlink) | "absent" | "dir" | "other"
    entry: Entry | None = None


@dataclass
class Undo:
    """How to put a conflict back as it was before one shell action."""

    path: str
    action: str  # "ours", "theirs", "base", "both", "mark", "edit"
    saved: list[Saved] = field(default_factory=list)
    was_resolved: bool = False


# -- reading ---------------------------------------------------------------------------


def load_state(repo: Repository) -> MergeState:
    state = MergeState.load(repo)
    if state is None:
        raise UsageError("no merge is in progress; start one with 'vsync merge REV'")
    return state


def commit_info(repo: Repository, commit_id: bytes | None) -> CommitInfo:
    if commit_id is None:
        return CommitInfo(None, "unknown", "-")
    obj = repo.gitdb.commit(commit_id)
    try:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(obj.commit_time + obj.commit_timezone))
    except (OverflowError, ValueError, OSError):
        when = "-"
    return CommitInfo(commit_id, commit_host(obj) or "unknown", when)


def describe(state: MergeState) -> list[ConflictInfo]:
    """The conflicts of the merge, in path order, numbered from 1."""
    return [ConflictInfo(i, state.files[p]) for i, p in enumerate(sorted(state.files), 1)]


def default_message(theirs: CommitInfo) -> str:
    return f"Merge {theirs.short} from {theirs.host}"


def folder_bytes(repo: Repository, path: str) -> tuple[bytes | None, str]:
    """What the folder holds at ``path``: its bytes, or None and what is there instead."""
    disk = disk_path(repo.require_worktree(), path)
    if os.path.islink(disk):
        return None, f"a symlink to '{os.readlink(disk)}'"
    if os.path.isdir(disk):
        return None, "a folder"
    if not os.path.lexists(disk):
        return None, "not in the folder (deleted)"
    if not os.path.isfile(disk):
        return None, "not a regular file"
    if os.path.getsize(disk) > READ_LIMIT:
        return None, "a large file; no markers are shown"
    with open(disk, "rb") as f:
        return f.read(), ""


def has_markers(data: bytes) -> bool:
    return any(line.startswith(MARKERS) for line in data.splitlines())


# -- saving and restoring -----------------------------------------------------------------


@contextmanager
def _tools(repo: Repository) -> Iterator[tuple[StatCache, Ingester]]:
    cache = StatCache(repo.db)
    try:
        with Ingester(repo.config.chunker_params(), repo.config.compression_level()) as ing:
            yield cache, ing
    finally:
        cache.flush()


def _store(repo: Repository, state: MergeState, path: str, d: OnDisk, ing: Ingester) -> Entry:
    """Make sure the content of file ``d`` at ``path`` is in the repository and kept live."""
    assert d.entry is not None
    entry = d.entry
    if not repo.gitdb.has(entry[1]):
        disk = disk_path(repo.require_worktree(), path)
        if entry[0] == MODE_LINK:
            blob = blob_object(os.fsencode(os.readlink(disk)))
            entry = (MODE_LINK, blob.id)
        else:
            with repo.chunks.writer() as w, open(disk, "rb") as f:
                st = os.fstat(f.fileno())
                blob = blob_object(ing.ingest(f, w).to_bytes())
            entry = (git_mode_of(st), blob.id)
        repo.gitdb.add([blob])
    if entry[1] not in state.blob_ids():
        state.kept.append((path, entry))
    return entry


def _save(
    repo: Repository, state: MergeState, paths: list[str], cache: StatCache, ing: Ingester
) -> list[Saved]:
    root = repo.require_worktree()
    out: list[Saved] = []
    for path in paths:
        d = read_path(root, path, cache, ing, repo.holds)
        if d.kind == "file":
            out.append(Saved(path, "file", _store(repo, state, path, d, ing)))
        elif d.kind in ("absent", "dir"):
            out.append(Saved(path, d.kind))
        else:
            out.append(Saved(path, "other"))
    return out


def _paths_of(s: PathState) -> list[str]:
    return [s.path] + ([s.copy] if s.copy else [])


def save_conflict(repo: Repository, path: str, action: str) -> Undo:
    """Store what the folder holds at a conflict's path and copy, for a later :func:`restore`."""
    with repo.lock(exclusive=True):
        state = require_state(repo)
        s = _require_path(state, path)
        with _tools(repo) as (cache, ing):
            try:
                saved = _save(repo, state, _paths_of(s), cache, ing)
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
        s = _require_path(state, undo.path)
        with _tools(repo) as (cache, ing):
            try:
                for saved in undo.saved:
                    if saved.kind not in ("file", "absent"):
                        continue  # a folder (file/folder conflict) or a fifo: left alone
                    now = read_path(root, saved.path, cache, ing, repo.holds)
                    if now.kind == "file" and saved.kind == "file" and now.entry == saved.entry:
                        continue
                    if now.kind == "file":  # whatever is there now is kept, never lost
                        _store(repo, state, saved.path, now, ing)
                    if saved.entry is not None:
                        write_entry(repo, saved.path, saved.entry, cache)
                    elif now.kind == "file":
                        remove_file(repo, saved.path, cache)
                s.resolved = undo.was_resolved
            finally:
                state.save()


def reopen(repo: Repository, path: str) -> Undo:
    """Unresolve ``path``: write back what the merge left there; returns how to redo it."""
    with repo.lock(exclusive=True):
        state = require_state(repo)
        s = _require_path(state, path)
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


def _require_path(state: MergeState, path: str) -> PathState:
    s = state.files.get(path)
    if s is None:
        raise UsageError(f"'{path}' is not a conflicted path of this merge")
    return s


# -- the editor --------------------------------------------------------------------------------


def editor_command(editor: str | None) -> list[str]:
    text = editor or os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"cannot read the editor command {text!r}: {exc}") from None
    if not argv:
        raise UsageError("the editor command is empty; set EDITOR")
    return argv


def run_editor(argv: list[str]) -> int:
    """Run the editor on the terminal; Ctrl-C belongs to it meanwhile (as git does)."""
    in_main = threading.current_thread() is threading.main_thread()
    # Ignore Ctrl-C before the editor starts, so none can slip in between; the
    # editor itself gets the default disposition back (restore_signals).
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        try:
            proc = subprocess.Popen(argv, preexec_fn=_default_sigint)
        except OSError as exc:
            raise StoppedError(
                f"cannot run the editor '{argv[0]}': {exc.strerror or exc}"
            ) from None
        return proc.wait()
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def edit(repo: Repository, path: str, editor: str | None) -> tuple[Undo, bool]:
    """Run the editor on ``path``; returns its undo and whether the file changed."""
    root = repo.require_worktree()
    state = load_state(repo)
    s = _require_path(state, path)
    disk = disk_path(root, path)
    if os.path.isdir(disk) and not os.path.islink(disk):
        copy = f" its conflict copy '{s.copy}' or" if s.copy else ""
        raise UsageError(
            f"'{path}' is a folder now; edit{copy} the files in it, then 'mark' it resolved"
        )
    if os.path.islink(disk):
        raise UsageError(f"'{path}' is a symlink; choose a side or change it by hand, then 'mark'")
    argv = editor_command(editor)
    undo = save_conflict(repo, path, "edit")
    code = run_editor([*argv, disk])
    if code != 0:
        raise StoppedError(f"the editor exited with status {code}; '{path}' was not marked")
    with repo.lock(exclusive=True), _tools(repo) as (cache, ing):
        now = read_path(root, path, cache, ing, repo.holds)
    before = undo.saved[0]
    changed = not (
        (now.kind == "file" and before.kind == "file" and now.entry == before.entry)
        or (now.kind == before.kind == "absent")
    )
    return undo, changed
