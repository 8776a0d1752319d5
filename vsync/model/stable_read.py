"""Reading a file of the working folder until it holds still: one policy for every reader.

A read is accepted only when the file's stat is the same before the read,
after it and on its path afterwards, and the bytes read match its size; a
file that changes while it is read is read again, up to ``READ_ATTEMPTS``
times, and then reported as unstable (None), as is a file that vanished.
So nothing vsync hashes or stores is ever torn content.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from vsync.model.gitdb import blob_id
from vsync.model.ingest import Ingester, Progress
from vsync.model.manifest import Manifest
from vsync.model.statcache import Stat, stat_key
from vsync.store.chunkstore import PackWriter

READ_ATTEMPTS = 3

T = TypeVar("T")
# What one read gives: the value and how many bytes of the file it read.
Reader = Callable[[int, os.stat_result], tuple[T, int]]


def read_stable(disk: str, read: Reader[T]) -> tuple[T, os.stat_result, int] | None:
    """``read(fd, stat)`` of the file at ``disk`` once it held still.

    Returns the value, the file's stat and when the read began (ns), or
    None when it kept changing or vanished.
    """
    for _attempt in range(READ_ATTEMPTS):
        hashed_at = time.time_ns()
        try:
            fd = os.open(disk, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            before = os.fstat(fd)
            value, size = read(fd, before)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        try:
            now = os.lstat(disk)
        except FileNotFoundError:
            return None
        key = stat_key(after)
        if stat_key(before) == key == stat_key(now) and size == after.st_size:
            return value, after, hashed_at
    return None


def ingest_stable(
    disk: str,
    ingester: Ingester,
    writer: PackWriter | None = None,
    progress: Progress | None = None,
) -> tuple[Manifest, os.stat_result, int] | None:
    """The manifest of the file at ``disk`` (chunks stored through ``writer``), read stably."""

    def ingest(fd: int, _st: os.stat_result) -> tuple[Manifest, int]:
        with open(fd, "rb", closefd=False) as f:
            manifest = ingester.ingest(f, writer, progress)
        return manifest, manifest.size

    return read_stable(disk, ingest)


def content_id_if_unchanged(disk: str, st: Stat, ingester: Ingester) -> bytes | None:
    """The manifest blob id of the file at ``disk`` if it still has the stat ``st``.

    None when it changed since ``st`` was taken, kept changing, or vanished.
    """
    read = ingest_stable(disk, ingester)
    if read is None or stat_key(read[1]) != stat_key(st):
        return None
    return blob_id(read[0].to_bytes())
