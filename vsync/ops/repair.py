"""``vsync fsck --repair``, the local part: damage out of use, good copies in.

The transfer part (a session to a remote, the git objects and chunks it
sends) is :mod:`vsync.sync.repair`; it drives the two steps here, under the
exclusive repository lock, from what :func:`vsync.ops.fsck.fsck` found
(:class:`~vsync.ops.fsck.Damage`):

1. :func:`set_aside`: every stored copy that is damaged is taken out of use,
   so that it can never shadow a good copy (dulwich may look an object up in
   a damaged pack first; an index rebuilt from the packs may point a chunk at
   its damaged record). A damaged git pack or chunk pack is rewritten as gc
   does it: everything in it that still reads back verified is copied into a
   new pack, sealed and indexed, before the old one goes. A pack holding
   anything that no copy gives back is moved into ``damaged/`` in the control
   folder instead of deleted, with any damaged loose object: nothing is lost,
   and nothing reads from there. What was damaged is now *missing*.
2. :func:`restore`: walk history as fsck does; each object that is missing
   is taken from a :class:`CopySource` (the objects a remote sent), verified
   against its id (a folder's entries also against the rules every received
   tree must follow), and the copies the walk accepted are stored as one new
   pack. Returns the chunks history needs and the store lacks, and which of
   them the source can serve (its manifests name them).

Each step is safe to interrupt: a repair killed at any moment leaves at most
the damage it started from (what was damaged may read as missing), and
running it again finishes the work. ``damaged/`` is emptied once fsck finds
the repository whole (:func:`empty_set_aside`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from vsync.errors import DamagedRepository, GitObjectDamaged, StoppedError, UnsafePath
from vsync.model.gitdb import (
    GitDB,
    GitObject,
    RawObject,
    Tree,
)
from vsync.model.manifest import Manifest
from vsync.model.repository import Repository
from vsync.model.snapshot import check_received_tree
from vsync.ops.fsck import SET_ASIDE, ChunkSet, Damage, walk_history
from vsync.store import chunkpack, codec
from vsync.store.chunkpack import PackEntry
from vsync.store.chunkstore import ChunkStore, PackWriter


class CopyRefused(StoppedError):
    """A copy offered for a repair is not what it claims to be; nothing was stored."""


class CopySource(Protocol):
    """Good copies from elsewhere: the git objects a remote sent."""

    def raw_object(self, oid: bytes) -> tuple[int, bytes] | None:
        """The type number and bytes of ``oid`` (None: the source does not hold it)."""
        ...

    def has_object(self, oid: bytes) -> bool: ...


def aside_dir(repo: Repository) -> Path:
    return repo.control / SET_ASIDE


# -- step 1: damaged copies out of use ------------------------------------------------------


@dataclass
class SetAsideResult:
    moved: list[str] = field(default_factory=list)  # files moved into damaged/
    removed: list[str] = field(default_factory=list)  # damaged files deleted (nothing lost)

    @property
    def changed(self) -> bool:
        return bool(self.moved or self.removed)


def set_aside(repo: Repository, damage: Damage) -> SetAsideResult:
    """Take every damaged copy ``damage`` names out of use (caller holds the
    exclusive lock). See the module docstring."""
    result = SetAsideResult()
    aside = aside_dir(repo)
    suspects = [oid for oid, problem in damage.objects.items() if _unreadable_object(problem)]
    git = repo.gitdb.set_aside(damage.git_packs, suspects, aside / "git")
    result.moved.extend(git.moved)
    result.removed.extend(git.removed)
    _set_aside_chunks(repo.chunks, damage, aside / "chunks", result)
    return result


def _unreadable_object(problem: str) -> bool:
    """A problem of the stored copy (another copy may be good), not of what the id names."""
    return problem.startswith(("cannot be read", "does not match its id", "has an unknown type"))


def _damaged_record(problem: str) -> bool:
    """A chunk whose stored record is damaged (not missing, not misnamed by a manifest)."""
    return problem == "does not match its id" or problem.startswith("cannot be read")


def _set_aside_chunks(
    store: ChunkStore, damage: Damage, aside: Path, result: SetAsideResult
) -> None:
    packs = set(damage.chunk_packs)
    for cid, problem in damage.chunks.items():
        if _damaged_record(problem):
            name = store.pack_of(cid)
            if name is not None:
                packs.add(name)
    packs = {name for name in packs if (store.dir / name).exists()}
    if not packs:
        return
    incomplete: set[str] = set()  # packs whose list of records is not known for sure
    damaged: dict[bytes, set[str]] = {}  # chunk of a damaged record -> packs holding one
    copied: set[bytes] = set()
    with store.writer(relocate=True) as writer:
        for name in sorted(packs):
            entries, complete = _entries(store.dir / name)
            if not complete:
                incomplete.add(name)
            good = set()
            for e, payload in _good_records(store.dir / name, entries):
                if e.chunk_id not in copied:
                    writer.add(e.chunk_id, e.raw_len, e.compression, payload)
                    copied.add(e.chunk_id)
                good.add(e.chunk_id)
            for e in entries:
                if e.chunk_id not in good:
                    damaged.setdefault(e.chunk_id, set()).add(name)
        lost = {cid: where for cid, where in damaged.items() if cid not in copied}
        copied.update(_second_copies(store, packs, set(lost), writer))
    lost = {cid: where for cid, where in lost.items() if cid not in copied}
    for name in sorted(packs):  # every good record is in a sealed, indexed pack now
        keep = name in incomplete or any(name in where for where in lost.values())
        if keep:
            result.moved.append(str(store.set_aside_pack(name, aside)))
        else:
            store.remove_pack(name)
            result.removed.append(name)


def _second_copies(
    store: ChunkStore, packs: set[str], lost: set[bytes], writer: PackWriter
) -> set[bytes]:
    """Copy a good second copy (a duplicate record in another pack) of each chunk in
    ``lost``; returns the ids copied."""
    found: set[bytes] = set()
    if not lost:
        return found
    for name in sorted(set(chunkpack.iter_pack_names(store.dir)) - packs):
        try:
            entries = chunkpack.read_trailer(store.dir / name) or []
        except (DamagedRepository, OSError):
            continue
        todo = [e for e in entries if e.chunk_id in lost and e.chunk_id not in found]
        for e, payload in _good_records(store.dir / name, todo):
            writer.add(e.chunk_id, e.raw_len, e.compression, payload)
            found.add(e.chunk_id)
        if found >= lost:
            break
    return found


def _entries(path: Path) -> tuple[list[PackEntry], bool]:
    """The records of a pack, and whether that list is its whole content (a valid
    trailer that the records agree with)."""
    try:
        trailer = chunkpack.read_trailer(path)
        records, _end = chunkpack.scan_records(path)
    except (DamagedRepository, OSError):
        return [], False
    if trailer is None:
        return records, False
    return trailer, records == trailer


def _good_records(path: Path, entries: list[PackEntry]) -> Iterator[tuple[PackEntry, bytes]]:
    """The records among ``entries`` that read back and decode to their id."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        for e in entries:
            try:
                payload = chunkpack.read_payload(fd, e, path.name)
                codec.decode(e.compression, payload, e.raw_len, e.chunk_id, path.name)
            except (DamagedRepository, OSError):
                continue
            yield e, payload
    finally:
        os.close(fd)


def empty_set_aside(repo: Repository) -> bool:
    """Delete ``damaged/`` (once the repository is whole: it holds nothing of use).
    True if there was something to delete."""
    aside = aside_dir(repo)
    if not aside.exists():
        return False
    shutil.rmtree(aside)
    return True


# -- step 2: good copies in ------------------------------------------------------------------


@dataclass
class Restored:
    objects: int = 0  # git objects taken from the source and stored
    objects_missing: int = 0  # reachable objects still missing or damaged after that
    chunks_missing: int = 0  # chunks history needs that the store lacks
    chunks_offered: list[tuple[bytes, int]] = field(default_factory=list)  # ... the source has

    @property
    def needs_more(self) -> bool:
        return bool(self.objects_missing or self.chunks_missing)


class _Restoring:
    """Reads from the git database; a missing or damaged object comes from ``source``."""

    def __init__(self, db: GitDB, source: CopySource | None) -> None:
        self.db = db
        self.source = source
        self.found: dict[bytes, RawObject] = {}

    def read(self, oid: bytes) -> GitObject:
        try:
            return self.db.read(oid)
        except GitObjectDamaged:
            got = None if self.source is None else self.source.raw_object(oid)
            if got is None:
                raise
        copy = RawObject(got[0], oid, got[1])
        try:
            obj = self.db.parse_verified(copy)
        except GitObjectDamaged as exc:
            raise CopyRefused(
                f"the remote's copy of git object {oid.decode()} {exc.problem}; refusing it, "
                "nothing was stored"
            ) from None
        if isinstance(obj, Tree):
            _check_tree(obj)
        self.found[oid] = copy
        return obj


def _check_tree(tree: Tree) -> None:
    """The rules every received tree follows (docs/protocol.md, "What a receiver verifies")."""
    try:
        check_received_tree(tree)
    except UnsafePath as exc:
        raise CopyRefused(
            f"the remote's copy of git tree {tree.id.decode()} is unsafe ({exc}); refusing it, "
            "nothing was stored"
        ) from None


def restore(repo: Repository, source: CopySource | None) -> Restored:
    """Walk history, taking each missing object from ``source`` (None: only find out
    what is missing); store the copies the walk accepted. Caller holds the exclusive lock.

    Nothing is stored if a copy is refused (CopyRefused).
    """
    reader = _Restoring(repo.gitdb, source)
    conn = repo.chunks.db.conn
    needed = ChunkSet(conn, "repair_needed")
    offered = ChunkSet(conn, "repair_offered")

    def on_manifest(oid: bytes, manifest: Manifest) -> None:
        needed.add_manifest(oid, manifest)
        if source is not None and source.has_object(oid):
            offered.add_manifest(oid, manifest)

    result = Restored()
    try:
        history = walk_history(repo, on_manifest, reader)
        copies = [copy for oid, copy in reader.found.items() if oid in history.objects]
        repo.gitdb.add(copies)
        result.objects = len(copies)
        result.objects_missing = len(history.bad)
        needed.flush()
        offered.flush()
        stored = "SELECT 1 FROM main.chunks c WHERE c.id = r.id"
        lacking = f"FROM {needed.table} r WHERE NOT EXISTS ({stored})"
        result.chunks_missing = int(conn.execute(f"SELECT COUNT(*) {lacking}").fetchone()[0])
        if result.chunks_missing and source is not None:
            rows = conn.execute(
                f"SELECT r.id, r.len {lacking}"
                f" AND EXISTS (SELECT 1 FROM {offered.table} o WHERE o.id = r.id)"
            )
            result.chunks_offered = [(bytes(cid), int(n)) for cid, n in rows]
    finally:
        needed.drop()
        offered.drop()
    return result
