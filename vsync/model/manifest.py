"""Manifests: the git blob that stands for a regular file's content.

Byte layout (big-endian; normative text in docs/format.md)::

    0   4   magic b"VSMF"
    4   1   manifest version (1)
    5   1   flags (0)
    6   2   reserved (0)
    8   8   file size in bytes
    16  4   chunk count N (at most MAX_CHUNKS)
    20  36*N  N x (32-byte BLAKE3-256 chunk id, u32 chunk length)

Identical content gives identical bytes, so git's blob id of a manifest
identifies a file's content across repositories that chunk alike.

A :class:`Manifest` holds its entries as those 36-byte records (36 bytes a
chunk, not a Python tuple); ``chunks`` is a read-only sequence view of them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from vsync.errors import DamagedRepository, UnsupportedFormat, UsageError
from vsync.store.codec import MAX_CHUNK_BYTES

MAGIC = b"VSMF"
VERSION = 1
HEAD = struct.Struct(">4sBBHQI")
ENTRY = struct.Struct(">32sI")
MAX_CHUNKS = 1 << 20
"""The most chunks a file may have (docs/format.md, "Manifests"): 16 TiB with the
largest chunks, about 160 GiB with the default chunking."""
MAX_MANIFEST_BYTES = HEAD.size + ENTRY.size * MAX_CHUNKS  # 37,748,756: 36 MiB + 20


class FileTooLarge(UsageError):
    """A file would need more than MAX_CHUNKS chunks."""

    def __init__(self, path: str = "") -> None:
        what = f"'{path}'" if path else "a file"
        super().__init__(
            f"{what} needs more than {MAX_CHUNKS:,} chunks, the most a manifest may list; "
            "raise [chunking] avgSize and maxSize in the repository's config for files this "
            "large (docs/format.md, Manifests)"
        )


class ChunkList(Sequence[tuple[bytes, int]]):
    """The (chunk id, length) entries of a manifest, unpacked one at a time on demand."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = data  # whole 36-byte entries, nothing else

    def __len__(self) -> int:
        return len(self._data) // ENTRY.size

    @overload
    def __getitem__(self, index: int) -> tuple[bytes, int]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[bytes, int]]: ...
    def __getitem__(self, index: int | slice) -> tuple[bytes, int] | list[tuple[bytes, int]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("manifest entry out of range")
        cid, length = ENTRY.unpack_from(self._data, index * ENTRY.size)
        return cid, length

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        data = self._data
        if not isinstance(data, bytearray):
            yield from ENTRY.iter_unpack(data)
            return
        for pos in range(0, len(data), ENTRY.size):  # no buffer export: append stays legal
            yield ENTRY.unpack_from(data, pos)

    def ids(self) -> Iterator[bytes]:
        """The chunk ids in order."""
        for cid, _n in self:
            yield cid

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkList):
            return self._data == other._data
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(
                a == tuple(b) for a, b in zip(self, other, strict=True)
            )
        return NotImplemented

    def __repr__(self) -> str:
        return f"ChunkList({len(self)} entries)"


class Manifest:
    """A file's size and its ordered chunks, kept as the manifest's own entry bytes."""

    __slots__ = ("_entries", "size")

    def __init__(self, size: int = 0, chunks: Iterable[tuple[bytes, int]] = ()) -> None:
        self.size = size
        self._entries: bytes | bytearray | memoryview = b"".join(
            ENTRY.pack(c, n) for c, n in chunks
        )

    @property
    def chunks(self) -> ChunkList:
        return ChunkList(self._entries)

    @property
    def entries(self) -> bytes | bytearray | memoryview:
        """The entries as stored: N x (32-byte id, u32 length)."""
        return self._entries

    def append(self, cid: bytes, length: int) -> None:
        if len(self._entries) >= ENTRY.size * MAX_CHUNKS:
            raise FileTooLarge()
        if not isinstance(self._entries, bytearray):
            self._entries = bytearray(self._entries)
        self._entries += ENTRY.pack(cid, length)
        self.size += length

    def to_bytes(self) -> bytes:
        count = len(self._entries) // ENTRY.size
        return HEAD.pack(MAGIC, VERSION, 0, 0, self.size, count) + self._entries

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "manifest") -> Manifest:
        if len(data) < HEAD.size:
            raise DamagedRepository(f"{where}: truncated manifest")
        magic, version, _flags, _res, size, count = HEAD.unpack_from(data)
        if magic != MAGIC or version == 0:
            raise DamagedRepository(f"{where}: not a vsync manifest")
        if version > VERSION:
            raise UnsupportedFormat(
                f"{where}: manifest version {version} is newer than this vsync reads; upgrade"
            )
        if len(data) != HEAD.size + count * ENTRY.size:
            raise DamagedRepository(f"{where}: manifest length does not match its chunk count")
        entries = memoryview(data)[HEAD.size :].toreadonly()  # no copy
        total = longest = 0
        for _cid, n in ENTRY.iter_unpack(entries):
            total += n
            longest = max(longest, n)
        if total != size:
            raise DamagedRepository(f"{where}: manifest chunk lengths do not add up to its size")
        if longest > MAX_CHUNK_BYTES:
            raise DamagedRepository(
                f"{where}: manifest lists a chunk of {longest} bytes, over the "
                f"{MAX_CHUNK_BYTES}-byte maximum"
            )
        manifest = cls(size)
        manifest._entries = entries
        return manifest

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return self.size == other.size and self._entries == other._entries

    def __repr__(self) -> str:
        return f"Manifest(size={self.size}, chunks={len(self.chunks)})"


def manifest_size(data: bytes) -> int:
    """The file size recorded in a manifest, without decoding its chunk list."""
    if len(data) < HEAD.size or data[:4] != MAGIC:
        raise DamagedRepository("not a vsync manifest")
    return int(HEAD.unpack_from(data)[4])
