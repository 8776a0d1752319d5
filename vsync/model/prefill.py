"""Working files written while their chunks arrive: a clone, or a pull that fast-forwards.

Such a fetch knows, before the first chunk, which files it will put in the
working folder. :class:`Prefill` writes each of them into a temporary file
beside its target (``.vsync-tmp-*``) as the chunks come, instead of reading
every chunk back from the chunk store (and decompressing it a second time)
once the fetch is over:

- the receiver asks for chunks in the order of those files
  (:meth:`Prefill.wanted`: the files' chunks first, then whatever else the
  history needs);
- each received chunk, once decoded and verified against its id (the one
  decompression of its bytes, on the fetch's verifying thread), is written at
  every place in the files being filled that asked for it while it was on its
  way (:meth:`Prefill.put`);
- a place whose chunk the store already had, or whose chunk had already
  arrived when the place was reached (a chunk shared within a file or across
  files is asked for once), is a *hole*: :meth:`Prefill.complete` fills the
  holes from the chunk store (each chunk verified on that read too) once the
  fetch has stored every chunk, and checks each file's size.

A complete file then waits, untouched, until the fetch's git pack is in the
object store and the branch has moved: the folder writer
(:class:`vsync.ops.folder_writer.FolderWriter`) takes it (:meth:`Prefill.take`)
for a write of exactly that path and manifest, and renames it over its target
with every check of any other write (the plan, uncommitted edits, the
holdback). A file it does not take, and everything after a failure, is
removed by :meth:`Prefill.discard`.

The fetch holds no exclusive lock while it receives (commits may run
meanwhile), so the temporary files are listed in a journal of this writer's
own (:class:`vsync.model.materialize.OwnJournal`, flocked while it lives):
whoever takes the repository lock after this process was killed removes them.

Memory: only files of :data:`STREAM_MIN` bytes or more are written this way
(smaller ones are written from the store afterwards, as before). A file costs
a small record (its path, manifest id and size) plus one byte per chunk while
it has holes; its manifest is read from the received pack when its turn comes
(and again by :meth:`Prefill.complete` if it has holes), one at a time; the
places of chunks on their way are bounded by the chunks asked for and not yet
received (two CHUNK_WANT batches).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vsync.errors import DamagedRepository
from vsync.model.manifest import ENTRY, Manifest
from vsync.model.materialize import OwnJournal
from vsync.model.paths import ancestors
from vsync.store import faults
from vsync.store.chunkstore import ChunkStore

STREAM_MIN = 1024 * 1024
"""Files smaller than this are not filled while the fetch runs (module docstring)."""

RECENT = 1 << 16  # chunk ids remembered as asked for (a forgotten one is asked again)
HAVE_BLOCK = 512  # manifest entries looked up in the chunk store at a time

Have = Callable[[list[bytes]], set[bytes]]
Load = Callable[["FillFile"], Manifest]  # a file's manifest, read from the received pack


@dataclass(frozen=True, slots=True)
class FillFile:
    """A file to fill: its repository path, its place on disk, its manifest's id and
    the file size it gives (the manifest itself is read when the file's turn comes)."""

    path: str
    disk: Path
    oid: bytes  # the manifest's blob id
    size: int


@dataclass(eq=False, slots=True)
class _Filling:
    want: FillFile
    tmp: Path
    fd: int = -1
    placed: bytearray = field(default_factory=bytearray)  # per chunk: 1 once written
    outstanding: int = 0  # places waiting for a chunk on its way
    walked: bool = False  # every chunk of the file has been looked at
    holes: bool = False


Place = tuple[_Filling, int, int]  # file, chunk number, offset


class Prefill:
    """The files one fetch fills as their chunks arrive (module docstring)."""

    def __init__(self, control: Path, root: Path, files: Iterable[FillFile], load: Load) -> None:
        self._files = [f for f in files if f.size >= STREAM_MIN]
        self._load = load
        self._root = root
        self._made: list[Path] = []  # folders made for the files, to go again if unused
        self._journal: OwnJournal | None = None
        self._filling: list[_Filling] = []
        self._ready: dict[tuple[str, bytes], _Filling] = {}
        self._on_way: dict[bytes, tuple[int, list[Place]]] = {}  # id -> (length, places)
        self._asked: set[bytes] = set()
        self._lock = threading.Lock()
        self._control = control
        self.streamed_bytes = 0  # chunk bytes written as they arrived (for tests, benchmarks)

    def __len__(self) -> int:
        return len(self._files)

    # -- while the fetch runs ----------------------------------------------------------

    def wanted(
        self, missing: Iterable[tuple[bytes, int]], have: Have
    ) -> Iterator[tuple[bytes, int]]:
        """The chunks to ask for: those of the files to fill, file by file, each
        once; then those of ``missing`` (every chunk the fetch lacks) not asked for
        yet. ``have`` says which ids the chunk store holds."""
        for want in self._files:
            opened = self._open(want)
            if opened is not None:
                yield from self._walk(*opened, have)
        for cid, length in missing:
            if cid not in self._asked:
                yield cid, length

    def _open(self, want: FillFile) -> tuple[_Filling, Manifest] | None:
        """The file's temporary file, its missing parent folders made first; None
        if a parent is not a real folder (the folder writer will say so)."""
        if not self._parents(want.path):
            return None
        if self._journal is None:
            self._journal = OwnJournal(self._control)
        tmp = self._journal.temps.beside(want.disk)
        f = _Filling(want, tmp)
        f.fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        manifest = self._load(want)
        f.placed = bytearray(len(manifest.entries) // ENTRY.size)
        self._filling.append(f)
        return f, manifest

    def _parents(self, path: str) -> bool:
        for folder in ancestors(path):
            disk = self._root.joinpath(*folder.split("/"))
            try:
                st = os.lstat(disk)
            except FileNotFoundError:
                os.mkdir(disk)
                self._made.append(disk)
                continue
            if not stat.S_ISDIR(st.st_mode):
                return False
        return True

    def _walk(self, f: _Filling, manifest: Manifest, have: Have) -> Iterator[tuple[bytes, int]]:
        raw = bytes(manifest.entries)
        count = len(raw) // ENTRY.size
        offset = 0
        for start in range(0, count, HAVE_BLOCK):
            part = raw[start * ENTRY.size : (start + HAVE_BLOCK) * ENTRY.size]
            block = list(ENTRY.iter_unpack(part))
            stored = have([cid for cid, _n in block if cid not in self._asked])
            ask: list[tuple[bytes, int]] = []
            with self._lock:
                for j, (cid, length) in enumerate(block, start):
                    at, offset = offset, offset + length
                    on_way = self._on_way.get(cid)
                    if on_way is not None and on_way[0] == length:
                        on_way[1].append((f, j, at))
                        f.outstanding += 1
                    elif cid in stored or cid in self._asked:
                        f.holes = True  # stored, or already arrived: filled by complete()
                    else:
                        if len(self._asked) >= RECENT:
                            self._asked.clear()
                        self._asked.add(cid)
                        self._on_way[cid] = (length, [(f, j, at)])
                        f.outstanding += 1
                        ask.append((cid, length))
                if start + HAVE_BLOCK >= count:
                    f.walked = True
                    self._close_if_done(f)
            yield from ask

    def put(self, cid: bytes, data: bytes) -> None:
        """Write a received chunk, verified against its id, wherever it is awaited
        (called from the fetch's verifying thread)."""
        with self._lock:
            entry = self._on_way.pop(cid, None)
        if entry is None:
            return  # a chunk no file being filled needs (history only)
        length, places = entry
        if len(data) != length:
            raise DamagedRepository(f"chunk {cid.hex()[:16]} has the wrong length")
        for f, _j, at in places:  # outside the lock: the walk goes on meanwhile
            _pwrite_all(f.fd, data, at, f.want.disk)  # open while its places are awaited
        with self._lock:
            for f, j, _at in places:
                f.placed[j] = 1
                f.outstanding -= 1
                self.streamed_bytes += length
                self._close_if_done(f)
        faults.point("file-filling")

    def _close_if_done(self, f: _Filling) -> None:
        if f.walked and not f.outstanding and f.fd >= 0:
            os.close(f.fd)
            f.fd = -1
            if not f.holes:
                f.placed = bytearray()

    # -- once every chunk is stored ----------------------------------------------------

    def complete(self, chunks: ChunkStore) -> None:
        """Fill every hole from the chunk store and check every file: each is then
        complete and verified, ready for :meth:`take`."""
        for f in self._filling:
            if f.fd >= 0 or f.outstanding:
                raise DamagedRepository(f"'{f.want.path}' did not receive all of its chunks")
            if f.holes:
                manifest = self._load(f.want)
                fd = os.open(f.tmp, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    at = 0
                    for j, (cid, length) in enumerate(manifest.chunks):
                        if not f.placed[j]:
                            data = chunks.read(cid)
                            if len(data) != length:
                                raise DamagedRepository(
                                    f"chunk {cid.hex()[:16]} has the wrong length"
                                )
                            _pwrite_all(fd, data, at, f.want.disk)
                        at += length
                finally:
                    os.close(fd)
                f.placed = bytearray()
            if os.stat(f.tmp).st_size != f.want.size:
                raise DamagedRepository(
                    f"manifest size of '{f.want.path}' does not match its chunks"
                )
            self._ready[(f.want.path, f.want.oid)] = f
        faults.point("files-filled")

    def take(self, path: str, oid: bytes) -> Path | None:
        """The complete temporary file of ``path`` holding manifest ``oid``, now the
        caller's to rename or remove; None if there is none."""
        f = self._ready.pop((path, oid), None)
        if f is None:
            return None
        self._filling.remove(f)
        return f.tmp

    def discard(self) -> None:
        """Remove every temporary file not taken, then the journal."""
        for f in self._filling:
            if f.fd >= 0:
                os.close(f.fd)
                f.fd = -1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f.tmp)
        self._filling.clear()
        self._ready.clear()
        self._on_way.clear()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        for folder in reversed(self._made):  # deepest last made: remove it first
            with contextlib.suppress(OSError):
                folder.rmdir()  # only while empty: the folder writer may have used it
        self._made.clear()


def _pwrite_all(fd: int, data: bytes, pos: int, target: Path) -> None:
    """Write all of ``data`` at ``pos``; an error names the file being filled
    (``target``: "the disk is full: could not write big.bin")."""
    view = memoryview(data)
    try:
        while view:
            n = os.pwrite(fd, view, pos)
            view = view[n:]
            pos += n
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(target)) from None
        raise
