"""Content-defined chunking: FastCDC 2020 (compiled, via pyfastcdc) over a stream.

The parameters are part of a repository's config because they decide where
chunk boundaries fall: two repositories with different parameters still
interoperate (chunks are addressed by content), they only deduplicate less.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pyfastcdc import FastCDC

ALGORITHM = "fastcdc2020"


@dataclass(frozen=True)
class ChunkerParams:
    min_size: int = 16 * 1024
    avg_size: int = 64 * 1024
    max_size: int = 256 * 1024
    normalization: int = 1

    def validate(self) -> None:
        if not (64 <= self.min_size <= self.avg_size <= self.max_size <= 16 * 1024 * 1024):
            raise ValueError(f"invalid chunking parameters: {self}")


class Chunker:
    """Splits a byte stream into content-defined chunks.

    Memory is bounded by ``max_size`` plus the reader's buffer, whatever the
    stream's length. Each yielded ``bytes`` is an independent copy.
    """

    def __init__(self, params: ChunkerParams) -> None:
        params.validate()
        self.params = params
        # FastCDC's "avg_size" is the mask's target past the minimum; the
        # observed mean is roughly min + avg (see docs/format.md).
        self._cdc = FastCDC(
            params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=params.normalization,  # type: ignore[arg-type]
        )

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        for chunk in self._cdc.cut_stream(stream):
            yield bytes(chunk.data)
