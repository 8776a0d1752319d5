"""``vsync fsck --repair [REMOTE]``: damage fetched back from copies on other machines.

Under the exclusive repository lock, from start to end:

1. fsck (:func:`vsync.ops.fsck.fsck`). Nothing damaged: nothing to repair,
   no remote is contacted.
2. Every damaged copy is taken out of use and whatever still reads back is
   kept (:func:`vsync.ops.repair.set_aside`). If history then lacks nothing
   (the damage was in copies that had good twins, or in a pack's structure),
   fsck runs again and no remote is contacted.
3. A session to the remote (docs/protocol.md, "Repair"): a fetch with every
   advertised branch as a want and no haves, so the remote sends every git
   object its branches reach; the objects this repository's history lacks
   are taken from that pack, verified, and stored
   (:func:`vsync.ops.repair.restore`); then exactly the chunks history lacks
   and the remote's manifests name are asked for with CHUNK_WANT, and each
   is verified before it is stored (:func:`vsync.sync.transfer.fetch_chunks`).
   Nothing else the remote sent is kept.
4. fsck again. Steps 2-4 repeat while a round brings something and changes
   what fsck finds (restored manifests may name chunks that are themselves
   damaged), moving on to the next remote when one has nothing more to give.

No ref moves (not even ``refs/remotes/NAME/main``: the remote's branch does
not become ours, and a repair is not a fetch) and the working folder is not
touched. Without REMOTE every configured remote is tried in turn, ``origin``
first, until nothing is left to repair; a remote that fails is reported and
the next one tried. With REMOTE, its failure ends the command (exit 1) with
what was verified and stored so far kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vsync.errors import DamagedRepository, VsyncError
from vsync.model.config import idle_timeout
from vsync.model.folder_snapshot import ProgressSink
from vsync.model.repository import Repository
from vsync.ops.fsck import FsckResult, fsck, set_aside_note
from vsync.ops.repair import empty_set_aside, restore, set_aside
from vsync.sync import protocol as p
from vsync.sync.client import SyncOptions, open_session
from vsync.sync.remotes import DEFAULT_REMOTE, Remote, find_remote, list_remotes
from vsync.sync.transfer import fetch_chunks, receive_pack

MAX_ROUNDS = 8  # per remote; each round that brings nothing ends the remote's turn early

ProgressFactory = Callable[[], ProgressSink | None]


@dataclass
class FromRemote:
    """What one session with a remote brought."""

    label: str
    objects: int = 0
    chunks: int = 0
    chunk_bytes: int = 0

    @property
    def brought(self) -> bool:
        return bool(self.objects or self.chunks)


@dataclass
class RepairResult:
    found: FsckResult  # the first check
    final: FsckResult  # the last check (``found`` when there was nothing to repair)
    sessions: list[FromRemote] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # remotes that failed (tried in turn)
    notes: list[str] = field(default_factory=list)
    no_remote: bool = False  # something needed a remote and none was configured

    @property
    def nothing_to_repair(self) -> bool:
        return self.found.ok


def repair_remotes(repo: Repository, name_or_url: str | None) -> tuple[list[Remote], bool]:
    """The remotes to repair from, and whether the user named one.

    None: every configured remote, ``origin`` first, then the others by name.
    """
    if name_or_url is not None:
        return [find_remote(repo, name_or_url)], True
    remotes = list_remotes(repo)
    remotes.sort(key=lambda r: (r.name != DEFAULT_REMOTE, r.name or ""))
    return remotes, False


def repair(
    repo: Repository,
    remotes: list[Remote],
    opts: SyncOptions,
    *,
    explicit: bool,
    progress: ProgressFactory = lambda: None,
) -> RepairResult:
    with repo.lock(exclusive=True):
        check = fsck(repo, progress(), locked=True)
        result = RepairResult(found=check, final=check)
        if check.ok:
            if empty_set_aside(repo):
                result.notes.append("removed the damaged files an earlier repair had set aside")
            return result
        pending = list(remotes)
        current: Remote | None = None
        for _round in range(MAX_ROUNDS * (len(remotes) + 1)):
            aside = set_aside(repo, check.damage)
            result.notes.extend(f"set aside {path}" for path in aside.moved)
            if not restore(repo, None).needs_more:
                # Nothing is missing: what was damaged had good copies here. Any
                # damage left is of a kind no copy can mend (a damaged ref...).
                check = fsck(repo, progress(), locked=True)
                if check.ok or not aside.changed:
                    break
                continue
            if current is None:
                if not pending:
                    result.no_remote = not remotes
                    break
                current = pending.pop(0)
            try:
                got = _from_remote(repo, current, opts)
            except DamagedRepository:
                raise
            except VsyncError as exc:
                if explicit:
                    raise
                result.failures.append(f"{current.label}: {exc}")
                current = None
                continue
            result.sessions.append(got)
            before, check = check, fsck(repo, progress(), locked=True)
            if check.ok:
                break
            if not got.brought or check.problems == before.problems:
                current = None  # it has nothing more to give: the next one
        if check.ok and empty_set_aside(repo):
            result.notes.append("removed the damaged files set aside: each has a good copy now")
            check.notes = [n for n in check.notes if n != set_aside_note(repo)]
        result.final = check
    return result


def _from_remote(repo: Repository, remote: Remote, opts: SyncOptions) -> FromRemote:
    """One session: every object the remote's branches reach, the objects history
    lacks taken from them, then the chunks history lacks that the remote has."""
    got = FromRemote(remote.label)
    session = open_session(remote, opts, timeout=idle_timeout(repo.config))
    try:
        conn = session.conn
        wants = sorted(set(session.refs.values()))
        if not wants:  # an empty repository: nothing to give
            session.bye()
            return got
        conn.send_json(p.HAVES, {"want": [w.decode() for w in wants], "have": [], "done": True})
        conn.flush()
        incoming = receive_pack(conn, repo)
        try:
            restored = restore(repo, incoming)  # the objects the remote sent
            got.objects = restored.objects
            wanted = restored.chunks_offered  # (id, length) pairs from the remote's manifests
            if opts.progress is not None:
                opts.progress.phase(f"Repairing from {remote.label}", len(wanted))
            tick = opts.progress.tick if opts.progress is not None else None
            stats = fetch_chunks(conn, repo, wanted, tick)
            if opts.progress is not None:
                opts.progress.done()
            got.chunks, got.chunk_bytes = stats.chunks, stats.chunk_bytes
        finally:
            incoming.discard()
        session.bye()
    finally:
        session.close()
    return got
