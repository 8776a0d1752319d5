"""Scanning the working folder: what files and symlinks it holds, by NFC path (no reading).

:mod:`vsync.model.folder_snapshot` hashes what this finds into a flat map.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from stat import S_IFDIR, S_IFLNK, S_IFMT, S_IFREG

from vsync.model.gitdb.types import MODE_EXEC as MODE_EXEC  # git's modes, re-exported
from vsync.model.gitdb.types import MODE_FILE as MODE_FILE
from vsync.model.gitdb.types import MODE_LINK as MODE_LINK
from vsync.model.gitdb.types import MODE_TREE as MODE_TREE
from vsync.model.ignore import Ignore
from vsync.model.paths import (
    CONTROL_NAME,
    TEMP_PREFIX,
    control_shaped,
    fold_name,
    is_under,
    nfc,
    reserved_reason,
    unicode_twin,
)
from vsync.model.statcache import FileStat, Stat, file_stat

Warn = Callable[[str], None]


class WorkFile:
    """A file of the working folder as the scan found it."""

    __slots__ = ("disk", "path", "st")

    def __init__(self, path: str, disk: str, st: FileStat) -> None:
        self.path = path  # NFC, '/'-separated, relative to the root
        self.disk = disk  # absolute path as it is named on disk
        self.st = st

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, {self.disk!r}, {self.st!r})"

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.st.st_mode)

    @property
    def mode(self) -> int:
        if self.is_link:
            return MODE_LINK
        return MODE_EXEC if self.st.st_mode & 0o111 else MODE_FILE


def git_mode_of(st: Stat) -> int:
    if stat.S_ISLNK(st.st_mode):
        return MODE_LINK
    return MODE_EXEC if st.st_mode & 0o111 else MODE_FILE


def scan(
    root: Path,
    warn: Warn,
    prefixes: list[str] | None = None,
    unreadable: list[str] | None = None,
    ignore: Ignore | None = None,
) -> dict[str, WorkFile]:
    """Every regular file and symlink under ``root`` that is not ignored.

    ``prefixes`` limits the walk to those repository paths (files or folders).
    Special files are skipped with a warning; so are names that are not
    valid UTF-8, names that collide once NFC-normalised, names reserved by
    :func:`~vsync.model.paths.reserved_reason` (``.vsync`` folders, nested
    working folders' own, silently) and the ``config`` of a folder shaped like
    a vsync repository: nothing the scan returns makes a tree that
    :func:`~vsync.model.snapshot.flatten` or a peer would refuse.

    A folder that cannot be listed, or an entry whose stat is refused, is
    skipped with a warning and its path ('' for the root) appended to
    ``unreadable``: what it holds is unknown, not gone.
    """
    if ignore is None:
        ignore = Ignore(root)
    ignored = ignore.ignored
    out: dict[str, WorkFile] = {}
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        disk_dir, rel_dir = stack.pop()
        try:
            with os.scandir(disk_dir) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone since it was listed: what it held is gone too
        except OSError as exc:
            warn(f"skipping unreadable folder '{rel_dir or '.'}': {exc.strerror}")
            if unreadable is not None:
                unreadable.append(rel_dir)
            continue
        head = rel_dir + "/" if rel_dir else ""
        # A folder shaped like a vsync repository is never recorded as one:
        # its config stays out (paths.control_shaped), so no tree has that shape.
        shaped = control_shaped(e.name for e in entries)
        for entry in entries:
            name = entry.name
            if not name.isascii():  # ASCII is valid UTF-8 and already NFC
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    warn(f"skipping '{os.path.join(rel_dir, name)!r}': name is not valid UTF-8")
                    continue
                name = nfc(name)
            rel = head + name
            if name == CONTROL_NAME or name.startswith(TEMP_PREFIX):
                continue  # the control folder (or a nested one's); a writer's temporary file
            if prefixes is not None and not any(
                is_under(rel, p) or is_under(p, rel) for p in prefixes
            ):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone since its folder was listed
            except OSError as exc:
                warn(f"skipping unreadable '{rel}': {exc.strerror}")
                if unreadable is not None:
                    unreadable.append(rel)
                continue
            kind = S_IFMT(st.st_mode)
            if kind not in (S_IFREG, S_IFLNK, S_IFDIR):
                warn(f"skipping '{rel}': not a regular file, folder or symlink")
                continue
            if ignored(rel, kind == S_IFDIR):
                continue
            reason = reserved_reason(name)
            if reason is not None:
                warn(f"skipping '{rel}': {reason}")
                continue
            if shaped and fold_name(name) == "config":
                warn(
                    f"skipping '{rel}': '{rel_dir or '.'}' holds config, git and chunks, the "
                    "shape of a vsync repository, which vsync never records; rename one of them"
                )
                continue
            if kind == S_IFDIR:
                stack.append((entry.path, rel))
            elif rel in out:
                warn(unicode_twin(rel))
            else:
                out[rel] = WorkFile(rel, entry.path, file_stat(st))
    if prefixes is not None:
        out = {p: w for p, w in out.items() if any(is_under(p, pre) for pre in prefixes)}
    return dict(sorted(out.items()))
