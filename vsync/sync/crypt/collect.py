"""``vsync gc --remote NAME``: delete what no branch reaches from an object-store
remote, encrypted or plain (docs/format.md, "Remote gc"), by restic's prune rules
(internal/repository/prune.go): under an exclusive lock (:mod:`.locks`), so no push
runs meanwhile; nothing is deleted when the remote shows any problem.

- reachable: the git packs ``refs/main`` names, and every chunk a manifest of its
  history names (read from the git packs and the indexes: no chunk pack is read);
- a chunk pack none of whose chunks is reachable is deleted, its index first (a
  kill between the two leaves a pack without an index, which the next gc deletes);
- a chunk pack without an index (a push interrupted between the two) is deleted;
- a git pack ``refs/main`` does not name (a push that lost its race, or was killed
  before moving the branch) is deleted;
- a pack with at least one reachable chunk is kept whole: it is not repacked, and
  its unreachable chunks are only counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vsync.errors import DamagedRepository
from vsync.model.repository import Repository
from vsync.ops.fsck import FsckResult
from vsync.store import faults
from vsync.sync.client import SyncOptions
from vsync.sync.crypt.check import reachable
from vsync.sync.crypt.locks import RemoteLock, Unlocked, remove_locks
from vsync.sync.crypt.remote import EncryptedRemote
from vsync.sync.remotes import Remote
from vsync.wording import plural


class RemoteDamaged(DamagedRepository):
    pass


@dataclass
class RemoteGcResult:
    packs_removed: int = 0
    chunks_removed: int = 0
    chunk_bytes_removed: int = 0  # the stored bytes of their records, as the indexes say
    orphan_packs_removed: int = 0  # packs without an index
    git_packs_removed: int = 0
    packs_kept: int = 0
    partly_used: int = 0  # kept packs holding chunks nothing reaches
    unused_kept: int = 0  # those chunks
    notes: list[str] = field(default_factory=list)


def collect_remote(repo: Repository, remote: Remote, opts: SyncOptions) -> RemoteGcResult:
    out = RemoteGcResult()
    with (
        EncryptedRemote(repo, remote, opts) as er,
        RemoteLock(er.store, er.sealer, remote.label, exclusive=True, notes=out.notes) as lock,
    ):
        found = FsckResult()
        indexes, record, live = reachable(repo, er, found)
        out.notes.extend(found.notes)
        if found.problems or record is None:
            problems = found.problems or ["refs/main does not open"]
            raise RemoteDamaged(
                f"{remote.label} shows {plural(len(problems), 'problem')} "
                f"(first: {problems[0]}); gc deleted nothing: run 'vsync fsck --remote'"
            )
        named = {name for name, _tip in record.git_packs}
        doomed: list[str] = []
        for hexname, entries in sorted(indexes.items()):
            unused = [e for e in entries if e.chunk_id not in live]
            if len(unused) < len(entries):
                out.packs_kept += 1
                if unused:
                    out.partly_used += 1
                    out.unused_kept += len(unused)
                continue
            doomed += [f"index/{hexname}", f"packs/{hexname}"]
            out.packs_removed += 1
            out.chunks_removed += len(entries)
            out.chunk_bytes_removed += sum(e.length for e in entries)
        for name in er.store.list("packs/"):
            if name.split("/", 1)[1] not in indexes:
                doomed.append(name)
                out.orphan_packs_removed += 1
        for name in er.store.list("git/"):
            if name.split("/", 1)[1] not in named:
                doomed.append(name)
                out.git_packs_removed += 1
        faults.point("remote-gc-deleting")
        for name in doomed:
            lock.renew()
            er.store.delete(name)
            faults.point("remote-gc-deleted")
    return out


def unlock_remote(
    repo: Repository, remote: Remote, opts: SyncOptions, everything: bool
) -> Unlocked:
    """``vsync gc --remote NAME --remove-locks`` (``--remove-all-locks``: everything)."""
    with EncryptedRemote(repo, remote, opts) as er:
        return remove_locks(er.store, er.sealer, everything)
