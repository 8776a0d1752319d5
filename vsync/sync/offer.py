"""Offered chunks (capability ``send-v1``): the client sends the chunks a commit
stores while that commit runs, before any request names them.

``vsync sync`` opens its session first, then commits with a tee on the chunk
store (:attr:`vsync.store.chunkstore.ChunkStore.tee`): every chunk the commit
queues as new is handed to :class:`ChunkOffer`, whose thread sends it as an
OFFER_CHUNK while the commit reads on. When the commit is done, OFFER_END;
the server answers with fresh REFS, and the same session goes on with the
fetch and the push, whose CHUNK_WANTs then find (almost) nothing missing.

Server side (:func:`receive_offer`): an offered chunk is checked like any
received one (its raw length at most the format's chunk maximum, its payload
no longer than that length may be stored as, decoded and its BLAKE3 compared
with its id on a worker thread while the next batch is read) and stored; it
is referenced by nothing until a push names it, and ``gc`` removes it if none
ever does. The server says nothing during the offer (no reply the client
would have to read while it writes) and never whether a chunk was already
stored.

An offer is only ever an optimisation: a failed or refused one turns the tee
into a no-op, the commit lands all the same, and the push sends whatever the
server still lacks the ordinary way.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from vsync.errors import ChunkCorrupt, VsyncError
from vsync.model.repository import Repository
from vsync.store import codec, faults
from vsync.store.chunkstore import Record
from vsync.sync import protocol as p
from vsync.sync.protocol import Connection, ProtocolError

QUEUE_BYTES = 4 * 1024 * 1024  # framed bytes handed to the sending thread, not yet sent
BATCH_BYTES = 512 * 1024  # tee frames the chunks into batches of about this many bytes
VERIFY_BATCH_BYTES = 8 * 1024 * 1024  # the server verifies offered chunks in batches of this
KEEPALIVE_SECONDS = 15.0  # an idle offer sends KEEPALIVE at least this often


@dataclass
class OfferStats:
    chunks: int = 0
    bytes: int = 0  # stored (payload) bytes
    seconds: float = 0.0  # from the first offered chunk to OFFER_END's answer


@dataclass
class _Batch:
    """OFFER_CHUNK frames, whole, as the transport is to send them."""

    frames: bytearray
    chunks: int
    payload_bytes: int


class ChunkOffer:
    """Sends the chunks handed to :meth:`tee` as OFFER_CHUNKs, on a thread of its own.

    :meth:`tee` frames the chunks on the caller's thread straight into batches
    of about BATCH_BYTES (the one copy of each payload the offer makes: the
    caller may reuse its buffers once tee returns); the thread writes each
    batch to the transport whole. While it runs, that thread is the only user
    of ``conn``. :meth:`tee` blocks while QUEUE_BYTES are waiting (the commit
    goes no faster than the network takes its chunks), and returns at once
    after the sending failed: from then on nothing more is offered, and the
    caller finds out in :meth:`finish`.
    """

    def __init__(self, conn: Connection, keepalive: float = KEEPALIVE_SECONDS) -> None:
        self.conn = conn
        self.keepalive = keepalive
        self.stats = OfferStats()
        self.error: BaseException | None = None
        self._queue: queue.Queue[_Batch | None] = queue.Queue()
        self._room = threading.Condition()
        self._queued = 0  # framed bytes in the queue
        self._failed = threading.Event()
        self._t0: float | None = None
        self._thread = threading.Thread(target=self._run, name="vsync-offer", daemon=True)
        self._thread.start()

    @property
    def failed(self) -> bool:
        return self._failed.is_set()

    def tee(self, records: list[Record]) -> None:
        """Frame ``records`` as OFFER_CHUNKs and queue them for sending (their
        payloads are copied into the frames: they may view a buffer the commit reuses)."""
        if self._failed.is_set():
            return
        if self._t0 is None:
            self._t0 = time.monotonic()
        batch = _Batch(bytearray(), 0, 0)
        for cid, raw_len, compression, payload in records:
            p.frame_into(
                batch.frames, p.OFFER_CHUNK, p.CHUNK_HEAD.pack(cid, compression, raw_len), payload
            )
            batch.chunks += 1
            batch.payload_bytes += len(payload)
            if len(batch.frames) >= BATCH_BYTES:
                if not self._put(batch):
                    return
                batch = _Batch(bytearray(), 0, 0)
        if batch.chunks:
            self._put(batch)

    def _put(self, batch: _Batch) -> bool:
        """Queue ``batch`` once there is room; False when the sending has failed."""
        with self._room:
            while self._queued >= QUEUE_BYTES and not self._failed.is_set():
                self._room.wait(1.0)
            if self._failed.is_set():
                return False
            self._queued += len(batch.frames)
        self._queue.put(batch)
        return True

    def _run(self) -> None:
        conn = self.conn
        try:
            while True:
                try:
                    batch = self._queue.get(timeout=self.keepalive)
                except queue.Empty:
                    conn.send(p.KEEPALIVE)  # optional: skipped by the server, keeps it waiting
                    conn.flush()
                    continue
                if batch is None:
                    conn.flush()
                    return
                conn.send_framed(batch.frames)
                self.stats.chunks += batch.chunks
                self.stats.bytes += batch.payload_bytes
                for _ in range(batch.chunks):
                    faults.point("chunk-offered")
                with self._room:
                    self._queued -= len(batch.frames)
                    self._room.notify()
                if self._queue.empty():
                    conn.flush()
        except BaseException as exc:  # the caller learns it in finish()
            self.error = exc
            self._failed.set()
            with self._room:
                self._room.notify_all()

    def stop(self) -> None:
        """Stop sending (what is queued is still sent) and wait for the thread."""
        self._queue.put(None)
        self._thread.join()

    def finish(self) -> dict[bytes, bytes]:
        """Stop, send OFFER_END and return the refs the server answers with.

        Raises what the sending raised (the session is then unusable)."""
        self.stop()
        if self.error is not None:
            raise self.error
        self.conn.send_json(p.OFFER_END, {"chunks": self.stats.chunks, "bytes": self.stats.bytes})
        self.conn.flush()
        refs = self.conn.expect(p.REFS).json().get("refs", {})
        if self._t0 is not None:
            self.stats.seconds = time.monotonic() - self._t0
        return _parse_refs(refs)


def _parse_refs(raw_refs: object) -> dict[bytes, bytes]:
    if not isinstance(raw_refs, dict):
        raise ProtocolError("the remote sent a malformed ref list")
    refs = {}
    for name, value in raw_refs.items():
        if not isinstance(name, str):
            raise ProtocolError("the remote sent a malformed ref list")
        refs[name.encode()] = p.parse_oid(value, "REFS")
    return refs


@contextlib.contextmanager
def teeing(repo: Repository, offer: ChunkOffer | None) -> Iterator[None]:
    """While inside, every chunk ``repo``'s writers store as new goes to ``offer``."""
    if offer is None:
        yield
        return
    repo.chunks.tee = offer.tee
    try:
        yield
    finally:
        repo.chunks.tee = None


# -- the server ---------------------------------------------------------------------


def receive_offer(conn: Connection, repo: Repository, first: p.Message) -> OfferStats:
    """Store the chunks the client offers, starting with ``first`` (an OFFER_CHUNK or
    the OFFER_END), until OFFER_END. Every chunk is verified before it is stored."""
    stats = OfferStats()
    t0 = time.monotonic()
    msg = first
    with repo.chunks.writer() as writer, ThreadPoolExecutor(1, "vsync-verify") as pool:
        verifying: Future[list[Record]] | None = None
        batch: list[Record] = []
        nbytes = 0
        while msg.type == p.OFFER_CHUNK:
            cid, compression, raw_len, payload = p.decode_chunk_view(msg.payload)
            _check_offered(cid, raw_len, payload)
            faults.point("offer-received")
            batch.append((cid, raw_len, compression, payload))
            nbytes += len(payload)
            stats.chunks += 1
            stats.bytes += len(payload)
            if nbytes >= VERIFY_BATCH_BYTES:
                if verifying is not None:
                    writer.add_many(verifying.result())
                verifying = pool.submit(_verified, batch)
                batch, nbytes = [], 0
            msg = conn.expect(p.OFFER_CHUNK, p.OFFER_END)
        if verifying is not None:
            writer.add_many(verifying.result())
        if batch:
            writer.add_many(_verified(batch))
    faults.point("offer-stored")
    info = msg.json()  # the client's counts: informative only, never trusted
    p.parse_count(info.get("chunks", 0), "OFFER_END")
    p.parse_count(info.get("bytes", 0), "OFFER_END")
    stats.seconds = time.monotonic() - t0
    return stats


def _check_offered(cid: bytes, raw_len: int, payload: bytes | memoryview) -> None:
    """An OFFER_CHUNK's header, before it is kept: nothing names its length, so the
    format's bounds are the check."""
    if raw_len > codec.MAX_CHUNK_BYTES:
        raise ProtocolError(
            f"the client offered chunk {cid.hex()[:16]} as {raw_len} bytes; refusing it"
        )
    if len(payload) > codec.max_stored_len(raw_len):
        raise ProtocolError(
            f"the client offered chunk {cid.hex()[:16]} as {len(payload)} stored bytes for "
            f"{raw_len}; refusing it"
        )


def _verified(records: list[Record]) -> list[Record]:
    """``records`` once each decodes to bytes whose BLAKE3 is its id; else ProtocolError."""
    for cid, raw_len, compression, payload in records:
        try:
            codec.check(compression, payload, raw_len, cid, "from the client")
        except ChunkCorrupt:
            raise ProtocolError(
                f"the client offered chunk {cid.hex()[:16]} whose bytes do not match its id; "
                "refusing it"
            ) from None
        except MemoryError:
            raise ProtocolError(
                f"not enough memory to check chunk {cid.hex()[:16]} from the client"
            ) from None
        except VsyncError as exc:  # an unknown compression, a bad frame
            raise ProtocolError(
                f"the client offered chunk {cid.hex()[:16]} that does not decode ({exc}); "
                "refusing it"
            ) from None
    return records
