"""``vsync show``: one version of a file, symlink or folder, or one commit and its changes.

File content is streamed chunk by chunk: each chunk is read, verified against
its BLAKE3 id and only then written, so a damaged chunk stops the output
(raising DamagedRepository) after nothing but correct bytes, and memory stays
flat whatever the file's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from vsync.errors import PathNotInRevision
from vsync.model.folder_scan import MODE_LINK, MODE_TREE
from vsync.model.gitdb import MODE_GITLINK
from vsync.model.materialize import stream_manifest
from vsync.model.paths import check_tree_name
from vsync.model.repository import Repository
from vsync.model.snapshot import commit_tree, lookup
from vsync.ops.diff import name_status, revision_pairs
from vsync.ops.log import LogEntry, entry_of


@dataclass(frozen=True)
class RevObject:
    """What a path names in a commit."""

    commit_id: bytes
    path: str
    mode: int
    oid: bytes

    @property
    def is_folder(self) -> bool:
        return self.mode == MODE_TREE

    @property
    def is_link(self) -> bool:
        return self.mode == MODE_LINK


def find(repo: Repository, commit_id: bytes, path: str, rev_label: str) -> RevObject:
    """The entry at ``path`` in ``commit_id``; raises PathNotInRevision (labelled ``rev_label``)."""
    mode, oid = lookup(repo.gitdb, commit_tree(repo.gitdb, commit_id), path)
    if mode is None or mode == MODE_GITLINK:
        raise PathNotInRevision(path, rev_label)
    return RevObject(commit_id, path, mode, oid)


def write_file(repo: Repository, obj: RevObject, out: BinaryIO) -> int:
    """Stream a file's exact bytes to ``out``, every chunk verified first; returns the size."""
    manifest = repo.gitdb.manifest(obj.oid, f"manifest of '{obj.path}'")
    stream_manifest(repo.chunks, manifest, out)
    return manifest.size


def list_folder(repo: Repository, obj: RevObject) -> list[str]:
    """The names in a folder, sorted; sub-folders end with '/'."""
    names: list[str] = []
    for raw_name, mode, _oid in repo.gitdb.tree(obj.oid).items:
        if mode == MODE_GITLINK:
            continue
        name = check_tree_name(raw_name)
        names.append(name + "/" if mode == MODE_TREE else name)
    return sorted(names)


@dataclass
class CommitView:
    entry: LogEntry
    changes: list[tuple[str, str]]  # (status letter, path) vs the first parent


def show_commit(repo: Repository, commit_id: bytes) -> CommitView:
    entry = entry_of(repo.gitdb.commit(commit_id))
    parent = entry.parents[0] if entry.parents else None
    return CommitView(entry, name_status(revision_pairs(repo, parent, commit_id)))
