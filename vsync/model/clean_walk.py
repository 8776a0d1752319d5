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
from functools import partial
from itertools import compress
from operator import attrgetter, methodcaller
from pathlib import Path
from stat import S_IFLNK, S_IFMT, S_IFREG

from vsync.model.ignore import Ignore
from vsync.model.paths import CONTROL_NAME, TEMP_PREFIX, control_shaped, nfc, reserved_reason
from vsync.model.statcache import KEY, RECORD, CacheFile


def folder_as_cached(root: Path, cache: CacheFile, ignore: Ignore) -> bool:
    """True if the folder holds exactly the cache's entries, each with its recorded stat."""
    index_get = cache.index.get
    key_at = partial(KEY.unpack_from, cache.records)
    offset = RECORD.size.__mul__
    found = 0
    stack: list[tuple[str, str]] = [(str(root), "")]
    pop, push = stack.pop, stack.append
    # Per folder, the work per entry is done by C loops (map over the entries), not
    # Python bytecode: that, and lstat itself, is what a clean status costs.
    while stack:
        disk_dir, rel_dir = pop()
        try:
            with os.scandir(disk_dir) as it:
                entries = list(it)
            names = list(map(_NAME, entries))
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
                for entry, name, rel, i in zip(entries, names, rels, where, strict=True):
                    if i is None and not _other(entry, name, rel, ignore, push):
                        return False
                known = [i is not None for i in where]
                entries = list(compress(entries, known))
                where = list(compress(where, known))
            now = list(map(_KEY_OF, map(_LSTAT, entries)))
        except (OSError, UnicodeEncodeError):
            return False
        if now != list(map(key_at, map(offset, where))):  # type: ignore[arg-type]
            return False
        found += len(where)
    return found == len(cache.index)


_NAME = attrgetter("name")
_LSTAT = methodcaller("stat", follow_symlinks=False)
_KEY_OF = attrgetter("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino", "st_mode")


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
