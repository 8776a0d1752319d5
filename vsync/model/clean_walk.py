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
from collections.abc import Callable
from pathlib import Path
from stat import S_IFLNK, S_IFMT, S_IFREG

from vsync.model.ignore import Ignore
from vsync.model.paths import CONTROL_NAME, TEMP_PREFIX, control_shaped, nfc, reserved_reason
from vsync.model.statcache import KEY, RECORD, CacheFile


def folder_as_cached(root: Path, cache: CacheFile, ignore: Ignore) -> bool:
    """True if the folder holds exactly the cache's entries, each with its recorded stat."""
    index_get = cache.index.get
    records = cache.records
    key_at = KEY.unpack_from
    size = RECORD.size
    found = 0
    stack: list[tuple[str, str]] = [(str(root), "")]
    pop, push = stack.pop, stack.append
    while stack:
        disk_dir, rel_dir = pop()
        try:
            with os.scandir(disk_dir) as it:
                entries = list(it)
        except OSError:
            return False
        names = [e.name for e in entries]
        if control_shaped(names):
            return False  # the scan leaves this folder's config out, with a warning
        head = rel_dir + "/" if rel_dir else ""
        plain = "".join(names).isascii()  # ASCII is valid UTF-8 and already NFC
        for entry in entries:
            name = entry.name
            if not plain and not name.isascii():
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    return False
                name = nfc(name)
            i = index_get(head + name)
            try:
                if i is None:
                    if not _other(entry, name, head + name, ignore, push):
                        return False
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                return False
            if key_at(records, i * size) != (
                st.st_size,
                st.st_mtime_ns,
                st.st_ctime_ns,
                st.st_ino,
                st.st_mode,
            ):
                return False
            found += 1
    return found == len(cache.index)


def _other(
    entry: os.DirEntry[str],
    name: str,
    rel: str,
    ignore: Ignore,
    push: Callable[[tuple[str, str]], None],
) -> bool:
    """A name that is no entry: True if the scan would pass over it silently (a folder
    is then walked). OSError if it cannot be looked at."""
    if name == CONTROL_NAME or name.startswith(TEMP_PREFIX):
        return True
    if entry.is_dir(follow_symlinks=False):
        if ignore.ignored(rel, True):
            return True
        if reserved_reason(name) is not None:
            return False
        push((entry.path, rel))
        return True
    kind = S_IFMT(entry.stat(follow_symlinks=False).st_mode)
    # a new file is a change; the scan warns about a special file (not ignored or not)
    return kind in (S_IFREG, S_IFLNK) and ignore.ignored(rel, False)
