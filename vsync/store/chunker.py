"""Content-defined chunking: FastCDC 2020 (compiled, via pyfastcdc) over a stream.

The parameters are part of a repository's config because they decide where
chunk boundaries fall: two repositories with different parameters still
interoperate (chunks are addressed by content), they only deduplicate less.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from vsync.store.codec import MAX_CHUNK_BYTES

if TYPE_CHECKING:
    from pyfastcdc import FastCDC

ALGORITHM = "fastcdc2020"
BLOCK_SIZE = 4 * 1024 * 1024  # bytes read per block by Chunker.blocks


class ChunkerParams(NamedTuple):
    min_size: int = 32 * 1024
    avg_size: int = 128 * 1024
    max_size: int = 512 * 1024
    normalization: int = 1

    def validate(self) -> None:
        """ValueError unless the sizes are within what the chunker and the format
        allow: 64 <= min <= 1 MiB, 256 <= avg <= 4 MiB, 1 KiB <= max <= the format's
        chunk maximum (16 MiB), and min <= avg <= max."""
        if self.max_size > MAX_CHUNK_BYTES:
            raise ValueError(
                f"maxSize {self.max_size} is over the format's {MAX_CHUNK_BYTES}-byte chunk maximum"
            )
        ranges = (
            ("minSize", self.min_size, 64, 1 << 20),
            ("avgSize", self.avg_size, 256, 4 << 20),
            ("maxSize", self.max_size, 1024, MAX_CHUNK_BYTES),
        )
        for name, value, low, high in ranges:
            if not low <= value <= high:
                raise ValueError(f"{name} {value} is outside {low}..{high}")
        if not self.min_size <= self.avg_size <= self.max_size:
            raise ValueError(
                f"minSize {self.min_size}, avgSize {self.avg_size}, maxSize {self.max_size} "
                "must satisfy minSize <= avgSize <= maxSize"
            )


class Chunker:
    """Splits a byte stream into content-defined chunks.

    Memory is bounded by ``max_size`` plus the reader's buffer, whatever the
    stream's length. Each yielded ``bytes`` is an independent copy.
    """

    def __init__(self, params: ChunkerParams) -> None:
        params.validate()
        self.params = params
        self._cdc: FastCDC | None = None

    def _fastcdc(self) -> FastCDC:
        """The compiled chunker, made (and pyfastcdc loaded, some 30 ms) the first time a
        stream is cut: a commit of small files, one chunk each, never cuts one."""
        if self._cdc is None:
            from pyfastcdc import FastCDC

            params = self.params
            # FastCDC's "avg_size" is the mask's target past the minimum; the
            # observed mean is roughly min + avg (see docs/format.md).
            self._cdc = FastCDC(
                params.avg_size,
                min_size=params.min_size,
                max_size=params.max_size,
                normalized_chunking=params.normalization,  # type: ignore[arg-type]
            )
        return self._cdc

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        """Each chunk of ``stream`` as an independent ``bytes`` copy."""
        for _block, views in self.blocks(stream):
            for view in views:
                yield bytes(view)

    def blocks(
        self, stream: BinaryIO, block_size: int = BLOCK_SIZE, spare: list[bytearray] | None = None
    ) -> Iterator[tuple[bytearray, list[memoryview]]]:
        """Cut ``stream`` a block at a time: yields each block's buffer with the
        consecutive chunks that end inside it, as views into it.

        A buffer is taken from ``spare`` (the caller puts back the buffers it is
        done with: reusing memory saves faulting in fresh pages) or allocated.
        It is never written again by this generator once yielded, so the views
        may be handed to other threads. A chunk is taken from a block only when
        ``max_size`` bytes follow its start there (or the stream has ended),
        which is all FastCDC ever looks at: the boundaries are exactly those of
        cutting the whole stream at once.
        """
        max_size = self.params.max_size
        cut_buf = self._fastcdc().cut_buf
        size = max(block_size, 2 * max_size)
        readinto = _readinto(stream)
        carry = b""
        eof = False
        while True:
            block = spare.pop() if spare else bytearray(size)
            buf = memoryview(block)
            filled = len(carry)
            buf[:filled] = carry
            while filled < size and not eof:
                n = readinto(buf[filled:])
                if not n:
                    eof = True
                else:
                    filled += n
            if filled == 0:
                return
            view = buf[:filled]
            out: list[memoryview] = []
            end = 0
            for chunk in cut_buf(view):
                if not eof and chunk.offset + max_size > filled:
                    break
                out.append(chunk.data)
                end = chunk.offset + chunk.length
            carry = bytes(view[end:])
            if out:
                yield block, out
            if eof and end >= filled:
                return


def _readinto(stream: BinaryIO) -> Callable[[memoryview], int]:
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return readinto  # type: ignore[no-any-return]

    def read_into(target: memoryview) -> int:
        data = stream.read(len(target))
        target[: len(data)] = data
        return len(data)

    return read_into
