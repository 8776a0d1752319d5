"""Reading many files one after another through one pipeline.

:meth:`Ingester.ingest <vsync.model.ingest.Ingester.ingest>` drains its stages at
the end of every file: for files of a block or two (photos of a few MiB) the
workers then wait for the next file's first read and cut, and the calling thread
for the last file's hashes. Here one reading thread reads and cuts the files in
turn (each under the policy of :mod:`vsync.model.stable_read`: read again while it
changes, reported as unstable if it keeps changing) while the calling thread feeds
their blocks, without a pause between files, to the
:class:`~vsync.model.ingest.Stages` the Ingester uses for one file; so the next
file's first block is read while the last file's are hashed and compressed.

A file read again because it changed while it was read gets a fresh manifest; the
chunks of the torn read may already be stored (as they are when one file is read
by itself): unreferenced chunks, never a torn manifest.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from vsync.model.folder_scan import WorkFile
from vsync.model.ingest import Ingester, Progress, Stages, produce_ahead
from vsync.model.manifest import Manifest
from vsync.model.stable_read import read_stable
from vsync.store.chunkstore import PackWriter

W = TypeVar("W", bound=WorkFile)


@dataclass(slots=True)
class FileIngested(Generic[W]):
    """One file's outcome. ``manifest`` is None when the file kept changing or
    vanished, or could not be opened (``unreadable`` then says why)."""

    wf: W
    manifest: Manifest | None = None
    st: os.stat_result | None = None
    hashed_at: int = 0
    unreadable: str = ""


@dataclass(slots=True)
class _Block:
    wf: WorkFile
    block: bytearray
    views: list[memoryview]
    manifest: Manifest  # of this read of the file (a read again gets a new one)


def ingest_files(
    files: Iterable[W],
    ingester: Ingester,
    writer: PackWriter | None,
    progress: Progress | None = None,
) -> Generator[FileIngested[W], None, None]:
    """Each file's manifest (chunks stored through ``writer``; None: only hash), read
    stably, in the order of ``files``; a file's outcome comes once its chunks are all
    hashed (and handed to the compressing and writing stages).

    Raises :class:`~vsync.model.manifest.FileTooLarge` naming the file's path, and
    any other OSError a read raised."""
    stages = Stages(ingester, writer, progress)
    done: deque[FileIngested[W]] = deque()
    chunker, spare = ingester.chunker, ingester.spare

    def produce(put: Callable[[_Block | FileIngested[W]], None]) -> None:
        for wf in files:

            def read(fd: int, _st: os.stat_result, wf: W = wf) -> tuple[Manifest, int]:
                manifest = Manifest()
                size = 0
                with open(fd, "rb", closefd=False) as f:
                    for block, views in chunker.blocks(f, spare=spare):
                        size += sum(len(v) for v in views)
                        put(_Block(wf, block, views, manifest))
                return manifest, size

            try:
                got = read_stable(wf.disk, read)
            except PermissionError as exc:
                put(FileIngested(wf, unreadable=exc.strerror or "permission denied"))
                continue
            if got is None:
                put(FileIngested(wf))
            else:
                put(FileIngested(wf, *got))

    for item in produce_ahead(produce, ingester.depth):
        if isinstance(item, _Block):
            stages.block(item.block, item.views, item.manifest, item.wf.path)
        else:
            stages.mark(lambda item=item: done.append(item))  # type: ignore[misc]
        while done:
            yield done.popleft()
    stages.finish()
    while done:
        yield done.popleft()
