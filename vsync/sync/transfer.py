"""Moving history and chunks between two repositories over a :class:`Connection`.

Used by both sides: the sender of objects (push client, fetch server) runs
:func:`send_pack` then :func:`serve_chunks`; the receiver runs
:func:`receive_pack`, validates it (:meth:`IncomingPack.validate`), then
:func:`fetch_chunks`, and only after every chunk is stored adds the pack to
its object store (:meth:`IncomingPack.commit`) and moves a ref.

Nothing from the peer is trusted: the git pack's checksum is verified and
its objects are named by their recomputed ids and counted from the pack
itself (PACK_END only cross-checks); every tree entry name is checked (no
``..``, ``/``, NUL, ``.vsync``, case-folding twins); every manifest must
parse; every chunk is verified against its BLAKE3 id. Only objects the walk
from the tips validated are ever added: a pack holding anything else is
refused. A sender serves only chunks the peer may read
(:mod:`vsync.sync.readable`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dulwich.errors import ChecksumMismatch
from dulwich.objects import Blob, Commit, ShaFile, Tree
from dulwich.pack import Pack, PackData, unpack_object, write_pack_data

from vsync.errors import DamagedRepository, UnsafePath
from vsync.model.manifest import Manifest
from vsync.model.paths import check_tree_name, control_shaped
from vsync.model.repository import Repository
from vsync.model.worktree import MODE_EXEC, MODE_FILE, MODE_LINK, MODE_TREE
from vsync.store import codec
from vsync.sync import protocol as p
from vsync.sync.packgen import pack_records
from vsync.sync.protocol import Connection, ProtocolError
from vsync.sync.readable import ReadableChunks

FRAME_BYTES = 1024 * 1024
WANT_BATCH = 256  # ids per CHUNK_WANT (8 KiB)
WANTS_IN_FLIGHT = 2  # batches the receiver may have outstanding: no deadlock on pipes
ALLOWED_MODES = {MODE_FILE, MODE_EXEC, MODE_LINK, MODE_TREE}


@dataclass
class TransferStats:
    objects: int = 0
    pack_bytes: int = 0
    chunks: int = 0
    chunk_bytes: int = 0
    chunk_ids: list[bytes] = field(default_factory=list)
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
        if len(self.buf) >= FRAME_BYTES:
            self.conn.send(self.mtype, bytes(self.buf))
            self.buf.clear()

    def close(self) -> None:
        if self.buf:
            self.conn.send(self.mtype, bytes(self.buf))
            self.buf.clear()


# -- git objects -------------------------------------------------------------------


def send_pack(
    conn: Connection, repo: Repository, wants: list[bytes], haves: list[bytes], thin: bool
) -> TransferStats:
    """Send the objects reachable from ``wants`` but not from ``haves`` as one git pack.

    Changed trees and manifests go as deltas (:mod:`vsync.sync.packgen`); with
    ``thin`` (the receiver has the ``thin-pack`` capability) also against
    objects the receiver has.
    """
    store = repo.git.object_store
    todo, records = pack_records(repo, wants, haves, thin)
    out = _FrameWriter(conn, p.PACK_DATA)
    write_pack_data(out.write, records, store.object_format, num_records=len(todo))
    out.close()
    conn.send_json(p.PACK_END, {"objects": len(todo), "bytes": out.total})
    conn.flush()
    return TransferStats(objects=len(todo), pack_bytes=out.total, sent=todo)


class IncomingPack:
    """A received git pack kept outside the object store until its chunks are in."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.dir = repo.control / "incoming"
        self.dir.mkdir(exist_ok=True)
        self.base = self.dir / f"in-{secrets.token_hex(8)}"
        self.pack_path = Path(str(self.base) + ".pack")
        self.objects = 0  # counted from the pack itself (validate), never taken from the peer
        self.bytes = 0
        self.declared: tuple[int, int] | None = None  # PACK_END's (objects, bytes)
        self.tips: list[bytes] = []
        self.validated = False
        self._pack: Pack | None = None
        self.manifests: dict[bytes, Manifest] = {}

    def receive(self, conn: Connection) -> None:
        with open(self.pack_path, "wb") as f:
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
        store = self.repo.git.object_store
        try:
            data = PackData(str(self.pack_path), object_format=store.object_format)
            try:
                data.check()
                data.create_index(str(self.base) + ".idx", resolve_ext_ref=store.get_raw)
            finally:
                data.close()
            self._pack = Pack(
                str(self.base), object_format=store.object_format, resolve_ext_ref=store.get_raw
            )
        except (ChecksumMismatch, AssertionError, ValueError, KeyError, OSError) as exc:
            self.discard()
            raise ProtocolError(
                f"the remote sent a corrupt git pack ({exc}); nothing was changed"
            ) from None
        except Exception as exc:  # dulwich raises assorted types on garbage
            self.discard()
            raise ProtocolError(
                f"the remote sent an unreadable git pack ({type(exc).__name__}); "
                "nothing was changed"
            ) from None

    def _get(self, oid: bytes) -> ShaFile | None:
        store = self.repo.git.object_store
        if self._pack is not None and oid in self._pack:
            try:
                return self._pack[oid]
            except Exception:
                raise ProtocolError(
                    f"object {oid.decode()} in the received pack is damaged"
                ) from None
        if oid in store:
            return store[oid]
        return None

    def has_object(self, oid: bytes) -> bool:
        """Whether the received pack holds ``oid`` (``vsync fsck --repair``)."""
        from dulwich.objects import ObjectID

        return self._pack is not None and ObjectID(oid) in self._pack

    def raw_object(self, oid: bytes) -> tuple[int, bytes] | None:
        """The type number and bytes of ``oid`` as the received pack holds it, or None.

        For ``vsync fsck --repair``, which verifies them against ``oid`` before any use.
        """
        from dulwich.objects import ObjectID

        if self._pack is None or not self.has_object(oid):
            return None
        try:
            type_num, raw = self._pack.get_raw(ObjectID(oid))
        except Exception:
            raise ProtocolError(f"object {oid.decode()} in the received pack is damaged") from None
        return type_num, bytes(raw)

    def _is_new(self, oid: bytes) -> bool:
        return oid not in self.repo.git.object_store

    def _count(self) -> None:
        """Count the objects from the pack itself; PACK_END's numbers must agree.

        The objects must end where the trailing checksum begins: nothing may
        hide after the last object the header counts.
        """
        assert self._pack is not None
        counted = len(self._pack.index)
        if len(self._pack.data) != counted or self.declared != (counted, self.bytes):
            raise ProtocolError(
                "the remote's PACK_END does not match the git pack it sent; nothing was changed"
            )
        end = 12  # the pack header
        if counted:
            last = max(offset for _sha, offset, _crc in self._pack.index.iterentries())
            with open(self.pack_path, "rb") as f:
                f.seek(last)
                _obj, unused = unpack_object(
                    f.read, self.repo.git.object_store.object_format.hash_func
                )
                end = f.tell() - len(unused)
        if end != self.bytes - 20:
            raise ProtocolError(
                "the remote sent a git pack with data after its last object; nothing was changed"
            )
        self.objects = counted

    def validate(self, tips: Iterable[bytes]) -> list[bytes]:
        """Check everything new reachable from ``tips``; return the chunk ids it needs.

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
        needed: list[bytes] = []
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
            folded: set[str] = set()
            for item in tree.iteritems():
                try:
                    name = check_tree_name(item.path)
                except UnsafePath as exc:
                    raise ProtocolError(f"the remote sent an unsafe tree entry: {exc}") from None
                if name.casefold() in folded:
                    raise ProtocolError(
                        f"the remote sent a folder holding two names that differ only in case "
                        f"({name!r}); refusing it"
                    )
                folded.add(name.casefold())
                if item.mode not in ALLOWED_MODES:
                    raise ProtocolError(f"the remote sent an entry of unknown mode {item.mode:o}")
                if item.mode == MODE_TREE:
                    trees.append(item.sha)
                elif item.sha not in seen and self._is_new(item.sha):
                    seen.add(item.sha)
                    blob = self._get(item.sha)
                    if not isinstance(blob, Blob):
                        raise ProtocolError(
                            f"the remote's history is incomplete: blob {item.sha.decode()}"
                        )
                    if item.mode != MODE_LINK:
                        try:
                            manifest = Manifest.from_bytes(blob.as_raw_string(), name)
                        except DamagedRepository as exc:
                            raise ProtocolError(f"the remote sent a bad manifest: {exc}") from None
                        self.manifests[item.sha] = manifest
                        needed.extend(c for c, _n in manifest.chunks)
            if control_shaped(folded):
                raise ProtocolError("the remote sent a folder shaped like a vsync repository")
        self._require_reached(seen)
        self.validated = True
        return needed

    def _require_reached(self, reached: set[bytes]) -> None:
        """Refuse a pack holding an object the validation walk did not reach.

        An honest sender sends only objects its commits reach; anything else
        would enter the object store unchecked, for a later advertisement to
        move a ref onto.
        """
        assert self._pack is not None
        stray = sum(1 for oid in self._pack if oid not in reached and self._is_new(oid))
        if stray:
            raise ProtocolError(
                f"the remote sent {stray} git object(s) that the commits it sent do not reach; "
                "refusing the pack, nothing was changed"
            )

    def missing_chunks(self) -> list[bytes]:
        wanted = list(dict.fromkeys(cid for m in self.manifests.values() for cid, _n in m.chunks))
        have = self.repo.chunks.has_many(wanted)
        return [cid for cid in wanted if cid not in have]

    def commit(self) -> None:
        """Move the pack into the object store: every chunk it needs must be stored.

        Only a validated pack is added; afterwards every tip must be stored.
        """
        if not self.validated:
            raise RuntimeError("IncomingPack.commit() before validate()")
        missing = self.missing_chunks()
        if missing:
            raise ProtocolError(
                f"{len(missing)} chunks are still missing; nothing was changed, "
                "run the command again"
            )
        store = self.repo.git.object_store
        if self._pack is not None:
            self._pack.close()
            self._pack = None
        if self.objects:
            with open(self.pack_path, "rb") as f:
                store.add_thin_pack(f.read, None)
        self.discard()
        for tip in self.tips:
            if tip not in store:
                raise ProtocolError(f"the commit {tip.decode()} did not arrive")

    def discard(self) -> None:
        if self._pack is not None:
            self._pack.close()
            self._pack = None
        for suffix in (".pack", ".idx"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(self.base) + suffix)


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


def fetch_chunks(
    conn: Connection, repo: Repository, wanted: list[bytes], tick: Tick | None = None
) -> TransferStats:
    """Ask the peer for ``wanted`` chunks and store each after verifying it.

    At most WANTS_IN_FLIGHT batches are outstanding, so neither side can
    block writing while the other is blocked writing too. A batch is
    verified (decompressed, BLAKE3 compared with its id: both release the
    GIL) on a worker thread while the next batch is read, then stored.
    """
    stats = TransferStats()
    store = repo.chunks
    batches = [wanted[i : i + WANT_BATCH] for i in range(0, len(wanted), WANT_BATCH)]
    outstanding: list[list[bytes]] = []
    next_batch = 0

    def keep(records: list[Record]) -> None:
        writer.add_many(records)
        for cid, _raw_len, _compression, payload in records:
            stats.chunks += 1
            stats.chunk_bytes += len(payload)
            stats.chunk_ids.append(cid)
        if tick is not None:
            tick(stats.chunks, stats.chunk_bytes)

    with store.writer() as writer, ThreadPoolExecutor(1, "vsync-verify") as pool:
        verifying: Future[list[Record]] | None = None
        while next_batch < len(batches) or outstanding:
            while next_batch < len(batches) and len(outstanding) < WANTS_IN_FLIGHT:
                batch = batches[next_batch]
                conn.send(p.CHUNK_WANT, b"".join(batch))
                outstanding.append(batch)
                next_batch += 1
            conn.flush()
            records: list[Record] = []
            for expected in outstanding.pop(0):
                msg = conn.expect(p.CHUNK)
                cid, compression, raw_len, payload = p.decode_chunk(msg.payload)
                if cid != expected:
                    raise ProtocolError("the remote sent a chunk that was not asked for")
                records.append((cid, raw_len, compression, payload))
            if verifying is not None:
                keep(verifying.result())
            verifying = pool.submit(_verified, records)
        if verifying is not None:
            keep(verifying.result())
    conn.send(p.CHUNK_WANT_END)
    conn.flush()
    conn.expect(p.CHUNKS_END)
    return stats


def _verified(records: list[Record]) -> list[Record]:
    """``records`` once each decodes to bytes whose BLAKE3 is its id; else ProtocolError."""
    for cid, raw_len, compression, payload in records:
        try:
            codec.decode(compression, payload, raw_len, cid, "received from the remote")
        except DamagedRepository:
            raise ProtocolError(
                f"the remote sent chunk {cid.hex()[:16]} whose bytes do not match its id; "
                "refusing it (the remote's repository may be damaged: run vsync fsck there)"
            ) from None
    return records


def serve_chunks(
    conn: Connection, repo: Repository, readable: ReadableChunks, tick: Tick | None = None
) -> TransferStats:
    """Answer CHUNK_WANT messages with stored chunks until CHUNK_WANT_END.

    Only chunks ``readable`` allows are served; asking for any other stops the
    session with an error that does not say whether the chunk is stored.
    """
    stats = TransferStats()
    store = repo.chunks
    while True:
        msg = conn.expect(p.CHUNK_WANT, p.CHUNK_WANT_END)
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
    conn.send_json(p.CHUNKS_END, {"chunks": stats.chunks, "bytes": stats.chunk_bytes})
    conn.flush()
    return stats
