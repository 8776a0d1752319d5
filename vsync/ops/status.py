"""``vsync status``: the working folder against the last commit.

Codes follow git's porcelain v1 (XY PATH). With no staging area, X is blank
outside a merge: ``??`` new file (the next commit adds it), `` M`` modified
(content or exec bit), `` T`` type changed (file <-> symlink), `` D`` deleted.
During a merge, X carries what the merge already changed and unresolved
paths carry git's unmerged codes (UU, AA, DU, UD, DD, AU, UA).

Paths held back from a ``.git`` folder (:mod:`vsync.model.holdback`) count
as unchanged; they are listed apart (``held``; ``!H PATH`` in porcelain).
"""

from __future__ import annotations

import os
from binascii import unhexlify
from collections.abc import Callable
from typing import TYPE_CHECKING

from vsync.model.gitdb.headref import loose_ref
from vsync.model.ignore import Ignore
from vsync.model.repository import BRANCH, HELD_FILE, MERGE_STATE, Repository
from vsync.model.statcache import StatCache

if TYPE_CHECKING:
    from vsync.model.folder_snapshot import ProgressSink
    from vsync.model.snapshot import FlatMap
    from vsync.ops.merge.state import MergeState


class StatusResult:
    """What status found. (A plain class: loading dataclasses costs a clean status
    more than its whole run.)"""

    __slots__ = ("entries", "head", "held", "merge", "skipped", "unreadable")

    def __init__(
        self,
        entries: list[tuple[str, str]] | None = None,  # (code, path)
        head: bytes | None = None,
        skipped: list[str] | None = None,
        merge: MergeState | None = None,
        held: list[str] | None = None,  # held back (holdback), unchanged since
        unreadable: list[str] | None = None,  # skipped: could not be read
    ) -> None:
        self.entries = [] if entries is None else entries
        self.head = head
        self.skipped = [] if skipped is None else skipped
        self.merge = merge
        self.held = [] if held is None else held
        self.unreadable = [] if unreadable is None else unreadable

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"StatusResult({fields})"

    @property
    def clean(self) -> bool:
        return not self.entries and self.merge is None


def compare(old: FlatMap, new: FlatMap) -> list[tuple[str, str]]:
    """Status codes for ``new`` (the working folder) against ``old`` (a commit)."""
    from vsync.model.gitdb.types import MODE_LINK  # (a clean status never loads it)

    out: list[tuple[str, str]] = []
    for path in sorted(old.keys() | new.keys()):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        if a is None:
            out.append(("??", path))
        elif b is None:
            out.append((" D", path))
        elif (a[0] == MODE_LINK) != (b[0] == MODE_LINK):
            out.append((" T", path))
        else:
            out.append((" M", path))
    return out


def clean_by_stamp(repo: Repository, cache: StatCache) -> StatusResult | None:
    """A clean status found without reading a git object, or None if it cannot be.

    It can when the stat cache's clean stamp names the commit the branch's loose
    ref holds and the ignore rules it was made with, no merge is in progress, no
    path is held back, and the folder is exactly as the cache's entries describe
    (:func:`~vsync.model.clean_walk.folder_as_cached`). A damaged commit or tree
    behind an unmoved branch then goes unnoticed here; ``vsync fsck`` finds it.
    """
    stamp = cache.stamp
    if stamp is None:
        return None
    head = loose_ref(repo.control / "git", BRANCH)
    if head is None or unhexlify(head) != stamp[0]:
        return None
    if os.path.lexists(repo.control / MERGE_STATE) or os.path.lexists(repo.control / HELD_FILE):
        return None
    root = repo.require_worktree()
    ignore = Ignore(root)
    if ignore.fingerprint != stamp[2]:
        return None
    from vsync.model.clean_walk import folder_as_cached

    if not folder_as_cached(root, cache.base(), ignore):
        return None
    return StatusResult([], head)


def status(
    repo: Repository,
    warn: Callable[[str], None],
    progress: ProgressSink | None = None,
) -> StatusResult:
    from vsync.ops.monitored import ask_watcher, monitored_status

    cache = StatCache(repo.control)
    asked = ask_watcher(repo, cache)  # a running watcher: what changed (fsmonitor)
    quick = monitored_status(repo, cache, asked, warn)
    if quick is None:
        quick = clean_by_stamp(repo, cache)
        if quick is not None and asked.token is not None:
            cache.set_mark(asked.token, quick.head)  # the walk found the stamp's tree
            cache.flush()
    if quick is not None:
        return quick
    warned: list[str] = []
    tell = warn

    def noted(message: str) -> None:
        warned.append(message)
        tell(message)

    from vsync.model.folder_snapshot import keep_unreadable, read_working
    from vsync.model.snapshot import commit_tree, flatten, tree_id_of
    from vsync.ops.merge.state import MergeState, status_codes

    head = repo.head()
    head_tree = None if head is None else commit_tree(repo.gitdb, head)
    with repo.ingester() as ingester:
        state = read_working(repo, ingester, noted, None, progress, flush=False, cache=cache)
    base = None
    if head_tree is not None and state.unreadable:
        base = flatten(repo.gitdb, head_tree)  # what it cannot read counts as unchanged
        keep_unreadable(state.flat, state.unreadable, base)
    if head_tree is not None and not state.skipped and tree_id_of(state.flat) == head_tree:
        entries: list[tuple[str, str]] = []  # same tree: nothing changed
    else:
        for path in state.skipped:  # kept changing while read: certainly not clean
            state.flat[path] = (0, b"")
        if base is None:
            base = {} if head_tree is None else flatten(repo.gitdb, head_tree)
        entries = compare(base, state.flat)
    if any(code == "??" for code, _ in entries):
        from vsync.model.portability import problems

        new = {path for code, path in entries if code == "??"}
        for path, why in problems(state.flat.keys(), new.__contains__):
            tell(f"'{path}' {why}")
    merge = MergeState.load(repo)
    if head is not None and head_tree is not None and not entries and state.stampable:
        cache.set_stamp(clean_stamp(head, head_tree, state.ignore_fingerprint))
    if asked.token is not None and state.stampable and not warned:
        # Taken before the read: every later change is reported. Clean: a clean point.
        clean = head if head is not None and not entries and merge is None else None
        cache.set_mark(asked.token, clean)
    cache.flush()
    if merge is not None:
        unmerged = dict((path, code) for code, path in status_codes(merge))
        entries = [(c, p) for c, p in entries if p not in unmerged]
        entries.extend((code, path) for path, code in unmerged.items())
        entries.sort(key=lambda e: e[1])
    unreadable = sorted(state.unreadable)
    return StatusResult(entries, head, state.skipped, merge, sorted(state.held), unreadable)


def clean_stamp(commit: bytes, tree: bytes, ignore_fp: bytes) -> tuple[bytes, bytes, bytes]:
    """The stat cache's clean stamp for a folder whose files make ``tree``, ``commit``'s,
    read under the ignore rules of fingerprint ``ignore_fp``."""
    return unhexlify(commit), unhexlify(tree), ignore_fp
