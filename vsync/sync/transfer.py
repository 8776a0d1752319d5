"""Moving history and chunks between two repositories over a :class:`Connection`.

Used by both sides: the sender of objects (push client, fetch server) runs
:func:`send_pack` then :func:`serve_chunks`; the receiver runs
:func:`receive_pack`, validates it (:meth:`IncomingPack.validate`), then
:func:`fetch_chunks`, and only after every chunk is stored adds the pack to
its object store (:meth:`IncomingPack.commit`) and moves a ref.

Nothing from the peer is trusted: the git pack is checked against fixed
bounds before any delta in it is resolved (:mod:`vsync.model.gitdb.received`),
its checksum is verified, its objects are named by their recomputed ids and
counted from the pack itself (PACK_END only cross-checks); every tree entry
name is checked (no ``..``, ``/``, NUL, ``.vsync``, case-folding twins);
every manifest must parse; every chunk must have the length its manifest
gives and is verified against its BLAKE3 id. Only objects the walk from the
tips validated are ever added: a pack holding anything else is refused. A
sender serves only chunks the peer may read (:mod:`vsync.sync.readable`).

Memory stays bounded whatever the peer sends: the chunks the new manifests
name are kept on disk (:class:`ChunkSpool`), chunks are asked for in batches
bounded by count and by bytes, and a frame longer than its type allows is
refused before it is read (:mod:`vsync.sync.protocol`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vsync.errors import ChunkCorrupt, DamagedRepository, UnsafePath
from vsync.model.gitdb import MODE_LINK, MODE_TREE, Blob, Commit, GitObject, Tree
from vsync.model.gitdb.incoming import (
    ReceivedPack,
    create_incoming,
    remove_abandoned,
    remove_incoming,
)
from vsync.model.gitdb.packgen import PackSink, write_pack
from vsync.model.gitdb.received import PackRefused
from vsync.model.manifest import Manifest
from vsync.model.repository import Repository
from vsync.model.snapshot import check_received_tree
from vsync.store import codec, faults
from vsync.sync import protocol as p
from vsync.sync.chunkspool import ChunkSpool
from vsync.sync.protocol import WANT_BATCH, Connection, ProtocolError
from vsync.sync.readable import ReadableChunks
from vsync.wording import plural

FRAME_BYTES = p.PACK_DATA_BYTES
WANTS_IN_FLIGHT = 2  # batches the receiver may have outstanding: no deadlock on pipes
BATCH_BYTES = 16 * 1024 * 1024  # stored bytes a CHUNK_WANT may ask for (one chunk may be more)


@dataclass
class TransferStats:
    objects: int = 0
    pack_bytes: int = 0
    chunks: int = 0
    chunk_bytes: int = 0
    sent: list[bytes] = field(default_factory=list)  # ids of the git objects sent

    def add(self, other: TransferStats) -> None:
        self.objects += other.objects
        self.pack_bytes += other.pack_bytes
        self.chunks += other.chunks
        self.chunk_bytes += other.chunk_bytes


Tick = Callable[[int, int], None]  # (chunks, bytes) moved so far


class _FrameWriter:
    def __init__(self, conn: Connection, mtype: int) -> None:
        self.conn, self.mtype = conn, mtype
        self.buf = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        self.buf += data
        self.total += len(data)
        while len(self.buf) >= FRAME_BYTES:
            self.conn.send(self.mtype, bytes(self.buf[:FRAME_BYTES]))
            del self.buf[:FRAME_BYTES]

    def close(self) -> None:
        if self.buf:
            self.conn.send(self.mtype, bytes(self.buf))
            self.buf.clear()


# -- git objects -------------------------------------------------------------------


def send_pack(
    conn: Connection, repo: Repository, wants: list[bytes], haves: list[bytes], thin: bool
) -> TransferStats:
    """Send the objects reachable from ``wants`` but not from ``haves`` as one git pack.

    Changed trees and manifests go as deltas (:mod:`vsync.model.gitdb.packgen`);
    with ``thin`` (the receiver has the ``thin-pack`` capability) also against
    objects the receiver has.
    """
    out = _FrameWriter(conn, p.PACK_DATA)
    sent = write_pack(repo.gitdb, wants, haves, thin, PackSink(out.write))
    out.close()
    conn.send_json(p.PACK_END, {"objects": len(sent), "bytes": out.total})
    conn.flush()
    return TransferStats(objects=len(sent), pack_bytes=out.total, sent=sent)


class IncomingPack:
    """A received git pack kept outside the object store until its chunks are in."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        remove_abandoned(repo.control)  # what killed transfers left
        # flocked until discard(): no other process's clean-up takes it meanwhile
        self.base, self._lock = create_incoming(repo.control)
        self.dir = self.base.parent
        self.pack_path = Path(str(self.base) + ".pack")
        self.objects = 0  # counted from the pack itself (receive), never taken from the peer
        self.bytes = 0
        self.declared: tuple[int, int] | None = None  # PACK_END's (objects, bytes)
        self.tips: list[bytes] = []
        self.validated = False
        self._pack: ReceivedPack | None = None
        self.needed = ChunkSpool(self.dir)  # (id, length) of every chunk new manifests name

    def receive(self, conn: Connection) -> None:
        with open(self.pack_path, "r+b") as f:
            while True:
                msg = conn.expect(p.PACK_DATA, p.PACK_END)
                if msg.type == p.PACK_END:
                    info = msg.json()
                    self.declared = (
                        p.parse_count(info.get("objects"), "PACK_END"),
                        p.parse_count(info.get("bytes"), "PACK_END"),
                    )
                    break
                f.write(msg.payload)
                self.bytes += len(msg.payload)
        faults.point("incoming-pack-received")
        try:
            self._pack = ReceivedPack.open(self.repo.gitdb, str(self.base))
        except PackRefused as exc:
            self.discard()
            raise ProtocolError(str(exc)) from None
        self.objects = self._pack.objects

    def _received(self) -> ReceivedPack:
        if self._pack is None:
            raise RuntimeError("no git pack was received")
        return self._pack

    def find(self, oid: bytes) -> GitObject | None:
        """``oid`` from the received pack or the store (None: in neither)."""
        return self._get(oid)

    def _get(self, oid: bytes) -> GitObject | None:
        """``oid`` from the received pack or the store; a damaged one in the pack is
        the remote's fault (ProtocolError)."""
        try:
            return self._received().find(oid)
        except PackRefused as exc:
            raise ProtocolError(str(exc)) from None

    def has_object(self, oid: bytes) -> bool:
        """Whether the received pack holds ``oid`` (``vsync fsck --repair``)."""
        return self._pack is not None and self._pack.has(oid)

    def raw_object(self, oid: bytes) -> tuple[int, bytes] | None:
        """The type number and bytes of ``oid`` as the received pack holds it, or None.

        For ``vsync fsck --repair``, which verifies them against ``oid`` before any use.
        """
        if self._pack is None:
            return None
        try:
            return self._pack.raw(oid)
        except PackRefused as exc:
            raise ProtocolError(str(exc)) from None

    def _is_new(self, oid: bytes) -> bool:
        return not self.repo.gitdb.has(oid)

    def _count(self) -> None:
        """PACK_END's numbers must be what was counted from the pack and received
        (the bounded check of :meth:`receive` counted the objects and refused any
        data after the last one)."""
        if self.declared != (self.objects, self.bytes):
            raise ProtocolError(
                "the remote's PACK_END does not match the git pack it sent; nothing was changed"
            )

    def validate(self, tips: Iterable[bytes]) -> None:
        """Check everything new reachable from ``tips``; note the chunks its manifests
        name in ``needed``.

        Each tip must be a commit (in the pack, or already stored), and every
        object in the pack must be reached from the tips by this walk or be
        stored already: only validated objects are ever added (:meth:`commit`).
        """
        self._count()
        self.tips = list(tips)
        for tip in self.tips:
            if not self._is_new(tip) and not isinstance(self._get(tip), Commit):
                raise ProtocolError(
                    f"the remote named {tip.decode()} as a commit, but it is not one; "
                    "nothing was changed"
                )
        seen: set[bytes] = set()
        commits = [t for t in self.tips if self._is_new(t)]
        trees: list[bytes] = []
        while commits:
            cid = commits.pop()
            if cid in seen:
                continue
            seen.add(cid)
            obj = self._get(cid)
            if not isinstance(obj, Commit):
                raise ProtocolError(f"the remote's history is incomplete: commit {cid.decode()}")
            trees.append(obj.tree)
            commits.extend(par for par in obj.parents if self._is_new(par))
        while trees:
            tid = trees.pop()
            if tid in seen or not self._is_new(tid):
                continue
            seen.add(tid)
            tree = self._get(tid)
            if not isinstance(tree, Tree):
                raise ProtocolError(f"the remote's history is incomplete: tree {tid.decode()}")
            try:
                names = check_received_tree(tree)
            except UnsafePath as exc:
                raise ProtocolError(f"the remote sent an unsafe tree entry: {exc}") from None
            for name, (_raw, mode, oid) in zip(names, tree.items, strict=True):
                if mode == MODE_TREE:
                    trees.append(oid)
                elif oid not in seen and self._is_new(oid):
                    seen.add(oid)
                    blob = self._get(oid)
                    if not isinstance(blob, Blob):
                        raise ProtocolError(
                            f"the remote's history is incomplete: blob {oid.decode()}"
                        )
                    if mode != MODE_LINK:
                        try:
                            manifest = Manifest.from_bytes(blob.data, name)
                        except DamagedRepository as exc:
                            raise ProtocolError(f"the remote sent a bad manifest: {exc}") from None
                        self.needed.add(manifest.entries)
        self._require_reached(seen)
        self.validated = True

    def _require_reached(self, reached: set[bytes]) -> None:
        """Refuse a pack holding an object the validation walk did not reach.

        An honest sender sends only objects its commits reach; anything else
        would enter the object store unchecked, for a later advertisement to
        move a ref onto.
        """
        stray = sum(1 for oid in self._received().ids() if oid not in reached and self._is_new(oid))
        if stray:
            raise ProtocolError(
                f"the remote sent {plural(stray, 'git object')} that the commits it sent do "
                "not reach; "
                "refusing the pack, nothing was changed"
            )

    def missing_chunks(self) -> ChunkSpool:
        """The (id, length) of each chunk the new manifests name and the store lacks."""
        return self.needed.missing(self.dir, self.repo.chunks.has_many)

    def commit(self) -> None:
        """Move the pack into the object store: every chunk it needs must be stored.

        Only a validated pack is added; afterwards every tip must be stored.
        """
        if not self.validated:
            raise RuntimeError("IncomingPack.commit() before validate()")
        missing = self.missing_chunks()
        count = len(missing)
        missing.close()
        if count:
            raise ProtocolError(
                f"{plural(count, 'chunk')} still missing; nothing was changed, "
                "run the command again"
            )
        self._received().add_to_store()
        self.discard()
        for tip in self.tips:
            if not self.repo.gitdb.has(tip):
                raise ProtocolError(f"the commit {tip.decode()} did not arrive")

    def discard(self) -> None:
        self.needed.close()
        if self._pack is not None:
            self._pack.close()
            self._pack = None
        remove_incoming(self.base)
        self._lock.close()  # the flock goes once the files are gone


def receive_pack(conn: Connection, repo: Repository) -> IncomingPack:
    incoming = IncomingPack(repo)
    try:
        incoming.receive(conn)
    except BaseException:
        incoming.discard()
        raise
    return incoming


# -- chunks ------------------------------------------------------------------------


Record = tuple[bytes, int, int, bytes]  # chunk id, raw length, compression, stored payload


Wanted = Iterable[tuple[bytes, int]]  # (chunk id, raw length its manifest gives)


def _batches(wanted: Wanted) -> Iterator[list[tuple[bytes, int]]]:
    """``wanted`` cut into CHUNK_WANT batches: at most WANT_BATCH ids and BATCH_BYTES
    of the longest payloads they may arrive as (a larger chunk goes alone)."""
    batch: list[tuple[bytes, int]] = []
    nbytes = 0
    for cid, length in wanted:
        cost = p.CHUNK_HEAD.size + codec.max_stored_len(length)
        if batch and (len(batch) == WANT_BATCH or nbytes + cost > BATCH_BYTES):
            yield batch
            batch, nbytes = [], 0
        batch.append((cid, length))
        nbytes += cost
    if batch:
        yield batch


Sink = Callable[[bytes, bytes], None]  # (chunk id, its verified raw bytes)


def fetch_chunks(
    conn: Connection,
    repo: Repository,
    wanted: Wanted,
    tick: Tick | None = None,
    sink: Sink | None = None,
) -> TransferStats:
    """Ask the peer for ``wanted`` chunks and store each after verifying it.

    At most WANTS_IN_FLIGHT batches are outstanding, so neither side can
    block writing while the other is blocked writing too. A batch is
    verified (decompressed, BLAKE3 compared with its id: both release the
    GIL) on a worker thread while the next batch is read, then stored. A
    CHUNK is refused as it arrives unless it is the one asked for, with the
    length asked for (at most the format's chunk maximum) and a payload no
    longer than that length may be stored as: so a batch held in memory is
    never more than BATCH_BYTES (or one chunk) and what was asked for.

    ``sink`` gets each chunk's raw bytes on the verifying thread, once they are
    verified (the working files a clone fills as it receives:
    :mod:`vsync.model.prefill`); ``wanted`` is read lazily, two batches ahead.
    """
    stats = TransferStats()
    store = repo.chunks
    batches = _batches(wanted)
    outstanding: list[list[tuple[bytes, int]]] = []
    more = True

    def keep(records: list[Record]) -> None:
        # The previous batch's bytes are in their pack before this one's are queued:
        # at most one batch waits for the disk (memory stays bounded when it is slow).
        writer.wait_written()
        writer.add_many(records)
        for _cid, _raw_len, _compression, payload in records:
            stats.chunks += 1
            stats.chunk_bytes += len(payload)
        if tick is not None:
            tick(stats.chunks, stats.chunk_bytes)

    with store.writer() as writer, ThreadPoolExecutor(1, "vsync-verify") as pool:
        verifying: Future[list[Record]] | None = None
        while more or outstanding:
            while more and len(outstanding) < WANTS_IN_FLIGHT:
                batch = next(batches, None)
                if batch is None:
                    more = False
                    break
                conn.send(p.CHUNK_WANT, b"".join(cid for cid, _n in batch))
                outstanding.append(batch)
            conn.flush()
            if not outstanding:
                break
            records: list[Record] = []
            for expected, length in outstanding.pop(0):
                cid, compression, raw_len, payload = conn.recv_chunk()
                _check_chunk(expected, length, cid, raw_len, payload)
                records.append((cid, raw_len, compression, payload))
            if verifying is not None:
                keep(verifying.result())
            verifying = pool.submit(_verified, records, sink)
        if verifying is not None:
            keep(verifying.result())
    conn.send(p.CHUNK_WANT_END)
    conn.flush()
    conn.expect(p.CHUNKS_END)
    return stats


def _check_chunk(expected: bytes, length: int, cid: bytes, raw_len: int, payload: bytes) -> None:
    """A received CHUNK's header against what was asked for, before it is kept."""
    if cid != expected:
        raise ProtocolError("the remote sent a chunk that was not asked for")
    if raw_len != length or raw_len > codec.MAX_CHUNK_BYTES:
        raise ProtocolError(
            f"the remote sent chunk {cid.hex()[:16]} as {raw_len} bytes where its manifest "
            f"says {length}; refusing it"
        )
    if len(payload) > codec.max_stored_len(raw_len):
        raise ProtocolError(
            f"the remote sent chunk {cid.hex()[:16]} as {len(payload)} stored bytes for "
            f"{raw_len}; refusing it"
        )


def _verified(records: list[Record], sink: Sink | None = None) -> list[Record]:
    """``records`` once each decodes to bytes whose BLAKE3 is its id (each handed
    to ``sink`` then); else ProtocolError."""
    for cid, raw_len, compression, payload in records:
        try:
            data = codec.decode(compression, payload, raw_len, cid, "from the remote")
        except ChunkCorrupt as exc:
            raise ProtocolError(
                f"the remote sent chunk {cid.hex()[:16]} whose bytes do not match its id "
                f"({exc.where}); refusing it (the remote's repository may be damaged: "
                "run vsync fsck there)"
            ) from None
        except MemoryError:
            raise ProtocolError(
                f"not enough memory to check chunk {cid.hex()[:16]} from the remote; "
                "chunks received so far are kept, run the command again"
            ) from None
        if sink is not None:
            sink(cid, data)
    return records


Total = Callable[[int, int], None]  # (chunks, raw bytes) the peer announced it will ask for


def serve_chunks(
    conn: Connection,
    repo: Repository,
    readable: ReadableChunks,
    tick: Tick | None = None,
    total: Total | None = None,
) -> TransferStats:
    """Answer CHUNK_WANT messages with stored chunks until CHUNK_WANT_END.

    Only chunks ``readable`` allows are served; asking for any other stops the
    session with an error that does not say whether the chunk is stored. With
    ``total`` (the peer listed want-total-v1), the first message may be
    WANT_TOTAL, whose counts go to ``total``: informative only, never trusted
    for anything but a progress line.
    """
    stats = TransferStats()
    store = repo.chunks
    msg = conn.expect(p.CHUNK_WANT, p.CHUNK_WANT_END, *((p.WANT_TOTAL,) if total else ()))
    if msg.type == p.WANT_TOTAL and total is not None:
        info = msg.json()
        total(
            p.parse_count(info.get("chunks"), "WANT_TOTAL"),
            p.parse_count(info.get("bytes"), "WANT_TOTAL"),
        )
        msg = conn.expect(p.CHUNK_WANT, p.CHUNK_WANT_END)
    while True:
        if msg.type == p.CHUNK_WANT_END:
            break
        ids = msg.payload
        if len(ids) % 32:
            raise ProtocolError("peer sent a malformed CHUNK_WANT")
        wanted = [bytes(ids[i : i + 32]) for i in range(0, len(ids), 32)]
        readable.check(wanted)
        for s in store.read_stored_many(wanted):
            head = p.CHUNK_HEAD.pack(s.chunk_id, s.compression, s.raw_len)
            conn.send_parts(p.CHUNK, head, s.payload)
            stats.chunks += 1
            stats.chunk_bytes += len(s.payload)
            if tick is not None:
                tick(stats.chunks, stats.chunk_bytes)
        conn.flush()
        msg = conn.expect(p.CHUNK_WANT, p.CHUNK_WANT_END)
    conn.send_json(p.CHUNKS_END, {"chunks": stats.chunks, "bytes": stats.chunk_bytes})
    conn.flush()
    return stats
