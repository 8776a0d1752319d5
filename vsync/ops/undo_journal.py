"""The folder journal: what a checkout replaced, so ``vsync undo`` can put it back.

A checkout leaves the branch where it is, so the branch's reflog cannot say
what the folder held before one. :func:`checkout_recorded` (what ``vsync
checkout`` runs) therefore records it first, as an entry of a journal kept
on the local ref ``refs/vsync/undo`` (never advertised to a remote). Each
entry is a commit:

- tree: the folder as it was before the action. Only what a checkout can
  touch is recorded: every working file at a path HEAD or the target holds,
  every file whose content is already in history (an earlier checkout left
  it), and every file standing where the target needs a folder. Untracked
  files recorded nowhere are never touched by a checkout, so they are left
  out (recording them would make later checkouts treat them as recorded).
- parents: the previous entry (none for the first), then for a checkout the
  commit checked out (so gc keeps it).
- headers: ``vsync-previous``, the previous entry (absent for the first);
  ``vsync-action`` (``checkout``, ``undo-checkout``,
  ``redo-checkout``); ``vsync-branch-log`` N, the number of lines the
  branch's reflog had then, which places the entry after reflog line N-1 and
  before line N; ``vsync-entry``: for undo/redo, the checkout entry it acts on.
- message: one line, e.g. ``checkout: HEAD~2`` or ``undo: checkout HEAD~2``.

The ref moves by compare-and-swap with a reflog line, so every entry and the
content it records stay reachable: gc keeps them and fsck verifies them, and
``vsync restore PATH --source <entry>`` can bring back a file a checkout
replaced.

Content a checkout would overwrite that is in no commit (an uncommitted
edit) makes the checkout refuse unless ``--force``; with ``--force`` that
content is stored and the entry written *before* the checkout runs, so
nothing is lost even if it is killed half way. Without it the entry is
written after the checkout succeeded (everything it replaced was recorded).
"""

from __future__ import annotations

from dataclasses import dataclass

from vsync.errors import StoppedError
from vsync.model.folder_snapshot import WorkingState, read_working
from vsync.model.gitdb import Commit, RawObject, ReflogLine
from vsync.model.repository import BRANCH, Repository
from vsync.model.revisions import resolve
from vsync.model.snapshot import FlatMap, build_tree, flatten_commit
from vsync.ops.checkout import CheckoutResult, Warn, checkout_flat
from vsync.ops.commit import make_commit

JOURNAL = b"refs/vsync/undo"
ACTION = b"vsync-action"
BRANCH_LOG = b"vsync-branch-log"
ENTRY = b"vsync-entry"
PREVIOUS = b"vsync-previous"
ACTIONS = ("checkout", "undo-checkout", "redo-checkout")


@dataclass(frozen=True)
class JournalEntry:
    commit_id: bytes
    action: str  # one of ACTIONS
    target: bytes  # the commit the checkout put in the folder
    checkout_entry: bytes  # the checkout entry this one acts on (itself for a checkout)
    folder_tree: bytes  # the folder before that checkout
    branch_log: int
    time: int
    message: str
    seq: int  # position in the journal, 0 = oldest


def branch_reflog(repo: Repository) -> list[ReflogLine]:
    """The branch's reflog, one item per line (a TornReflogLine for one that cannot be
    read, a torn append), so positions stay the line numbers."""
    return repo.gitdb.reflog(BRANCH)


def read_journal(repo: Repository) -> list[JournalEntry]:
    """Every journal entry, oldest first; entries vsync cannot read are skipped."""
    db = repo.gitdb
    tip = db.ref(JOURNAL)
    chain: list[Commit] = []
    seen: set[bytes] = set()
    while tip is not None and tip not in seen:
        seen.add(tip)
        c = db.commit(tip)
        chain.append(c)
        tip = c.header(PREVIOUS)
    out: list[JournalEntry] = []
    for seq, c in enumerate(reversed(chain)):
        action = (c.header(ACTION) or b"").decode("ascii", "replace")
        count = c.header(BRANCH_LOG) or b""
        if action not in ACTIONS or not count.isdigit():
            continue
        if action == "checkout":
            if not c.parents:
                continue
            checkout_entry, target = c.id, c.parents[-1]
            folder_tree = c.tree
        else:
            checkout_entry = c.header(ENTRY) or b""
            if len(checkout_entry) != 40:
                continue
            first = db.commit(checkout_entry)
            target, folder_tree = first.parents[-1], first.tree
        message = c.message.decode("utf-8", "replace").strip().splitlines()
        out.append(
            JournalEntry(
                c.id,
                action,
                target,
                checkout_entry,
                folder_tree,
                int(count),
                c.commit_time,
                message[0] if message else action,
                seq,
            )
        )
    return out


def append(
    repo: Repository,
    action: str,
    tree: bytes,
    message: str,
    target: bytes | None = None,
    checkout_entry: bytes | None = None,
    objects: list[RawObject] | None = None,
) -> bytes:
    """Write one journal entry (and ``objects`` it needs) and move the journal ref to it."""
    db = repo.gitdb
    previous = db.ref(JOURNAL)
    parents = ([previous] if previous else []) + ([target] if target else [])
    headers = [
        (ACTION, action.encode("ascii")),
        (BRANCH_LOG, str(len(branch_reflog(repo))).encode("ascii")),
    ]
    if previous is not None:
        headers.append((PREVIOUS, previous))
    if checkout_entry is not None:
        headers.append((ENTRY, checkout_entry))
    c = make_commit(repo, tree, parents, message, headers)
    db.add_missing([*(objects or []), c])
    if not repo.swap_ref(JOURNAL, previous, c.id, message):
        raise StoppedError("the undo journal changed while this command ran; retry")
    return c.id


# -- checkout, recorded ------------------------------------------------------------------


def _folder_before(
    repo: Repository, target: FlatMap, warn: Warn
) -> tuple[FlatMap, list[str], WorkingState]:
    """What a checkout to ``target`` can touch, as the folder holds it now; unrecorded
    paths; the whole folder as read (the checkout's plan starts from it)."""
    db = repo.gitdb
    head = flatten_commit(repo.gitdb, repo.head())
    folders: set[str] = set()  # every folder the target needs
    for path in target:
        while "/" in path:
            path = path.rsplit("/", 1)[0]
            if path in folders:
                break
            folders.add(path)
    with repo.ingester() as ingester:
        state = read_working(repo, ingester, warn)
    # Every file of the folder is asked about: one presence set, not a pack lookup
    # per file (20,000 files: 0.4 s of a checkout's time went there).
    stored = db.presence(len(state.flat))
    before: FlatMap = {}
    unrecorded: list[str] = []
    for path, entry in state.flat.items():
        recorded = entry[1] in stored
        if path in head or path in target or path in folders or recorded:
            before[path] = entry
            if not recorded:
                unrecorded.append(path)
    return before, sorted(unrecorded), state


def _store(repo: Repository, before: FlatMap, paths: list[str], warn: Warn) -> list[RawObject]:
    """Store the content of ``paths`` (chunks now, manifests returned); updates ``before``."""
    with (
        repo.ingester() as ingester,
        repo.chunks.writer() as w,
    ):
        # A long list of prefixes costs more to match than a whole scan costs to walk.
        prefixes = paths if len(paths) <= 64 else None
        state = read_working(repo, ingester, warn, w, prefixes=prefixes)
    wanted = set(paths)
    for path in paths:
        if path in state.flat:
            before[path] = state.flat[path]
        else:
            before.pop(path, None)  # gone meanwhile: nothing to keep
    return [o for o in state.new_objects if o.id in {before[p][1] for p in wanted if p in before}]


def checkout_recorded(
    repo: Repository, rev: str, force: bool, warn: Warn, commit_id: bytes | None = None
) -> CheckoutResult:
    """``vsync checkout``: record what the folder holds, then check ``rev`` out.

    ``commit_id`` (from ``--at``) is used instead of resolving ``rev``, which
    then only labels the journal entry.
    """
    repo.require_worktree()
    target_id = commit_id if commit_id is not None else resolve(repo, rev)
    target = flatten_commit(repo.gitdb, target_id)
    message = f"checkout: {rev}"
    with repo.lock(exclusive=True):
        before, unrecorded, working = _folder_before(repo, target, warn)
        if unrecorded and force:
            objects = _store(repo, before, unrecorded, warn)
            tree_id, trees = build_tree(before)
            append(repo, "checkout", tree_id, message, target_id, objects=[*objects, *trees])
            # _store read those files again: the plan reads the folder afresh too
            return checkout_flat(repo, target_id, target, force, warn)
        # Nothing was written since the folder was read, under the lock still held:
        # the plan starts from that reading instead of walking the folder again.
        result = checkout_flat(repo, target_id, target, force, warn, working)
        if result.written or result.deleted:
            objects = _store(repo, before, unrecorded, warn) if unrecorded else []
            tree_id, trees = build_tree(before)
            append(repo, "checkout", tree_id, message, target_id, objects=[*objects, *trees])
        return result
