"""The one writer of the working folder: it applies file actions that others planned.

Checkout, restore, revert-to, undo and the fast-forward after a pull or a push
(all through :func:`vsync.ops.checkout.apply_snapshot`), and merge apply,
abort and resolve write the folder here, as :class:`Remove`, :class:`Write`
(a stored file with its mode, or a symlink; parents created, a folder of
only empty folders in the way removed) and :class:`SetMode` (the exec bit).

Each action carries the stat key of what its path held when planned (None:
nothing, or a folder). Right before acting the writer looks again and never
overwrites or removes a file that differs: :class:`UncommittedChanges`. A
file that vanished meanwhile has nothing to lose; :data:`ANYTHING` (abort,
resolve: they discard or stored what is there) skips the check. The
holdback (:mod:`vsync.model.holdback`) decides every write, the stat cache
learns every written file, folders that removals empty are removed, and a
file replaces its target in one place only, :meth:`FolderWriter._put`.

A fetch may have written some files already, as their chunks arrived
(:class:`vsync.model.prefill.Prefill`, handed in as ``ready``): a write of
exactly that path and manifest renames that complete temporary file into
place, with the same checks, instead of writing it from the chunk store.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from vsync.errors import ChunkMissing, UncommittedChanges
from vsync.model.filemode import file_mode
from vsync.model.folder_scan import MODE_EXEC, MODE_LINK
from vsync.model.manifest import Manifest
from vsync.model.materialize import FolderTemps, install_filled, write_file, write_symlink
from vsync.model.paths import ancestors
from vsync.model.prefill import Prefill
from vsync.model.rebuild import REUSE_MIN, Current, CurrentChanged, rebuild_file
from vsync.model.repository import Repository
from vsync.model.snapshot import Entry
from vsync.model.statcache import StatCache, StatKey, stat_key
from vsync.store import faults

ANYTHING: Final = "anything"  # an expectation that any file at the path meets
Expect = StatKey | None | Literal["anything"]


@dataclass(frozen=True, slots=True)
class Remove:
    """Unlink the file or symlink at ``path``; the stat cache and holds forget it."""

    path: str  # repository path
    expect: Expect
    on_disk: str = ""  # its name on disk when spelled otherwise (not NFC); "": path


@dataclass(frozen=True, slots=True)
class Write:
    """Put ``entry``'s stored content at ``path`` (as the holdback allows)."""

    path: str
    entry: Entry
    expect: Expect


@dataclass(frozen=True, slots=True)
class SetMode:
    """Give the file at ``path``, already holding ``entry``'s content, its exec bit."""

    path: str
    entry: Entry
    expect: Expect


Action = Remove | Write | SetMode


def disk_path(root: str | os.PathLike[str], path: str) -> str:
    """The file-system path of repository ``path`` ('' is the root)."""
    return os.path.join(root, *path.split("/")) if path else os.fspath(root)


def lstat_or_none(disk: str) -> os.stat_result | None:
    try:
        return os.lstat(disk)
    except (FileNotFoundError, NotADirectoryError):
        return None


def check_stored(repo: Repository, writes: Sequence[Write]) -> None:
    """Every manifest and chunk the writes need exists; call before changing anything."""
    db = repo.gitdb
    for w in writes:
        mode, oid = w.entry
        if repo.holds.decide(w.path, mode) is None:
            continue  # held back: not written
        if mode == MODE_LINK:
            db.link_target(oid)
            continue
        manifest = db.manifest(oid, f"manifest of '{w.path}'")
        missing = repo.chunks.missing(dict.fromkeys(cid for cid, _n in manifest.chunks))
        if missing:
            raise ChunkMissing(missing[0])


class FolderWriter:
    """Applies actions to one repository's working folder.

    A context manager: on leaving, the stat cache (unless the caller handed
    in its own) and the held records are saved, whatever happened. ``retry``
    ends the message of a refusal.
    """

    def __init__(
        self,
        repo: Repository,
        retry: str = "run the command again",
        cache: StatCache | None = None,
        ready: Prefill | None = None,
    ) -> None:
        self.repo = repo
        self.ready = ready
        self.root = repo.require_worktree()
        self.retry = retry
        self.cache = StatCache(repo.control) if cache is None else cache
        self._own_cache = cache is None  # a cache handed in is flushed by its owner
        self.holds = repo.holds
        self.temps = FolderTemps(repo.control)

    def __enter__(self) -> FolderWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._own_cache:
                self.cache.flush()
        finally:
            self.temps.done()
            self.holds.save()

    def apply(self, actions: Sequence[Action], prune_emptied: bool = True) -> list[str]:
        """Every :class:`Remove` (then the folders they emptied go, unless not
        ``prune_emptied``), then the rest, each in the order given. Returns the
        paths whose file was removed."""
        removed: list[str] = []
        emptied: set[str] = set()
        for a in actions:
            if isinstance(a, Remove) and self._remove(a):
                removed.append(a.path)
                emptied.add((a.on_disk or a.path).rpartition("/")[0])
        if prune_emptied:
            prune(self.root, {f for f in emptied if f})
        for a in actions:
            if isinstance(a, Write):
                self._write(a)
            elif isinstance(a, SetMode):
                self._set_mode(a)
        return removed

    # -- one action each -----------------------------------------------------------------

    def _look(self, path: str, expect: Expect) -> tuple[str, os.stat_result | None]:
        """The disk path of ``path`` and its lstat; refused if not what the plan saw there."""
        disk = disk_path(self.root, path)
        st = lstat_or_none(disk)
        if expect == ANYTHING or st is None:
            return disk, st
        if expect is None and not stat.S_ISDIR(st.st_mode):
            raise UncommittedChanges(
                f"'{path}' appeared while vsync was working and was left alone; {self.retry}"
            )
        if expect is not None and stat_key(st) != expect:
            raise self._changed(path)
        return disk, st

    def _changed(self, path: str) -> UncommittedChanges:
        return UncommittedChanges(
            f"'{path}' changed while vsync was working on it and was left alone; {self.retry}"
        )

    def _remove(self, a: Remove) -> bool:
        disk, st = self._look(a.on_disk or a.path, a.expect)
        self.cache.forget(a.path)
        self.holds.release(a.path)
        self.holds.save()
        if st is None or stat.S_ISDIR(st.st_mode):
            return False
        os.unlink(disk)
        return True

    def _write(self, a: Write) -> None:
        disk, st = self._look(a.path, a.expect)
        holds = self.holds
        how = holds.decide(a.path, a.entry[0])
        if how is None:
            holds.settle(a.path, a.entry, None, st)
        else:
            _make_parents(self.root, a.path)
            if st is not None and stat.S_ISDIR(st.st_mode):
                _clear_folder(disk, a.path)
                st = None
            put = self._put(a.path, disk, a.entry, how, st, a.expect == ANYTHING)
            holds.settle(a.path, a.entry, how, put)
        holds.save()

    def _put(
        self, path: str, disk: str, entry: Entry, how: int, st: os.stat_result | None, any_: bool
    ) -> os.stat_result:
        """The one place where a file or symlink replaces its target in the folder.

        ``st``: what ``disk`` held when looked at (None: nothing); unless ``any_``,
        the target must still hold exactly that when the new file is complete. A
        file whose current content the stat cache knows is rebuilt from the ranges
        the two versions share (:mod:`vsync.model.rebuild`)."""
        mode, oid = entry
        db = self.repo.gitdb
        hashed_at = time.time_ns()
        written: os.stat_result | None = None
        if mode == MODE_LINK:
            written = write_symlink(db.link_target(oid), Path(disk), self.temps)
            self.cache.forget(path)
        else:
            manifest = db.manifest(oid, f"manifest of '{path}'")
            guard = None if any_ else self._guard(path, disk, st)
            filled = None if self.ready is None else self.ready.take(path, oid)
            if filled is not None:
                written = install_filled(filled, Path(disk), how, guard)
            current = None if written is not None else self._current(path, st, manifest)
            if current is not None:
                try:
                    chunks = self.repo.chunks
                    written = rebuild_file(
                        chunks, current, manifest, Path(disk), how, self.temps, guard
                    )
                except CurrentChanged:
                    if not any_:
                        raise self._changed(path) from None
            if written is None:
                written = write_file(self.repo.chunks, manifest, Path(disk), how, self.temps, guard)
            self.cache.record(path, written, oid, hashed_at)
        faults.point("file-replaced")
        assert written is not None
        return written

    def _current(self, path: str, st: os.stat_result | None, new: Manifest) -> Current | None:
        """The file at ``path`` as the stat cache knows it, when rebuilding from it
        is possible and worth it; None: write the new file from the chunk store."""
        if st is None or not stat.S_ISREG(st.st_mode) or new.size < REUSE_MIN:
            return None
        if st.st_size < REUSE_MIN:
            return None
        oid = self.cache.lookup(path, st)  # None unless unchanged and not racy
        db = self.repo.gitdb
        if oid is None or not db.has(oid):
            return None
        old = db.manifest(oid, f"manifest of '{path}'")
        return Current(old, stat_key(st)) if old.size == st.st_size else None

    def _guard(self, path: str, disk: str, st: os.stat_result | None) -> Callable[[], None]:
        """A check that ``disk`` still holds what it held when looked at (``st``)."""
        expected = None if st is None else stat_key(st)

        def check() -> None:
            now = lstat_or_none(disk)
            if (None if now is None else stat_key(now)) != expected:
                raise self._changed(path)

        return check

    def _set_mode(self, a: SetMode) -> None:
        disk, st = self._look(a.path, a.expect)
        holds = self.holds
        how = holds.decide(a.path, a.entry[0])
        if how is not None:
            if st is None:
                raise self._changed(a.path)  # nothing there to give the mode to
            hashed_at = time.time_ns()
            os.chmod(disk, file_mode(how == MODE_EXEC))
            self.cache.record(a.path, os.lstat(disk), a.entry[1], hashed_at)
        holds.settle(a.path, a.entry, how, lstat_or_none(disk))
        holds.save()


def _make_parents(root: Path, path: str) -> None:
    """Create the missing parent folders of ``path``."""
    for folder in ancestors(path):
        disk = disk_path(root, folder)
        st = lstat_or_none(disk)
        if st is None:
            os.mkdir(disk)
        elif not stat.S_ISDIR(st.st_mode):
            raise UncommittedChanges(
                f"'{folder}' is in the way of '{path}' (it is not a folder); "
                "move it away and run the command again"
            )


def _clear_folder(disk: str, path: str) -> None:
    """Remove the folder at ``disk`` if it holds only (empty) folders."""
    with os.scandir(disk) as it:
        entries = list(it)
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            raise UncommittedChanges(
                f"the folder '{path}' is in the way and not empty; move it away and retry"
            )
        _clear_folder(entry.path, path)
    os.rmdir(disk)


def prune(root: Path, folders: set[str]) -> None:
    """Remove these folders, and their parents, while they are empty (deepest first)."""
    for folder in sorted(folders, key=lambda f: f.count("/"), reverse=True):
        f = folder
        while f:
            try:
                os.rmdir(disk_path(root, f))
            except OSError:
                break
            f = f.rpartition("/")[0]
