"""The chunk store: pack files under ``chunks/`` and their index in state.db.

Write order (crash safety): a pack is written as ``pack-X.vpk.tmp``, sealed
with its trailer, fsynced, renamed to ``pack-X.vpk`` and the directory
fsynced; only then are its chunks entered in the index. The index is a
cache: :meth:`ChunkStore.reconcile` re-enters any pack the index does not
know and drops packs that are gone, and :meth:`ChunkStore.recover_temp_packs`
seals the complete records of a pack whose writer was killed, so chunks
written before a crash or an interrupted transfer stay stored.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from vsync.errors import ChunkMissing, DamagedRepository
from vsync.store import chunkpack, codec, faults, templock
from vsync.store.chunkpack import PackEntry
from vsync.store.space import is_disk_full
from vsync.store.statedb import StateDB, transaction

PACK_TARGET_SIZE = 64 * 1024 * 1024
# A pack is also sealed at this many chunks: the writer keeps an entry and an id for
# each chunk of the pack being written (and its index rows wait for the seal), so a
# folder of a million tiny files must not make one pack of a million chunks.
PACK_MAX_CHUNKS = 1 << 16
_OPEN_PACKS = 32


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: Path, data: bytes, fault: str = "") -> None:
    """Put ``data`` at ``path`` whole or not at all: a temporary file beside it, fsync,
    the fault point ``fault`` (if named), rename, fsync of the folder."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if fault:
        faults.point(fault)
    os.replace(tmp, path)
    fsync_dir(path.parent)


class StoredChunk(NamedTuple):
    """A chunk as it sits in a pack: compressed payload plus what decodes it."""

    chunk_id: bytes
    compression: int
    raw_len: int
    payload: bytes
    pack_name: str


class ChunkStore:
    def __init__(self, chunks_dir: Path, db: StateDB, compression_level: int = 3) -> None:
        self.dir = chunks_dir
        self.db = db
        self.compression_level = compression_level
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._pack_names: dict[int, str] = {}
        # Called with the records each writer queues as new (never gc's relocation):
        # ``vsync sync`` sends them to its remote while the commit runs (vsync.sync.offer).
        self.tee: Tee | None = None

    # -- index ---------------------------------------------------------------

    def has(self, cid: bytes) -> bool:
        row = self.db.conn.execute("SELECT 1 FROM chunks WHERE id=?", (cid,)).fetchone()
        return row is not None

    def has_many(self, cids: list[bytes]) -> set[bytes]:
        """The ids among ``cids`` that the store has: one query per 500 ids."""
        found: set[bytes] = set()
        for i in range(0, len(cids), 500):
            part = cids[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self.db.conn.execute(f"SELECT id FROM chunks WHERE id IN ({marks})", part)
            found.update(row[0] for row in rows)
        return found

    def missing(self, cids: Iterable[bytes]) -> list[bytes]:
        """The ids among ``cids`` that the store lacks, in their given order."""
        ids = list(cids)
        have = self.has_many(ids)
        return [cid for cid in ids if cid not in have]

    def lookup(self, cid: bytes) -> tuple[int, PackEntry] | None:
        row = self.db.conn.execute(
            "SELECT pack, offset, stored_len, raw_len, compression FROM chunks WHERE id=?",
            (cid,),
        ).fetchone()
        if row is None:
            return None
        pack, offset, stored, raw, comp = row
        return pack, PackEntry(cid, offset, stored, raw, comp)

    def count(self) -> int:
        return int(self.db.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def stored_bytes(self) -> int:
        return sum((self.dir / name).stat().st_size for name in chunkpack.iter_pack_names(self.dir))

    def _index_pack(
        self, name: str, entries: list[PackEntry], size: int, replace: bool = False
    ) -> None:
        """Enter a sealed pack; ``replace`` moves rows of chunks already indexed (gc)."""
        verb = "REPLACE" if replace else "IGNORE"
        conn = self.db.conn
        with transaction(conn):
            row = conn.execute("SELECT pack FROM packs WHERE name=?", (name,)).fetchone()
            if row is not None and not replace:
                return  # another process indexed it first
            if row is not None:  # a reader's reconcile got here first: still move the rows
                pack = row[0]
            else:
                cur = conn.execute("INSERT INTO packs(name, size) VALUES (?, ?)", (name, size))
                pack = cur.lastrowid
            rows = [
                (e.chunk_id, pack, e.offset, e.stored_len, e.raw_len, e.compression)
                for e in entries
            ]
            # Many rows per statement: one sqlite3_step (one GIL release) per 200 rows.
            for i in range(0, len(rows), 200):
                part = rows[i : i + 200]
                conn.execute(
                    f"INSERT OR {verb} INTO chunks(id, pack, offset, stored_len, raw_len,"
                    f" compression) VALUES {','.join(['(?,?,?,?,?,?)'] * len(part))}",
                    [value for row in part for value in row],
                )

    def reconcile(self) -> None:
        """Make the index agree with the pack files on disk."""
        on_disk = set(chunkpack.iter_pack_names(self.dir))
        known = dict(self.db.conn.execute("SELECT name, pack FROM packs").fetchall())
        for name, pack in known.items():
            if name not in on_disk:
                self._forget_pack(pack)
        for name in sorted(on_disk - known.keys()):
            path = self.dir / name
            entries = chunkpack.read_trailer(path)
            if entries is None:
                entries, _end = chunkpack.scan_records(path)
            self._index_pack(name, entries, path.stat().st_size)

    def remove_pack(self, name: str) -> None:
        """Drop a pack from the index, then delete its file (gc, under the exclusive lock).

        Index rows that gc moved to a new pack no longer name this one and stay.
        """
        row = self.db.conn.execute("SELECT pack FROM packs WHERE name=?", (name,)).fetchone()
        if row is not None:
            self._forget_pack(row[0])
        (self.dir / name).unlink(missing_ok=True)
        fsync_dir(self.dir)

    def set_aside_pack(self, name: str, dest: Path) -> Path:
        """Like :meth:`remove_pack`, but the file is moved into the folder ``dest``
        (same file system) instead of deleted (``vsync fsck --repair`` keeps the
        bytes of damaged chunks nothing could repair). Returns the new path."""
        row = self.db.conn.execute("SELECT pack FROM packs WHERE name=?", (name,)).fetchone()
        if row is not None:
            self._forget_pack(row[0])
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / name
        if (self.dir / name).exists():
            os.replace(self.dir / name, target)
            fsync_dir(dest)
            fsync_dir(self.dir)
        return target

    def pack_of(self, cid: bytes) -> str | None:
        """The name of the pack the index says holds ``cid`` (None: not indexed)."""
        row = self.db.conn.execute(
            "SELECT p.name FROM chunks c JOIN packs p ON p.pack = c.pack WHERE c.id=?", (cid,)
        ).fetchone()
        return None if row is None else str(row[0])

    def _forget_pack(self, pack: int) -> None:
        conn = self.db.conn
        with transaction(conn):
            conn.execute("DELETE FROM chunks WHERE pack=?", (pack,))
            conn.execute("DELETE FROM packs WHERE pack=?", (pack,))
        fd = self._fds.pop(pack, None)
        if fd is not None:
            os.close(fd)
        self._pack_names.pop(pack, None)

    def rebuild_index(self) -> None:
        conn = self.db.conn
        with transaction(conn):
            conn.execute("DELETE FROM chunks")
            conn.execute("DELETE FROM packs")
        self.close_files()
        self.reconcile()

    def recover_temp_packs(self) -> int:
        """Seal what a killed writer left in ``*.vpk.tmp``.

        A live writer holds an flock on its temp pack, so only abandoned ones
        are touched. Returns how many chunks were recovered. A record whose
        payload does not hash to its id (a torn write) ends that file.
        """
        recovered = 0
        for name, guard in templock.abandoned(
            self.dir, lambda name: name.endswith(chunkpack.TEMP_SUFFIX)
        ):
            try:
                recovered += self._recover_one(self.dir / name, name)
            finally:
                os.close(guard)
        if recovered:
            self.reconcile()
        return recovered

    def _recover_one(self, path: Path, name: str) -> int:
        try:
            entries, _end = chunkpack.scan_records(path)
        except DamagedRepository:
            entries = []
        good: list[PackEntry] = []
        if entries:
            fd = os.open(path, os.O_RDONLY)
            try:
                for e in entries:
                    payload = chunkpack.read_payload(fd, e, name)
                    try:
                        codec.decode(e.compression, payload, e.raw_len, e.chunk_id, name)
                    except DamagedRepository:
                        break
                    good.append(e)
            finally:
                os.close(fd)
        if not good:
            path.unlink()
            return 0
        end = good[-1].offset + chunkpack.RECORD.size + good[-1].stored_len
        with open(path, "r+b") as f:
            f.truncate(end)
            f.seek(end)
            f.write(chunkpack.trailer_bytes(good, end))
            f.flush()
            os.fsync(f.fileno())
        final = self.dir / name[: -len(chunkpack.TEMP_SUFFIX)]
        final = final.with_name(final.name + chunkpack.PACK_SUFFIX)
        os.replace(path, final)
        fsync_dir(self.dir)
        return len(good)

    # -- reading -------------------------------------------------------------

    def _fd(self, pack: int) -> tuple[int, str]:
        fd = self._fds.get(pack)
        if fd is not None:
            self._fds.move_to_end(pack)
            return fd, self._pack_names[pack]
        row = self.db.conn.execute("SELECT name FROM packs WHERE pack=?", (pack,)).fetchone()
        if row is None:
            raise DamagedRepository(f"chunk index names pack #{pack}, which is not in the index")
        name = row[0]
        try:
            fd = os.open(self.dir / name, os.O_RDONLY)
        except FileNotFoundError:
            raise DamagedRepository(f"chunk pack {name} is missing") from None
        self._fds[pack] = fd
        self._pack_names[pack] = name
        while len(self._fds) > _OPEN_PACKS:
            _old, old_fd = self._fds.popitem(last=False)
            os.close(old_fd)
        return fd, name

    def read_stored(self, cid: bytes) -> StoredChunk:
        """A chunk's payload as stored (still compressed), header-checked."""
        try:
            return self._read_stored(cid)
        except ChunkMissing:
            raise
        except DamagedRepository:
            # gc may have moved the chunk since this process looked it up (its old
            # pack is gone, or the pack number now names a new pack): look again.
            self.close_files()
            return self._read_stored(cid)

    def _read_stored(self, cid: bytes) -> StoredChunk:
        found = self.lookup(cid)
        if found is None:
            raise ChunkMissing(cid)
        pack, entry = found
        fd, name = self._fd(pack)
        payload = chunkpack.read_payload(fd, entry, name)
        return StoredChunk(cid, entry.compression, entry.raw_len, payload, name)

    def read_stored_many(self, cids: list[bytes]) -> Iterator[StoredChunk]:
        """:meth:`read_stored` for many ids, in their order: one index query per
        500 ids instead of one per chunk (the sending side of a transfer)."""
        for i in range(0, len(cids), 500):
            part = cids[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self.db.conn.execute(
                "SELECT id, pack, offset, stored_len, raw_len, compression FROM chunks"
                f" WHERE id IN ({marks})",
                part,
            ).fetchall()
            found = {row[0]: row for row in rows}
            for cid in part:
                row = found.get(cid)
                if row is None:
                    raise ChunkMissing(cid)
                _cid, pack, offset, stored, raw, comp = row
                entry = PackEntry(cid, offset, stored, raw, comp)
                try:
                    fd, name = self._fd(pack)
                    payload = chunkpack.read_payload(fd, entry, name)
                except DamagedRepository:
                    yield self.read_stored(cid)  # moved by gc meanwhile: look it up again
                    continue
                yield StoredChunk(cid, comp, raw, payload, name)

    def read(self, cid: bytes) -> bytes:
        """A chunk's raw bytes, verified against its BLAKE3 id."""
        s = self.read_stored(cid)
        return codec.decode(s.compression, s.payload, s.raw_len, cid, f"pack {s.pack_name}")

    def iter_index(self) -> Iterator[tuple[bytes, str, PackEntry]]:
        rows = self.db.conn.execute(
            "SELECT c.id, p.name, c.offset, c.stored_len, c.raw_len, c.compression"
            " FROM chunks c JOIN packs p ON p.pack = c.pack ORDER BY p.name, c.offset"
        ).fetchall()
        for cid, name, off, stored, raw, comp in rows:
            yield cid, name, PackEntry(cid, off, stored, raw, comp)

    def close_files(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._pack_names.clear()

    # -- writing -------------------------------------------------------------

    def writer(self, relocate: bool = False) -> PackWriter:
        """A pack writer; ``relocate`` (gc) copies chunks even if already indexed
        and moves their index rows to the new pack when it is sealed."""
        return PackWriter(self, relocate=relocate)


class PackWriter:
    """Appends chunks to new packs; call :meth:`flush` (or leave the ``with``)
    to seal and index them. Chunks are visible to :meth:`ChunkStore.has` only
    after the pack holding them is sealed and indexed; :meth:`pending` covers
    the gap.

    The caller's thread only decides where each record goes; the bytes are
    written by an I/O thread (one ``writev`` per batch, in order), and a full
    pack is sealed (trailer, fsync, rename, directory fsync) by a sealer
    thread while the next one fills. So copying into the page cache and
    flushing to disk overlap with the caller producing the next chunks. Index
    rows are entered on the caller's thread (SQLite connections stay on their
    thread) once a seal is done. :meth:`flush` waits for everything.
    """

    def __init__(
        self, store: ChunkStore, target_size: int = PACK_TARGET_SIZE, relocate: bool = False
    ) -> None:
        self.store = store
        self.relocate = relocate
        self.target_size = target_size
        self._file: io.FileIO | None = None
        self._path: Path | None = None
        self._entries: list[PackEntry] = []
        self._ids: set[bytes] = set()  # in the pack being written
        self._sealing: deque[_Sealing] = deque()
        self._writes: deque[Future[None]] = deque()
        self._io: ThreadPoolExecutor | None = None
        self._broken = threading.Event()  # a queued write failed: later ones must not run
        self._broken_errno = errno.EIO  # why (ENOSPC: the disk is full)
        self._sealer: ThreadPoolExecutor | None = None
        self._pos = 0
        self.bytes_written = 0
        self.chunks_written = 0

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.flush()
        else:
            self.abandon(discard=isinstance(exc, BaseException) and is_disk_full(exc))

    def pending(self, cid: bytes) -> bool:
        return cid in self._ids or any(cid in s.ids for s in self._sealing)

    def known(self, cid: bytes) -> bool:
        if self.relocate:
            return self.pending(cid)
        return self.pending(cid) or self.store.has(cid)

    def known_many(self, cids: list[bytes]) -> set[bytes]:
        """The ids among ``cids`` that :meth:`known` would call known."""
        found = {cid for cid in cids if self.pending(cid)}
        if not self.relocate:
            found |= self.store.has_many([cid for cid in cids if cid not in found])
        return found

    def add(self, cid: bytes, raw_len: int, compression: int, payload: bytes | memoryview) -> bool:
        """Store one encoded chunk unless it is already stored. True if queued."""
        return self.add_many([(cid, raw_len, compression, payload)]) == 1

    def add_many(
        self,
        records: Iterable[Record],
        on_written: Callable[[], None] | None = None,
        checked: bool = False,
    ) -> int:
        """Queue encoded chunks ``(id, raw_len, compression, payload)`` that are not
        already stored, in order; returns how many were queued.

        A payload must stay unchanged until it is written: ``on_written`` is
        called (on the I/O thread) once every payload of this call is in the
        file, so a caller can then reuse the buffers they view. Bytes are
        written straight to the file, no user-space buffer, so what is written
        survives the process being killed. ``checked``: the caller has just
        asked :meth:`known_many` about these ids, so the index is not asked again
        (ids pending in this writer are still skipped)."""
        records = list(records)
        known = set() if checked else self.known_many([r[0] for r in records])
        iov: list[bytes | memoryview] = []
        written = 0
        tee = None if self.relocate else self.store.tee
        teed: list[Record] = []
        for cid, raw_len, compression, payload in records:
            if cid in known or self.pending(cid):
                continue
            if self._file is None:
                self._start()
            entry = PackEntry(cid, self._pos, len(payload), raw_len, compression)
            iov.append(chunkpack.record_header(entry))
            iov.append(payload)
            self._pos += chunkpack.RECORD.size + len(payload)
            self._entries.append(entry)
            self._ids.add(cid)
            self.bytes_written += len(payload)
            self.chunks_written += 1
            written += 1
            if tee is not None:
                teed.append((cid, raw_len, compression, payload))
            if self._pos >= self.target_size or len(self._entries) >= PACK_MAX_CHUNKS:
                self._queue_write(iov)
                iov = []
                self._seal_current()
        self._queue_write(iov)
        if teed and tee is not None:  # before on_written: the payloads are still unchanged
            tee(teed)
        if on_written is not None:
            self._queue(on_written)
        self._index_sealed(wait=False)
        return written

    def wait_written(self) -> None:
        """Return once every queued record is in its file (raising what a write raised)."""
        while self._writes:
            self._writes.popleft().result()

    def _queue(self, job: Callable[..., None], *args: object) -> None:
        if self._io is None:
            self._io = ThreadPoolExecutor(1, thread_name_prefix="vsync-packio")
        while self._writes and self._writes[0].done():
            self._writes.popleft().result()
        while len(self._writes) >= _WRITES_IN_FLIGHT:
            self._writes.popleft().result()
        self._writes.append(self._io.submit(self._io_job, job, *args))

    def _io_job(self, job: Callable[..., None], *args: object) -> None:
        """Run one queued job on the I/O thread, in order. After a failed write the
        file's offsets no longer match the records queued after it, so every
        later job (their writes, a trailer, ``on_written``) fails too: no pack
        with a torn record is ever sealed; recover_temp_packs keeps what came
        before the failure. They fail with the first failure's errno, so a full
        disk still reads as one."""
        if self._broken.is_set():
            why = os.strerror(self._broken_errno)
            raise OSError(self._broken_errno, f"an earlier write to this pack failed ({why})")
        try:
            job(*args)
        except BaseException as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                self._broken_errno = exc.errno
            self._broken.set()
            raise

    def _queue_write(self, iov: list[bytes | memoryview]) -> None:
        if iov:
            assert self._file is not None
            self._queue(_writev_all, self._file.fileno(), iov, str(self._path))

    def _start(self) -> None:
        name = f"pack-{secrets.token_hex(16)}"
        self._path = self.store.dir / (name + chunkpack.TEMP_SUFFIX)
        # The flock tells recover_temp_packs in other processes that this pack is
        # live (vsync.store.templock); it is held until the pack is renamed.
        self._file = templock.create_locked(self._path, fault="temp-pack-created")
        _writev_all(self._file.fileno(), [chunkpack.header_bytes()], str(self._path))
        self._pos = chunkpack.HEADER.size
        self._entries = []
        self._ids = set()

    def _seal_current(self) -> None:
        """Queue the current pack's trailer and hand the pack to the sealer thread;
        the next add starts a new pack."""
        if self._file is None or self._path is None:
            return
        while len(self._sealing) >= _SEALS_IN_FLIGHT:
            self._index_one(self._sealing[0])
        self._queue_write([chunkpack.trailer_bytes(self._entries, self._pos)])
        written = self._writes[-1]
        if self._sealer is None:
            self._sealer = ThreadPoolExecutor(1, thread_name_prefix="vsync-seal")
        job = self._sealer.submit(_seal, written, self._file, self._path, self.store.dir)
        self._sealing.append(_Sealing(job, self._entries, self._ids))
        self._file = None
        self._path = None
        self._entries = []
        self._ids = set()

    def _index_one(self, sealing: _Sealing) -> None:
        final, size = sealing.job.result()  # raises what the seal raised
        self.store._index_pack(final.name, sealing.entries, size, self.relocate)
        self._sealing.remove(sealing)

    def _index_sealed(self, wait: bool) -> None:
        while self._sealing and (wait or self._sealing[0].job.done()):
            self._index_one(self._sealing[0])

    def flush(self) -> None:
        """Seal the current pack and index every sealed pack; returns when all are.
        If that fails, what is left is abandoned (files closed, threads stopped)."""
        try:
            self._seal_current()
            self.wait_written()
            self._index_sealed(wait=True)
        except BaseException as exc:
            self.abandon(discard=is_disk_full(exc))
            raise
        self._stop_threads()

    def abandon(self, discard: bool = False) -> None:
        """Close without sealing the current pack (the next writer recovers it);
        packs already handed to the sealer are finished and indexed if they can be.

        ``discard`` (the disk is full): delete the current temp pack instead, still
        under its flock. Its chunks were never indexed, so nothing needs them, and
        sealing them later would need the space there is not."""
        for fut in self._writes:
            fut.exception()  # wait; what failed is left for recover_temp_packs
        self._writes.clear()
        if self._file is not None:
            if discard and self._path is not None:
                self._path.unlink(missing_ok=True)
            self._file.close()
        self._file = None
        self._path = None
        self._entries = []
        self._ids = set()
        for sealing in list(self._sealing):
            try:
                self._index_one(sealing)
            except Exception:  # left for recover_temp_packs / reconcile
                self._sealing.remove(sealing)
        self._stop_threads()

    def _stop_threads(self) -> None:
        for pool in (self._io, self._sealer):
            if pool is not None:
                pool.shutdown(wait=True)
        self._io = self._sealer = None


Record = tuple[bytes, int, int, "bytes | memoryview"]
Tee = Callable[[list[Record]], None]
"""Sees the records a writer queues as new, on the writer's calling thread; a payload
may view a buffer its producer reuses once this returns (copy what is kept)."""
_SEALS_IN_FLIGHT = 2
_WRITES_IN_FLIGHT = 8
_IOV_MAX = 512


class _Sealing(NamedTuple):
    job: Future[tuple[Path, int]]
    entries: list[PackEntry]
    ids: set[bytes]


def _seal(written: Future[None], f: io.FileIO, path: Path, directory: Path) -> tuple[Path, int]:
    """Once the trailer is written: fsync, close, rename, directory fsync (sealer thread)."""
    final = path.with_name(path.name[: -len(chunkpack.TEMP_SUFFIX)] + chunkpack.PACK_SUFFIX)
    try:
        written.result()
        os.fsync(f.fileno())
        faults.point("temp-pack-sealing")
        os.replace(path, final)  # still locked: recovery never takes a pack being sealed
    except BaseException as exc:
        if is_disk_full(exc):  # as PackWriter.abandon(discard=True): never indexed, not needed
            path.unlink(missing_ok=True)
        raise
    finally:
        f.close()
    fsync_dir(directory)
    return final, final.stat().st_size


def _writev_all(fd: int, buffers: list[bytes | memoryview], where: str) -> None:
    views = [memoryview(b).cast("B") for b in buffers if len(b)]
    while views:
        try:
            n = os.writev(fd, views[:_IOV_MAX])
        except OSError as exc:  # name the file: "disk full" says where
            raise OSError(exc.errno, exc.strerror, where) from None
        if n == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), where)
        while n and views:
            first = len(views[0])
            if n >= first:
                n -= first
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0
