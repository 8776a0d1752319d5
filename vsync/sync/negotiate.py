"""Finding what the fetching side lacks without sending whole histories.

As in git: the client names the tips it wants and offers batches of commits
it has, newest first; the server answers which of them it has too. An
acknowledged commit makes all its ancestors common, so the client stops
offering them. In the usual case (one side is ahead) one round trip ends it.
"""

from __future__ import annotations

import heapq

from vsync.model.gitdb import Commit
from vsync.model.repository import Repository
from vsync.sync import protocol as p
from vsync.sync.protocol import Connection, ProtocolError

HAVE_BATCH = 32
MAX_HAVES = 4096  # offers a client makes in all; a server refuses more (docs/protocol.md)
MAX_IDS_PER_MESSAGE = 256  # oids in one HAVES list ("want" or "have")
MAX_ROUNDS = 256  # HAVES messages in one negotiation


def local_tips(repo: Repository) -> list[bytes]:
    db = repo.gitdb
    tips = []
    for name in db.ref_names():
        if name.startswith((b"refs/heads/", b"refs/remotes/")):
            value = db.ref(name)
            if value is not None:
                tips.append(value)
    return tips


def negotiate_client(conn: Connection, repo: Repository, wants: list[bytes]) -> None:
    db = repo.gitdb
    heap: list[tuple[int, bytes]] = []
    queued: dict[bytes, Commit] = {}
    common: set[bytes] = set()

    def push(oid: bytes) -> None:
        if oid in queued:
            return
        obj = db.find(oid)
        if isinstance(obj, Commit):
            queued[oid] = obj
            heapq.heappush(heap, (-obj.commit_time, oid))

    for tip in local_tips(repo):
        push(tip)
    sent = 0
    batch: list[bytes] = []
    want_hex = [w.decode() for w in wants]
    while heap and sent < MAX_HAVES:
        _t, oid = heapq.heappop(heap)
        commit = queued[oid]
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
                obj = db.find(acked)
                if isinstance(obj, Commit):
                    common.update(obj.parents)
            batch = []
    conn.send_json(p.HAVES, {"want": want_hex, "have": [], "done": True})
    conn.flush()


def negotiate_server(
    conn: Connection, repo: Repository, first: p.Message, advertised: set[bytes]
) -> tuple[list[bytes], list[bytes]]:
    """Serve the HAVES rounds; returns (wants, common haves).

    Bounded whatever the client sends: at most MAX_IDS_PER_MESSAGE oids per
    list, MAX_HAVES offers and MAX_ROUNDS messages in all. Only stored commits are
    acknowledged."""
    db = repo.gitdb
    wants: set[bytes] = set()
    common: list[bytes] = []
    offered = 0
    msg = first
    for _round in range(MAX_ROUNDS):
        info = msg.json()
        want_list, have_list = info.get("want", []), info.get("have", [])
        for what, values in (("want", want_list), ("have", have_list)):
            if isinstance(values, list) and len(values) > MAX_IDS_PER_MESSAGE:
                raise ProtocolError(
                    f"peer sent {len(values)} oids in one {what} list; "
                    f"the limit is {MAX_IDS_PER_MESSAGE}"
                )
        for w in p.parse_oids(want_list, "HAVES"):
            if w not in advertised:
                raise ProtocolError("the client asked for an object that no ref points at")
            wants.add(w)
        haves = p.parse_oids(have_list, "HAVES")
        offered += len(haves)
        if offered > MAX_HAVES:
            raise ProtocolError(f"peer offered more than {MAX_HAVES} commits it has")
        acks = [h for h in haves if isinstance(db.find(h), Commit)]
        common.extend(acks)
        if info.get("done"):
            return sorted(wants), common
        conn.send_json(p.ACKS, {"common": [a.decode() for a in acks]})
        conn.flush()
        msg = conn.expect(p.HAVES)
    raise ProtocolError(f"peer did not finish negotiating within {MAX_ROUNDS} rounds")
