"""Building real merge histories for the merge tests: real files, real commits, real SQLite.

A *tree spec* is ``{path: ("file", bytes, exec) | ("link", target, False)}``,
the same shape as ``conftest.snapshot_tree`` returns. :class:`History` keeps
one open repository and makes commits with any parents by pointing the
branch where the commit should go, writing the spec into the folder and
running the real ``commit()`` (scan, chunking, stat cache, packs).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from conftest import clear_worktree, snapshot_tree

from vsync.model.ingest import Ingester
from vsync.model.repository import Repository
from vsync.model.snapshot import build_tree, commit_tree, flatten
from vsync.ops.commit import advance_branch, commit, make_commit, move_branch
from vsync.ops.merge import (
    ApplyOutcome,
    MergePlan,
    MergeState,
    apply_merge,
    build_merge_tree,
    prepare_merge,
)

Spec = dict[str, tuple[str, bytes | str, bool]]


@contextlib.contextmanager
def host(name: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in ("VSYNC_HOST", "VSYNC_AUTHOR_NAME", "VSYNC_AUTHOR_EMAIL")}
    os.environ["VSYNC_HOST"] = name
    os.environ["VSYNC_AUTHOR_NAME"] = "Merge Tester"
    os.environ["VSYNC_AUTHOR_EMAIL"] = "merge@example.com"
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def write_spec(root: Path, spec: Spec) -> None:
    clear_worktree(root)
    for path, (kind, content, exe) in sorted(spec.items()):
        disk = root / path
        disk.parent.mkdir(parents=True, exist_ok=True)
        if kind == "link":
            os.symlink(content, disk)
        else:
            assert isinstance(content, bytes)
            disk.write_bytes(content)
            disk.chmod(0o755 if exe else 0o644)


def spec_from_folder(folder: Path | None) -> Spec:
    """Regular files under ``folder`` (missing folder: empty), exec bit off."""
    if folder is None or not folder.is_dir():
        return {}
    out: Spec = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            out[path.relative_to(folder).as_posix()] = ("file", path.read_bytes(), False)
    return out


def folder_spec(root: Path) -> Spec:
    return {k.replace(os.sep, "/"): v for k, v in snapshot_tree(root).items()}


class History:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.repo = Repository.init(root)
        self.warnings: list[str] = []

    def close(self) -> None:
        self.repo.close()

    def point_branch(self, commit_id: bytes | None) -> None:
        current = self.repo.head()
        if current != commit_id:
            move_branch(self.repo, current, commit_id, "test: point the branch")

    def commit(
        self,
        spec: Spec,
        parents: list[bytes],
        who: str,
        message: str = "commit",
    ) -> bytes:
        """A commit of ``spec`` with exactly ``parents``; leaves the folder holding it."""
        self.point_branch(parents[0] if parents else None)
        write_spec(self.root, spec)
        with host(who):
            result = commit(self.repo, message, self.warnings.append, parents_extra=parents[1:])
        if result.commit_id is None:  # an empty tree, or the parent's: force a commit
            db = self.repo.gitdb
            if parents:
                tree = commit_tree(db, parents[0])
            else:
                tree, trees = build_tree({})
                db.add_missing(trees)
            with host(who):
                c = make_commit(self.repo, tree, parents, message)
            db.add([c])
            advance_branch(self.repo, parents[0] if parents else None, c.id, "test commit")
            return c.id
        return result.commit_id

    def checkout_commit(self, commit_id: bytes, spec: Spec) -> None:
        """Point the branch at ``commit_id`` and make the folder hold ``spec`` (its tree)."""
        self.point_branch(commit_id)
        write_spec(self.root, spec)

    def flat(self, commit_id: bytes) -> dict[str, tuple[int, bytes]]:
        return flatten(self.repo.gitdb, commit_tree(self.repo.gitdb, commit_id))

    def plan(self, ours: bytes, theirs: bytes) -> MergePlan:
        params = self.repo.config.chunker_params()
        with Ingester(params, self.repo.config.compression_level()) as ingester:
            return prepare_merge(self.repo, ours, theirs, ingester)

    def merge(self, theirs: bytes) -> tuple[MergePlan, ApplyOutcome]:
        ours = self.repo.head()
        assert ours is not None
        plan = self.plan(ours, theirs)
        return plan, apply_merge(self.repo, plan)

    def commit_merge(self, plan: MergePlan, message: str = "merge") -> bytes:
        """What the lead's wiring does for a clean merge: the two-parent commit."""
        ours, theirs = plan.labels.ours.commit, plan.labels.theirs.commit
        assert ours is not None and theirs is not None
        tree_id, trees = build_merge_tree(plan)
        c = make_commit(self.repo, tree_id, [ours, theirs], message)
        self.repo.gitdb.add_missing([*trees, c])
        advance_branch(self.repo, ours, c.id, "merge")
        state = MergeState.load(self.repo)
        if state is not None:
            state.clear()
        return c.id
