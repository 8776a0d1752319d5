"""``vsync fsck``: verify everything history can reach; repair what is only a cache.

*Reachable* means: from every ref (``refs/heads/*``, ``refs/remotes/*``, ...)
and from every reflog entry of every ref, because undo walks the reflog. gc
keeps exactly this set (:func:`walk_history` is shared with it).

Checks, in order:

1. Under the exclusive lock, briefly: ``PRAGMA integrity_check`` on state.db
   (a damaged one is set aside and rebuilt: it is a cache, so this is a note,
   not a problem); seal temp packs a killed writer left; remove git lock files
   a killed process left (no writer runs while the exclusive lock is held);
   compare every chunk pack's trailer with the chunk index and rebuild the
   index if they disagree.
2. Under the shared lock (writers may commit meanwhile; gc may not run):
   each chunk pack's records against its trailer, each git pack's checksum,
   every reachable commit, tree and blob by recomputing its id from its raw
   bytes, every reachable manifest by parsing it, and every chunk those
   manifests name by decoding it against its BLAKE3 id -- once per chunk,
   in pack order, with the set of chunk ids in a temporary SQLite table so
   memory stays flat however large the store is.
3. Only if something is damaged: walk history again to name each damaged
   *file version* (path, commit, date), newest commit first.

What fsck finds is also kept by id in :class:`Damage`, for ``vsync fsck
--repair`` (:mod:`vsync.ops.repair`, :mod:`vsync.sync.repair`), which sets
damaged files aside in ``damaged/`` of the control folder: fsck notes it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from vsync.errors import (
    FSCK_HINT,
    ChunkCorrupt,
    ChunkMissing,
    DamagedRepository,
    GitObjectDamaged,
)
from vsync.model.folder_scan import MODE_LINK, MODE_TREE
from vsync.model.folder_snapshot import ProgressSink
from vsync.model.gitdb import (
    MODE_GITLINK,
    Blob,
    Commit,
    GitObject,
    ReflogEntry,
    Tag,
    Tree,
)
from vsync.model.lock import LOCK_TIMEOUT, RepoLock
from vsync.model.manifest import Manifest
from vsync.model.repository import Repository
from vsync.store import chunkpack
from vsync.store.chunkstore import ChunkStore
from vsync.store.statedb import is_damage, not_damage, transaction
from vsync.wording import plural

_BATCH = 20_000
SET_ASIDE = "damaged"  # the folder of the control folder where fsck --repair keeps damaged files


class ObjectSource(Protocol):
    """Where a walk of history reads objects: the git database, or one that also
    takes good copies from elsewhere (``vsync fsck --repair``)."""

    def read(self, oid: bytes) -> GitObject: ...


# -- reachability -------------------------------------------------------------------


def history_roots(repo: Repository) -> tuple[list[tuple[bytes, str]], list[str], list[str]]:
    """``(commit id, where)`` for every ref and reflog entry, notes, and damaged refs.

    Reflogs are read line by line so one torn line (a crash mid-append) costs
    only itself.
    """
    db = repo.gitdb
    roots: list[tuple[bytes, str]] = []
    notes: list[str] = []
    damaged: list[str] = []
    for name in db.ref_names():
        try:
            oid = db.ref(name)
        except DamagedRepository as exc:
            damaged.append(f"damaged: {_without_hint(exc)}")
            continue
        if oid is not None:  # None: a symbolic ref to a branch with no commits yet
            roots.append((oid, name.decode("utf-8", "replace")))
    for ref in db.reflog_names():
        where = f"reflog of {ref.decode('utf-8', 'replace')}"
        try:
            lines = db.reflog(ref)
        except DamagedRepository as exc:
            notes.append(str(exc))
            continue
        bad = 0
        for line in lines:
            if isinstance(line, ReflogEntry):
                ids = [oid for oid in (line.old, line.new) if oid is not None]
            else:
                bad += 1
                ids = list(line.ids)  # a torn line may still name its commits
            roots.extend((oid, where) for oid in ids)
        if bad:
            notes.append(f"{where}: skipped {plural(bad, 'unreadable line')}")
    return roots, notes, damaged


@dataclass
class HistoryWalk:
    """What a walk of history found; ``bad`` maps object id -> what is wrong."""

    commits: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)  # id -> (time, tree)
    objects: set[bytes] = field(default_factory=set)  # every object verified good
    manifests: set[bytes] = field(default_factory=set)
    bad: dict[bytes, str] = field(default_factory=dict)
    commit_problems: list[str] = field(default_factory=list)  # damaged refs, commits
    notes: list[str] = field(default_factory=list)

    def newest_first(self) -> list[bytes]:
        # Same-second commits: the walk reaches a child before its parent, so the
        # order of discovery breaks the tie the right way round.
        order = {c: i for i, c in enumerate(self.commits)}
        return sorted(self.commits, key=lambda c: (-self.commits[c][0], order[c]))


def walk_history(
    repo: Repository,
    on_manifest: Callable[[bytes, Manifest], None] | None = None,
    reader: ObjectSource | None = None,
) -> HistoryWalk:
    """Verify every reachable git object once; hand each manifest to ``on_manifest``.

    Objects are read from ``reader`` (default: the repository's git database).
    """
    store = reader if reader is not None else repo.gitdb
    h = HistoryWalk()
    roots, h.notes, h.commit_problems = history_roots(repo)
    stack = list(reversed(roots))
    loose_trees: list[bytes] = []
    while stack:
        oid, where = stack.pop()
        if oid in h.objects or oid in h.bad:
            continue
        try:
            obj = store.read(oid)
        except GitObjectDamaged as exc:
            h.bad[oid] = exc.problem
            h.commit_problems.append(
                f"damaged: commit {_short(oid)} {exc.problem} (reached from {where})"
            )
            continue
        if isinstance(obj, Tree):  # a ref to a bare tree: keep and check what it holds
            loose_trees.append(oid)
            continue
        h.objects.add(oid)
        if isinstance(obj, Tag):
            stack.append((obj.object, f"tag {_short(oid)}"))
        elif isinstance(obj, Commit):
            h.commits[oid] = (obj.commit_time, obj.tree)
            stack.extend((p, f"commit {_short(oid)}") for p in reversed(obj.parents))
    for cid in h.newest_first():
        _walk_tree(store, h.commits[cid][1], h, on_manifest)
    for tid in loose_trees:
        _walk_tree(store, tid, h, on_manifest)
    return h


def _walk_tree(
    store: ObjectSource,
    root: bytes,
    h: HistoryWalk,
    on_manifest: Callable[[bytes, Manifest], None] | None,
) -> None:
    stack = [root]
    while stack:
        tid = stack.pop()
        if tid in h.objects or tid in h.bad:
            continue
        tree = _verified(store, tid, h, Tree, "is not a folder (tree)")
        if tree is None:
            continue
        assert isinstance(tree, Tree)
        h.objects.add(tid)
        for _name, mode, oid in tree.items:
            if mode == MODE_TREE:
                stack.append(oid)
            elif mode != MODE_GITLINK and oid not in h.objects and oid not in h.bad:
                _check_blob(store, oid, mode, h, on_manifest)


def _verified(
    store: ObjectSource, oid: bytes, h: HistoryWalk, kind: type[GitObject], wrong: str
) -> GitObject | None:
    """The object, verified, if it is a ``kind``; else None with the problem in ``h.bad``."""
    try:
        obj = store.read(oid)
    except GitObjectDamaged as exc:
        h.bad[oid] = exc.problem
        return None
    if not isinstance(obj, kind):
        h.bad[oid] = wrong
        return None
    return obj


def _check_blob(
    store: ObjectSource,
    oid: bytes,
    mode: int,
    h: HistoryWalk,
    on_manifest: Callable[[bytes, Manifest], None] | None,
) -> None:
    blob = _verified(store, oid, h, Blob, "is not a blob")
    if blob is None:
        return
    assert isinstance(blob, Blob)
    if mode != MODE_LINK:
        try:
            manifest = Manifest.from_bytes(blob.data)
        except DamagedRepository as exc:
            h.bad[oid] = f"is not a valid manifest ({exc})"
            return
    h.objects.add(oid)
    if mode != MODE_LINK:
        h.manifests.add(oid)
        if on_manifest is not None:
            on_manifest(oid, manifest)


def _without_hint(exc: DamagedRepository) -> str:
    """The error's text without the "; run 'vsync fsck'" that fsck itself need not say."""
    return str(exc).removesuffix(f"; {FSCK_HINT}")


def _short(oid: bytes, n: int = 10) -> str:
    return oid.decode("ascii", "replace")[:n]


# -- the set of reachable chunks (bounded memory) ---------------------------------------


class ChunkSet:
    """Chunk ids (with the length a manifest gives them) in a temporary SQLite table.

    The table lives in the state.db connection's temp database (a temp file,
    never state.db itself), so it can be joined with the chunk index.
    """

    def __init__(self, conn: sqlite3.Connection, name: str) -> None:
        self.conn = conn
        self.table = f"temp.{name}"
        conn.execute(f"DROP TABLE IF EXISTS {self.table}")
        conn.execute(
            f"CREATE TABLE {self.table} (id BLOB PRIMARY KEY, len INTEGER NOT NULL) WITHOUT ROWID"
        )
        self._buf: list[tuple[bytes, int]] = []

    def add_manifest(self, _oid: bytes, manifest: Manifest) -> None:
        if len(manifest.chunks) >= _BATCH:  # streamed from the manifest, never listed
            self.flush()
            self._insert(manifest.chunks)
            return
        self._buf.extend(manifest.chunks)
        if len(self._buf) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._insert(self._buf)
            self._buf.clear()

    def _insert(self, entries: Iterable[tuple[bytes, int]]) -> None:
        with transaction(self.conn, "DEFERRED"):
            self.conn.executemany(
                f"INSERT OR IGNORE INTO {self.table}(id, len) VALUES (?, ?)", entries
            )

    def contains(self, cid: bytes) -> bool:
        self.flush()
        row = self.conn.execute(f"SELECT 1 FROM {self.table} WHERE id=?", (cid,)).fetchone()
        return row is not None

    def count(self) -> int:
        self.flush()
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])

    def drop(self) -> None:
        self._buf.clear()
        self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")


# -- fsck ---------------------------------------------------------------------------


@dataclass
class Damage:
    """What is damaged, by id and by file: what ``vsync fsck --repair`` works from."""

    objects: dict[bytes, str] = field(default_factory=dict)  # git object id -> problem
    chunks: dict[bytes, str] = field(default_factory=dict)  # chunk id -> problem
    git_packs: list[str] = field(default_factory=list)  # pack-<sha> whose checksums fail
    chunk_packs: list[str] = field(default_factory=list)  # no valid trailer, records disagree


@dataclass
class FsckResult:
    commits: int = 0
    files: int = 0  # distinct file versions (manifests)
    chunks: int = 0
    chunk_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    damage: Damage = field(default_factory=Damage)

    @property
    def ok(self) -> bool:
        return not self.problems


def fsck(
    repo: Repository, progress: ProgressSink | None = None, *, locked: bool = False
) -> FsckResult:
    """Check everything history reaches (module docstring).

    ``locked``: the caller holds the exclusive repository lock (``fsck --repair``).
    """
    result = FsckResult()
    exclusive = (
        contextlib.nullcontext() if locked else RepoLock(repo.control / "lock", True, LOCK_TIMEOUT)
    )
    with exclusive:
        result.notes.extend(_repair_caches(repo, result))
    with repo.lock(exclusive=False):
        store = repo.chunks
        result.problems.extend(_check_pack_records(store, result.damage))
        for name, problem in repo.gitdb.damaged_packs():
            result.damage.git_packs.append(name)
            result.problems.append(f"damaged: git pack {name} ({problem})")
        aside = repo.control / SET_ASIDE
        if aside.is_dir() and any(aside.iterdir()):
            result.notes.append(set_aside_note(repo))
        orphans = repo.gitdb.unfinished_packs()
        if orphans:
            result.notes.append(
                f"{plural(len(orphans), 'unfinished git pack file')} left by interrupted commands "
                "(harmless; 'vsync gc' removes them)"
            )
        chunks = ChunkSet(store.db.conn, "fsck_chunks")
        try:
            history = walk_history(repo, chunks.add_manifest)
            chunks.flush()
            result.notes.extend(history.notes)
            result.commits = len(history.commits)
            result.files = len(history.manifests)
            bad_chunks = _verify_chunks(store, chunks, result, progress)
        finally:
            chunks.drop()
        result.problems.extend(history.commit_problems)
        result.damage.objects = dict(history.bad)
        result.damage.chunks = bad_chunks
        if history.bad or bad_chunks:
            result.problems.extend(_name_damage(repo, history, bad_chunks))
    return result


def set_aside_note(repo: Repository) -> str:
    return (
        f"{repo.control / SET_ASIDE} holds damaged files 'vsync fsck --repair' took out of "
        "use (nothing reads them; delete it once fsck finds no problems)"
    )


def _repair_caches(repo: Repository, result: FsckResult) -> list[str]:
    """The exclusive-lock part: state.db, temp packs, stale git locks, the chunk index."""
    notes = []
    existed = (repo.control / "state.db").exists()
    db = repo.db  # opening sets aside a file that is not a database and starts afresh
    if db.rebuilt:
        notes.append(
            "state.db could not be opened; set it aside and rebuilt it from the packs"
            if existed
            else "state.db was missing; rebuilt the chunk index from the packs"
        )
    try:
        rows = db.conn.execute("PRAGMA integrity_check").fetchall()
        healthy = rows == [("ok",)]
        found = [
            line.strip()
            for r in rows
            for line in str(r[0]).splitlines()
            if line.strip() and not line.startswith("***")
        ]
        detail = found[0] if found else "integrity check failed"
        if len(found) > 1:
            detail += f", and {len(found) - 1} more"
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):  # a full disk or the OS refusing is not damage: set nothing aside
            raise not_damage(exc, db.path) from None
        healthy, detail = False, str(exc)
    if not healthy:
        repo.reset_state_db()
        notes.append(f"state.db was damaged ({detail}); set it aside and rebuilt it from the packs")
    store = repo.chunks
    recovered = store.recover_temp_packs()
    if recovered:
        notes.append(
            f"sealed {plural(recovered, 'chunk')} an interrupted command left in a temp pack"
        )
    notes.extend(repo.gitdb.remove_stale_locks())
    damaged, mismatched = _compare_index(store)
    result.problems.extend(line for _name, line in damaged)
    result.damage.chunk_packs.extend(name for name, _line in damaged)
    if mismatched:
        store.rebuild_index()
        notes.extend(
            f"the chunk index did not match pack {name}; rebuilt the index from the packs"
            for name in mismatched
        )
    return notes


def _compare_index(store: ChunkStore) -> tuple[list[tuple[str, str]], list[str]]:
    """Damaged packs (name, problem line: no valid trailer) and packs whose index rows
    disagree with them."""
    damaged: list[tuple[str, str]] = []
    mismatched: list[str] = []
    conn = store.db.conn
    for name in sorted(chunkpack.iter_pack_names(store.dir)):
        try:
            entries = chunkpack.read_trailer(store.dir / name)
        except DamagedRepository as exc:
            damaged.append((name, f"damaged: {exc}"))
            continue
        except OSError as exc:
            damaged.append((name, f"damaged: chunk pack {name} cannot be read ({exc.strerror})"))
            continue
        if entries is None:
            damaged.append(
                (
                    name,
                    f"damaged: chunk pack {name} has no valid trailer (truncated or overwritten)",
                )
            )
            continue
        row = conn.execute("SELECT pack FROM packs WHERE name=?", (name,)).fetchone()
        if row is None:
            mismatched.append(name)
            continue
        rows = conn.execute(
            "SELECT id, offset, stored_len, raw_len, compression FROM chunks WHERE pack=?",
            (row[0],),
        ).fetchall()
        in_pack = {(e.chunk_id, e.offset, e.stored_len, e.raw_len, e.compression) for e in entries}
        if any(tuple(r) not in in_pack for r in rows) or (
            len(rows) < len(entries)
            and any(not store.has(e.chunk_id) for e in entries)  # duplicates live elsewhere
        ):
            mismatched.append(name)
    return damaged, mismatched


def _check_pack_records(store: ChunkStore, damage: Damage) -> list[str]:
    """Each sealed pack's records, walked from its header, must be its trailer's list."""
    problems = []
    for name in sorted(chunkpack.iter_pack_names(store.dir)):
        path = store.dir / name
        try:
            entries = chunkpack.read_trailer(path)
            if entries is None:
                continue  # reported by _compare_index
            records, end = chunkpack.scan_records(path)
        except (DamagedRepository, OSError):
            continue  # reported by _compare_index (or the pack vanished meanwhile)
        last = entries[-1] if entries else None
        expected_end = (
            last.offset + chunkpack.RECORD.size + last.stored_len if last else chunkpack.HEADER.size
        )
        if records != entries or end != expected_end:
            damage.chunk_packs.append(name)
            problems.append(f"damaged: chunk pack {name}: its records do not match its trailer")
    return problems


def _verify_chunks(
    store: ChunkStore, chunks: ChunkSet, result: FsckResult, progress: ProgressSink | None
) -> dict[bytes, str]:
    """Decode every reachable chunk once, in pack order; returns id -> what is wrong."""
    conn = store.db.conn
    total, total_bytes = conn.execute(f"SELECT COUNT(*), TOTAL(len) FROM {chunks.table}").fetchone()
    if progress is not None:
        progress.start(int(total), int(total_bytes))
    bad: dict[bytes, str] = {}
    rows: Iterator[tuple[bytes, int]] = conn.execute(
        f"SELECT r.id, r.len FROM {chunks.table} r LEFT JOIN main.chunks c ON c.id = r.id"
        " ORDER BY c.pack, c.offset"
    )
    for cid, length in rows:
        result.chunks += 1
        result.chunk_bytes += length
        try:
            data = store.read(cid)
        except ChunkMissing:
            bad[cid] = "is missing"
        except ChunkCorrupt:
            bad[cid] = "does not match its id"
        except DamagedRepository as exc:
            bad[cid] = f"cannot be read ({exc})"
        else:
            if len(data) != length:
                bad[cid] = f"is {len(data)} bytes long but its manifest says {length}"
        if progress is not None:
            progress.advance(length)
            progress.file_done(cid.hex())
    if progress is not None:
        progress.finish()
    return bad


# -- naming the damage -------------------------------------------------------------------


def _name_damage(repo: Repository, h: HistoryWalk, bad_chunks: dict[bytes, str]) -> list[str]:
    """One line per damaged file version: the newest commit holding it, and how many more."""
    store = repo.gitdb
    memo: dict[tuple[bytes, str], list[tuple[str, bytes, str]]] = {}
    manifest_memo: dict[bytes, str | None] = {}

    def blob_problem(oid: bytes, mode: int) -> str | None:
        if oid in h.bad:
            kind = "symlink target" if mode == MODE_LINK else "manifest"
            return f"{kind} {_short(oid)} {h.bad[oid]}"
        if mode == MODE_LINK or not bad_chunks:
            return None
        if oid not in manifest_memo:
            manifest = store.manifest(oid)
            hits = [cid for cid, _n in manifest.chunks if cid in bad_chunks]
            text = None
            if hits:
                text = f"chunk {hits[0].hex()[:16]} {bad_chunks[hits[0]]}"
                others = len(set(hits)) - 1
                if others:
                    text += f" (and {plural(others, 'more damaged chunk')})"
            manifest_memo[oid] = text
        return manifest_memo[oid]

    def under(tid: bytes, prefix: str) -> list[tuple[str, bytes, str]]:
        key = (tid, prefix)
        if key in memo:
            return memo[key]
        out: list[tuple[str, bytes, str]] = []
        if tid in h.bad:
            out.append(
                (prefix + "/" if prefix else "/", tid, f"folder tree {_short(tid)} {h.bad[tid]}")
            )
        else:
            for raw_name, mode, oid in store.tree(tid).items:
                name = raw_name.decode("utf-8", "replace")
                path = f"{prefix}/{name}" if prefix else name
                if mode == MODE_TREE:
                    out.extend(under(oid, path))
                elif mode != MODE_GITLINK:
                    text = blob_problem(oid, mode)
                    if text is not None:
                        out.append((path, oid, text))
        memo[key] = out
        return out

    first: dict[tuple[str, bytes], tuple[bytes, str]] = {}
    more: dict[tuple[str, bytes], int] = {}
    for cid in h.newest_first():
        for path, oid, text in under(h.commits[cid][1], ""):
            k = (path, oid)
            if k in first:
                more[k] += 1
            else:
                first[k] = (cid, text)
                more[k] = 0
    lines = []
    for (path, oid), (cid, text) in first.items():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(h.commits[cid][0]))
        line = f"damaged: {path} in commit {_short(cid)} ({when}): {text}"
        n = more[(path, oid)]
        if n:
            line += f" (same version in {plural(n, 'more commit')})"
        lines.append(line)
    return lines
