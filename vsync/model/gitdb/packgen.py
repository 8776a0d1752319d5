"""Building the git pack a sender sends: new objects, manifests as deltas.

A manifest changes little when its file changes a little (a 10-byte insertion
in a 1 GiB file changes a few of its ~13,000 entries), so sending it whole
costs ~470 KiB where ~200 bytes would do. Each new tree and blob is paired
with the object at the same path in the tree of its commit's first parent
(found by walking only the subtrees that differ), and sent as a git delta
against it when that is smaller:

- a base that is new too is in the same pack, before its dependants, so the
  delta is an OFS_DELTA: every receiver reads those;
- a base the receiver already has (reachable from the haves) makes the pack
  *thin*: a REF_DELTA naming an object outside the pack. Only sent when the
  receiver advertised the ``thin-pack`` capability (docs/protocol.md).

Deltas are dulwich's ``create_delta`` (its Rust implementation: about 1 ms for
a 470 KiB manifest). The receiver resolves them and names every object by the
id computed from the result, so a wrong delta cannot pass as the right object.

The receiver refuses a pack that breaks the limits of
:mod:`vsync.model.gitdb.received` (chain depth, bytes along a chain, total
expansion for the pack's size), so an object is sent whole whenever its delta
would break one of them.

:func:`pack_parts` cuts the same objects into several packs of bounded size
instead of one (an object-store remote stores each as one object, so a killed
push resumes after the last one stored): each part is self-contained (a delta
whose base went in an earlier part is sent whole), and the parts are the same
bytes every time for the same objects, so a re-run finds the stored ones by name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

from dulwich.object_store import DiskObjectStore, MissingObjectFinder
from dulwich.objects import Commit, ObjectID, ShaFile, Tree, hex_to_sha, sha_to_hex
from dulwich.pack import (
    OFS_DELTA,
    UnpackedObject,
    create_delta,
    full_unpacked_object,
    pack_header_chunks,
    pack_object_chunks,
    write_pack_data,
)

from vsync.errors import GitObjectDamaged
from vsync.model.gitdb.db import GitDB
from vsync.model.gitdb.guard import file_damage, guarded
from vsync.model.gitdb.received import (
    EXPANSION_ALLOWANCE,
    EXPANSION_RATIO,
    MAX_CHAIN_BYTES,
    MAX_DELTA_DEPTH,
)
from vsync.model.gitdb.types import MODE_TREE

MIN_DELTA_SIZE = 512  # smaller objects are sent whole: a delta would save next to nothing
MAX_DELTA_RATIO = 0.5  # a delta is used only when at most this fraction of the object


class PackSink:
    """Where a pack goes: ``write`` takes its bytes in order; ``written`` is the total."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self.written = 0

    def write(self, data: bytes) -> None:
        self._write(data)
        self.written += len(data)


def write_pack(
    db: GitDB, wants: list[bytes], haves: list[bytes], thin: bool, sink: PackSink
) -> list[bytes]:
    """Write the objects reachable from ``wants`` and not from ``haves`` to ``sink``
    as one git pack; returns their ids.

    ``thin`` allows deltas against objects outside the pack (the receiver has
    everything reachable from ``haves``). A delta is used only while the
    declared sizes stay within what the receiver allows a pack of the size
    written so far.
    """
    todo, records = pack_records(db, wants, haves, thin, lambda: sink.written)
    store = db._store
    write_pack_data(sink.write, records, store.object_format, num_records=len(todo))
    return todo


def pack_records(
    db: GitDB,
    wants: list[bytes],
    haves: list[bytes],
    thin: bool,
    written: Callable[[], int] = lambda: 0,
    stable: bool = False,
    limits: _Limits | None = None,
) -> tuple[list[bytes], Iterator[UnpackedObject]]:
    """The ids of the objects reachable from ``wants`` and not from ``haves``, and
    their records, ready for a pack (see :func:`write_pack`). ``stable``: in id
    order, so the same objects give the same records in every process (dulwich's
    walk follows a set's order, which changes with Python's hash seed)."""
    store = db._store

    def missing() -> list[bytes]:
        found = MissingObjectFinder(
            store, haves=[ObjectID(h) for h in haves], wants=[ObjectID(w) for w in wants]
        )
        return [bytes(oid) for oid, _hint in found]

    todo = guarded(missing, file_damage("the history to send"))
    if stable:
        todo.sort()
    new = set(todo)
    bases = _delta_bases(store, todo, new, thin)
    return todo, _records(store, todo, new, bases, limits or _Limits(written))


def pack_parts(
    db: GitDB, wants: list[bytes], haves: list[bytes], max_bytes: int
) -> tuple[list[bytes], Iterator[bytes]]:
    """The objects reachable from ``wants`` and not from ``haves`` (their ids), and
    the git packs that hold them: each at most ``max_bytes`` long (or one object
    alone), self-contained (no thin deltas, and an OFS_DELTA only against an object
    of the same pack), within the receiver's limits both alone and all together
    (:mod:`vsync.model.gitdb.received`), and the same bytes for the same objects in
    every process. The packs are made lazily, one at a time."""
    limits = _Limits(lambda: 0)
    limits.parts = True
    todo, records = pack_records(db, wants, haves, False, stable=True, limits=limits)
    store = db._store
    fmt = store.object_format

    def whole(rec: UnpackedObject) -> UnpackedObject:
        return full_unpacked_object(_load(store, sha_to_hex(rec.sha())))

    def parts() -> Iterator[bytes]:
        part = _Part(fmt)
        made = 0
        for rec in records:
            entry = part.entry(rec)
            if entry is None:  # its base went in an earlier part
                rec = whole(rec)
                entry = part.entry(rec)
                assert entry is not None
            if part.count and part.size + len(entry) > max_bytes:
                yield part.finish()
                made += 1
                limits.new_part()
                part = _Part(fmt)
                if rec.delta_base is not None:
                    rec = whole(rec)
                entry = part.entry(rec)
                assert entry is not None
                limits.part_expanded += rec.decomp_len or 0
            part.add(rec, entry)
            limits.total_written += len(entry)
        if part.count or not made:
            yield part.finish()

    return todo, parts()


class _Part:
    """One git pack of :func:`pack_parts`, built in memory."""

    TRAILER = 20

    def __init__(self, fmt: object) -> None:
        self.fmt = fmt
        self.body = bytearray()
        self.offsets: dict[bytes, int] = {}  # binary id -> offset of its entry in the pack
        self.count = 0

    @property
    def size(self) -> int:
        """The pack's length if it ended now (header, entries, trailer)."""
        return 12 + len(self.body) + self.TRAILER

    def entry(self, rec: UnpackedObject) -> bytes | None:
        """``rec``'s entry at the end of this pack; None for a delta whose base is
        not in it."""
        raw: list[bytes] | tuple[int, list[bytes]]
        type_num = rec.pack_type_num
        if rec.delta_base is not None:
            base = self.offsets.get(bytes(rec.delta_base))
            if base is None:
                return None
            type_num = OFS_DELTA
            raw = (12 + len(self.body) - base, rec.decomp_chunks)
        else:
            raw = rec.decomp_chunks
        return b"".join(pack_object_chunks(type_num, raw, self.fmt))  # type: ignore[arg-type]

    def add(self, rec: UnpackedObject, entry: bytes) -> None:
        self.offsets[bytes(rec.sha())] = 12 + len(self.body)
        self.body += entry
        self.count += 1

    def finish(self) -> bytes:
        data = b"".join(pack_header_chunks(self.count)) + bytes(self.body)
        return data + hashlib.sha1(data).digest()


def _delta_bases(
    store: DiskObjectStore, todo: list[bytes], new: set[bytes], thin: bool
) -> dict[bytes, bytes]:
    """For each new object, the object at the same path one commit earlier (if any)."""
    bases: dict[bytes, bytes] = {}
    for oid in todo:
        obj = _load(store, oid)
        if not isinstance(obj, Commit) or not obj.parents:
            continue
        parent = obj.parents[0]
        if parent not in new and not thin:
            continue
        parent_commit = _load(store, parent)
        assert isinstance(parent_commit, Commit)
        _pair_trees(store, obj.tree, parent_commit.tree, new, thin, bases)
    return bases


def _pair_trees(
    store: DiskObjectStore,
    tree_id: bytes,
    old_id: bytes,
    new: set[bytes],
    thin: bool,
    bases: dict[bytes, bytes],
) -> None:
    stack = [(tree_id, old_id)]
    while stack:
        tid, oid = stack.pop()
        if tid == oid or tid not in new:
            continue
        if oid in new or thin:
            bases.setdefault(tid, oid)
        tree, old = _load(store, tid), _load(store, oid)
        assert isinstance(tree, Tree) and isinstance(old, Tree)
        before = {e.path: (e.mode, e.sha) for e in old.iteritems()}
        for entry in tree.iteritems():
            prev = before.get(entry.path)
            if prev is None or prev[1] == entry.sha:
                continue
            both_trees = entry.mode == MODE_TREE and prev[0] == MODE_TREE
            if both_trees:
                stack.append((entry.sha, prev[1]))
            elif (
                entry.mode != MODE_TREE
                and prev[0] != MODE_TREE
                and entry.sha in new
                and (prev[1] in new or thin)
            ):
                bases.setdefault(entry.sha, prev[1])


def _load(store: DiskObjectStore, oid: bytes) -> ShaFile:
    """The stored object ``oid``; unreadable is damage (GitObjectDamaged, exit 3)."""

    def damage(problem: str) -> GitObjectDamaged:
        return GitObjectDamaged(oid, "object", problem)

    return guarded(lambda: store[ObjectID(oid)], damage)


class _Limits:
    """What the receiver checks (docs/protocol.md), tracked as records are made.

    For :func:`pack_parts`, the expansion is tracked both for all parts together
    (what a fetch that joins them checks) and for the part being filled (what
    ``vsync fsck --remote`` checks of each): ``total_written`` and
    ``part_expanded`` are kept by the caller, which starts each part with
    :meth:`new_part`."""

    def __init__(self, written: Callable[[], int]) -> None:
        self._written = written
        self.total_written = 0
        self.expanded = 0
        self.part_start = 0  # total_written when the current part began
        self.part_expanded = 0
        self.parts = False  # pack_parts: each part checked alone too
        self.chains: dict[bytes, tuple[int, int]] = {}  # emitted oid -> (depth, chain bytes)

    def written(self) -> int:
        return self._written() + self.total_written

    def new_part(self) -> None:
        self.part_start = self.total_written
        self.part_expanded = 0

    def whole(self, oid: bytes, size: int) -> None:
        self.expanded += size
        self.part_expanded += size
        self.chains[oid] = (0, size)

    def allows(self, oid: bytes, base: tuple[int, int], delta: int, size: int) -> bool:
        depth, chain = base[0] + 1, base[1] + delta + size
        budget = EXPANSION_RATIO * self.written() + EXPANSION_ALLOWANCE
        part_budget = EXPANSION_RATIO * (self.total_written - self.part_start)
        if (
            depth > MAX_DELTA_DEPTH
            or chain > MAX_CHAIN_BYTES
            or self.expanded + delta + size > budget
            or (
                self.parts and self.part_expanded + delta + size > part_budget + EXPANSION_ALLOWANCE
            )
        ):
            return False
        self.expanded += delta + size
        self.part_expanded += delta + size
        self.chains[oid] = (depth, chain)
        return True


def _records(
    store: DiskObjectStore,
    todo: list[bytes],
    new: set[bytes],
    bases: dict[bytes, bytes],
    limits: _Limits,
) -> Iterator[UnpackedObject]:
    """Whole objects first, then deltas, each after its base when the base is new."""
    emitted: set[bytes] = set()
    waiting: dict[bytes, list[bytes]] = {}  # new base -> objects waiting for it
    ready = [oid for oid in todo if oid not in bases or bases[oid] not in new]
    for oid in todo:
        base = bases.get(oid)
        if base is not None and base in new:
            waiting.setdefault(base, []).append(oid)
    queue = list(reversed(ready))
    leftovers = iter(todo)
    while True:
        while queue:
            oid = queue.pop()
            if oid in emitted:
                continue
            emitted.add(oid)
            yield _record(_load(store, oid), bases.get(oid), store, limits)
            queue.extend(reversed(waiting.pop(oid, [])))
        # Still waiting: a cycle of bases (a file changed and changed back across
        # the commits sent). One of it goes whole, the rest can then follow.
        for oid in leftovers:
            if oid not in emitted:
                bases.pop(oid, None)
                queue.append(oid)
                break
        else:
            return


def _record(
    obj: ShaFile, base_id: bytes | None, store: DiskObjectStore, limits: _Limits
) -> UnpackedObject:
    raw = obj.as_raw_string()
    oid = obj.sha().digest()
    if base_id is None or len(raw) < MIN_DELTA_SIZE:
        limits.whole(oid, len(raw))
        return full_unpacked_object(obj)
    base = _load(store, base_id)
    if base.type_num != obj.type_num:
        limits.whole(oid, len(raw))
        return full_unpacked_object(obj)
    base_raw = base.as_raw_string()
    delta = b"".join(create_delta(base_raw, raw))
    base_sha = hex_to_sha(ObjectID(base_id))
    base_chain = limits.chains.get(base_sha, (0, len(base_raw)))
    if len(delta) > len(raw) * MAX_DELTA_RATIO or not limits.allows(
        oid, base_chain, len(delta), len(raw)
    ):
        limits.whole(oid, len(raw))
        return full_unpacked_object(obj)
    return UnpackedObject(
        obj.type_num,
        sha=oid,
        delta_base=base_sha,
        decomp_len=len(delta),
        decomp_chunks=[delta],
    )
