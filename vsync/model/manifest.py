"""Manifests: the git blob that stands for a regular file's content.

Byte layout (big-endian; normative text in docs/format.md)::

    0   4   magic b"VSMF"
    4   1   manifest version (1)
    5   1   flags (0)
    6   2   reserved (0)
    8   8   file size in bytes
    16  4   chunk count N
    20  36*N  N x (32-byte BLAKE3-256 chunk id, u32 chunk length)

Identical content gives identical bytes, so git's blob id of a manifest
identifies a file's content across repositories that chunk alike.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from vsync.errors import DamagedRepository, UnsupportedFormat

MAGIC = b"VSMF"
VERSION = 1
HEAD = struct.Struct(">4sBBHQI")
ENTRY = struct.Struct(">32sI")


@dataclass
class Manifest:
    size: int = 0
    chunks: list[tuple[bytes, int]] = field(default_factory=list)

    def append(self, cid: bytes, length: int) -> None:
        self.chunks.append((cid, length))
        self.size += length

    def to_bytes(self) -> bytes:
        parts = [HEAD.pack(MAGIC, VERSION, 0, 0, self.size, len(self.chunks))]
        parts.extend(ENTRY.pack(cid, n) for cid, n in self.chunks)
        return b"".join(parts)

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
        chunks = [ENTRY.unpack_from(data, HEAD.size + i * ENTRY.size) for i in range(count)]
        if sum(n for _cid, n in chunks) != size:
            raise DamagedRepository(f"{where}: manifest chunk lengths do not add up to its size")
        return cls(size, chunks)


def manifest_size(data: bytes) -> int:
    """The file size recorded in a manifest, without decoding its chunk list."""
    if len(data) < HEAD.size or data[:4] != MAGIC:
        raise DamagedRepository("not a vsync manifest")
    return int(HEAD.unpack_from(data)[4])
