"""The merge base: from the commit graph, merged recursively when there are several.

:func:`merge_bases` asks ``dulwich.graph.find_merge_base`` for the lowest
common ancestors of ours and theirs. In a criss-cross history (each side
merged the other) there are several; dulwich may also report an ancestor of
another base when commit clocks disagree, so bases that are ancestors of
other bases are dropped (by a plain graph walk). The result is sorted oldest
first (commit time, then id).

:func:`base_snapshot` turns the bases into the flat map the three-way merge
uses, git's "recursive" strategy:

- no base (unrelated histories): the empty map, so every path is "created";
- one base: its tree;
- several: a *virtual base*. The bases are merged pairwise, oldest first:
  the first is the accumulated result, each next base is merged into it
  using the merge bases of that base and all bases merged so far (found and
  merged the same way, recursively). A conflict inside such a virtual merge
  resolves to what a real merge would leave in place: text with conflict
  markers (which then only ever shows up in the ``|||||||`` base section of
  an outer conflict), and for everything else the accumulated side's
  version, i.e. the *older* base's (binary, symlink, type, add-add binary);
  a modify/delete keeps the modified file; in a file/folder clash the
  folder wins. Below depth 8 the oldest base alone is used.
"""

from __future__ import annotations

import os

from vsync.model.commits import commit_host
from vsync.model.gitdb import Commit
from vsync.model.ingest import Ingester
from vsync.model.repository import Repository
from vsync.model.snapshot import FlatMap, flatten_commit
from vsync.ops.history_graph import is_ancestor
from vsync.ops.merge.content import ContentSource, RepoContent
from vsync.ops.merge.naming import stamp_of
from vsync.ops.merge.plan import Labels, MergePlan, Side, plan_merge

MAX_DEPTH = 8


def _commit(repo: Repository, cid: bytes) -> Commit:
    return repo.gitdb.commit(cid)


def _independent(repo: Repository, bases: list[bytes]) -> list[bytes]:
    """Drop bases that are ancestors of another base; oldest first."""
    unique = list(dict.fromkeys(bases))
    kept = [b for b in unique if not any(o != b and is_ancestor(repo, b, o) for o in unique)]
    return sorted(kept, key=lambda c: (_commit(repo, c).commit_time, c))


def merge_bases(repo: Repository, ours: bytes, theirs: bytes) -> list[bytes]:
    """The best common ancestors of ``ours`` and ``theirs`` (none: unrelated)."""
    return _independent(repo, repo.gitdb.merge_bases([ours, theirs]))


def side_of(repo: Repository, commit_id: bytes | None, name: str) -> Side:
    """Marker and conflict-copy naming data of one side, read from its commit."""
    if commit_id is None:
        return Side(name, None, "unknown", "00000000-000000")
    c = _commit(repo, commit_id)
    stamp = stamp_of(c.commit_time, c.commit_timezone)
    return Side(name, commit_id, commit_host(c) or "unknown", stamp)


def _short(cid: bytes) -> str:
    return cid.decode()[:10]


def base_snapshot(
    repo: Repository, bases: list[bytes], reader: ContentSource, depth: int = 0
) -> tuple[FlatMap, str]:
    """The flat map to merge from, and its marker label (see the module docstring)."""
    if not bases:
        return {}, "base (none)"
    flat = flatten_commit(repo.gitdb, bases[0])
    if len(bases) == 1 or depth >= MAX_DEPTH:
        return flat, f"base ({_short(bases[0])})"
    done = [bases[0]]
    for nxt in bases[1:]:
        sub_bases = _independent(repo, repo.gitdb.merge_bases([nxt, *done]))
        sub_flat, sub_label = base_snapshot(repo, sub_bases, reader, depth + 1)
        labels = Labels(side_of(repo, done[-1], "ours"), side_of(repo, nxt, "theirs"), sub_label)
        virtual = plan_merge(sub_flat, flat, flatten_commit(repo.gitdb, nxt), reader, labels)
        flat = virtual.virtual_result()
        done.append(nxt)
    return flat, "base (virtual " + "+".join(_short(b) for b in bases) + ")"


def prepare_merge(
    repo: Repository, ours: bytes | None, theirs: bytes, ingester: Ingester
) -> MergePlan:
    """Plan merging commit ``theirs`` into ``ours`` (HEAD; None before the first commit).

    Nothing is written: merged text is identified by hashing only and kept
    in the plan's ``new_content`` until :func:`~vsync.ops.merge.apply.apply_merge`.
    """
    reader = RepoContent(repo, ingester)
    bases = merge_bases(repo, ours, theirs) if ours is not None else []
    base_flat, base_label = base_snapshot(repo, bases, reader)
    labels = Labels(side_of(repo, ours, "ours"), side_of(repo, theirs, "theirs"), base_label)
    ours_flat = flatten_commit(repo.gitdb, ours)
    root = repo.root

    def exists(path: str) -> bool:
        return root is not None and os.path.lexists(os.path.join(root, *path.split("/")))

    theirs_flat = flatten_commit(repo.gitdb, theirs)
    plan = plan_merge(base_flat, ours_flat, theirs_flat, reader, labels, exists)
    plan.bases = bases
    return plan
