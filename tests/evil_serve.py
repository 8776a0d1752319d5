"""A hostile ``vsync serve``: used as --remote-cmd to prove the client trusts nothing.

Usage: python evil_serve.py MODE serve --stdio PATH

MODE:
- honest: no tampering.
- no-thin: a server without the thin-pack capability, as before it existed.
- no-watch: a server without the watch-v1 capability, as before it existed.
- bad-chunk: a chunk's bytes do not match its id.
- bad-chunk:late: the same, but only from the 9th chunk served on (the first arrive
  whole, so a receiver has begun writing what they fill).
- bad-pack: a flipped byte in the git pack (its checksum no longer matches).
- bad-delta: a git delta that rebuilds another object than the one it stands for.
- object:CASE: advertise as main a commit built on the real main that breaks
  one rule (tests/hostile.py OBJECT_CASES), and send it in the pack.
- pack:CASE: the honest pack, tampered (tests/hostile.py PACK_CASES).
- chunk:unasked / chunk:out-of-order / chunk:extra: answer CHUNK_WANT with a
  chunk that was not asked for, with two chunks swapped, with one chunk too many.
- oid:refs / oid:acks: a 40-character object id that is not hex in REFS / ACKS.
- probe-chunk: while receiving a push, ask for the chunk whose hex id is in
  $VSYNC_EVIL_CHUNK (one the pusher holds but does not push).
- want-total:negative / want-total:twice / want-total:unlisted: while receiving a
  push, a WANT_TOTAL with a count of -1, the honest one sent twice, or sent by a
  server whose HELLO does not list want-total-v1.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import hostile

from vsync.model.gitdb import packgen
from vsync.store import chunkstore
from vsync.sync import negotiate, protocol, server, transfer
from vsync.sync.protocol import Connection


def _tamper_chunks(mode: str) -> None:
    real = chunkstore.ChunkStore.read_stored_many

    def read_stored_many(self, cids):  # type: ignore[no-untyped-def]
        stored = list(real(self, cids))
        if mode == "chunk:out-of-order" and len(stored) >= 2:
            stored[0], stored[1] = stored[1], stored[0]
        elif mode == "chunk:unasked":
            other = next(cid for cid, _n, _e in self.iter_index() if cid != stored[0].chunk_id)
            stored[0] = real(self, [other]).__next__()
        elif mode == "chunk:extra":
            stored.append(stored[0])
        return iter(stored)

    chunkstore.ChunkStore.read_stored_many = read_stored_many  # type: ignore[method-assign]


class AnyChunk:
    """A hostile server serves whatever it is asked for."""

    def __init__(self, *args: object) -> None:
        pass

    def __enter__(self) -> AnyChunk:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def check(self, ids: object) -> None:
        return None


def _evil_send_pack(mode: str) -> None:
    kind, case = mode.split(":", 1)

    def send_pack(conn, repo, wants, haves, thin):  # type: ignore[no-untyped-def]
        store = hostile.store_of(repo)
        head = repo.head()
        honest = packgen.pack_records(repo.gitdb, [head], haves, thin)[1]
        records = list(honest)
        if kind == "object":
            records += hostile.evil_objects(store, head, case).records()
            data, objects, end = hostile.pack_bytes(records), len(records), None
        else:
            data, objects, end = hostile.tampered_pack(case, records, store, head)
        hostile.send_pack_bytes(conn, data, objects, end=end)
        return transfer.TransferStats(objects=objects, pack_bytes=len(data))

    server.send_pack = send_pack  # type: ignore[assignment]
    if kind == "object":
        real_refs = server.advertised_refs

        def advertised_refs(repo):  # type: ignore[no-untyped-def]
            refs = real_refs(repo)
            evil = hostile.evil_objects(hostile.store_of(repo), repo.head(), case)
            refs["refs/heads/main"] = evil.tip.decode()
            return refs

        server.advertised_refs = advertised_refs  # type: ignore[assignment]


def _bad_oids(mode: str) -> None:
    bad = "g" * 40
    if mode == "oid:refs":
        server.advertised_refs = lambda repo: {"refs/heads/main": bad}  # type: ignore[assignment]
        return

    def negotiate_server(conn: Connection, repo: Any, first: Any, advertised: Any) -> Any:
        conn.send_json(protocol.ACKS, {"common": [bad]})
        conn.flush()
        conn.expect(protocol.HAVES)
        return negotiate.negotiate_server(conn, repo, first, advertised)

    server.negotiate_server = negotiate_server  # type: ignore[assignment]


def _probe_chunk() -> None:
    secret = bytes.fromhex(os.environ["VSYNC_EVIL_CHUNK"])
    real = server.fetch_chunks

    def fetch_chunks(conn, repo, wanted, tick=None):  # type: ignore[no-untyped-def]
        return real(conn, repo, [secret, *wanted], tick)

    server.fetch_chunks = fetch_chunks  # type: ignore[assignment]


def _want_total(mode: str) -> None:
    if mode == "want-total:unlisted":
        caps = [c for c in protocol.CAPABILITIES if c != protocol.WANT_TOTAL_V1]
        server.server_capabilities = lambda: caps
        real_push = server._serve_push
        server._serve_push = lambda conn, repo, info, _announce: real_push(conn, repo, info, True)  # type: ignore[assignment]
        return
    real = Connection.send_json

    def send_json(self: Connection, mtype: int, value: dict[str, Any]) -> None:
        if mtype == protocol.WANT_TOTAL:
            if mode == "want-total:negative":
                value = {**value, "chunks": -1}
            else:
                real(self, mtype, value)
        real(self, mtype, value)

    Connection.send_json = send_json  # type: ignore[method-assign]


def main() -> int:
    mode = sys.argv[1]
    path = sys.argv[-1]
    if mode != "honest":
        server.ReadableChunks = AnyChunk  # type: ignore[assignment,misc]
    if mode in ("bad-chunk", "bad-chunk:late"):
        real = chunkstore.ChunkStore.read_stored
        served = [0]

        def read_stored(self, cid):  # type: ignore[no-untyped-def]
            s = real(self, cid)
            served[0] += 1
            if mode == "bad-chunk:late" and served[0] <= 8:
                return s
            payload = bytearray(s.payload)
            payload[len(payload) // 2] ^= 0x55
            return chunkstore.StoredChunk(
                s.chunk_id, s.compression, s.raw_len, bytes(payload), s.pack_name
            )

        def read_stored_many(self, cids):  # type: ignore[no-untyped-def]
            return (read_stored(self, cid) for cid in cids)

        chunkstore.ChunkStore.read_stored = read_stored  # type: ignore[method-assign]
        chunkstore.ChunkStore.read_stored_many = read_stored_many  # type: ignore[method-assign]
    elif mode == "bad-pack":
        real_writer = transfer._FrameWriter.write

        def write(self, data):  # type: ignore[no-untyped-def]
            if self.total < 40 <= self.total + len(data):
                data = bytearray(data)
                data[40 - self.total] ^= 0xFF
                data = bytes(data)
            real_writer(self, data)

        transfer._FrameWriter.write = write  # type: ignore[method-assign]
    elif mode == "bad-delta":
        real_delta = packgen.create_delta

        def create_delta(base, target):  # type: ignore[no-untyped-def]
            wrong = bytearray(target)
            wrong[-1] ^= 0x01
            return real_delta(base, bytes(wrong))

        packgen.create_delta = create_delta
    elif mode == "no-thin":
        protocol.CAPABILITIES = [c for c in protocol.CAPABILITIES if c != protocol.THIN_PACK]
    elif mode == "no-watch":
        protocol.CAPABILITIES = [c for c in protocol.CAPABILITIES if c != protocol.WATCH_V1]
    elif mode.startswith(("object:", "pack:")):
        _evil_send_pack(mode)
    elif mode.startswith("chunk:"):
        _tamper_chunks(mode)
    elif mode.startswith("oid:"):
        _bad_oids(mode)
    elif mode == "probe-chunk":
        _probe_chunk()
    elif mode.startswith("want-total:"):
        _want_total(mode)
    elif mode != "honest":
        print(f"evil_serve: unknown mode {mode}", file=sys.stderr)
        return 2
    return server.serve_stdio(path, None, lambda m: print(m, file=sys.stderr))


if __name__ == "__main__":
    raise SystemExit(main())
