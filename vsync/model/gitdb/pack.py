"""Writing many new git objects as one pack, and asking which ids the store holds.

dulwich's ``add_objects`` writes a pack and then reads the whole pack back to
build its index; for the tens of thousands of manifests of a first commit
that second pass costs as much as the first. :func:`write_pack` writes the
pack and its index in one pass (the same files, in the same order and with
the same fsyncs as dulwich: the pack is complete and synced before it is
renamed into place, the index is written through a lock file and synced
after it), so a crash leaves either no new pack or a whole one (dulwich and
git only use a pack once its ``.idx`` exists).

:class:`Presence` answers "is this object stored?" for many ids: by pack
index lookups when there are few, from one set of every packed id when
there are many.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import os
import tempfile
import zlib
from collections.abc import Callable, Sequence

from dulwich.file import GitFile
from dulwich.object_store import DiskObjectStore
from dulwich.objects import ObjectID, hex_to_sha
from dulwich.pack import Pack, write_pack_index

from vsync.model.gitdb.guard import file_damage, guarded
from vsync.model.gitdb.types import RawObject
from vsync.store import faults

PACK_MODE = 0o444
STREAM_PACK_OBJECTS = 1 << 16  # objects a PackStream puts in one pack
ZLIB_LEVEL = 1  # manifests and trees are small; git's default level buys little here
_STORE = "the git object store (.vsync/git/objects)"


def _object_header(type_num: int, size: int) -> bytes:
    out = bytearray()
    c = (type_num << 4) | (size & 15)
    size >>= 4
    while size:
        out.append(c | 0x80)
        c = size & 0x7F
        size >>= 7
    out.append(c)
    return bytes(out)


def _deflate(raw: bytes) -> bytes:
    """``raw`` zlib-compressed at ZLIB_LEVEL with zlib's default window and memory.

    A window sized to the object with a matching memLevel (tried to save the set-up
    of zlib's full state on small manifests) measured slower here on every size:
    20 % on a 120-byte manifest, twice as slow on a 3.5 KB tree of a hundred
    entries, which is most of what a commit of changes in many folders packs."""
    return zlib.compress(raw, ZLIB_LEVEL)


def write_pack(pack_dir: str, objects: Sequence[RawObject], fsync: bool) -> str | None:
    """Store ``objects`` (whole, no deltas; duplicates once) as one new pack in ``pack_dir``.

    Returns the pack's base path (``.../pack-<sha>``), or None when there was
    nothing to write. An OSError (disk full) leaves no new pack behind.
    """
    unique = list({o.id: o for o in objects}.values())
    if not unique:
        return None
    pending = _TempPack(pack_dir, len(unique))
    try:
        for obj in unique:
            pending.add(obj)
    except BaseException:
        pending.discard()
        raise
    return pending.install(fsync)


class _TempPack:
    """A pack being written under a temporary name (``tmpXXXX.pack`` in the pack
    folder: no ``.idx``, so nothing reads it and fsck/gc clean it up if it stays).
    :meth:`install` writes the trailer, renames it and writes its index. With
    ``count`` (how many distinct objects will be added) the header is final at
    once and the checksum follows the writes; without, :meth:`install` writes
    the count into the header and reads the file back for the checksum."""

    def __init__(self, pack_dir: str, count: int | None = None) -> None:
        self.pack_dir = pack_dir
        self.count = count
        fd, self.tmp = tempfile.mkstemp(dir=pack_dir, suffix=".pack")
        self._f = os.fdopen(fd, "wb")
        head = b"PACK" + (2).to_bytes(4, "big") + (count or 0).to_bytes(4, "big")
        self._digest = hashlib.sha1(head) if count is not None else None
        try:
            os.chmod(self.tmp, PACK_MODE)
            self._f.write(head)
        except BaseException:
            self.discard()
            raise
        self.offset = 12
        self.entries: list[tuple[bytes, int, int]] = []
        self.ids: set[bytes] = set()
        self._parts: list[bytes] = []
        self._packed: bytes | None = None  # the entries, sorted, once :meth:`put_aside`
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def put_aside(self) -> None:
        """No more objects will be added: write what is buffered, keep the index entries
        as 32 bytes each (sorted) rather than as Python objects."""
        self._f.write(b"".join(self._parts))
        self._parts = []
        self._packed = b"".join(
            sha + off.to_bytes(8, "big") + crc.to_bytes(4, "big")
            for sha, off, crc in sorted(self.entries)
        )
        self.entries = []
        self.ids = set()

    def _sorted_entries(self) -> list[tuple[bytes, int, int]]:
        packed = self._packed
        if packed is None:
            return sorted(self.entries)
        return [
            (packed[i : i + 20], int.from_bytes(packed[i + 20 : i + 28], "big"),
             int.from_bytes(packed[i + 28 : i + 32], "big"))
            for i in range(0, len(packed), 32)
        ]  # fmt: skip

    def add(self, obj: RawObject) -> None:
        """Append ``obj`` unless this pack holds it already."""
        if obj.id in self.ids:
            return
        self.ids.add(obj.id)
        raw = obj.raw
        record = _object_header(obj.type_num, len(raw)) + _deflate(raw)
        binsha = hex_to_sha(ObjectID(obj.id))
        self.entries.append((binsha, self.offset, binascii.crc32(record) & 0xFFFFFFFF))
        self._count += 1
        self.offset += len(record)
        if self._digest is not None:
            self._digest.update(record)
        self._parts.append(record)
        if len(self._parts) >= 1024:
            self._f.write(b"".join(self._parts))
            self._parts = []

    def install(self, fsync: bool) -> str:
        """Complete the pack, give it its name, write its index; returns its base path.
        An OSError (disk full) leaves no new pack behind."""
        try:
            f = self._f
            f.write(b"".join(self._parts))
            self._parts = []
            digest = self._digest
            if digest is None or self.count != self._count:
                f.seek(8)
                f.write(self._count.to_bytes(4, "big"))
                f.flush()
                # The checksum covers the whole file as it now is (the header included).
                digest = hashlib.sha1()
                with open(self.tmp, "rb") as r:
                    while block := r.read(1 << 20):
                        digest.update(block)
                f.seek(0, os.SEEK_END)
            checksum = digest.digest()
            f.write(checksum)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
            f.close()
            faults.point("git-pack-written")
            entries = self._sorted_entries()
            self._packed = None
            name = hashlib.sha1(b"".join(e[0] for e in entries)).hexdigest()
            base = os.path.join(self.pack_dir, "pack-" + name)
            had_index = os.path.exists(base + ".idx")  # the same objects, stored before
            os.rename(self.tmp, base + ".pack")
            faults.point("git-pack-renamed")
        except BaseException:
            self.discard()
            raise
        try:
            with GitFile(base + ".idx", "wb", mask=PACK_MODE, fsync=fsync) as idx:
                write_pack_index(idx, entries, checksum)
        except BaseException:
            if not had_index:  # a pack without its index (a full disk): nothing reads it
                with contextlib.suppress(OSError):
                    os.remove(base + ".pack")
            raise
        return base

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._f.close()
        with contextlib.suppress(OSError):
            os.remove(self.tmp)


class PackStream:
    """Many new objects written as they come, a bounded number to a pack.

    Objects go to temporary pack files as they are added (a new one every
    :data:`STREAM_PACK_OBJECTS` objects, so memory stays flat however many
    there are: some 250 bytes an object of the pack being written, 32 bytes an
    object of the packs put aside);
    :meth:`install` completes and names them in the order they were started,
    so the pack holding the last objects added (a commit) is the last one to
    become readable. Until then nothing reads them; :meth:`discard` (or a
    crash) leaves only temporary files that fsck and gc remove.
    """

    def __init__(self, pack_dir: str, per_pack: int | None = None) -> None:
        self.pack_dir = pack_dir
        self.per_pack = per_pack or STREAM_PACK_OBJECTS
        self._done: list[_TempPack] = []
        self._current: _TempPack | None = None
        self.added = 0

    def add(self, obj: RawObject) -> None:
        cur = self._current
        if cur is None:
            cur = self._current = _TempPack(self.pack_dir)
        cur.add(obj)
        self.added += 1
        if len(cur) >= self.per_pack:
            cur.put_aside()
            self._done.append(cur)
            self._current = None

    def install(self, fsync: bool) -> list[str]:
        """Complete every pack (see the class docstring); returns their base paths."""
        packs = self._done + ([self._current] if self._current is not None else [])
        self._done, self._current = [], None
        out: list[str] = []
        try:
            while packs:
                out.append(packs[0].install(fsync))
                packs.pop(0)
        finally:
            for pack in packs:
                pack.discard()
        return out

    def discard(self) -> None:
        """Remove every temporary pack (nothing was installed)."""
        packs = self._done + ([self._current] if self._current is not None else [])
        self._done, self._current = [], None
        for pack in packs:
            pack.discard()


class Presence:
    """Which of many object ids a store holds (packed or loose); made by ``GitDB.presence``."""

    def __init__(self, store: DiskObjectStore, expected: int) -> None:
        self._store = store
        self._damage = file_damage(_STORE)
        self._packs: list[Pack] = []
        self._ids: set[bytes] | None = None
        self._loose: set[str] = set()
        guarded(lambda: self._load(expected), self._damage)

    def _load(self, expected: int) -> None:
        self._packs = list(self._store.packs)
        packed = sum(len(p.index) for p in self._packs)
        # One set of every packed id costs about one lookup per pack and id.
        if packed and expected * len(self._packs) * 4 > packed:
            ids: set[bytes] = set()
            for pack in self._packs:
                ids.update(pack)
            self._ids = ids
        path = self._store.path
        self._loose = {n for n in os.listdir(path) if len(n) == 2 and os.listdir(f"{path}/{n}")}

    def __contains__(self, oid: bytes) -> bool:
        ids = self._ids
        if ids is not None:
            if oid in ids:
                return True
        elif self._check(lambda: any(ObjectID(oid) in p for p in self._packs)):
            return True
        return oid[:2].decode("ascii", "replace") in self._loose and self._check(
            lambda: self._store.contains_loose(ObjectID(oid))
        )

    def _check(self, ask: Callable[[], bool]) -> bool:
        return guarded(ask, self._damage)
