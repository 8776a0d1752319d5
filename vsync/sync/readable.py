"""Which chunks a sender may hand to its peer: those of files the peer may read.

A sender answers CHUNK_WANT only for chunks of manifests reachable from the
commits it offers the peer (docs/protocol.md, "What a sender serves"): in a
fetch, the branches the server advertised; in a push, the commit pushed.
Anything else (a chunk left by undone or collected history, a chunk of
content the peer only guesses at) is refused with one error that reads the
same whether or not the chunk is stored, and before the store is asked, so a
peer cannot probe for content it was not given.

Checking is cheap in the usual case: the chunks of the manifests in the git
pack just sent (the commits, trees and manifests of the pack, walked from the
tips). A chunk outside them (a resumed transfer whose pack is empty, a repair)
costs one walk of everything the tips reach, at most once per session. The
chunk ids and the objects already walked live in temporary SQLite tables (a
temp file beside state.db's connection, not memory), so memory stays flat
however large the history is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from itertools import count

from vsync.errors import DamagedRepository, GitObjectDamaged
from vsync.model.gitdb import MODE_EXEC, MODE_FILE, MODE_TREE
from vsync.model.repository import Repository
from vsync.ops.fsck import ChunkSet
from vsync.sync.protocol import ProtocolError

REFUSED = (
    "the peer asked for a chunk that nothing it may read refers to; refusing "
    "(a sender serves only chunks of the files it offers)"
)
_serial = count()


class _Walked:
    """Object ids already walked, in a temporary SQLite table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.table = f"temp.readable_walked_{next(_serial)}"
        conn.execute(f"CREATE TABLE {self.table} (id BLOB PRIMARY KEY) WITHOUT ROWID")

    def first_time(self, oid: bytes) -> bool:
        cur = self.conn.execute(f"INSERT OR IGNORE INTO {self.table}(id) VALUES (?)", (oid,))
        return cur.rowcount == 1

    def drop(self) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")


class ReadableChunks:
    """The chunks a peer may ask for: of manifests reachable from ``tips``.

    ``sent`` holds the ids of the objects in the pack sent to the peer in this
    session (the fast first check).
    """

    def __init__(self, repo: Repository, tips: Iterable[bytes], sent: Iterable[bytes]) -> None:
        self.repo = repo
        self.tips = list(tips)
        self.sent = sent
        self._chunks: ChunkSet | None = None
        self._walked_all = False

    def __enter__(self) -> ReadableChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self, ids: Sequence[bytes]) -> None:
        """Return if every id in ``ids`` is readable; else ProtocolError (REFUSED)."""
        if self._chunks is None:
            self._chunks = ChunkSet(self.repo.chunks.db.conn, f"readable_{next(_serial)}")
            sent = set(self.sent)
            self._walk(sent.__contains__)
        rest = [cid for cid in ids if not self._chunks.contains(cid)]
        if not rest:
            return
        if not self._walked_all:
            self._walked_all = True
            self._walk(None)
            rest = [cid for cid in rest if not self._chunks.contains(cid)]
        if rest:
            raise ProtocolError(REFUSED)

    def close(self) -> None:
        if self._chunks is not None:
            self._chunks.drop()
            self._chunks = None

    def _walk(self, within: Callable[[bytes], bool] | None) -> None:
        """Add the chunks of every manifest reachable from the tips (only through
        objects ``within`` accepts, when given)."""
        assert self._chunks is not None
        db = self.repo.gitdb
        walked = _Walked(self.repo.chunks.db.conn)
        try:
            commits = list(self.tips)
            while commits:
                oid = commits.pop()
                if (within is not None and not within(oid)) or not walked.first_time(oid):
                    continue
                commit = db.commit(oid)
                commits.extend(commit.parents)
                trees = [commit.tree]
                while trees:
                    tid = trees.pop()
                    if (within is not None and not within(tid)) or not walked.first_time(tid):
                        continue
                    for _name, mode, item in db.tree(tid).items:
                        if mode == MODE_TREE:
                            trees.append(item)
                        elif mode in (MODE_FILE, MODE_EXEC):
                            if within is not None and not within(item):
                                continue
                            if walked.first_time(item):
                                self._add_manifest(item)
        finally:
            walked.drop()
        self._chunks.flush()

    def _add_manifest(self, oid: bytes) -> None:
        assert self._chunks is not None
        try:
            manifest = self.repo.gitdb.manifest(oid, f"manifest {oid.decode()}")
        except GitObjectDamaged:
            raise  # unreadable: the repository is damaged
        except DamagedRepository:
            return  # does not parse: fsck reports it; it names no chunk a peer may have
        self._chunks.add_manifest(oid, manifest)
