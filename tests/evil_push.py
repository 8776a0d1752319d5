"""A hostile client: speaks the vsync protocol to a real ``vsync serve --stdio``, then tampers.

Usage: python evil_push.py MODE SOURCE URL [REMOTE_CMD]

SOURCE is a vsync repository holding the server's main (a clone of it, maybe
with new commits); URL is the server (a path, or ssh://... with REMOTE_CMD the
command that runs vsync there). Prints one JSON line on stdout::

    {"outcome": "accepted" | "refused", "message": ..., "server_exit": N,
     "server_stderr": ...}

MODE:
- honest: push SOURCE's main as `vsync push` would.
- object:CASE: push a commit built on the server's main that breaks one rule
  (tests/hostile.py OBJECT_CASES), sending the objects the case says.
- pack:CASE: push SOURCE's main with a tampered pack (tests/hostile.py PACK_CASES).
- push-hidden: push the hidden commit of pack:extra-object without sending it.
- chunk:bad / chunk:unasked / chunk:out-of-order / chunk:extra: push SOURCE's
  main, answering CHUNK_WANT with bad bytes, another chunk, two chunks
  swapped, one chunk too many.
- oid:push-new / oid:push-old / oid:update-ref / oid:haves: a 40-character
  object id that is not hex in that message.
- probe-chunk / probe-missing / probe-reachable: fetch (wanting and having
  main, so the pack is empty), then ask for the chunk whose hex id is in
  $VSYNC_EVIL_CHUNK.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import hostile

from vsync.errors import VsyncError
from vsync.model.gitdb import packgen
from vsync.model.repository import BRANCH, Repository
from vsync.store.chunkstore import ChunkStore
from vsync.sync import protocol as p
from vsync.sync.protocol import Connection, RemoteError
from vsync.sync.transfer import serve_chunks
from vsync.sync.transport import open_transport
from vsync.sync.url import parse_url

BAD = "g" * 40


class Refused(Exception):
    pass


class AnyChunk:
    """A hostile sender serves whatever it is asked for."""

    def check(self, ids: object) -> None:
        return None


def _result(conn: Connection) -> None:
    info = conn.expect(p.RESULT).json()
    if not info.get("ok"):
        raise Refused(f"{info.get('code')}: {info.get('message')}")


def _chunks(conn: Connection, repo: Repository, mode: str) -> None:
    if mode == "chunk:bad":
        real = ChunkStore.read_stored_many

        def bad(self, cids):  # type: ignore[no-untyped-def]
            for s in real(self, cids):
                payload = bytearray(s.payload)
                payload[len(payload) // 2] ^= 0x55
                yield type(s)(s.chunk_id, s.compression, s.raw_len, bytes(payload), s.pack_name)

        ChunkStore.read_stored_many = bad  # type: ignore[method-assign]
    elif mode.startswith("chunk:"):
        real = ChunkStore.read_stored_many

        def tampered(self, cids):  # type: ignore[no-untyped-def]
            stored = list(real(self, cids))
            if mode == "chunk:out-of-order" and len(stored) >= 2:
                stored[0], stored[1] = stored[1], stored[0]
            elif mode == "chunk:unasked":
                other = next(cid for cid, _n, _e in self.iter_index() if cid not in cids)
                stored[0] = next(real(self, [other]))
            elif mode == "chunk:extra":
                stored.append(stored[0])
            return iter(stored)

        ChunkStore.read_stored_many = tampered  # type: ignore[method-assign]
    # it lists want-total-v1 (the default HELLO): the server's WANT_TOTAL comes first
    serve_chunks(conn, repo, AnyChunk(), None, lambda _chunks, _nbytes: None)  # type: ignore[arg-type]


def push(conn: Connection, repo: Repository, refs: dict[str, str], mode: str) -> None:
    store = hostile.store_of(repo)
    old = refs.get(BRANCH.decode())
    assert old is not None, "the server must have a main to build on"
    head = old.encode()
    kind, _, case = mode.partition(":")
    if kind == "object":
        evil = hostile.evil_objects(store, head, case)
        new = evil.tip
        records = evil.records()
        data, objects, end = hostile.pack_bytes(records), len(records), None
    elif mode == "push-hidden":
        new = hostile.hidden_commit(store, head)[0].id
        data, objects, end = hostile.pack_bytes([]), 0, None
    else:
        new = repo.head()
        assert new is not None
        records = list(packgen.pack_records(repo.gitdb, [new], [head], thin=True)[1])
        if kind == "pack":
            data, objects, end = hostile.tampered_pack(case, records, store, head)
        else:
            data, objects, end = hostile.pack_bytes(records), len(records), None
    update: dict[str, Any] = {"ref": BRANCH.decode(), "old": old, "new": new.decode()}
    if mode == "oid:push-new":
        update["new"] = BAD
    if mode == "oid:push-old":
        update["old"] = BAD
    conn.send_json(p.PUSH, update)
    conn.flush()
    _result(conn)
    hostile.send_pack_bytes(conn, data, objects, end=end)
    _chunks(conn, repo, mode)
    if mode == "oid:update-ref":
        update["new"] = BAD
    conn.send_json(p.UPDATE_REF, update)
    conn.flush()
    _result(conn)


def probe(conn: Connection, refs: dict[str, str], mode: str) -> None:
    main = refs[BRANCH.decode()]
    if mode == "oid:haves":
        conn.send_json(p.HAVES, {"want": [main], "have": [BAD], "done": True})
        conn.flush()
        conn.expect(p.PACK_DATA)
        raise Refused("the server accepted a malformed have")
    conn.send_json(p.HAVES, {"want": [main], "have": [main], "done": True})
    conn.flush()
    while conn.expect(p.PACK_DATA, p.PACK_END).type != p.PACK_END:
        pass
    secret = bytes.fromhex(os.environ["VSYNC_EVIL_CHUNK"])
    conn.send(p.CHUNK_WANT, secret)
    conn.flush()
    msg = conn.expect(p.CHUNK)
    if p.decode_chunk(msg.payload)[0] != secret:
        raise Refused("the server sent another chunk")
    conn.send(p.CHUNK_WANT_END)
    conn.flush()
    conn.expect(p.CHUNKS_END)
    conn.send(p.BYE)
    conn.flush()


def main() -> int:
    mode, source, url = sys.argv[1:4]
    remote_cmd = sys.argv[4] if len(sys.argv) > 4 else None
    transport = open_transport(parse_url(url), remote_cmd)
    conn = Connection(transport)
    outcome, message = "accepted", ""
    with Repository.open_path(Path(source)) as repo:
        try:
            conn.send_json(p.HELLO, p.hello_payload("client"))
            conn.flush()
            conn.expect(p.HELLO)
            refs = conn.expect(p.REFS).json()["refs"]
            if mode.startswith("probe") or mode == "oid:haves":
                probe(conn, refs, mode)
            else:
                push(conn, repo, refs, mode)
        except (Refused, RemoteError) as exc:
            outcome, message = "refused", str(exc)
        except VsyncError as exc:  # the server closed on us: its stderr says why
            outcome, message = "closed", str(exc)
    status = transport.close()
    report = {
        "outcome": outcome,
        "message": message,
        "server_exit": status,
        "server_stderr": transport.stderr_text,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
