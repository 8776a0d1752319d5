"""``vsync log``: the commits reachable from a starting commit, newest first.

Every parent is followed (a merge brings in the other machine's commits too);
commits come out by commit time, newest first, as in ``git log``; a commit is
only queued once one of its children has been listed. With paths, only
commits where something at or under one of the paths differs from the
commit's first parent are kept (a root commit: where the path exists). A
merge is therefore listed for a path when it brought in a change to it from
its other parent.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

from vsync.model.commits import commit_host
from vsync.model.gitdb import Commit, ObjectReader
from vsync.model.repository import Repository
from vsync.model.snapshot import lookup


@dataclass(frozen=True)
class LogEntry:
    commit_id: bytes
    parents: list[bytes]
    author: str  # "Name <email>"
    host: str  # "" when the commit carries no vsync-host header
    time: int  # author time, Unix seconds
    tz_offset: int  # author's UTC offset in seconds
    message: str

    @property
    def subject(self) -> str:
        lines = self.message.strip().splitlines()
        return lines[0] if lines else ""


def entry_of(c: Commit) -> LogEntry:
    return LogEntry(
        commit_id=c.id,
        parents=list(c.parents),
        author=c.author.decode("utf-8", "replace"),
        host=commit_host(c),
        time=c.author_time,
        tz_offset=c.author_timezone,
        message=c.message_text(),
    )


def touches(store: ObjectReader, c: Commit, paths: list[str]) -> bool:
    """True if something at or under one of ``paths`` changed in ``c`` (vs its first parent)."""
    parent_tree = store.commit(c.parents[0]).tree if c.parents else None
    for path in paths:
        now = lookup(store, c.tree, path)
        if parent_tree is None:
            if now[0] is not None:
                return True
        elif now != lookup(store, parent_tree, path):
            return True
    return False


def walk(
    repo: Repository,
    start: bytes,
    paths: list[str] | None = None,
    limit: int | None = None,
) -> Iterator[LogEntry]:
    """Commits reachable from ``start``, newest first, optionally only those touching ``paths``."""
    store = repo.gitdb
    shown = 0
    for c in newest_first(store, start):
        if limit is not None and shown >= limit:
            return
        if paths and not touches(store, c, paths):
            continue
        shown += 1
        yield entry_of(c)


def newest_first(store: ObjectReader, start: bytes) -> Iterator[Commit]:
    """Every commit reachable from ``start`` (all parents), by commit time, newest first.

    A commit is queued once one of its children has been listed, as in ``git log``.
    """
    seq = 0
    first = store.commit(start)
    heap: list[tuple[int, int, bytes]] = [(-first.commit_time, seq, start)]
    seen = {start}
    while heap:
        _t, _s, cid = heapq.heappop(heap)
        c = store.commit(cid)
        for parent in c.parents:
            if parent not in seen:
                seen.add(parent)
                seq += 1
                heapq.heappush(heap, (-store.commit(parent).commit_time, seq, parent))
        yield c
