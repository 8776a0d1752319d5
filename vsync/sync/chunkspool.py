"""Lists of (chunk id, length) entries kept on disk while a transfer runs.

A received history can name millions of chunks (a manifest lists up to
2**20). Held as Python objects that is some 150 bytes a chunk; these lists
keep the manifests' own 36-byte entries (32-byte id, u32 length) in an
unlinked temporary file and read them back a batch at a time, so memory stays
flat however many chunks a transfer needs.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

ENTRY = struct.Struct(">32sI")  # as in a manifest (vsync.model.manifest.ENTRY)
READ_ENTRIES = 8192  # entries read back at a time (288 KiB)
RECENT = 1 << 16  # ids remembered for deduplication across batches (~7 MiB)


class ChunkSpool:
    """An append-only list of (chunk id, length) entries in a temporary file."""

    def __init__(self, directory: Path) -> None:
        self._file = tempfile.TemporaryFile(dir=directory, prefix="chunks-")  # noqa: SIM115 (closed by close())
        self._count = 0
        self.raw_bytes = 0  # the lengths of the entries, as far as :meth:`missing` counts them

    def __len__(self) -> int:
        return self._count

    def add(self, entries: bytes | bytearray | memoryview) -> None:
        """Append ``entries``: whole 36-byte records, as in a manifest."""
        if len(entries) % ENTRY.size:
            raise ValueError("chunk entries come in 36-byte records")
        self._file.write(entries)
        self._count += len(entries) // ENTRY.size

    def blocks(self, entries: int = READ_ENTRIES) -> Iterator[bytes]:
        """The entries, ``entries`` records at a time (raw bytes)."""
        self._file.flush()
        pos = 0
        while True:
            self._file.seek(pos)
            block = self._file.read(entries * ENTRY.size)
            if not block:
                return
            pos += len(block)
            yield block

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        for block in self.blocks():
            yield from ENTRY.iter_unpack(block)

    def missing(self, directory: Path, have: Callable[[list[bytes]], set[bytes]]) -> ChunkSpool:
        """A new spool of the entries whose ids ``have`` does not know, each id
        once (ids repeated far apart may appear twice: asked twice, stored once),
        with ``raw_bytes`` the sum of their lengths."""
        out = ChunkSpool(directory)
        recent: set[bytes] = set()
        for block in self.blocks():
            fresh: dict[bytes, int] = {}
            for cid, length in ENTRY.iter_unpack(block):
                if cid not in recent and cid not in fresh:
                    fresh[cid] = length
            if len(recent) + len(fresh) > RECENT:
                recent.clear()
            recent.update(fresh)
            known = have(list(fresh))
            kept = [(c, n) for c, n in fresh.items() if c not in known]
            if kept:
                out.add(b"".join(ENTRY.pack(c, n) for c, n in kept))
                out.raw_bytes += sum(n for _c, n in kept)
        return out

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ChunkSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
