"""``vsync gc``: drop the chunks and git objects no reachable commit needs.

Reachable is what fsck checks: every ref and every reflog entry
(:func:`vsync.ops.fsck.walk_history`). All of gc runs under the exclusive
repository lock, so no commit, push or fetch writes meanwhile; readers that
take no lock keep working because nothing they can reach is ever removed
before its replacement is in place.

Order, each step safe to interrupt:

1. Remove what killed commands left: git ``*.lock`` files, unfinished git
   packs (a ``.pack`` without its ``.idx`` is invisible to readers) and
   received packs in ``incoming/`` no live transfer holds.
2. Walk history, verifying every git object; any damage stops gc before it
   changes anything (it could not tell which chunks are live).
3. Plan: a chunk pack holding any record that is not live (unreachable, or a
   duplicate whose index row names another pack) is rewritten; packs that
   are entirely live are left alone.
   There must be room for what gc writes (the rewritten packs, a new git
   pack) before it deletes anything: else DiskFull (exit 1), nothing changed.
4. Verify every live chunk of those packs (read and decode against its id):
   one damaged chunk stops gc with nothing changed.
5. Forget stat-cache entries whose manifest is unreachable, so no later
   commit can reuse a manifest whose chunks are about to go.
6. Repack git objects into one pack without the unreachable ones (dulwich
   writes and indexes the new pack before deleting the old ones). Dropping
   unreachable manifests keeps the invariant commit relies on: a manifest
   in the git store has its chunks in the chunk store.
7. Copy the live chunks, still compressed, into new packs; sealing each one
   moves its chunks' index rows to it; only then delete the old packs
   (index rows first, then the file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from stat import S_ISLNK

from vsync.errors import DamagedRepository, StoppedError
from vsync.model.folder_snapshot import ProgressSink
from vsync.model.gitdb.incoming import remove_abandoned
from vsync.model.repository import Repository
from vsync.model.statcache import StatCache
from vsync.ops.fsck import ChunkSet, HistoryWalk, walk_history
from vsync.ops.merge.state import MergeState
from vsync.store import chunkpack, codec, faults
from vsync.store.chunkpack import PackEntry
from vsync.store.chunkstore import ChunkStore
from vsync.store.space import require_free
from vsync.wording import plural


@dataclass
class GcResult:
    chunks_removed: int = 0
    bytes_removed: int = 0  # stored (compressed) bytes of the dropped records
    duplicates_removed: int = 0
    packs_rewritten: int = 0
    store_bytes: int = 0  # chunk packs plus git objects afterwards
    notes: list[str] = field(default_factory=list)


@dataclass
class _PackPlan:
    name: str
    live: list[PackEntry]
    dead: int
    dead_bytes: int
    duplicates: int


def gc(repo: Repository, progress: ProgressSink | None = None) -> GcResult:
    result = GcResult()
    with repo.lock(exclusive=True):
        if MergeState.load(repo) is not None:
            # What an unfinished merge wrote or backed up is reachable from no commit yet.
            raise StoppedError(
                "a merge is in progress; finish it ('vsync resolve', 'vsync commit') or "
                "undo it ('vsync merge --abort') before running gc"
            )
        store = repo.chunks
        result.notes.extend(repo.gitdb.remove_stale_locks())
        for path in repo.gitdb.unfinished_packs():
            path.unlink(missing_ok=True)
            result.notes.append(f"removed {path.name}, an unfinished git pack")
        for name in remove_abandoned(repo.control):
            result.notes.append(f"removed {name}, a received pack its killed transfer left")
        live = ChunkSet(store.db.conn, "gc_live")
        try:
            history = walk_history(repo, live.add_manifest)
            live.flush()
            _require_intact(history)
            plans = _plan(store, live)
            faults.point("gc-marked")  # between mark and sweep, holding the exclusive lock
            _require_space(repo, plans)
            _verify_live(store, plans, progress)
            _forget_stat_cache(repo, history)
            repo.gitdb.repack(history.objects)  # one git pack of every reachable object
            _rewrite(store, plans, live, result)
        finally:
            live.drop()
        result.store_bytes = store.stored_bytes() + repo.gitdb.stored_bytes()
    return result


def _require_intact(history: HistoryWalk) -> None:
    if history.bad:
        oid, what = next(iter(history.bad.items()))
        first = oid.decode("ascii", "replace")[:10]
        example = f"{plural(len(history.bad), 'object')}, e.g. {first} {what}"
    elif history.commit_problems:  # a damaged ref: where history starts is unknown
        example = history.commit_problems[0].removeprefix("damaged: ")
    else:
        return
    raise DamagedRepository(
        f"gc removed nothing: history is damaged ({example}), so it cannot tell which chunks "
        "are still needed; run 'vsync fsck'"
    )


def _require_space(repo: Repository, plans: list[_PackPlan]) -> None:
    """DiskFull before anything changes unless there is room for what gc writes before
    it deletes anything: the rewritten chunk packs and the new git pack (at most the
    size of the git objects now). With no chunk pack to rewrite there is nothing to
    check: a failed git repack removes its own temporary file."""
    if not plans:
        return
    copied = sum(chunkpack.RECORD.size + e.stored_len for plan in plans for e in plan.live)
    needed = copied + repo.gitdb.stored_bytes()
    require_free(repo.chunks.dir, needed, "the packs gc rewrites")


def _plan(store: ChunkStore, live: ChunkSet) -> list[_PackPlan]:
    conn = store.db.conn
    plans = []
    for pack, name in conn.execute("SELECT pack, name FROM packs ORDER BY name").fetchall():
        path = store.dir / name
        entries = chunkpack.read_trailer(path)
        if entries is None:
            entries, _end = chunkpack.scan_records(path)
        owned = {
            cid: bool(is_live)
            for cid, is_live in conn.execute(
                f"SELECT c.id, r.id IS NOT NULL FROM chunks c LEFT JOIN {live.table} r"
                " ON r.id = c.id WHERE c.pack = ?",
                (pack,),
            )
        }
        plan = _PackPlan(name, [], 0, 0, 0)
        seen: set[bytes] = set()
        for e in entries:
            cid = e.chunk_id
            if cid in seen or (cid not in owned and store.has(cid)):
                # a second copy: its index row names another record or pack
                plan.duplicates += 1
                plan.dead_bytes += chunkpack.RECORD.size + e.stored_len
                continue
            seen.add(cid)
            # not indexed at all: keep it if live (copying it indexes it again)
            is_live = owned[cid] if cid in owned else live.contains(cid)
            if is_live:
                plan.live.append(e)
            else:
                plan.dead += 1
                plan.dead_bytes += chunkpack.RECORD.size + e.stored_len
        if plan.dead or plan.duplicates:
            plans.append(plan)
    return plans


def _verify_live(store: ChunkStore, plans: list[_PackPlan], progress: ProgressSink | None) -> None:
    """Decode every chunk gc is about to copy: a damaged one stops gc before any change."""
    entries = [e for p in plans for e in p.live]
    if progress is not None:
        progress.start(len(entries), sum(e.raw_len for e in entries))
    for plan in plans:
        for e in plan.live:
            try:
                store.read(e.chunk_id)
            except DamagedRepository as exc:
                raise DamagedRepository(
                    f"gc removed nothing: a chunk it must keep is damaged ({exc}); "
                    "run 'vsync fsck' to see which files it belongs to"
                ) from None
            if progress is not None:
                progress.advance(e.raw_len)
                progress.file_done(e.chunk_id.hex())
    if progress is not None:
        progress.finish()


def _forget_stat_cache(repo: Repository, history: HistoryWalk) -> None:
    """Entries naming a manifest gc may drop are forgotten (symlinks name no manifest)."""
    cache = StatCache(repo.control)
    for path in cache.paths():
        row = cache.get(path)
        if row is not None and not S_ISLNK(row[4]) and row[6] not in history.manifests:
            cache.forget(path)
    cache.flush()


def _rewrite(store: ChunkStore, plans: list[_PackPlan], live: ChunkSet, result: GcResult) -> None:
    if not plans:
        return
    with store.writer(relocate=True) as writer:
        for plan in plans:
            for e in plan.live:
                stored = store.read_stored(e.chunk_id)
                # decoded once more so a chunk that rotted since _verify_live is never copied
                codec.decode(
                    stored.compression, stored.payload, stored.raw_len, e.chunk_id, plan.name
                )
                writer.add(e.chunk_id, stored.raw_len, stored.compression, stored.payload)
    # Every live chunk's index row now names a new, sealed pack: check before deleting.
    conn = store.db.conn
    for plan in plans:
        still = conn.execute(
            f"SELECT COUNT(*) FROM chunks c JOIN packs p ON p.pack = c.pack"
            f" JOIN {live.table} r ON r.id = c.id WHERE p.name = ?",
            (plan.name,),
        ).fetchone()[0]
        if still:  # never delete the only copy of a live chunk
            raise DamagedRepository(
                f"gc stopped: {plural(still, 'live chunk')} still indexed in pack {plan.name} "
                "after copying; no pack was deleted, run 'vsync fsck'"
            )
    faults.point("gc-sweeping")
    for plan in plans:
        store.remove_pack(plan.name)
        faults.point("gc-pack-removed")
        result.packs_rewritten += 1
        result.chunks_removed += plan.dead
        result.duplicates_removed += plan.duplicates
        result.bytes_removed += plan.dead_bytes
