"""Finding what the fetching side lacks without sending whole histories.

As in git: the client names the tips it wants and offers batches of commits
it has, newest first; the server answers which of them it has too. An
acknowledged commit makes all its ancestors common, so the client stops
offering them. In the usual case (one side is ahead) one round trip ends it.
"""

from __future__ import annotations

import heapq

from dulwich.objects import Commit

from vsync.model.repository import Repository
from vsync.sync import protocol as p
from vsync.sync.protocol import Connection, ProtocolError

HAVE_BATCH = 32
MAX_HAVES = 4096


def local_tips(repo: Repository) -> list[bytes]:
    refs = repo.git.refs
    tips = []
    for name in refs.allkeys():
        if name.startswith((b"refs/heads/", b"refs/remotes/")):
            try:
                tips.append(refs[name])
            except KeyError:
                continue
    return tips


def negotiate_client(conn: Connection, repo: Repository, wants: list[bytes]) -> None:
    store = repo.git.object_store
    heap: list[tuple[int, bytes]] = []
    queued: set[bytes] = set()
    common: set[bytes] = set()

    def push(oid: bytes) -> None:
        if oid in queued or oid not in store:
            return
        obj = store[oid]
        if isinstance(obj, Commit):
            queued.add(oid)
            heapq.heappush(heap, (-obj.commit_time, oid))

    for tip in local_tips(repo):
        push(tip)
    sent = 0
    batch: list[bytes] = []
    want_hex = [w.decode() for w in wants]
    while heap and sent < MAX_HAVES:
        _t, oid = heapq.heappop(heap)
        commit = store[oid]
        assert isinstance(commit, Commit)
        if oid in common:
            common.update(commit.parents)
            for parent in commit.parents:
                push(parent)
            continue
        batch.append(oid)
        for parent in commit.parents:
            push(parent)
        if len(batch) >= HAVE_BATCH or not heap:
            conn.send_json(p.HAVES, {"want": want_hex, "have": [b.decode() for b in batch]})
            conn.flush()
            sent += len(batch)
            acks = p.parse_oids(conn.expect(p.ACKS).json().get("common", []), "ACKS")
            for acked in acks:
                if acked in store:
                    obj = store[acked]
                    if isinstance(obj, Commit):
                        common.update(obj.parents)
            batch = []
    conn.send_json(p.HAVES, {"want": want_hex, "have": [], "done": True})
    conn.flush()


def negotiate_server(
    conn: Connection, repo: Repository, first: p.Message, advertised: set[bytes]
) -> tuple[list[bytes], list[bytes]]:
    """Serve the HAVES rounds; returns (wants, common haves)."""
    store = repo.git.object_store
    wants: set[bytes] = set()
    common: list[bytes] = []
    msg = first
    while True:
        info = msg.json()
        for w in p.parse_oids(info.get("want", []), "HAVES"):
            if w not in advertised:
                raise ProtocolError("the client asked for an object that no ref points at")
            wants.add(w)
        acks = [h for h in p.parse_oids(info.get("have", []), "HAVES") if h in store]
        common.extend(acks)
        if info.get("done"):
            return sorted(wants), common
        conn.send_json(p.ACKS, {"common": [a.decode() for a in acks]})
        conn.flush()
        msg = conn.expect(p.HAVES)
