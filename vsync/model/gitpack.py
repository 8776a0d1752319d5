"""Adding many new git objects at once, and asking which ids the store holds.

dulwich's ``add_objects`` writes a pack and then reads the whole pack back to
build its index; for the tens of thousands of manifests of a first commit
that second pass costs as much as the first. :func:`add_objects` writes the
pack and its index in one pass (the same files, in the same order and with
the same fsyncs as dulwich: the pack is complete and synced before it is
renamed into place, the index is written through a lock file and synced
after it), so a crash leaves either no new pack or a whole one.

:class:`Presence` answers "is this object stored?" for many ids: by pack
index lookups when there are few, from one set of every packed id when
there are many.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import tempfile
import zlib
from collections.abc import Sequence

from dulwich.file import GitFile
from dulwich.object_store import BaseObjectStore, DiskObjectStore
from dulwich.objects import ShaFile, hex_to_sha
from dulwich.pack import Pack, write_pack_index

PACK_MODE = 0o444
ZLIB_LEVEL = 1  # manifests and trees are small; git's default level buys little here


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


def add_objects(store: BaseObjectStore, objects: Sequence[ShaFile]) -> None:
    """Store ``objects`` (whole, no deltas) as one new pack of ``store``."""
    objects = list({o.id: o for o in objects}.values())
    if not objects:
        return
    if not isinstance(store, DiskObjectStore) or len(objects) < 64:
        store.add_objects([(o, None) for o in objects])
        return
    fd, tmp = tempfile.mkstemp(dir=store.pack_dir, suffix=".pack")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, PACK_MODE)
            digest = hashlib.sha1()
            head = b"PACK" + (2).to_bytes(4, "big") + len(objects).to_bytes(4, "big")
            parts = [head]
            digest.update(head)
            offset = len(head)
            entries: list[tuple[bytes, int, int]] = []
            for obj in objects:
                raw = obj.as_raw_string()
                binsha = hex_to_sha(obj.id)
                record = _object_header(obj.type_num, len(raw)) + zlib.compress(raw, ZLIB_LEVEL)
                digest.update(record)
                parts.append(record)
                entries.append((binsha, offset, binascii.crc32(record) & 0xFFFFFFFF))
                offset += len(record)
                if len(parts) >= 1024:
                    f.write(b"".join(parts))
                    parts = []
            checksum = digest.digest()
            parts.append(checksum)
            f.write(b"".join(parts))
            f.flush()
            if store.fsync_object_files:
                os.fsync(f.fileno())
        entries.sort()
        name = hashlib.sha1(b"".join(e[0] for e in entries)).hexdigest()
        base = os.path.join(store.pack_dir, "pack-" + name)
        os.rename(tmp, base + ".pack")
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    with GitFile(base + ".idx", "wb", mask=PACK_MODE, fsync=store.fsync_object_files) as idx:
        write_pack_index(idx, entries, checksum)


class Presence:
    """Which of many object ids ``store`` holds (packed or loose)."""

    def __init__(self, store: BaseObjectStore, expected: int) -> None:
        self.store = store
        self.packs: list[Pack] = list(getattr(store, "packs", []))
        self.ids: set[bytes] | None = None
        packed = sum(len(p.index) for p in self.packs)
        # One set of every packed id costs about one lookup per pack and id.
        if packed and expected * len(self.packs) * 4 > packed:
            self.ids = set()
            for pack in self.packs:
                self.ids.update(pack)
        self.loose = _loose_prefixes(store)

    def __contains__(self, oid: bytes) -> bool:
        if self.ids is not None:
            if oid in self.ids:
                return True
        elif any(oid in p for p in self.packs):
            return True
        if self.loose is None:
            return oid in self.store
        return oid[:2].decode() in self.loose and self.store.contains_loose(oid)


def _loose_prefixes(store: BaseObjectStore) -> set[str] | None:
    """The two-digit folders that hold loose objects (None: unknown, ask the store)."""
    path = getattr(store, "path", None)
    if not isinstance(store, DiskObjectStore) or path is None:
        return None
    try:
        names = os.listdir(path)
    except OSError:
        return None
    return {n for n in names if len(n) == 2 and os.listdir(os.path.join(path, n))}
