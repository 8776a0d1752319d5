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


def write_pack(pack_dir: str, objects: Sequence[RawObject], fsync: bool) -> str | None:
    """Store ``objects`` (whole, no deltas; duplicates once) as one new pack in ``pack_dir``.

    Returns the pack's base path (``.../pack-<sha>``), or None when there was
    nothing to write. An OSError (disk full) leaves no new pack behind.
    """
    unique = list({o.id: o for o in objects}.values())
    if not unique:
        return None
    fd, tmp = tempfile.mkstemp(dir=pack_dir, suffix=".pack")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, PACK_MODE)
            digest = hashlib.sha1()
            head = b"PACK" + (2).to_bytes(4, "big") + len(unique).to_bytes(4, "big")
            parts = [head]
            digest.update(head)
            offset = len(head)
            entries: list[tuple[bytes, int, int]] = []
            for obj in unique:
                raw = obj.raw
                record = _object_header(obj.type_num, len(raw)) + zlib.compress(raw, ZLIB_LEVEL)
                digest.update(record)
                parts.append(record)
                binsha = hex_to_sha(ObjectID(obj.id))
                entries.append((binsha, offset, binascii.crc32(record) & 0xFFFFFFFF))
                offset += len(record)
                if len(parts) >= 1024:
                    f.write(b"".join(parts))
                    parts = []
            checksum = digest.digest()
            parts.append(checksum)
            f.write(b"".join(parts))
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        faults.point("git-pack-written")
        entries.sort()
        name = hashlib.sha1(b"".join(e[0] for e in entries)).hexdigest()
        base = os.path.join(pack_dir, "pack-" + name)
        had_index = os.path.exists(base + ".idx")  # the same objects, stored before
        os.rename(tmp, base + ".pack")
        faults.point("git-pack-renamed")
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
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
