"""``vsync undo`` and ``vsync reflog``: take back the last commit, merge, pull or checkout.

What happened, newest first (the *timeline*), comes from two records: the
branch's reflog (every move of ``main``: ``commit: ...``, ``merge: ...``,
``pull: fast-forward from ...``, ``push: received``, ``revert-to: ...``,
``clone: ...`` and the ``undo:``/``redo:`` lines written here) and the folder
journal (:mod:`vsync.ops.undo_journal`: checkouts, which do not move the
branch). ``vsync undo`` acts on the newest event only:

- **commit**: the branch goes back to where it was before (the parent),
  and the folder is left alone, like ``git reset --soft``: the commit's
  changes show as uncommitted again. Undoing the first commit leaves the
  branch with no commit at all (the reflog keeps it).
- **merge, pull, push received, revert-to** (and any other branch move):
  the branch goes back, and every path that differs between the two
  commits is put back as the earlier commit holds it. Only content that is
  recorded may be overwritten (the safety rule of
  :func:`vsync.ops.checkout.apply_snapshot`): an edit made since stops the
  undo with nothing changed (exit 1) unless ``--force``. Edits at other
  paths stay. A clone is the first state of its copy: there is nothing
  before it to go back to.
- **checkout**: the folder is put back as the journal recorded it before
  the checkout (files the checkout wrote that were not there go); the
  branch did not move and does not.
- **undo** (the newest event is an undo): it is reversed (a *redo*): the
  branch, and for folder kinds the folder, go forward again. A redo is
  itself undone by the next ``vsync undo``, so repeated undos toggle.

Every undo and redo is recorded: a branch move with the reflog line
``undo: <kind> <10 hex> (<what>)`` / ``redo: ...`` (by compare-and-swap);
a checkout's in the journal. So the undone state stays reachable (gc keeps
every reflog entry) and ``vsync reflog`` lists it. An undo never runs while
a merge is in progress: ``vsync merge --abort`` is the undo for that.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsync.errors import StoppedError, UncommittedChanges
from vsync.model.gitdb import ReflogEntry, ReflogLine
from vsync.model.repository import Repository
from vsync.model.snapshot import flatten, flatten_commit
from vsync.ops.checkout import Warn, apply_snapshot
from vsync.ops.commit import move_branch
from vsync.ops.fastforward import move_folder
from vsync.ops.merge.integrate import require_no_merge
from vsync.ops.undo_journal import JournalEntry, append, branch_reflog, read_journal

# Branch moves whose undo leaves the folder alone; every other kind moves it too.
SOFT_KINDS = ("commit",)
KNOWN_KINDS = ("commit", "merge", "pull", "push", "clone", "revert-to", "undo", "redo")


@dataclass(frozen=True)
class Event:
    """One thing the timeline records."""

    source: str  # "branch" (a reflog line of main) | "folder" (a journal entry)
    kind: str  # commit merge pull push clone revert-to other | checkout | undo | redo
    acts_on: str  # for undo/redo: the kind of event undone; else the event's own kind
    old: bytes | None  # branch: where main was before; folder: the journal entry
    new: bytes | None  # branch: where main went; folder: the commit checked out
    time: int
    message: str  # the reflog line's message / the journal entry's message
    order: tuple[int, int, int]
    journal: JournalEntry | None = None

    @property
    def detail(self) -> str:
        """The message without its ``kind:`` prefix."""
        return self.message.partition(": ")[2] or self.message


def _kind(message: str) -> tuple[str, str]:
    """(kind, the kind it acts on) for a reflog message."""
    head, sep, rest = message.partition(": ")
    word = head.split(" ", 1)[0]
    if not sep or word not in KNOWN_KINDS:
        return "other", "other"
    if word in ("undo", "redo"):
        acted = rest.split(" ", 1)[0]
        return word, acted if acted else "other"
    return word, word


def _unfinished_moves(lines: list[ReflogLine], now: bytes | None) -> set[int]:
    """The lines of moves a kill stopped: the ref's lock file is renamed over it only
    after the line is appended, so such a line names a ``new`` the branch never held
    (the next move, or the branch now, still starts from the line's ``old``)."""
    out: set[int] = set()
    after = now  # where the branch went next
    for i in range(len(lines) - 1, -1, -1):
        e = lines[i]
        if isinstance(e, ReflogEntry):
            if e.new != after and e.old == after:
                out.add(i)
                continue
            after = e.old
    return out


def timeline(repo: Repository) -> list[Event]:
    """Every recorded event, newest first."""
    events: list[Event] = []
    lines = branch_reflog(repo)
    unfinished = _unfinished_moves(lines, repo.head())
    for i, e in enumerate(lines):
        if not isinstance(e, ReflogEntry) or i in unfinished:
            continue  # a torn line, or a move that never happened
        message = e.message.decode("utf-8", "replace")
        kind, acts_on = _kind(message)
        events.append(Event("branch", kind, acts_on, e.old, e.new, e.time, message, (i, 1, 0)))
    for j in read_journal(repo):
        kind = {"checkout": "checkout", "undo-checkout": "undo", "redo-checkout": "redo"}[j.action]
        order = (j.branch_log, 0, j.seq)
        events.append(
            Event("folder", kind, "checkout", j.commit_id, j.target, j.time, j.message, order, j)
        )
    events.sort(key=lambda ev: ev.order, reverse=True)
    return events


@dataclass
class UndoResult:
    verb: str  # "undo" | "redo"
    kind: str  # what was undone or redone: commit, merge, pull, checkout, ...
    message: str  # the record written, e.g. "undo: commit 1a2b3c4d5e (add notes)"
    branch_to: bytes | None = None
    folder_moved: bool = False
    written: int = 0
    deleted: int = 0


def _refusal(exc: UncommittedChanges, verb: str, kind: str) -> UncommittedChanges:
    return exc.advising(
        "move those edits out of the way (or run 'vsync undo --force' to discard them)",
        before=f"cannot {verb} the {kind}: ",
    )


def _undo_branch(repo: Repository, ev: Event, force: bool, warn: Warn) -> UndoResult:
    head = repo.head()
    if head is not None:
        repo.gitdb.commit(head)  # a damaged tip is repaired, not undone (exit 3)
    if head != ev.new:
        raise StoppedError(
            f"main is at {_short(head)}, not where its reflog's last entry left it "
            f"({_short(ev.new)}); nothing was undone"
        )
    if ev.kind == "undo":
        verb, message = "redo", f"redo: {ev.detail}"
    elif ev.kind == "redo":
        verb, message = "undo", f"undo: {ev.detail}"
    else:
        verb, message = "undo", f"undo: {ev.kind} {_short(ev.new)} ({ev.detail})"
    soft = ev.acts_on in SOFT_KINDS
    if not soft and (ev.old is None or ev.new is None):
        what = "the clone" if ev.acts_on == "clone" else f"this {ev.acts_on}"
        raise StoppedError(f"main had no commit before {what}: there is nothing to go back to")
    result = UndoResult(verb, ev.acts_on, message, ev.old)
    if not soft:
        assert ev.new is not None and ev.old is not None
        try:
            applied = move_folder(repo, ev.new, ev.old, force, warn)
        except UncommittedChanges as exc:
            raise _refusal(exc, verb, ev.acts_on) from None
        result.folder_moved = True
        result.written, result.deleted = len(applied.written), len(applied.deleted)
    move_branch(repo, ev.new, ev.old, message)
    return result


def _undo_checkout(repo: Repository, ev: Event, force: bool, warn: Warn) -> UndoResult:
    entry = ev.journal
    assert entry is not None
    db = repo.gitdb
    label = entry.message.partition(": ")[2]
    label = label.removeprefix("checkout ") if ev.kind in ("undo", "redo") else label
    if ev.kind == "undo":
        verb, action = "redo", "redo-checkout"
        target = flatten_commit(db, entry.target)
    else:
        verb, action = "undo", "undo-checkout"
        target = flatten(db, entry.folder_tree)
    message = f"{verb}: checkout {label}"
    try:
        applied = apply_snapshot(repo, target, [""], force, warn, whole_folder=True)
    except UncommittedChanges as exc:
        raise _refusal(exc, verb, "checkout") from None
    append(repo, action, entry.folder_tree, message, checkout_entry=entry.checkout_entry)
    result = UndoResult(verb, "checkout", message, folder_moved=True)
    result.written, result.deleted = len(applied.written), len(applied.deleted)
    return result


def undo(repo: Repository, warn: Warn, force: bool = False) -> UndoResult:
    """Undo the newest event of the timeline (or redo it, if it is an undo)."""
    repo.require_worktree()
    require_no_merge(repo)
    with repo.lock(exclusive=True):
        events = timeline(repo)
        if not events:
            raise StoppedError("nothing to undo: no commit, merge, pull or checkout is recorded")
        ev = events[0]
        if ev.source == "folder":
            return _undo_checkout(repo, ev, force, warn)
        return _undo_branch(repo, ev, force, warn)


def _short(oid: bytes | None) -> str:
    return oid.decode("ascii")[:10] if oid else "nothing"
