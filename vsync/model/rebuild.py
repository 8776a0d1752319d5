"""Writing a new version of a working file from the ranges its current version shares.

Going back a version of a large file (checkout, restore, revert-to, undo) that
differs from the folder's copy in a few chunks should cost those chunks, not
the file. When the file now at the target is known — the stat cache says it is
unchanged since it was hashed, so its manifest :class:`Current` ``old`` holds —
the new file is built in its temporary file (:func:`vsync.model.materialize.replace_with`)
from two sources, in the new manifest's order:

- each run of chunks that the current file also holds is copied from it by the
  kernel (a reflink clone where the file system shares blocks, else
  ``copy_file_range``: :mod:`vsync.store.rangecopy`), at the offsets ``old``
  gives;
- every other chunk is read from the chunk store, verified against its id.

Copied ranges are not hashed again (that would read the whole file, which is
what this avoids). They are trusted as the stat cache trusts a file, by the
racy-git rule: the cache's entry is not racy (the file was last modified
comfortably before it was hashed), so any write to it since moves its mtime or
ctime. The current file is opened, its ``fstat`` must equal the entry's stat
before the first range is copied, and both its ``fstat`` and the target path's
``lstat`` must still equal it when the temporary file is complete: otherwise
:class:`CurrentChanged`, the temporary file goes and the target is untouched.
A file truncated during the copy is caught the same way (the copy also stops
short). The size of the result is checked against the new manifest.

Finding the old offset of a chunk: the old chunk after the last one matched is
tried first (unchanged stretches, and the chunk after an edit in place or an
insertion); otherwise a sorted array of 44-bit id prefixes and chunk numbers
(8 bytes a chunk, however large the file), made when first needed, is searched
and the whole entry (id and length) compared.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vsync.errors import DamagedRepository
from vsync.model.manifest import ENTRY, Manifest
from vsync.model.materialize import FolderTemps, replace_with
from vsync.model.statcache import StatKey, stat_key
from vsync.store import faults
from vsync.store.chunkstore import ChunkStore
from vsync.store.rangecopy import RangeCopier, SourceTooShort

REUSE_MIN = 1024 * 1024
"""Files smaller than this are written from the chunk store alone (reading the old
manifest would cost about what it saves)."""

_INDEX_BITS = 20  # MAX_CHUNKS is 2**20: a chunk number fits in 20 bits
_INDEX_MASK = (1 << _INDEX_BITS) - 1


class CurrentChanged(Exception):
    """The file at the target changed while the new version was being built from it."""


@dataclass(frozen=True, slots=True)
class Current:
    """The file now at a target, as the stat cache knows it: its content is
    ``manifest`` as long as its stat is ``key``."""

    manifest: Manifest
    key: StatKey


class OldChunks:
    """Where each chunk of a manifest starts in its file, and which chunk has an entry."""

    def __init__(self, manifest: Manifest) -> None:
        self.raw = manifest.entries
        self.count = len(self.raw) // ENTRY.size
        self.offsets = array("Q", [0])
        self.offsets.extend(itertools.accumulate(n for _cid, n in ENTRY.iter_unpack(self.raw)))
        self._keys: array[int] | None = None

    def find(self, entry: bytes, hint: int) -> int:
        """The number of an old chunk whose entry (id and length) is ``entry``,
        ``hint`` tried first; -1 if there is none."""
        raw, size = self.raw, ENTRY.size
        if 0 <= hint < self.count and raw[hint * size : (hint + 1) * size] == entry:
            return hint
        keys = self._index()
        p = _prefix(entry)
        j = bisect.bisect_left(keys, p << _INDEX_BITS)
        while j < len(keys) and keys[j] >> _INDEX_BITS == p:
            i = keys[j] & _INDEX_MASK
            if raw[i * size : (i + 1) * size] == entry:
                return i
            j += 1
        return -1

    def _index(self) -> array[int]:
        """The old entries' id prefixes and numbers, sorted (made when first needed:
        an edit that keeps the chunks in place never needs it)."""
        if self._keys is None:
            size = ENTRY.size
            raw = self.raw
            self._keys = array(
                "Q",
                sorted(_prefix(raw[i * size : i * size + 8]) << _INDEX_BITS | i
                       for i in range(self.count)),
            )  # fmt: skip
        return self._keys


def _prefix(entry: bytes | bytearray | memoryview) -> int:
    return int.from_bytes(entry[:8], "big") >> (64 - 44)


Piece = tuple[int, int, bytes]  # (old offset or -1: from the store, length, chunk id)


def pieces(old: Manifest, new: Manifest) -> Iterator[Piece]:
    """The new file as runs copied from the old one (offset, length, b"") and chunks
    read from the store (-1, length, id), in order. A chunk is copied only where the
    old manifest lists the same id with the same length."""
    index = OldChunks(old)
    offsets = index.offsets
    raw, size = new.entries, ENTRY.size
    run_at, run_len, hint = -1, 0, -1
    for j in range(len(raw) // size):
        entry = bytes(raw[j * size : (j + 1) * size])
        i = index.find(entry, hint)
        if i < 0:
            if run_len:
                yield run_at, run_len, b""
                run_len = 0
            if hint >= 0:
                hint += 1  # an edit in place: the next chunk is likely the next old one
            cid, length = ENTRY.unpack(entry)
            yield -1, length, cid
            continue
        at, length = offsets[i], offsets[i + 1] - offsets[i]
        if run_len and at == run_at + run_len:
            run_len += length
        else:
            if run_len:
                yield run_at, run_len, b""
            run_at, run_len = at, length
        hint = i + 1
    if run_len:
        yield run_at, run_len, b""


def rebuild_file(
    chunks: ChunkStore,
    current: Current,
    new: Manifest,
    target: Path,
    mode: int,
    temps: FolderTemps,
    guard: Callable[[], None] | None = None,
) -> os.stat_result:
    """Atomically replace ``target`` (holding ``current``) by ``new``'s content, built
    from the ranges the two share plus the other chunks; returns the new lstat.

    Raises :class:`CurrentChanged` (``target`` untouched) if the current file is
    not, or stops being, what ``current`` says. ``guard`` as in
    :func:`vsync.model.materialize.write_file`."""
    try:
        src = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise CurrentChanged() from None
    except OSError as exc:
        if exc.errno != errno.ELOOP:  # a symlink there now
            raise
        raise CurrentChanged() from None
    try:
        if stat_key(os.fstat(src)) != current.key:
            raise CurrentChanged()

        def fill(dst: int) -> None:
            copier = RangeCopier(src, dst)
            copier.reserve(new.size)
            pos = 0
            first = True
            try:
                for at, length, cid in pieces(current.manifest, new):
                    if at < 0:
                        data = chunks.read(cid)
                        if len(data) != length:
                            raise DamagedRepository(f"chunk {cid.hex()[:16]} has the wrong length")
                        _pwrite_all(dst, data, pos)
                    else:
                        copier.copy(at, pos, length)
                        if first:
                            faults.point("file-rebuilding")
                            first = False
                    pos += length
            except SourceTooShort:
                raise CurrentChanged() from None
            if pos != new.size or os.fstat(dst).st_size != new.size:
                raise DamagedRepository("manifest size does not match its chunks")
            faults.point("file-rebuilt")
            if stat_key(os.fstat(src)) != current.key:
                raise CurrentChanged()

        def check() -> None:
            try:
                st = os.lstat(target)
            except FileNotFoundError:
                raise CurrentChanged() from None
            if stat_key(st) != current.key:
                raise CurrentChanged()
            if guard is not None:
                guard()

        return replace_with(target, mode, temps, fill, check)
    finally:
        os.close(src)


def _pwrite_all(fd: int, data: bytes, pos: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        view = view[n:]
        pos += n
