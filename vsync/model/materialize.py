"""Writing one file or symlink of a snapshot into the working folder.

Content goes to a temporary file beside the target, every chunk verified
against its id on the way; only a complete, verified file replaces the
target (``os.replace``). A damaged chunk leaves the target untouched.

Every temporary name is listed in the journal ``.vsync/folder-temps``
(:class:`FolderTemps`) before the file is made. Only a writer holding the
exclusive repository lock makes them, so whoever takes the lock next finds in
the journal exactly what a killed writer left in the folder and removes it
(:func:`remove_leftover_temps`). The folder scan never records a name that
starts with ``.vsync-tmp-``.

A writer that fills files without the exclusive lock (a fetch writing the
files it will put in the folder as their chunks arrive: :mod:`vsync.model.prefill`)
lists its temporary files in a journal of its own, ``.vsync/folder-temps-<hex>``,
flocked while it lives (:func:`vsync.store.templock.create_locked`): a lock
holder removes only what an *abandoned* one of those lists.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, NoReturn

from vsync.errors import DamagedRepository
from vsync.model.filemode import file_mode
from vsync.model.folder_scan import MODE_EXEC
from vsync.model.manifest import Manifest
from vsync.model.paths import TEMP_PREFIX
from vsync.store import templock
from vsync.store.chunkstore import ChunkStore

TEMP_JOURNAL = "folder-temps"
OWN_JOURNAL_PREFIX = TEMP_JOURNAL + "-"  # a lock-free writer's journal (module docstring)


def stream_manifest(
    chunks: ChunkStore,
    manifest: Manifest,
    out: BinaryIO,
    progress: Callable[[int], None] | None = None,
) -> None:
    written = 0
    for data in manifest_chunks(chunks, manifest):
        out.write(data)
        written += len(data)
        if progress is not None:
            progress(len(data))
    if written != manifest.size:
        raise DamagedRepository("manifest size does not match its chunks")


def manifest_chunks(chunks: ChunkStore, manifest: Manifest) -> Iterator[bytes]:
    """The content of ``manifest`` chunk by chunk, each verified against its id and length."""
    for cid, length in manifest.chunks:
        data = chunks.read(cid)
        if len(data) != length:
            raise DamagedRepository(f"chunk {cid.hex()[:16]} has the wrong length")
        yield data


class FolderTemps:
    """The temporary files one writer makes in the working folder (module docstring)."""

    def __init__(self, control: Path, journal: Path | None = None) -> None:
        self.journal = journal or control / TEMP_JOURNAL
        self._fd: int | None = None  # the journal, opened at the first temporary file

    def beside(self, target: Path) -> Path:
        """A fresh temporary name next to ``target``, listed in the journal first."""
        tmp = target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}-{target.name}"[:255])
        if self._fd is None:
            self._fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, os.fsencode(tmp) + b"\n")
        return tmp

    def done(self) -> None:
        """The writer is finished: each of its temporary files was renamed or removed."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.journal)


class OwnJournal:
    """The journal of a writer that works without the exclusive lock: a
    ``folder-temps-<hex>`` file it holds an flock on until :meth:`close`."""

    def __init__(self, control: Path) -> None:
        self.path = control / f"{OWN_JOURNAL_PREFIX}{secrets.token_hex(6)}"
        self._file = templock.create_locked(self.path)
        self.temps = FolderTemps(control, self.path)

    def close(self) -> None:
        """Every temporary file it listed is renamed or removed: the journal goes."""
        self.temps.done()
        self._file.close()


def remove_leftover_temps(control: Path, root: Path) -> list[str]:
    """Remove the temporary files a killed writer left under ``root`` (the caller
    holds the repository lock, so no writer of the folder is at work, except ones
    with a journal of their own that they still hold); their paths, relative."""
    removed = _remove_listed(control / TEMP_JOURNAL, root)
    for name, fd in templock.abandoned(control, lambda n: n.startswith(OWN_JOURNAL_PREFIX)):
        try:
            removed += _remove_listed(control / name, root)
        finally:
            os.close(fd)
    return removed


def _remove_listed(journal: Path, root: Path) -> list[str]:
    """Remove the temporary files ``journal`` lists under ``root``, then the journal."""
    try:
        listed = journal.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    removed = []
    for raw in listed:
        path = Path(os.fsdecode(raw))
        if not path.name.startswith(TEMP_PREFIX) or not path.is_relative_to(root):
            continue
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError):
            continue
        removed.append(str(path.relative_to(root)))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal)
    return removed


def write_file(
    chunks: ChunkStore,
    manifest: Manifest,
    target: Path,
    mode: int,
    temps: FolderTemps,
    guard: Callable[[], None] | None = None,
) -> os.stat_result:
    """Atomically write ``manifest``'s content at ``target``; returns its lstat.
    ``guard`` runs when the temporary file is complete, right before it replaces
    ``target``: an exception from it leaves ``target`` untouched."""

    def fill(fd: int) -> None:
        with open(fd, "wb", closefd=False) as f:
            stream_manifest(chunks, manifest, f)

    return replace_with(target, mode, temps, fill, guard)


def replace_with(
    target: Path,
    mode: int,
    temps: FolderTemps,
    fill: Callable[[int], None],
    guard: Callable[[], None] | None = None,
) -> os.stat_result:
    """Make a temporary file beside ``target`` (listed in ``temps``), let ``fill``
    write it (given its descriptor), give it ``mode``'s permissions, run ``guard``,
    then rename it over ``target``. On any failure the temporary file goes and
    ``target`` is untouched. Returns the new file's lstat."""
    tmp = temps.beside(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            fill(fd)
            os.fchmod(fd, file_mode(mode == MODE_EXEC))  # on the file it wrote, not a name
        finally:
            os.close(fd)
    except BaseException as exc:
        _drop(tmp, target, exc)
    return install_filled(tmp, target, mode, guard)


def install_filled(
    tmp: Path, target: Path, mode: int, guard: Callable[[], None] | None = None
) -> os.stat_result:
    """Rename the complete, verified temporary file ``tmp`` (made by a writer that
    listed it in its journal) over ``target`` with ``mode``'s permissions, as
    :func:`replace_with` would once filled: ``guard`` runs right before the
    rename. On any failure ``tmp`` goes and ``target`` is untouched."""
    try:
        os.chmod(tmp, file_mode(mode == MODE_EXEC))
        if guard is not None:
            guard()
        os.replace(tmp, target)
    except BaseException as exc:
        _drop(tmp, target, exc)
    return os.lstat(target)


def _drop(tmp: Path, target: Path, exc: BaseException) -> NoReturn:
    """Remove ``tmp`` after ``exc`` and raise it again, an OSError that names no file
    naming ``target`` ("the disk is full: could not write big.bin")."""
    with contextlib.suppress(OSError):
        tmp.unlink()
    if isinstance(exc, OSError) and exc.filename is None:
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    raise exc


def write_symlink(link_target: bytes, target: Path, temps: FolderTemps) -> os.stat_result:
    tmp = temps.beside(target)
    os.symlink(os.fsdecode(link_target), tmp)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return os.lstat(target)
