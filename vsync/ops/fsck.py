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
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dulwich.object_store import BaseObjectStore
from dulwich.objects import Blob, Commit, ShaFile, Tag, Tree
from dulwich.reflog import iter_reflogs, parse_reflog_line

from vsync.errors import ChunkCorrupt, ChunkMissing, DamagedRepository
from vsync.model.lock import RepoLock
from vsync.model.manifest import Manifest
from vsync.model.repository import LOCK_TIMEOUT, Repository
from vsync.model.working import ProgressSink
from vsync.model.worktree import MODE_LINK, MODE_TREE
from vsync.store import chunkpack
from vsync.store.chunkstore import ChunkStore

ZERO_SHA = b"0" * 40
_SHA = re.compile(rb"\b[0-9a-f]{40}\b")
GITLINK = 0o160000
_BATCH = 20_000


# -- reachability -------------------------------------------------------------------


class ObjectProblem(Exception):
    """Why a git object could not be used: its text completes 'object X ...'."""


def load_verified(store: BaseObjectStore, oid: bytes) -> ShaFile:
    """A git object rebuilt from its raw bytes, checked against its id."""
    try:
        type_num, raw = store.get_raw(oid)
    except KeyError:
        raise ObjectProblem("is missing") from None
    except Exception as exc:  # zlib, delta or pack errors all mean unreadable data
        raise ObjectProblem(f"cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        obj = ShaFile.from_raw_string(type_num, raw)
    except Exception as exc:  # a parse failure of any kind is damage
        raise ObjectProblem(f"is malformed ({exc})") from None
    if obj.id != oid:
        raise ObjectProblem("does not match its id")
    return obj


def history_roots(repo: Repository) -> tuple[list[tuple[bytes, str]], list[str]]:
    """``(commit id, where)`` for every ref and reflog entry, plus notes.

    Reflogs are read line by line so one torn line (a crash mid-append) costs
    only itself.
    """
    roots: list[tuple[bytes, str]] = []
    notes: list[str] = []
    refs = repo.git.refs
    for name in sorted(refs.allkeys()):
        try:
            roots.append((refs[name], name.decode("utf-8", "replace")))
        except KeyError:
            continue  # a symbolic ref to a branch with no commits yet
    logs_dir = Path(repo.git.commondir()) / "logs"
    for ref in sorted(iter_reflogs(str(logs_dir))):
        where = f"reflog of {ref.decode('utf-8', 'replace')}"
        try:
            lines = (logs_dir / os.fsdecode(ref)).read_bytes().splitlines()
        except OSError as exc:
            notes.append(f"cannot read the {where}: {exc.strerror}")
            continue
        bad = 0
        for line in lines:
            try:
                entry = parse_reflog_line(line)
                shas = [entry.old_sha, entry.new_sha]
            except (ValueError, IndexError):
                bad += 1
                shas = _SHA.findall(line[:81])  # a torn line may still name its commits
            roots.extend((sha, where) for sha in shas if sha != ZERO_SHA)
        if bad:
            notes.append(f"{where}: skipped {bad} unreadable line(s)")
    return roots, notes


@dataclass
class History:
    """What a walk of history found; ``bad`` maps object id -> what is wrong."""

    commits: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)  # id -> (time, tree)
    objects: set[bytes] = field(default_factory=set)  # every object verified good
    manifests: set[bytes] = field(default_factory=set)
    bad: dict[bytes, str] = field(default_factory=dict)
    commit_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def newest_first(self) -> list[bytes]:
        # Same-second commits: the walk reaches a child before its parent, so the
        # order of discovery breaks the tie the right way round.
        order = {c: i for i, c in enumerate(self.commits)}
        return sorted(self.commits, key=lambda c: (-self.commits[c][0], order[c]))


def walk_history(
    repo: Repository, on_manifest: Callable[[bytes, Manifest], None] | None = None
) -> History:
    """Verify every reachable git object once; hand each manifest to ``on_manifest``."""
    store = repo.git.object_store
    h = History()
    roots, h.notes = history_roots(repo)
    stack = list(reversed(roots))
    loose_trees: list[bytes] = []
    while stack:
        oid, where = stack.pop()
        if oid in h.objects or oid in h.bad:
            continue
        try:
            obj = load_verified(store, oid)
        except ObjectProblem as exc:
            h.bad[oid] = str(exc)
            h.commit_problems.append(f"damaged: commit {_short(oid)} {exc} (reached from {where})")
            continue
        if isinstance(obj, Tag):
            h.objects.add(oid)
            stack.append((obj.object[1], f"tag {_short(oid)}"))
            continue
        if isinstance(obj, Tree):  # a ref to a bare tree: keep and check what it holds
            loose_trees.append(oid)
            continue
        if not isinstance(obj, Commit):
            h.objects.add(oid)
            continue
        h.objects.add(oid)
        h.commits[oid] = (obj.commit_time, obj.tree)
        stack.extend((p, f"commit {_short(oid)}") for p in reversed(obj.parents))
    for cid in h.newest_first():
        _walk_tree(store, h.commits[cid][1], h, on_manifest)
    for tid in loose_trees:
        _walk_tree(store, tid, h, on_manifest)
    return h


def _walk_tree(
    store: BaseObjectStore,
    root: bytes,
    h: History,
    on_manifest: Callable[[bytes, Manifest], None] | None,
) -> None:
    stack = [root]
    while stack:
        tid = stack.pop()
        if tid in h.objects or tid in h.bad:
            continue
        try:
            tree = load_verified(store, tid)
            if not isinstance(tree, Tree):
                raise ObjectProblem("is not a folder (tree)")
        except ObjectProblem as exc:
            h.bad[tid] = str(exc)
            continue
        h.objects.add(tid)
        for item in tree.iteritems():
            if item.mode == MODE_TREE:
                stack.append(item.sha)
            elif item.mode != GITLINK and item.sha not in h.objects and item.sha not in h.bad:
                _check_blob(store, item.sha, item.mode, h, on_manifest)


def _check_blob(
    store: BaseObjectStore,
    oid: bytes,
    mode: int,
    h: History,
    on_manifest: Callable[[bytes, Manifest], None] | None,
) -> None:
    try:
        blob = load_verified(store, oid)
        if not isinstance(blob, Blob):
            raise ObjectProblem("is not a blob")
        if mode != MODE_LINK:
            manifest = _parse_manifest(blob.as_raw_string())
    except ObjectProblem as exc:
        h.bad[oid] = str(exc)
        return
    h.objects.add(oid)
    if mode != MODE_LINK:
        h.manifests.add(oid)
        if on_manifest is not None:
            on_manifest(oid, manifest)


def _parse_manifest(data: bytes) -> Manifest:
    try:
        return Manifest.from_bytes(data)
    except DamagedRepository as exc:
        raise ObjectProblem(f"is not a valid manifest ({exc})") from None


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
        self.conn.execute("BEGIN")
        self.conn.executemany(f"INSERT OR IGNORE INTO {self.table}(id, len) VALUES (?, ?)", entries)
        self.conn.execute("COMMIT")

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


# -- maintenance shared with gc ---------------------------------------------------------


def remove_stale_git_locks(repo: Repository) -> list[str]:
    """Delete ``*.lock`` files under git/; call only under the exclusive lock.

    dulwich writes refs, packed-refs and pack indexes through ``X.lock``
    files; one left by a killed process would block every later update of X.
    """
    gitdir = Path(repo.git.commondir())
    notes = []
    for dirpath, _dirs, files in os.walk(gitdir):
        for name in files:
            if name.endswith(".lock"):
                path = Path(dirpath) / name
                path.unlink(missing_ok=True)
                notes.append(
                    f"removed {path.relative_to(gitdir.parent)}, left by an interrupted command"
                )
    return notes


def unfinished_git_packs(repo: Repository) -> list[Path]:
    """Git pack files a killed writer left: a ``.pack`` with no ``.idx``, temp packs.

    dulwich only opens a pack whose ``.idx`` exists and writes the ``.idx``
    last, so these are invisible to readers and hold nothing a ref names.
    """
    objects_dir = Path(repo.git.object_store.path)
    pack_dir = objects_dir / "pack"
    out = [p for p in objects_dir.glob("tmp_pack_*") if p.is_file()]
    try:
        names = set(os.listdir(pack_dir))
    except FileNotFoundError:
        return out
    for name in sorted(names):
        if name.endswith(".pack") and name[: -len(".pack")] + ".idx" not in names:
            out.append(pack_dir / name)
    return out


# -- fsck ---------------------------------------------------------------------------


@dataclass
class FsckResult:
    commits: int = 0
    files: int = 0  # distinct file versions (manifests)
    chunks: int = 0
    chunk_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def fsck(repo: Repository, progress: ProgressSink | None = None) -> FsckResult:
    result = FsckResult()
    with RepoLock(repo.control / "lock", True, LOCK_TIMEOUT):
        result.notes.extend(_repair_caches(repo, result))
    with repo.lock(exclusive=False):
        store = repo.chunks
        result.problems.extend(_check_pack_records(store))
        result.problems.extend(_check_git_packs(repo))
        orphans = unfinished_git_packs(repo)
        if orphans:
            result.notes.append(
                f"{len(orphans)} unfinished git pack file(s) left by interrupted commands "
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
        if history.bad or bad_chunks:
            result.problems.extend(_name_damage(repo, history, bad_chunks))
    return result


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
        healthy, detail = False, str(exc)
    if not healthy:
        repo.reset_state_db()
        notes.append(f"state.db was damaged ({detail}); set it aside and rebuilt it from the packs")
    store = repo.chunks
    recovered = store.recover_temp_packs()
    if recovered:
        notes.append(f"sealed {recovered} chunk(s) an interrupted command left in a temp pack")
    notes.extend(remove_stale_git_locks(repo))
    damaged, mismatched = _compare_index(store)
    result.problems.extend(damaged)
    if mismatched:
        store.rebuild_index()
        notes.extend(
            f"the chunk index did not match pack {name}; rebuilt the index from the packs"
            for name in mismatched
        )
    return notes


def _compare_index(store: ChunkStore) -> tuple[list[str], list[str]]:
    """Damaged packs (no valid trailer) and packs whose index rows disagree with them."""
    damaged, mismatched = [], []
    conn = store.db.conn
    for name in sorted(chunkpack.iter_pack_names(store.dir)):
        try:
            entries = chunkpack.read_trailer(store.dir / name)
        except DamagedRepository as exc:
            damaged.append(f"damaged: {exc}")
            continue
        except OSError as exc:
            damaged.append(f"damaged: chunk pack {name} cannot be read ({exc.strerror})")
            continue
        if entries is None:
            damaged.append(
                f"damaged: chunk pack {name} has no valid trailer (truncated or overwritten)"
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


def _check_pack_records(store: ChunkStore) -> list[str]:
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
            problems.append(f"damaged: chunk pack {name}: its records do not match its trailer")
    return problems


def _check_git_packs(repo: Repository) -> list[str]:
    problems = []
    for pack in repo.git.object_store.packs:
        try:
            pack.check_length_and_checksum()
            pack.index.check()  # recomputes the .idx checksum
            pack.data.check()  # recomputes the .pack checksum over all its bytes
        except Exception as exc:  # any failure to read or verify is damage
            problems.append(
                f"damaged: git pack pack-{pack.name().decode('ascii', 'replace')} "
                f"({type(exc).__name__}: {exc})"
            )
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


def _name_damage(repo: Repository, h: History, bad_chunks: dict[bytes, str]) -> list[str]:
    """One line per damaged file version: the newest commit holding it, and how many more."""
    store = repo.git.object_store
    memo: dict[tuple[bytes, str], list[tuple[str, bytes, str]]] = {}
    manifest_memo: dict[bytes, str | None] = {}

    def blob_problem(oid: bytes, mode: int) -> str | None:
        if oid in h.bad:
            kind = "symlink target" if mode == MODE_LINK else "manifest"
            return f"{kind} {_short(oid)} {h.bad[oid]}"
        if mode == MODE_LINK or not bad_chunks:
            return None
        if oid not in manifest_memo:
            manifest = Manifest.from_bytes(store[oid].as_raw_string())
            hits = [cid for cid, _n in manifest.chunks if cid in bad_chunks]
            text = None
            if hits:
                text = f"chunk {hits[0].hex()[:16]} {bad_chunks[hits[0]]}"
                others = len(set(hits)) - 1
                if others:
                    text += f" (and {others} more damaged chunk{'s' if others > 1 else ''})"
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
            tree = store[tid]
            assert isinstance(tree, Tree)
            for item in tree.iteritems():
                name = item.path.decode("utf-8", "replace")
                path = f"{prefix}/{name}" if prefix else name
                if item.mode == MODE_TREE:
                    out.extend(under(item.sha, path))
                elif item.mode != GITLINK:
                    text = blob_problem(item.sha, item.mode)
                    if text is not None:
                        out.append((path, item.sha, text))
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
            line += f" (same version in {n} more commit{'s' if n > 1 else ''})"
        lines.append(line)
    return lines
