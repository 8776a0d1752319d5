"""``vsync fsck --remote NAME`` on an encrypted remote (docs/format.md, "Checking an
encrypted remote").

With the key, every stored object is checked, and nothing is changed, on the
remote or in the local repository (received git packs stay in ``incoming/``
and are removed at the end):

- ``refs/main``: its authentication, and its counter against what this client
  saw before (the rollback check of every fetch);
- each chunk pack with its index: the index opens and its name is the id of
  its chunks; every record opens under its position, matches its index entry,
  decodes and hashes to its chunk id; the padding is zero and the pack ends
  where the padding says;
- each git pack the branch record names: present, opens, named by its content,
  a git pack that parses;
- from the branch's commit: every commit, tree and manifest is in the git
  packs (or already in the local store, checked there by plain ``vsync fsck``),
  and every chunk a manifest names is in some index.

Each problem is one line. Reads are bounded as a fetch's are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import cast

from vsync.errors import ChunkCorrupt, DamagedRepository, VsyncError
from vsync.model.gitdb import MODE_LINK, MODE_TREE, Blob, Commit, GitObject, Tree
from vsync.model.manifest import Manifest
from vsync.model.repository import Repository
from vsync.ops.fsck import FsckResult
from vsync.store import codec
from vsync.sync.client import SyncOptions
from vsync.sync.crypt.errors import RemoteTampered
from vsync.sync.crypt.gitparts import open_git_pack
from vsync.sync.crypt.remote import MAX_SMALL_OBJECT, EncryptedRemote
from vsync.sync.crypt.seal import HEAD, KIND_INDEX, BranchRecord, IndexEntry, parse_index
from vsync.sync.crypt.transfer import READ_RUN, SealedIncoming
from vsync.sync.objstore import ObjectMissing
from vsync.sync.protocol import ProtocolError
from vsync.sync.remotes import Remote


def check_encrypted(repo: Repository, remote: Remote, opts: SyncOptions) -> FsckResult:
    result = FsckResult()
    with EncryptedRemote(repo, remote, opts) as er:
        held = _check_packs(er, result)
        _check_history(repo, er, held, result)
    return result


def _indexes(er: EncryptedRemote, result: FsckResult) -> dict[str, list[IndexEntry]]:
    out: dict[str, list[IndexEntry]] = {}
    for name in er.store.list("index/"):
        hexname = name.split("/", 1)[1]
        try:
            raw = er.store.read(name, 0, MAX_SMALL_OBJECT + 1)
            if len(raw) > MAX_SMALL_OBJECT:
                raise er.sealer.damaged(name, "too long")
            out[hexname] = parse_index(hexname, er.sealer.open(KIND_INDEX, name, raw), er.sealer)
        except ObjectMissing:
            continue  # removed since the listing
        except RemoteTampered as exc:
            result.problems.append(f"{name}: damaged: {_why(exc)}")
    return out


def _why(exc: VsyncError) -> str:
    return str(exc).split("; refusing")[0]


def _check_packs(er: EncryptedRemote, result: FsckResult) -> dict[bytes, IndexEntry]:
    """Check every chunk pack against its index; the chunks found whole."""
    indexes = _indexes(er, result)
    packs = {name.split("/", 1)[1] for name in er.store.list("packs/")}
    held: dict[bytes, IndexEntry] = {}
    for hexname in sorted(packs - set(indexes)):
        result.notes.append(
            f"packs/{hexname} has no index (a push interrupted before writing it, or the "
            "index was deleted); its chunks are not counted as held"
        )
    for hexname, entries in sorted(indexes.items()):
        if hexname not in packs:
            result.problems.append(
                f"packs/{hexname}: missing (its index names {len(entries)} chunks)"
            )
            continue
        try:
            _check_pack(er, hexname, entries, result)
        except (RemoteTampered, ChunkCorrupt) as exc:
            result.problems.append(f"packs/{hexname}: damaged: {_why(exc)}")
            continue
        except ObjectMissing:
            result.problems.append(f"packs/{hexname}: missing")
            continue
        for entry in entries:
            held.setdefault(entry.chunk_id, entry)
    return held


def _runs(entries: list[IndexEntry]) -> Iterator[list[IndexEntry]]:
    run: list[IndexEntry] = []
    for e in entries:
        if run and e.offset + e.length - run[0].offset > READ_RUN:
            yield run
            run = []
        run.append(e)
    if run:
        yield run


def _check_pack(
    er: EncryptedRemote, hexname: str, entries: list[IndexEntry], result: FsckResult
) -> None:
    name = f"packs/{hexname}"
    head = er.store.read(name, 0, HEAD.size)
    if head != er.sealer.pack_head:
        raise er.sealer.damaged(name, "not a version 1 chunk pack")
    at = HEAD.size
    for e in entries:
        if e.offset != at:
            raise er.sealer.damaged(name, "its index does not lay its records end to end")
        at += e.length
    for run in _runs(entries):
        start = run[0].offset
        size = run[-1].offset + run[-1].length - start
        blob = memoryview(er.store.read(name, start, size))
        if len(blob) != size:
            raise er.sealer.damaged(name, "shorter than its index says")
        for e in run:
            sealed = blob[e.offset - start : e.offset - start + e.length]
            compression, payload = er.sealer.open_record(name, e.position, sealed, e)
            codec.decode(compression, cast(bytes, payload), e.raw_len, e.chunk_id, name)
            result.chunks += 1
            result.chunk_bytes += e.raw_len
    ends = sorted(set(er.sealer.stored_lens(at)))
    while True:  # the padding, read in bounded pieces, must end at one of its padded lengths
        end = next(e for e in ends if e >= at)
        want = min(end - at, READ_RUN)
        tail = er.store.read(name, at, want + 1)
        if any(tail):
            raise er.sealer.damaged(name, "its padding is not zero bytes up to its padded length")
        at += len(tail)
        if at == end:
            return
        if (at < end and len(tail) < want) or at > ends[-1]:
            raise er.sealer.damaged(name, "it does not end at its padded length")


def _check_history(
    repo: Repository,
    er: EncryptedRemote,
    held: dict[bytes, IndexEntry],
    result: FsckResult,
    live: set[bytes] | None = None,
) -> BranchRecord | None:
    """Check the history ``refs/main`` names (its record; None if it does not open);
    every chunk a manifest names goes into ``live``."""
    try:
        _raw, record = er.read_branch()
    except DamagedRepository as exc:
        result.problems.append(f"refs/main: {_why(exc)}")
        return None
    if record.head is None:
        return record
    with ExitStack() as stack:
        opened: list[SealedIncoming] = []
        for hexname, _tip in record.git_packs:
            where = f"git/{hexname}"
            try:
                incoming = SealedIncoming(repo)
                stack.callback(incoming.discard)
                incoming.load(open_git_pack(er, hexname))
                opened.append(incoming)
            except ObjectMissing:
                result.problems.append(f"{where}: missing (named by refs/main)")
            except (RemoteTampered, ProtocolError) as exc:
                result.problems.append(f"{where}: damaged: {_why(exc)}")

        def find(oid: bytes) -> GitObject | None:
            for incoming in opened:
                try:
                    obj = incoming.find(oid)
                except ProtocolError:
                    obj = None
                if obj is not None:
                    return obj
            return repo.gitdb.find(oid) if repo.gitdb.has(oid) else None

        _walk(find, record.head, held, result, set() if live is None else live)
    er.remember(record)
    return record


def reachable(
    repo: Repository, er: EncryptedRemote, result: FsckResult
) -> tuple[dict[str, list[IndexEntry]], BranchRecord | None, set[bytes]]:
    """What ``vsync gc --remote`` needs, reading no chunk pack: every index that
    opens (its name, its entries), the branch record, and the chunks its history
    reaches. A chunk whose index names a pack that is missing is not held (the walk
    reports it). Problems go to ``result``."""
    indexes = _indexes(er, result)
    packs = {name.split("/", 1)[1] for name in er.store.list("packs/")}
    held: dict[bytes, IndexEntry] = {}
    for hexname, entries in sorted(indexes.items()):
        if hexname not in packs:
            result.problems.append(f"packs/{hexname}: missing (its index names chunks)")
            continue
        for entry in entries:
            held.setdefault(entry.chunk_id, entry)
    live: set[bytes] = set()
    record = _check_history(repo, er, held, result, live)
    return indexes, record, live


def _walk(
    get: Callable[[bytes], GitObject | None],
    head: bytes,
    held: dict[bytes, IndexEntry],
    result: FsckResult,
    live: set[bytes],
) -> None:
    commits, trees = [head], []
    seen: set[bytes] = set()
    missing_chunks: set[bytes] = set()
    while commits:
        cid = commits.pop()
        if cid in seen:
            continue
        seen.add(cid)
        obj = get(cid)
        if not isinstance(obj, Commit):
            result.problems.append(f"commit {cid.decode()}: missing from the remote's git packs")
            continue
        result.commits += 1
        trees.append(obj.tree)
        commits.extend(obj.parents)
    while trees:
        tid = trees.pop()
        if tid in seen:
            continue
        seen.add(tid)
        tree = get(tid)
        if not isinstance(tree, Tree):
            result.problems.append(f"tree {tid.decode()}: missing from the remote's git packs")
            continue
        for _name, mode, oid in tree.items:
            if mode == MODE_TREE:
                trees.append(oid)
                continue
            if mode == MODE_LINK or oid in seen:
                continue
            seen.add(oid)
            blob = get(oid)
            if not isinstance(blob, Blob):
                result.problems.append(
                    f"manifest {oid.decode()}: missing from the remote's git packs"
                )
                continue
            try:
                manifest = Manifest.from_bytes(blob.data, oid.decode())
            except DamagedRepository as exc:
                result.problems.append(f"manifest {oid.decode()}: damaged: {exc}")
                continue
            result.files += 1
            for chunk_id, _length in manifest.chunks:
                live.add(chunk_id)
                if chunk_id not in held and chunk_id not in missing_chunks:
                    missing_chunks.add(chunk_id)
                    result.problems.append(
                        f"chunk {chunk_id.hex()}: missing (a manifest names it; no index of "
                        "the remote holds it whole)"
                    )
