"""Writing one file or symlink of a snapshot into the working folder.

Content goes to a temporary file beside the target, every chunk verified
against its id on the way; only a complete, verified file replaces the
target (``os.replace``). A damaged chunk leaves the target untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from vsync.errors import DamagedRepository
from vsync.model.filemode import file_mode
from vsync.model.manifest import Manifest
from vsync.model.worktree import MODE_EXEC
from vsync.store.chunkstore import ChunkStore

TEMP_PREFIX = ".vsync-tmp-"


def stream_manifest(
    chunks: ChunkStore,
    manifest: Manifest,
    out: BinaryIO,
    progress: Callable[[int], None] | None = None,
) -> None:
    written = 0
    for cid, length in manifest.chunks:
        data = chunks.read(cid)
        if len(data) != length:
            raise DamagedRepository(f"chunk {cid.hex()[:16]} has the wrong length")
        out.write(data)
        written += length
        if progress is not None:
            progress(length)
    if written != manifest.size:
        raise DamagedRepository("manifest size does not match its chunks")


def _temp_beside(target: Path) -> Path:
    return target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}-{target.name}"[:255])


def write_file(chunks: ChunkStore, manifest: Manifest, target: Path, mode: int) -> os.stat_result:
    """Atomically write ``manifest``'s content at ``target``; returns its lstat."""
    tmp = _temp_beside(target)
    try:
        with open(tmp, "xb") as f:
            stream_manifest(chunks, manifest, f)
            os.fchmod(f.fileno(), file_mode(mode == MODE_EXEC))
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename is None:  # name it ("the disk is full")
            raise OSError(exc.errno, exc.strerror, str(target)) from None
        raise
    return os.lstat(target)


def write_symlink(link_target: bytes, target: Path) -> os.stat_result:
    tmp = _temp_beside(target)
    os.symlink(os.fsdecode(link_target), tmp)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return os.lstat(target)
