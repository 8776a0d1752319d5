"""Is the working folder exactly as the stat cache describes it? (The clean-status walk.)

:func:`folder_as_cached` walks the folder as :func:`vsync.model.folder_scan.scan`
does, but builds nothing per file: each name is looked up in the cache file's
path map and its lstat compared with the recorded one. It answers True only if
every file and symlink the scan would return is a cache entry with the same
size, mtime, ctime, inode and mode, and every entry was found. Anything else
(a new file the scan would keep, a name it would warn about, an unreadable
folder, a folder that turned into the shape of a vsync repository) is False,
and the caller takes the full path, which reports it.

Entries are compared without the ignore rules: the caller checks that the rules
are those the cache's clean stamp was made with (:attr:`Ignore.fingerprint`),
under which every entry was kept. Only names that are not entries are matched
against the rules.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import partial
from itertools import compress
from operator import attrgetter
from pathlib import Path
from queue import SimpleQueue
from stat import S_IFDIR, S_IFLNK, S_IFMT, S_IFREG

from vsync.model.ignore import Ignore
from vsync.model.paths import CONTROL_NAME, TEMP_PREFIX, control_shaped, nfc, reserved_reason
from vsync.model.statcache import KEY, RECORD, CacheFile


def folder_as_cached(root: Path, cache: CacheFile, ignore: Ignore) -> bool:
    """True if the folder holds exactly the cache's entries, each with its recorded stat."""
    checks = _Checks(cache.records)
    walked = False
    try:
        walked = _walk(root, cache, ignore, checks)
    finally:
        if not walked:
            checks.ok = False  # the answer is no: what is queued is not compared
        matched = checks.finish()
    return walked and matched


def _walk(root: Path, cache: CacheFile, ignore: Ignore, checks: _Checks) -> bool:
    """Lists every folder and hands each one's entries to ``checks``; False as soon
    as a name is not as the cache says (the lstat comparisons are ``checks``')."""
    index_get = cache.index.get
    found = 0
    stack: list[tuple[str, str]] = [(str(root), "")]
    pop, push = stack.pop, stack.append
    # Per folder, the work per entry is done by C loops (map over the names, then
    # _matches), not Python bytecode: that, and lstat itself, is what a clean status
    # costs.
    while stack and checks.ok:
        disk_dir, rel_dir = pop()
        try:
            on_disk = os.listdir(disk_dir)
            names = on_disk
            if control_shaped(names):
                return False  # the scan leaves this folder's config out, with a warning
            if not "".join(names).isascii():  # ASCII is valid UTF-8 and already NFC
                for name in names:
                    name.encode("utf-8")  # UnicodeEncodeError: the scan warns
                names = [n if n.isascii() else nfc(n) for n in names]
            head = rel_dir + "/" if rel_dir else ""
            rels = list(map(head.__add__, names))
            where = list(map(index_get, rels))
            if None in where:
                for disk_name, name, rel, i in zip(on_disk, names, rels, where, strict=True):
                    if i is None and not _other(disk_dir, disk_name, name, rel, ignore, push):
                        return False
                known = [i is not None for i in where]
                on_disk = list(compress(on_disk, known))
                where = list(compress(where, known))
        except (OSError, UnicodeEncodeError):
            return False
        checks.submit(disk_dir, on_disk, where)  # type: ignore[arg-type]  # no None left
        found += len(where)
    return found == len(cache.index)


class _Checks:
    """The lstat comparisons of the walk. With the C loop (which lets go of the GIL
    for its system calls) they run on a second thread while the walk lists the next
    folders, as git's preloaded index lstats on threads; in Python, inline."""

    def __init__(self, records: bytes) -> None:
        self.records = records
        self.ok = True
        self.failure: BaseException | None = None
        self.jobs: SimpleQueue[tuple[str, list[str], list[int]] | None] | None = None
        self.thread: threading.Thread | None = None
        if _matches is not _matches_py:
            self.jobs = SimpleQueue()
            self.thread = threading.Thread(target=self._run, name="vsync-lstat", daemon=True)
            self.thread.start()

    def submit(self, folder: str, names: list[str], where: list[int]) -> None:
        if self.jobs is not None:
            self.jobs.put((folder, names, where))
        elif not _matches(folder, names, where, self.records, RECORD.size):
            self.ok = False

    def _run(self) -> None:
        assert self.jobs is not None
        try:
            while (job := self.jobs.get()) is not None:
                if self.ok and not _matches(*job, self.records, RECORD.size):
                    self.ok = False
        except BaseException as exc:  # re-raised in the walking thread by finish()
            self.failure = exc
            self.ok = False

    def finish(self) -> bool:
        """Waits for the comparisons handed over; True if every file matched."""
        if self.jobs is not None and self.thread is not None:
            self.jobs.put(None)
            self.thread.join()
        if self.failure is not None:
            raise self.failure
        return self.ok


def _matches_py(folder: str, names: list[str], where: list[int], records: bytes, size: int) -> bool:
    """Every ``folder/name``'s lstat equals the key of its stat cache record (the
    reference for :mod:`vsync.model._lstat_match`, which does the same in C)."""
    join = (folder + "/").__add__
    try:
        now = list(map(_KEY_OF, map(_LSTAT, map(join, names))))
    except OSError:
        return False
    return now == list(map(partial(KEY.unpack_from, records), map(size.__mul__, where)))


try:
    from vsync.model._lstat_match import matches as _matches
except ImportError:  # built without a C compiler: the same walk in Python
    _matches = _matches_py

_LSTAT = partial(os.stat, follow_symlinks=False)
_KEY_OF = attrgetter("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino", "st_mode")


def _other(
    folder: str,
    disk_name: str,
    name: str,
    rel: str,
    ignore: Ignore,
    push: Callable[[tuple[str, str]], None],
) -> bool:
    """A name that is no entry: True if the scan would pass over it silently (a folder
    is then walked). OSError if it cannot be looked at."""
    if name == CONTROL_NAME or name.startswith(TEMP_PREFIX):
        return True
    path = folder + "/" + disk_name
    kind = S_IFMT(os.stat(path, follow_symlinks=False).st_mode)
    if kind == S_IFDIR:
        if ignore.ignored(rel, True):
            return True
        if reserved_reason(name) is not None:
            return False
        push((path, rel))
        return True
    # a new file is a change; the scan warns about a special file (not ignored or not)
    return kind in (S_IFREG, S_IFLNK) and ignore.ignored(rel, False)
