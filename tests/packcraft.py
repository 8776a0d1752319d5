"""Building git packs byte by byte, lies included: for hostile peers and fuzzing.

A pack is ``PACK``, version 2, an object count, the objects, then the SHA-1 of
all of that. Each object is a type-and-size header (the size is what the
object, or the delta, inflates to), for OFS_DELTA the distance back to its
base, for REF_DELTA the base's 20-byte id, then a zlib stream. A delta starts
with two varints (the base's size, the result's size) followed by COPY and
INSERT instructions (git's format, as in dulwich's ``apply_delta``).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

COMMIT, TREE, BLOB, TAG, OFS_DELTA, REF_DELTA = 1, 2, 3, 4, 6, 7


def varint(n: int) -> bytes:
    """A delta header size: 7 bits a byte, least significant first."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def object_header(type_num: int, size: int) -> bytes:
    """The pack object header: type in bits 4-6 of the first byte, size in the rest."""
    byte = (type_num << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def ofs_encoding(distance: int) -> bytes:
    """The OFS_DELTA distance back to the base (git's offset encoding)."""
    out = bytearray([distance & 0x7F])
    distance >>= 7
    while distance:
        distance -= 1
        out.insert(0, 0x80 | (distance & 0x7F))
        distance >>= 7
    return bytes(out)


def copy_op(offset: int, size: int) -> bytes:
    """A COPY instruction: ``size`` (1..0xFFFFFF, 0x10000 when encoded as 0) bytes
    of the base from ``offset``."""
    cmd = 0x80
    tail = bytearray()
    for i in range(4):
        byte = (offset >> (8 * i)) & 0xFF
        if byte:
            cmd |= 1 << i
            tail.append(byte)
    for i in range(3):
        byte = (size >> (8 * i)) & 0xFF
        if byte:
            cmd |= 1 << (4 + i)
            tail.append(byte)
    return bytes([cmd]) + bytes(tail)


def insert_op(data: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(data), 127):
        piece = data[i : i + 127]
        out.append(len(piece))
        out += piece
    return bytes(out)


def delta(base_size: int, result_size: int, ops: bytes) -> bytes:
    return varint(base_size) + varint(result_size) + ops


@dataclass
class Entry:
    """One pack object. ``size`` defaults to len(data) (the truth); set it to lie.
    ``zdata`` replaces the zlib stream of ``data`` (for zlib bombs)."""

    type_num: int
    data: bytes = b""
    base: int | bytes | None = None  # OFS_DELTA: index of an earlier entry; REF_DELTA: id
    size: int | None = None
    zdata: bytes | None = None


def build_pack(entries: list[Entry], count: int | None = None) -> bytes:
    """The pack holding ``entries`` (``count`` may lie about how many)."""
    out = bytearray(b"PACK" + struct.pack(">II", 2, len(entries) if count is None else count))
    offsets: list[int] = []
    for e in entries:
        offsets.append(len(out))
        size = len(e.data) if e.size is None else e.size
        out += object_header(e.type_num, size)
        if e.type_num == OFS_DELTA:
            assert isinstance(e.base, int)
            out += ofs_encoding(offsets[-1] - offsets[e.base])
        elif e.type_num == REF_DELTA:
            assert isinstance(e.base, bytes) and len(e.base) == 20
            out += e.base
        out += zlib.compress(e.data) if e.zdata is None else e.zdata
    out += hashlib.sha1(out).digest()
    return bytes(out)


def git_object_id(type_num: int, data: bytes) -> bytes:
    """The 20-byte git id of an object (``type size\\0data``)."""
    name = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob", TAG: b"tag"}[type_num]
    return hashlib.sha1(name + b" %d\0" % len(data) + data).digest()


def zlib_of_zeros(n: int) -> bytes:
    """A zlib stream of ``n`` zero bytes, made without holding them."""
    comp = zlib.compressobj(9)
    block = bytes(1 << 20)
    parts = []
    while n:
        take = min(n, len(block))
        parts.append(comp.compress(block[:take]))
        n -= take
    parts.append(comp.flush())
    return b"".join(parts)


def delta_bomb(levels: int = 2) -> list[Entry]:
    """A 64 KiB zero blob, then deltas that multiply it: 16 MiB, then 512 MiB."""
    base = 1 << 16
    entries = [Entry(BLOB, bytes(base))]
    size = base
    step = [256, 32, 32]
    for i in range(levels):
        piece = min(size, 8 << 20)
        n = step[i] * size // piece
        ops = copy_op(0, piece) * n
        entries.append(Entry(OFS_DELTA, delta(size, piece * n, ops), base=i))
        size = piece * n
    return entries
