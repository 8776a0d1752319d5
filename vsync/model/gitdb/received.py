"""A git pack received from a peer: checked against fixed bounds, then indexed.

A pack is small on the wire and may expand without limit: a delta of a few
bytes can state a result of gigabytes, a zlib stream of 32 KiB can inflate to
1 GiB, and resolving a delta needs its base and its result in memory. dulwich
expands everything it indexes, so before anything is resolved this module
walks the pack once, reading only headers (docs/protocol.md, "Limits of a
received git pack"):

- each object's declared size (the object header; for a delta, the base and
  result sizes stated at its start) is at most MAX_OBJECT_BYTES, and its
  zlib stream inflates to exactly that size (inflated in small steps,
  counted, never kept);
- an OFS_DELTA's base is an object that starts earlier in the pack and has
  the size the delta states; a REF_DELTA's base is an object the receiver
  already has (a thin pack's bases never travel in it);
- no delta chain is deeper than MAX_DELTA_DEPTH, and the sizes along a chain
  (its base, every delta, every result) add up to at most MAX_CHAIN_BYTES:
  what resolving the deepest object holds at once;
- the declared sizes of all objects add up to at most
  ``EXPANSION_RATIO * pack size + EXPANSION_ALLOWANCE``: the work a pack of
  that size may cost;
- the trailing SHA-1 matches and nothing follows it.

Only then is the pack indexed by dulwich, fed the objects found by the walk
(so dulwich inflates each object once, to resolve it). Every refusal is a
:class:`PackRefused` naming the rule; so is anything dulwich raises on what
is left (a delta whose instructions do not fit its sizes), and so is running
out of memory.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from dulwich.file import GitFile
from dulwich.object_format import ObjectFormat
from dulwich.pack import (
    PackData,
    PackIndexer,
    ResolveExtRefFn,
    UnpackedObject,
    write_pack_index_v2,
)

from vsync.errors import StoppedError
from vsync.model.manifest import MAX_MANIFEST_BYTES

MAX_OBJECT_BYTES = 40 * 1024 * 1024
"""The largest object a pack may hold or a delta may state: above the largest
manifest (MAX_MANIFEST_BYTES, 36 MiB), with room for a tree of some 800,000
entries."""
MAX_DELTA_DEPTH = 50  # git's default pack.depth
MAX_CHAIN_BYTES = 48 * 1024 * 1024  # what resolving one object may hold: see docs/protocol.md
EXPANSION_RATIO = 4096  # a ~470 KiB manifest travels as a ~200-byte delta: ratio ~2,400
EXPANSION_ALLOWANCE = 256 * 1024 * 1024  # some large manifests as tiny deltas, any pack

OBJ_COMMIT, OBJ_TREE, OBJ_BLOB, OBJ_TAG, OFS_DELTA, REF_DELTA = 1, 2, 3, 4, 6, 7
_WHOLE = (OBJ_COMMIT, OBJ_TREE, OBJ_BLOB, OBJ_TAG)
_READ = 1 << 20
_INFLATE_STEP = 64 * 1024  # output asked of zlib per call: nothing larger is ever held
_FEED_FIRST = 4096  # input handed to zlib first for each object, then _FEED at a time
_FEED = 64 * 1024
_MIN_OBJECT = 9  # a one-byte header and the shortest zlib stream (of nothing)

assert MAX_OBJECT_BYTES >= MAX_MANIFEST_BYTES


class PackRefused(StoppedError):
    """A received git pack broke a rule of docs/protocol.md; nothing was stored."""


@dataclass
class PackSummary:
    """What the walk found: counted from the pack itself, never from the sender's word."""

    objects: int
    expanded: int  # declared bytes of every object, whole and delta results
    deepest: int  # the longest delta chain


def receive_pack_file(
    pack_path: str,
    idx_path: str,
    object_format: ObjectFormat,
    has_object: Callable[[bytes], bool],
    get_raw: ResolveExtRefFn,
) -> PackSummary:
    """Check the pack at ``pack_path`` (module docstring), then write its index.

    ``has_object`` and ``get_raw`` answer for the receiver's object store
    (20-byte ids): the bases a thin pack may name. PackRefused if any rule is
    broken; nothing is resolved before every rule has been checked.
    """
    try:
        walk = _Walk(pack_path, has_object)
        walk.run()
        _index(pack_path, idx_path, object_format, get_raw, walk)
    except PackRefused:
        raise
    except MemoryError:
        raise PackRefused(
            "the remote's git pack needs more memory than this machine has; nothing was changed"
        ) from None
    except Exception as exc:  # dulwich and zlib raise assorted types on bad data
        raise PackRefused(
            f"the remote sent an unreadable git pack ({type(exc).__name__}: {exc}); "
            "nothing was changed"
        ) from None
    return PackSummary(walk.count, walk.expanded, walk.deepest)


class _Walk:
    """One pass over the pack's bytes, keeping a few numbers per object."""

    def __init__(self, path: str, has_object: Callable[[bytes], bool]) -> None:
        self.path = path
        self.has_object = has_object
        self.size = os.path.getsize(path)
        self.budget = EXPANSION_RATIO * self.size + EXPANSION_ALLOWANCE
        self.count = 0
        self.expanded = 0
        self.deepest = 0
        # Per object, in pack order (offsets ascend): 35 bytes each.
        self.offsets = array("Q")
        self.kinds = array("B")
        self.results = array("Q")  # size of the object once resolved
        self.depths = array("H")
        self.chains = array("Q")
        self.bases = array("Q")  # OFS_DELTA: the base's offset; else 0
        self.ref_bases: dict[int, bytes] = {}  # REF_DELTA: offset -> base id

    def refuse(self, offset: int, why: str) -> PackRefused:
        return PackRefused(
            f"the remote sent a git pack that is refused: object at offset {offset} {why}; "
            "nothing was changed"
        )

    def run(self) -> None:
        if self.size < 32:
            raise PackRefused("the remote sent a truncated git pack; nothing was changed")
        self._check_trailer()
        with open(self.path, "rb") as f:
            reader = _Reader(f, self.size - 20)
            head = reader.take_exactly(12)
            if head[:4] != b"PACK" or int.from_bytes(head[4:8], "big") not in (2, 3):
                raise PackRefused("the remote sent something that is not a git pack")
            self.count = int.from_bytes(head[8:12], "big")
            if self.count * _MIN_OBJECT > self.size - 32:
                raise PackRefused(
                    f"the remote's git pack claims {self.count} objects in {self.size} bytes"
                )
            for _ in range(self.count):
                self._object(reader)
            if reader.pos != self.size - 20:
                raise PackRefused("the remote's git pack has data after its last object")

    def _check_trailer(self) -> None:
        digest = hashlib.sha1()
        with open(self.path, "rb") as f:
            left = self.size - 20
            while left:
                block = f.read(min(_READ, left))
                if not block:
                    break
                digest.update(block)
                left -= len(block)
            if digest.digest() != f.read(20):
                raise PackRefused(
                    "the remote sent a corrupt git pack (checksum mismatch); nothing was changed"
                )

    def _object(self, reader: _Reader) -> None:
        offset = reader.pos
        byte = reader.byte()
        kind = (byte >> 4) & 7
        size = byte & 0x0F
        shift = 4
        while byte & 0x80:
            byte = reader.byte()
            size |= (byte & 0x7F) << shift
            shift += 7
            if size > MAX_OBJECT_BYTES or shift > 64:
                raise self.refuse(offset, f"declares more than {MAX_OBJECT_BYTES} bytes")
        if size > MAX_OBJECT_BYTES:
            raise self.refuse(offset, f"declares {size} bytes; the limit is {MAX_OBJECT_BYTES}")
        base_offset = 0
        depth = 0
        chain = 0
        if kind in _WHOLE:
            result = size
            self._spend(offset, size)
            self._inflate(reader, offset, size, 0)
            chain = size
        elif kind == OFS_DELTA:
            back = _ofs_distance(reader)
            base_offset = offset - back
            at = bisect.bisect_left(self.offsets, base_offset)
            if back <= 0 or at == len(self.offsets) or self.offsets[at] != base_offset:
                raise self.refuse(offset, "is a delta whose base is not an object of the pack")
            self._spend(offset, size)
            source, result = self._delta_sizes(reader, offset, size)
            if source != self.results[at]:
                raise self.refuse(offset, "is a delta for a base of another size")
            depth = self.depths[at] + 1
            chain = self.chains[at] + size + result
        elif kind == REF_DELTA:
            base_id = reader.take_exactly(20)
            if not self.has_object(base_id):
                raise self.refuse(
                    offset, f"is a delta against {base_id.hex()}, an object this side lacks"
                )
            self.ref_bases[offset] = base_id
            self._spend(offset, size)
            source, result = self._delta_sizes(reader, offset, size)
            depth = 1
            chain = source + size + result
        else:
            raise self.refuse(offset, f"has unknown type {kind}")
        if depth > MAX_DELTA_DEPTH:
            raise self.refuse(offset, f"ends a delta chain deeper than {MAX_DELTA_DEPTH}")
        if chain > MAX_CHAIN_BYTES:
            raise self.refuse(
                offset, f"ends a delta chain of {chain} bytes; the limit is {MAX_CHAIN_BYTES}"
            )
        self.deepest = max(self.deepest, depth)
        self.offsets.append(offset)
        self.kinds.append(kind)
        self.results.append(result)
        self.depths.append(depth)
        self.chains.append(chain)
        self.bases.append(base_offset)

    def _spend(self, offset: int, nbytes: int) -> None:
        self.expanded += nbytes
        if self.expanded > self.budget:
            raise self.refuse(
                offset,
                f"takes the pack's expansion past {self.budget} bytes "
                f"({EXPANSION_RATIO} x its {self.size} bytes + {EXPANSION_ALLOWANCE})",
            )

    def _delta_sizes(self, reader: _Reader, offset: int, size: int) -> tuple[int, int]:
        head = self._inflate(reader, offset, size, 20)
        source, pos = _varint(head, 0)
        result, pos = _varint(head, pos)
        if pos < 0:
            raise self.refuse(offset, "is a delta too short for its header")
        if source > MAX_OBJECT_BYTES or result > MAX_OBJECT_BYTES:
            raise self.refuse(
                offset,
                f"is a delta from {source} to {result} bytes; the limit is {MAX_OBJECT_BYTES}",
            )
        self._spend(offset, result)
        return source, result

    def _inflate(self, reader: _Reader, offset: int, size: int, keep: int) -> bytes:
        """Inflate one zlib stream, which must give exactly ``size`` bytes; return
        its first ``keep`` bytes. At most _INFLATE_STEP bytes are held at a time."""
        d = zlib.decompressobj()
        head = b""
        produced = 0
        pending: bytes | memoryview = b""
        feed = _FEED_FIRST  # small first: zlib copies what it does not use
        while not d.eof:
            if not pending:
                pending = reader.take(feed)
                feed = _FEED
                if not pending:
                    raise self.refuse(offset, "is cut short")
            try:
                out = d.decompress(pending, _INFLATE_STEP)
            except zlib.error:
                raise self.refuse(offset, "is not a valid zlib stream") from None
            produced += len(out)
            if produced > size:
                raise self.refuse(offset, f"inflates past the {size} bytes it declares")
            if len(head) < keep:
                head += out[: keep - len(head)]
            pending = d.unconsumed_tail
        reader.give_back(len(d.unused_data))
        if produced != size:
            raise self.refuse(offset, f"inflates to {produced} bytes, not the {size} it declares")
        return head


class _Reader:
    """Sequential reads of the pack's object area (everything before the trailer),
    a block at a time; pieces are views into the block, never copies of it."""

    def __init__(self, f: BinaryIO, end: int) -> None:
        self.f = f
        self.end = end
        self.pos = 0
        self.block = b""
        self.block_pos = 0

    def take(self, n: int) -> memoryview:
        i = self.pos - self.block_pos
        if not 0 <= i < len(self.block):
            self.f.seek(self.pos)
            self.block = self.f.read(min(_READ, self.end - self.pos))
            self.block_pos = self.pos
            i = 0
        piece = memoryview(self.block)[i : i + n]
        self.pos += len(piece)
        return piece

    def take_exactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            piece = self.take(n - len(out))
            if not piece:
                raise PackRefused("the remote sent a truncated git pack; nothing was changed")
            out += piece
        return out

    def byte(self) -> int:
        return self.take_exactly(1)[0]

    def give_back(self, n: int) -> None:
        self.pos -= n


def _ofs_distance(reader: _Reader) -> int:
    byte = reader.byte()
    value = byte & 0x7F
    steps = 0
    while byte & 0x80:
        steps += 1
        if steps > 9:
            return -1
        byte = reader.byte()
        value = ((value + 1) << 7) | (byte & 0x7F)
    return value


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A delta header size at ``pos``: (value, position after); position -1 when cut."""
    if pos < 0:
        return 0, -1
    value = 0
    shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
    return 0, -1


def _index(
    pack_path: str,
    idx_path: str,
    object_format: ObjectFormat,
    get_raw: ResolveExtRefFn,
    walk: _Walk,
) -> None:
    """Resolve every object once with dulwich and write the pack's index (v2)."""
    with PackData(pack_path, object_format=object_format) as data:
        indexer = PackIndexer(
            None, object_format.hash_func, resolve_ext_ref=get_raw, object_format=object_format
        )
        indexer.set_pack_data(data)
        for i, offset in enumerate(walk.offsets):
            kind = walk.kinds[i]
            base: int | bytes | None = None
            if kind == OFS_DELTA:
                base = offset - walk.bases[i]
            elif kind == REF_DELTA:
                base = walk.ref_bases[offset]
            indexer.record(UnpackedObject(kind, delta_base=base, offset=offset))
        entries = sorted(indexer)
        if len(entries) != walk.count:
            raise PackRefused("the remote's git pack holds deltas that resolve to nothing")
        with GitFile(idx_path, "wb") as f:
            write_pack_index_v2(f, entries, data.get_stored_checksum())
