"""Push and fetch through an encrypted remote (docs/format.md, "Branch record").

push: chunk packs (only chunks the remote's indexes lack) and their indexes,
then the git packs of the new history (:mod:`.gitparts`: several of bounded
size, those already stored skipped), then the branch record by
compare-and-swap; a lost race is "pull first" (exit 1). fetch: the branch
record (checked against rollback), then each push's git packs not yet stored,
oldest first, joined into one and validated as any received pack with the
push's commit as the tip, its
chunks read by range from the packs the indexes name, decoded and verified,
and only then added to the store.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

from vsync.errors import DamagedRepository, StoppedError, UsageError
from vsync.model.gitdb import MODE_EXEC, MODE_FILE, Tree
from vsync.model.gitdb.incoming import ReceivedPack
from vsync.model.gitdb.packgen import pack_parts
from vsync.model.gitdb.received import PackRefused
from vsync.model.repository import Repository
from vsync.ops.history_graph import is_ancestor
from vsync.ops.hooks import require_hook_ok
from vsync.store import codec, faults
from vsync.sync.client import REJECTED, SyncOptions, TransferProgress, TransferResult
from vsync.sync.crypt.gitparts import join_parts, part_bytes, pushes, store_parts
from vsync.sync.crypt.locks import RemoteLock
from vsync.sync.crypt.remote import BRANCH_NAME, EncryptedRemote
from vsync.sync.crypt.seal import (
    KIND_BRANCH,
    KIND_INDEX,
    MAX_RECORDS,
    PACK_BODY_BYTES,
    BranchRecord,
    IndexEntry,
)
from vsync.sync.protocol import ProtocolError
from vsync.sync.remotes import Remote
from vsync.sync.transfer import IncomingPack, TransferStats

READ_RUN = 4 * 1024 * 1024  # bytes of adjacent records read at once (a larger record alone)


def _tracking(repo: Repository, remote: Remote) -> bytes | None:
    ref = remote.tracking_ref
    return None if ref is None else repo.gitdb.ref(ref)


def _set_tracking(repo: Repository, remote: Remote, value: bytes | None, why: str) -> None:
    ref = remote.tracking_ref
    if ref is None or value is None:
        return
    old = _tracking(repo, remote)
    if old != value:
        repo.swap_ref(ref, old, value, why)


# -- push ----------------------------------------------------------------------------


def encrypted_push(repo: Repository, remote: Remote, opts: SyncOptions) -> TransferResult:
    local = repo.head()
    if local is None:
        raise UsageError("nothing to push: there are no commits yet")
    require_hook_ok(repo, "pre-push", remote.label, str(remote.url))
    with (
        EncryptedRemote(repo, remote, opts) as er,
        RemoteLock(er.store, er.sealer, remote.label, exclusive=False) as lock,
    ):
        return _push(repo, remote, er, local, lock, opts.progress)


def _push(
    repo: Repository,
    remote: Remote,
    er: EncryptedRemote,
    local: bytes,
    lock: RemoteLock,
    progress: TransferProgress | None = None,
) -> TransferResult:
    """The push, under a shared lock taken before anything is read: ``vsync gc
    --remote`` cannot delete a pack this push counts as held, nor what it writes
    before its branch record names it."""
    t0 = time.monotonic()
    raw, record = er.read_branch()
    result = TransferResult(remote.label, old=record.head, new=local)
    if record.head == local:
        result.up_to_date = True
    else:
        if record.head is not None and (
            not repo.gitdb.has(record.head) or not is_ancestor(repo, record.head, local)
        ):
            raise StoppedError(REJECTED)
        haves = [record.head] if record.head is not None else []
        sent, parts = pack_parts(repo.gitdb, [local], haves, part_bytes())
        held = er.held_chunks()
        wanted = _new_chunks(repo, sent, held)
        if progress is not None:
            progress.phase(f"Sending to {remote.label}", len(wanted))
        result.stats = _send_chunks(repo, er, wanted, lock.renew, progress)
        if progress is not None:
            progress.done()
        names, total = store_parts(er, parts, lock.renew)
        result.stats.objects, result.stats.pack_bytes = len(sent), total
        faults.point("encrypted-push-before-branch")
        pushed = tuple((name, local) for name in names)
        new = BranchRecord(record.counter + 1, local, (*record.git_packs, *pushed))
        sealed = er.sealer.seal(KIND_BRANCH, BRANCH_NAME, new.encode())
        lock.renew(force=True)  # still held: nothing this push relies on was collected
        if not er.store.compare_and_swap(BRANCH_NAME, raw, sealed):
            raise StoppedError(REJECTED)
        record = new
    er.remember(record)
    _set_tracking(repo, remote, local, f"push: to {remote.label}")
    result.wire_sent, result.wire_received = er.store.sent, er.store.received
    result.seconds = time.monotonic() - t0
    return result


def _new_chunks(repo: Repository, sent: list[bytes], held: dict[bytes, IndexEntry]) -> list[bytes]:
    """The chunks the manifests among ``sent`` name that the remote does not hold."""
    db = repo.gitdb
    sent_set = set(sent)
    manifests: set[bytes] = set()
    wanted: dict[bytes, None] = {}
    for oid in sent:
        obj = db.find(oid)
        if not isinstance(obj, Tree):
            continue
        for _name, mode, item in obj.items:
            if mode in (MODE_FILE, MODE_EXEC) and item in sent_set and item not in manifests:
                manifests.add(item)
                for cid, _length in db.manifest(item, f"manifest {item.decode()}").chunks:
                    if cid not in held:
                        wanted[cid] = None
    return list(wanted)


def _store_pack(er: EncryptedRemote, name: str, pack: bytes | bytearray, index: bytes) -> None:
    er.store.write_if_absent(f"packs/{name}", pack)
    faults.point("encrypted-push-before-index")
    er.store.write_if_absent(f"index/{name}", index)


def _send_chunks(
    repo: Repository,
    er: EncryptedRemote,
    wanted: list[bytes],
    renew: Callable[[], None],
    progress: TransferProgress | None = None,
) -> TransferStats:
    """Write ``wanted`` as sealed chunk packs, each followed by its index.

    Other threads store packs (write, fsync: the disk or the network) while this
    one reads and seals the next, so sealing costs no time beside the writing:
    as many threads as the store takes concurrent writes (``parallel_writes``:
    a folder takes two, so that one pack's write overlaps the other's fsync; S3
    four; one otherwise). While a pack is sealed, at most ``workers - 1`` (at
    least one) others are being stored, so memory stays bounded: that many
    sealed packs, the one being sealed and the records it is sealed from
    (16 MiB each; 48 MiB on a folder). Every pack
    is stored, each before its index, when this returns. ``progress`` counts a
    pack's chunks once it is stored.
    """
    stats = TransferStats()
    records: list[tuple[bytes, int, int, bytes]] = []
    body = 0
    workers = max(1, int(getattr(er.store.inner, "parallel_writes", 1)))
    while_sealing = max(1, workers - 1)  # uploads that may run while a pack is sealed
    uploads: deque[tuple[Future[None], int, int]] = deque()  # (upload, chunks, bytes) in order
    stored = [0, 0]  # chunks and bytes of the packs stored so far

    def wait_first() -> None:
        upload, chunks, nbytes = uploads.popleft()
        upload.result()
        stored[0] += chunks
        stored[1] += nbytes
        if progress is not None:
            progress.tick(stored[0], stored[1])

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vsync-seal") as pool:

        def flush(full: bool = False) -> None:
            nonlocal records, body
            if not records:
                return
            while len(uploads) > while_sealing:
                wait_first()
            name = er.sealer.name_id(b"chunk-pack\0", *(r[0] for r in records))
            pack, index = er.sealer.seal_pack(f"packs/{name}", records, full)
            sealed_index = er.sealer.seal(KIND_INDEX, f"index/{name}", index)
            counts = (len(records), sum(len(r[3]) for r in records))
            records, body = [], 0
            renew()
            while len(uploads) >= workers:
                wait_first()
            uploads.append((pool.submit(_store_pack, er, name, pack, sealed_index), *counts))

        try:
            for start in range(0, len(wanted), 256):
                for s in repo.chunks.read_stored_many(wanted[start : start + 256]):
                    if records and (
                        len(records) == MAX_RECORDS or body + len(s.payload) > PACK_BODY_BYTES
                    ):
                        flush(full=True)
                    records.append((s.chunk_id, s.raw_len, s.compression, s.payload))
                    body += len(s.payload)
                    stats.chunks += 1
                    stats.chunk_bytes += len(s.payload)
            flush()
            while uploads:
                wait_first()
        finally:
            for upload, _chunks, _nbytes in uploads:
                upload.cancel()
    return stats


# -- fetch ---------------------------------------------------------------------------


class SealedIncoming(IncomingPack):
    """A git pack opened from the encrypted remote, kept aside until its chunks are in."""

    def load(self, data: bytes) -> None:
        with open(self.pack_path, "r+b") as f:
            f.write(data)
        self._open(len(data))

    def load_push(self, er: EncryptedRemote, names: list[str]) -> None:
        """The git packs ``names`` of one push, joined into one (:func:`join_parts`)."""
        with open(self.pack_path, "r+b") as f:
            length = join_parts(er, names, f)
        self._open(length)

    def _open(self, length: int) -> None:
        self.bytes = length
        try:
            self._pack = ReceivedPack.open(self.repo.gitdb, str(self.base))
        except PackRefused as exc:
            raise ProtocolError(str(exc)) from None
        self.objects = self._pack.objects
        self.declared = (self.objects, self.bytes)


def encrypted_fetch(repo: Repository, remote: Remote, opts: SyncOptions) -> TransferResult:
    repo.chunks.recover_temp_packs()
    with EncryptedRemote(repo, remote, opts) as er:
        return _fetch(repo, remote, er, opts.progress)


def _fetch(
    repo: Repository,
    remote: Remote,
    er: EncryptedRemote,
    progress: TransferProgress | None = None,
) -> TransferResult:
    t0 = time.monotonic()
    _raw, record = er.read_branch()
    result = TransferResult(remote.label, old=_tracking(repo, remote), new=record.head)
    if record.head is None or repo.gitdb.has(record.head):
        result.up_to_date = True
    else:
        held = er.held_chunks()
        for tip, names in pushes(record.git_packs):
            if repo.gitdb.has(tip):
                continue
            incoming = SealedIncoming(repo)
            try:
                incoming.load_push(er, names)
                incoming.validate([tip])
                with incoming.missing_chunks() as wanted:
                    if progress is not None:
                        progress.phase(f"Receiving from {remote.label}", len(wanted))
                    stats = _fetch_chunks(repo, er, wanted, held, progress)
                    if progress is not None:
                        progress.done()
                with repo.lock(exclusive=False):
                    incoming.commit()
                stats.objects, stats.pack_bytes = incoming.objects, incoming.bytes
                result.stats.add(stats)
            finally:
                incoming.discard()
        if not repo.gitdb.has(record.head):
            raise er.sealer.damaged(BRANCH_NAME, "its commit is in none of its git packs")
    er.remember(record)
    _set_tracking(repo, remote, record.head, f"fetch: from {remote.label}")
    result.wire_sent, result.wire_received = er.store.sent, er.store.received
    result.seconds = time.monotonic() - t0
    return result


def _runs(entries: list[IndexEntry]) -> Iterator[list[IndexEntry]]:
    """``entries`` of one pack in offset order, cut into runs of adjacent records."""
    run: list[IndexEntry] = []
    for e in sorted(entries, key=lambda e: e.offset):
        if run and (
            run[-1].offset + run[-1].length != e.offset
            or e.offset + e.length - run[0].offset > READ_RUN
        ):
            yield run
            run = []
        run.append(e)
    if run:
        yield run


def _fetch_chunks(
    repo: Repository,
    er: EncryptedRemote,
    wanted: Iterable[tuple[bytes, int]],
    held: dict[bytes, IndexEntry],
    progress: TransferProgress | None = None,
) -> TransferStats:
    stats = TransferStats()
    by_pack: dict[str, list[IndexEntry]] = defaultdict(list)
    lengths: dict[bytes, int] = {}
    for cid, length in wanted:
        entry = held.get(cid)
        if entry is None:
            raise DamagedRepository(
                f"the {er.sealer.kind} remote {er.remote.label} lacks chunk {cid.hex()[:16]}, "
                "which its history names; nothing was changed"
            )
        lengths[cid] = length
        by_pack[entry.pack].append(entry)
    with repo.chunks.writer() as writer:
        for pack, entries in sorted(by_pack.items()):
            name = f"packs/{pack}"
            for run in _runs(entries):
                start = run[0].offset
                blob = memoryview(
                    er.store.read(name, start, run[-1].offset + run[-1].length - start)
                )
                records = []
                for e in run:
                    sealed = blob[e.offset - start : e.offset - start + e.length]
                    compression, payload = er.sealer.open_record(name, e.position, sealed, e)
                    if e.raw_len != lengths[e.chunk_id] or e.raw_len > codec.MAX_CHUNK_BYTES:
                        raise er.sealer.damaged(name, "a chunk's length differs from its manifest")
                    codec.decode(compression, cast(bytes, payload), e.raw_len, e.chunk_id, name)
                    records.append((e.chunk_id, e.raw_len, compression, payload))
                    stats.chunks += 1
                    stats.chunk_bytes += len(payload)
                writer.add_many(records)
                if progress is not None:
                    progress.tick(stats.chunks, stats.chunk_bytes)
    return stats
