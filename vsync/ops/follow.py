"""A file's history across renames (``log PATH --follow``) and deleted files (``log --deleted``).

**Following.** Commits are walked as :func:`vsync.ops.log.walk` walks them
(every parent, newest first), each carrying the name the file has in it
(the given PATH at the start). A commit is listed when the file, under that
name, differs from its first parent's version (added, changed, renamed,
deleted, exec bit). Where the name does not exist in a parent but the
commit added it, the commit is searched for a rename: a path the parent
has and the commit deleted, whose content matches by the merge's rule
(:func:`vsync.ops.merge.renames.similarity`: identical, or at least 50 %
alike); the best match (ties: the same file name, then path order) is the
name in that parent and further back. Only files are followed (a symlink
is a file here); a folder is refused.

**Deleted files.** Every path deleted over time: a commit deleted a path
when its first parent has it and the commit does not. A merge counts only
for paths every one of its parents still has (a deletion the merge brought
in from the other side is listed at that side's own commit), so a deletion
is listed once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from vsync.errors import UsageError
from vsync.model.folder_scan import MODE_LINK, MODE_TREE
from vsync.model.gitdb import MODE_GITLINK, ObjectReader
from vsync.model.paths import check_tree_path, is_under
from vsync.model.repository import Repository
from vsync.model.snapshot import Entry, lookup
from vsync.ops.log import LogEntry, entry_of, newest_first
from vsync.ops.merge.content import RepoContent
from vsync.ops.merge.renames import THRESHOLD, similarity


@dataclass(frozen=True)
class FollowedChange:
    """One commit that changed the followed file, and the file as that commit holds it."""

    entry: LogEntry
    path: str  # the file's name in this commit (its former name when deleted here)
    size: int | None  # bytes (a symlink: its target's length); None when deleted here
    is_link: bool
    renamed_from: str | None  # set when this commit renamed it (from that name)


@dataclass(frozen=True)
class Deletion:
    entry: LogEntry  # the deleting commit
    path: str
    size: int  # at deletion (a symlink: its target's length)
    is_link: bool


def _file(store: ObjectReader, tree: bytes, path: str) -> Entry | None:
    mode, oid = lookup(store, tree, path)
    if mode is None or mode in (MODE_TREE, MODE_GITLINK):
        return None
    return mode, oid


def _deleted(store: ObjectReader, old_tree: bytes, new_tree: bytes) -> list[tuple[str, Entry]]:
    out: list[tuple[str, Entry]] = []
    for change in store.tree_changes(old_tree, new_tree):
        old = change.old
        if change.kind != "delete" or old is None or old.mode == MODE_GITLINK:
            continue
        out.append((check_tree_path(old.path), (old.mode, old.id)))
    return out


class _Follower:
    def __init__(self, repo: Repository, content: RepoContent) -> None:
        self.store = repo.gitdb
        self.content = content

    def size(self, entry: Entry) -> int:
        return self.content.size(entry)

    def rename_source(self, parent_tree: bytes, tree: bytes, path: str, now: Entry) -> str | None:
        """The name ``path`` had in the parent, if this commit renamed it there."""
        best: tuple[float, int, str] | None = None
        name = path.rsplit("/", 1)[-1]
        for old_path, old in _deleted(self.store, parent_tree, tree):
            score = similarity(old, now, self.content)
            if score < THRESHOLD:
                continue
            key = (-score, 0 if old_path.rsplit("/", 1)[-1] == name else 1, old_path)
            if best is None or key < best:
                best = key
        return best[2] if best is not None else None


def follow(
    repo: Repository, start: bytes, path: str, limit: int | None = None
) -> Iterator[FollowedChange]:
    """The commits that changed the file ``path`` (as ``start`` names it), across renames."""
    store = repo.gitdb
    first = store.commit(start)
    mode, _oid = lookup(store, first.tree, path)
    if mode == MODE_TREE:
        raise UsageError(f"--follow follows one file; '{path}' is a folder")
    with repo.ingester() as ingester:
        f = _Follower(repo, RepoContent(repo, ingester))
        names = {start: path}  # a parent comes after the child that names it
        shown = 0
        for c in newest_first(store, start):
            if limit is not None and shown >= limit:
                return
            name = names[c.id]
            now = _file(store, c.tree, name)
            parent_names: list[str] = []
            renamed: str | None = None
            for i, pid in enumerate(c.parents):
                ptree = store.commit(pid).tree
                pname = name
                if now is not None and _file(store, ptree, name) is None:
                    pname = f.rename_source(ptree, c.tree, name, now) or name
                if i == 0 and pname != name:
                    renamed = pname
                parent_names.append(pname)
                names.setdefault(pid, pname)
            if c.parents:
                before = _file(store, store.commit(c.parents[0]).tree, parent_names[0])
                touched = before != now or renamed is not None
            else:
                touched = now is not None
            if not touched:
                continue
            shown += 1
            if now is not None:
                yield FollowedChange(entry_of(c), name, f.size(now), now[0] == MODE_LINK, renamed)
            else:
                yield FollowedChange(entry_of(c), name, None, False, None)


def deleted_files(
    repo: Repository, start: bytes, paths: list[str] | None = None, limit: int | None = None
) -> Iterator[Deletion]:
    """Every file deleted in the history of ``start``, newest commit first."""
    store = repo.gitdb
    with repo.ingester() as ingester:
        content = RepoContent(repo, ingester)
        shown = 0
        for c in newest_first(store, start):
            if limit is not None and shown >= limit:
                return
            if not c.parents:
                continue
            trees = [store.commit(p).tree for p in c.parents]
            gone = sorted(_deleted(store, trees[0], c.tree))
            entry = entry_of(c)
            for path, old in gone:
                if paths and not any(is_under(path, p) for p in paths):
                    continue
                if any(_file(store, t, path) is None for t in trees[1:]):
                    continue  # a merge that brought in the other side's deletion
                shown += 1
                yield Deletion(entry, path, content.size(old), old[0] == MODE_LINK)
                if limit is not None and shown >= limit:
                    return
