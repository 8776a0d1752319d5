"""Chunk pack files: the byte-level format (normative text in docs/format.md).

A pack is ``chunks/pack-<32 hex>.vpk``, immutable once sealed::

    header   16 bytes   b"VSYNCPK\\0", u16 version, u16 flags, u32 reserved
    record*  48 bytes   b"CHNK", u8 compression, 3 reserved, u32 raw_len,
                        u32 stored_len, 32-byte BLAKE3 id; then the payload
    trailer             b"TRLR", u32 count, count x entry (52 bytes each:
                        32-byte id, u64 record offset, u32 stored_len,
                        u32 raw_len, u8 compression, 3 reserved)
    footer   48 bytes   u64 trailer offset, 32-byte BLAKE3 of the trailer,
                        b"VSPKEND\\0"

All integers are big-endian. A pack whose footer is missing or wrong (a
writer killed mid-way) is still readable record by record from the header:
:func:`scan_records` stops at the first incomplete or inconsistent record.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import blake3

from vsync.errors import DamagedRepository

PACK_MAGIC = b"VSYNCPK\0"
PACK_VERSION = 1
HEADER = struct.Struct(">8sHHI")
RECORD_MAGIC = b"CHNK"
RECORD = struct.Struct(">4sB3xII32s")
TRAILER_MAGIC = b"TRLR"
TRAILER_HEAD = struct.Struct(">4sI")
TRAILER_ENTRY = struct.Struct(">32sQIIB3x")
FOOTER_MAGIC = b"VSPKEND\0"
FOOTER = struct.Struct(">Q32s8s")
PACK_SUFFIX = ".vpk"
TEMP_SUFFIX = ".vpk.tmp"


class PackEntry(NamedTuple):
    """Where one chunk lives inside a pack."""

    chunk_id: bytes
    offset: int  # offset of the record header
    stored_len: int
    raw_len: int
    compression: int

    @property
    def payload_offset(self) -> int:
        return self.offset + RECORD.size


def header_bytes() -> bytes:
    return HEADER.pack(PACK_MAGIC, PACK_VERSION, 0, 0)


def record_header(entry: PackEntry) -> bytes:
    return RECORD.pack(
        RECORD_MAGIC, entry.compression, entry.raw_len, entry.stored_len, entry.chunk_id
    )


def trailer_bytes(entries: list[PackEntry], trailer_offset: int) -> bytes:
    parts = [TRAILER_HEAD.pack(TRAILER_MAGIC, len(entries))]
    parts.extend(
        TRAILER_ENTRY.pack(e.chunk_id, e.offset, e.stored_len, e.raw_len, e.compression)
        for e in entries
    )
    body = b"".join(parts)
    return body + FOOTER.pack(trailer_offset, blake3.blake3(body).digest(), FOOTER_MAGIC)


def check_header(data: bytes, name: str) -> None:
    if len(data) < HEADER.size:
        raise DamagedRepository(f"chunk pack {name} is truncated (no header)")
    magic, version, _flags, _reserved = HEADER.unpack_from(data)
    if magic != PACK_MAGIC:
        raise DamagedRepository(f"chunk pack {name} has a bad header")
    if version > PACK_VERSION:
        raise DamagedRepository(
            f"chunk pack {name} has format version {version}; this vsync reads up to "
            f"{PACK_VERSION}: upgrade vsync"
        )


def read_trailer(path: Path) -> list[PackEntry] | None:
    """The entries from a sealed pack's trailer, or None if it has no valid one."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < HEADER.size + FOOTER.size:
            return None
        check_header(f.read(HEADER.size), path.name)
        f.seek(size - FOOTER.size)
        trailer_offset, digest, magic = FOOTER.unpack(f.read(FOOTER.size))
        if magic != FOOTER_MAGIC or not HEADER.size <= trailer_offset <= size - FOOTER.size:
            return None
        f.seek(trailer_offset)
        body = f.read(size - FOOTER.size - trailer_offset)
    if blake3.blake3(body).digest() != digest or len(body) < TRAILER_HEAD.size:
        return None
    magic, count = TRAILER_HEAD.unpack_from(body)
    if magic != TRAILER_MAGIC or len(body) != TRAILER_HEAD.size + count * TRAILER_ENTRY.size:
        return None
    entries = []
    for i in range(count):
        cid, off, stored, raw, comp = TRAILER_ENTRY.unpack_from(
            body, TRAILER_HEAD.size + i * TRAILER_ENTRY.size
        )
        entries.append(PackEntry(cid, off, stored, raw, comp))
    return entries


def scan_records(path: Path) -> tuple[list[PackEntry], int]:
    """Walk a pack's records from the start.

    Returns the entries of every complete record and the offset just past the
    last one. Stops at the trailer, at a truncated record or at anything that
    is not a record header. Payload hashes are not checked here (fsck does).
    """
    entries: list[PackEntry] = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        check_header(f.read(HEADER.size), path.name)
        pos = HEADER.size
        while pos + RECORD.size <= size:
            f.seek(pos)
            head = f.read(RECORD.size)
            magic, comp, raw, stored, cid = RECORD.unpack(head)
            if magic != RECORD_MAGIC or pos + RECORD.size + stored > size:
                break
            entries.append(PackEntry(cid, pos, stored, raw, comp))
            pos += RECORD.size + stored
    return entries, pos


def read_payload(fd: int, entry: PackEntry, name: str) -> bytes:
    """The stored bytes of one chunk, checking the record header first."""
    head = os.pread(fd, RECORD.size, entry.offset)
    if len(head) != RECORD.size:
        raise DamagedRepository(f"chunk pack {name} is truncated at offset {entry.offset}")
    magic, comp, raw, stored, cid = RECORD.unpack(head)
    if (magic, comp, raw, stored, cid) != (
        RECORD_MAGIC,
        entry.compression,
        entry.raw_len,
        entry.stored_len,
        entry.chunk_id,
    ):
        raise DamagedRepository(
            f"chunk pack {name}: record at offset {entry.offset} does not match the index"
        )
    payload = os.pread(fd, entry.stored_len, entry.payload_offset)
    if len(payload) != entry.stored_len:
        raise DamagedRepository(f"chunk pack {name} is truncated at offset {entry.offset}")
    return payload


def iter_pack_names(chunks_dir: Path) -> Iterator[str]:
    for name in os.listdir(chunks_dir):
        if name.startswith("pack-") and name.endswith(PACK_SUFFIX):
            yield name
