"""The paths a watcher reported as changed, looked at as the folder scan would.

:func:`examine` turns the fsmonitor's list of changed paths into *prefixes*
(a reported path and everything below it) and, for each, what the folder holds
there now (:class:`~vsync.model.folder_scan.WorkFile` records, as
:func:`~vsync.model.folder_scan.scan` would return them) and which stat-cache
entries lie under it (what the folder held before). A reported folder is walked
by the scan itself.

It gives up (None: the caller walks the whole folder, which says why) wherever
the scan would warn or its rules are in doubt: a name that is not NFC or not
UTF-8, a reserved name, a special file, an unreadable path, a folder shaped like
a repository, the ignore file itself among the changes.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from stat import S_IFDIR, S_IFLNK, S_IFMT, S_IFREG

from vsync.model.folder_scan import WorkFile, scan
from vsync.model.ignore import IGNORE_FILE, Ignore
from vsync.model.paths import (
    CONTROL_NAME,
    CONTROL_PARTS,
    TEMP_PREFIX,
    control_shaped,
    fold_name,
    nfc,
    reserved_reason,
)
from vsync.model.statcache import CacheFile, file_stat


@dataclass
class Examined:
    prefixes: list[str]  # the changed paths, none below another, sorted
    files: dict[str, WorkFile]  # what the folder holds under them now
    old: list[str]  # the cache entries under them (what it held), sorted


class _Doubt(Exception):
    """The scan would warn here, or its rules are in doubt: walk the whole folder."""


class _Below(Ignore):
    """The ignore rules of the working folder, for a scan rooted at one of its folders."""

    def __init__(self, rules: Ignore, folder: str) -> None:  # no super().__init__: a view
        self._rules = rules
        self._head = folder + "/"
        self.fingerprint = rules.fingerprint

    @property
    def empty(self) -> bool:
        return self._rules.empty

    def ignored(self, path: str, is_dir: bool) -> bool:
        return self._rules.ignored(self._head + path, is_dir)


def examine(root: Path, cache: CacheFile, paths: list[str], ignore: Ignore) -> Examined | None:
    """What changed at ``paths`` (see the module docstring); None: walk everything."""
    try:
        prefixes = _prefixes(paths)
        checked: dict[str, bool] = {}  # folder -> whether the scan enters it
        files: dict[str, WorkFile] = {}
        for path in prefixes:
            if _entered(root, path.rpartition("/")[0], ignore, checked):
                _look(root, path, ignore, files)
    except _Doubt:
        return None
    names = list(cache.index)  # in path order
    old: list[str] = []
    for path in prefixes:
        at = bisect_left(names, path)
        if at < len(names) and names[at] == path:
            old.append(path)
            at += 1
        head = path + "/"
        at = bisect_left(names, head, at)
        while at < len(names) and names[at].startswith(head):
            old.append(names[at])
            at += 1
    return Examined(prefixes, dict(sorted(files.items())), old)


def _prefixes(paths: list[str]) -> list[str]:
    """The reported paths that the scan may hold, none below another (a path below a
    reported folder is looked at with it)."""
    kept: set[str] = set()
    for path in sorted(paths):
        parts = path.split("/")
        if parts[0] == CONTROL_NAME:
            continue  # the control folder: never in a snapshot
        if path == IGNORE_FILE:
            raise _Doubt  # other rules: what they now leave in or out is unknown
        for part in parts:
            if nfc(part) != part:
                raise _Doubt  # the scan keys names by their NFC form
            try:
                part.encode("utf-8")
            except UnicodeEncodeError:
                raise _Doubt from None  # the scan warns about it
        if any("/".join(parts[:i]) in kept for i in range(1, len(parts))):
            continue
        kept.add(path)
    return sorted(kept)


def _entered(root: Path, folder: str, ignore: Ignore, checked: dict[str, bool]) -> bool:
    """Whether the scan walks into ``folder`` ('' the root): every folder on the way is
    a real folder, not skipped, not ignored, not reserved."""
    if not folder:
        return True
    known = checked.get(folder)
    if known is not None:
        return known
    parent, _, name = folder.rpartition("/")
    entered = _entered(root, parent, ignore, checked)
    if entered:
        if name == CONTROL_NAME or name.startswith(TEMP_PREFIX):
            entered = False
        else:
            try:
                st = os.lstat(os.path.join(root, folder))
            except (FileNotFoundError, NotADirectoryError):
                st = None
            except OSError:
                raise _Doubt from None
            if st is None or S_IFMT(st.st_mode) != S_IFDIR or ignore.ignored(folder, True):
                entered = False
            else:
                _check_name(root, parent, name)
    checked[folder] = entered
    return entered


def _check_name(root: Path, parent: str, name: str) -> None:
    """_Doubt if the scan warns about ``name`` in ``parent`` (reserved, or the config of a
    folder shaped like a repository: any of its parts may have just made it so)."""
    if reserved_reason(name) is not None:
        raise _Doubt
    if fold_name(name) in CONTROL_PARTS:
        try:
            names = os.listdir(os.path.join(root, parent) if parent else root)
        except OSError:
            raise _Doubt from None
        if control_shaped(names):
            raise _Doubt


def _look(root: Path, path: str, ignore: Ignore, files: dict[str, WorkFile]) -> None:
    """Add what the folder holds at ``path`` (inside a folder the scan enters)."""
    parent, _, name = path.rpartition("/")
    if name == CONTROL_NAME or name.startswith(TEMP_PREFIX):
        return
    disk = os.path.join(root, path)
    try:
        st = os.lstat(disk)
    except (FileNotFoundError, NotADirectoryError):
        if fold_name(name) in CONTROL_PARTS:
            raise _Doubt from None  # its folder may no longer be shaped like a repository
        return  # gone: its entries are what it lost
    except OSError:
        raise _Doubt from None
    kind = S_IFMT(st.st_mode)
    if kind not in (S_IFREG, S_IFLNK, S_IFDIR):
        raise _Doubt  # the scan warns about special files
    if ignore.ignored(path, kind == S_IFDIR):
        return
    _check_name(root, parent, name)
    if kind != S_IFDIR:
        files[path] = WorkFile(path, disk, file_stat(st))
        return
    doubts: list[str] = []
    unreadable: list[str] = []
    found = scan(Path(disk), doubts.append, None, unreadable, _Below(ignore, path))
    if doubts or unreadable:
        raise _Doubt
    head = path + "/"
    for rel, wf in found.items():
        files[head + rel] = WorkFile(head + rel, wf.disk, wf.st)
