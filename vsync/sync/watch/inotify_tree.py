"""A recursive inotify watch of a working folder that says when it lost events.

The only module that imports inotify_simple. watchfiles (:mod:`.events`) cannot be
the fsmonitor's source: it drops the kernel's queue-overflow event (it carries no
path) and watches ``IN_OPEN``, so reading many files can overflow the queue
unnoticed. Here the mask holds only what changes a file or a folder, an overflow
raises :class:`EventsLost`, and a folder that cannot be watched (the
``fs.inotify.max_user_watches`` limit) raises :class:`WatchLimit`.

Every folder of the tree gets a watch, except the control folder's subfolders
and nested ``.vsync`` folders: the control folder itself is watched for the
creation of cookies only. A folder that appears (created, moved in) is watched
at once, with everything below it, and reported as changed *after* its watches
are set: the caller walks it, so nothing written into it before its watch
existed is missed. A folder that disappears (deleted, moved away) loses its
watches and is reported; so is every name an event names.

Paths are relative, ``/``-separated, as named on disk (decoded as ``os.fsdecode``
does: a name that is not UTF-8 holds surrogate escapes).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import inotify_simple  # type: ignore[import-untyped]

from vsync.model.paths import CONTROL_NAME

_F = inotify_simple.flags
CHANGE_MASK = int(
    _F.CREATE
    | _F.DELETE
    | _F.MODIFY
    | _F.ATTRIB
    | _F.CLOSE_WRITE
    | _F.MOVED_FROM
    | _F.MOVED_TO
    | _F.DELETE_SELF
    | _F.MOVE_SELF
    | _F.ONLYDIR
    | _F.DONT_FOLLOW
    | _F.EXCL_UNLINK
)
CONTROL_MASK = int(_F.CREATE | _F.ONLYDIR | _F.DONT_FOLLOW)
ISDIR = int(_F.ISDIR)
Q_OVERFLOW = int(_F.Q_OVERFLOW)
IGNORED = int(_F.IGNORED)
DIR_GONE = int(_F.DELETE | _F.MOVED_FROM)
DIR_CAME = int(_F.CREATE | _F.MOVED_TO | _F.ATTRIB)  # ATTRIB: it may be readable now
SELF_GONE = int(_F.DELETE_SELF | _F.MOVE_SELF)
READ_SIZE = 1 << 20


class EventsLost(Exception):
    """The kernel's event queue overflowed: some changes were not reported."""


class WatchLimit(Exception):
    """A folder could not be watched (inotify's watch or instance limit)."""

    def __init__(self, path: str, exc: OSError) -> None:
        super().__init__(f"cannot watch '{path or '.'}': {exc.strerror}")
        self.path = path
        self.errno = exc.errno


def watch_limit() -> str:
    """The user's inotify watch limit, as the kernel shows it ('?' if it does not)."""
    try:
        return Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip()
    except OSError:
        return "?"


class TreeWatch:
    """Watches of one folder tree in one inotify instance (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self._ino: Any = None
        self._dirs: dict[int, str] = {}  # watch descriptor -> folder ('' the root)
        self._wds: dict[str, int] = {}  # folder -> watch descriptor
        self._control_wd = -1
        self.cookies: list[str] = []  # names of files created in the control folder

    def fileno(self) -> int:
        return int(self._ino.fileno())

    @property
    def watches(self) -> int:
        return len(self._dirs)

    def start(self) -> None:
        """Watch every folder of the tree (WatchLimit if one cannot be)."""
        try:
            self._ino = inotify_simple.INotify(nonblocking=True)
        except OSError as exc:  # EMFILE: the user's inotify instances are all in use
            raise WatchLimit("", exc) from None
        try:
            self._control_wd = self._add(os.path.join(self.root, CONTROL_NAME), CONTROL_MASK)
        except OSError as exc:
            self.close()
            raise WatchLimit(CONTROL_NAME, exc) from None
        for _ in self._watch_below(""):
            pass

    def close(self) -> None:
        if self._ino is not None:
            with contextlib.suppress(OSError):
                self._ino.close()
        self._ino = None
        self._dirs.clear()
        self._wds.clear()

    def _add(self, disk: str, mask: int) -> int:
        return int(self._ino.add_watch(os.fsencode(disk), mask))

    def _watch_below(self, top: str) -> Iterator[str]:
        """Watch ``top`` and every folder below it; yields each folder newly watched.
        A folder that is gone or cannot be read is passed over (its parent's events
        still report it); WatchLimit when the kernel refuses a watch for want of one."""
        stack = [top]
        while stack:
            rel = stack.pop()
            disk = os.path.join(self.root, rel) if rel else self.root
            try:
                wd = self._add(disk, CHANGE_MASK)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.ENOMEM):
                    raise WatchLimit(rel, exc) from None
                if not rel:
                    raise WatchLimit(rel, exc) from None  # the root itself
                continue  # gone, not a folder, or unreadable (the scan says so)
            old = self._dirs.get(wd)
            if old is not None and old != rel:
                self._wds.pop(old, None)
            self._dirs[wd] = rel
            self._wds[rel] = wd
            yield rel
            head = rel + "/" if rel else ""
            try:
                with os.scandir(disk) as it:
                    for entry in it:
                        if entry.name == CONTROL_NAME:
                            continue
                        with contextlib.suppress(OSError):
                            if entry.is_dir(follow_symlinks=False):
                                stack.append(head + entry.name)
            except OSError:
                continue

    def _forget_below(self, top: str) -> None:
        """Drop the watches of ``top`` and the folders below it (it moved or went)."""
        head = top + "/"
        for rel in [r for r in self._wds if r == top or r.startswith(head)]:
            wd = self._wds.pop(rel)
            self._dirs.pop(wd, None)
            with contextlib.suppress(OSError):
                self._ino.rm_watch(wd)

    def read(self) -> list[str]:
        """The paths changed since the last read (none waiting: empty). New cookies go
        to :attr:`cookies`. EventsLost on an overflow, WatchLimit if a new folder cannot
        be watched."""
        changed: list[str] = []
        while True:
            try:
                data = os.read(self.fileno(), READ_SIZE)
            except BlockingIOError:
                return changed
            except InterruptedError:
                continue
            if not data:
                return changed
            for wd, mask, _cookie, name in inotify_simple.parse_events(data):
                if mask & Q_OVERFLOW:
                    raise EventsLost
                if wd == self._control_wd:
                    if name:
                        self.cookies.append(name)
                    continue
                folder = self._dirs.get(wd)
                if folder is None:
                    continue  # a watch dropped when its folder moved (the move is reported)
                if mask & IGNORED:
                    self._dirs.pop(wd, None)
                    if self._wds.get(folder) == wd:
                        del self._wds[folder]
                    continue
                if not name:
                    if mask & SELF_GONE and folder:
                        changed.append(folder)
                    continue
                path = f"{folder}/{name}" if folder else name
                if mask & ISDIR:
                    if name == CONTROL_NAME:
                        continue  # a nested repository's control folder: never scanned
                    if mask & DIR_GONE:
                        self._forget_below(path)
                    elif mask & DIR_CAME and path not in self._wds:
                        for _ in self._watch_below(path):
                            pass
                changed.append(path)
