"""Snapshots as git trees: flat path maps, built into trees and read back.

A *flat map* is ``{path: (git mode, object id)}`` for every file and symlink
of a snapshot; folders are implied by the paths (as in git, empty folders
are not recorded). Trees are built by :func:`build_tree` (the fast encoder of
:mod:`vsync.model.gitdb`) and read back here, every name validated.
"""

from __future__ import annotations

from collections.abc import Iterable

from vsync.errors import GitObjectDamaged, PathNotInRevision, UnsafePath
from vsync.model.gitdb import (
    MODE_EXEC,
    MODE_FILE,
    MODE_GITLINK,
    MODE_LINK,
    MODE_TREE,
    FlatMap,
    ObjectReader,
    Tree,
)
from vsync.model.gitdb import build_tree as build_tree
from vsync.model.gitdb import tree_id_of as tree_id_of
from vsync.model.paths import check_folder_names, check_tree_name, is_under

Entry = tuple[int, bytes]

__all__ = [
    "Entry",
    "FlatMap",
    "build_tree",
    "check_received_tree",
    "commit_tree",
    "flatten",
    "lookup",
    "require_path",
    "tree_id_of",
]


_ALIAS_HEADS = frozenset(b".vVgG")  # first byte of any name that may alias .vsync or .git


def _entry_name(name: bytes) -> str:
    """A tree entry's name, validated (plain ASCII names take a short cut)."""
    if (
        name
        and name.isascii()
        and b"/" not in name
        and b"\0" not in name
        and b"\\" not in name
        and name not in (b".", b"..")
    ):
        if name[0] not in _ALIAS_HEADS:
            return name.decode("ascii")  # ASCII is always NFC
        folded = name.lower().partition(b":")[0].rstrip(b" .")  # paths.fold_name, for ASCII
        if folded not in (b".vsync", b".git") and b"~" not in folded:
            return name.decode("ascii")
    return check_tree_name(name)


RECEIVED_MODES = frozenset({MODE_FILE, MODE_EXEC, MODE_LINK, MODE_TREE})


def check_received_tree(tree: Tree) -> list[str]:
    """The rules every tree from a peer follows (docs/protocol.md, "What a receiver
    verifies"): safe names (:func:`check_tree_name`), no two differing only in case,
    known modes, and not the shape of a vsync repository. Returns the decoded names,
    in the tree's order; UnsafePath names the first rule broken."""
    names: list[str] = []
    folded: set[str] = set()
    for raw_name, mode, _oid in tree.items:
        name = check_tree_name(raw_name)
        if name.casefold() in folded:
            raise UnsafePath(name, "two names in one folder differ only in case")
        folded.add(name.casefold())
        if mode not in RECEIVED_MODES:
            raise UnsafePath(name, f"unknown mode {mode:o}")
        names.append(name)
    check_folder_names(folded, "")
    return names


def flatten(reader: ObjectReader, tree_id: bytes, prefix: str = "") -> FlatMap:
    """Every file and symlink under ``tree_id`` (optionally only under ``prefix``).

    Names are validated on the way, and no folder may look like a vsync
    repository (:func:`vsync.model.paths.check_folder_names`), so a damaged or
    hostile tree is refused (UnsafePath) before anything is written.
    """
    out: FlatMap = {}
    start = tree_id
    base = ""
    if prefix:
        mode, sha = lookup(reader, tree_id, prefix)
        if mode is None:
            return {}
        if mode != MODE_TREE:
            return {prefix: (mode, sha)}
        start, base = sha, prefix
    stack = [(start, base)]
    while stack:
        tid, folder = stack.pop()
        head = folder + "/" if folder else ""
        names: list[str] = []
        for name, mode, oid in reader.tree(tid).items:
            text = _entry_name(name)
            names.append(text)
            path = head + text
            if mode == MODE_TREE:
                stack.append((oid, path))
            elif mode == MODE_GITLINK:
                continue  # gitlinks are never written by vsync; ignore foreign ones
            else:
                out[path] = (mode, oid)
        check_folder_names(names, folder)
    return out


def lookup(db: ObjectReader, tree_id: bytes, path: str) -> tuple[int | None, bytes]:
    """The (mode, id) at ``path`` in a tree, or (None, b"") if absent."""
    if not path:
        return MODE_TREE, tree_id
    tid = tree_id
    parts = path.split("/")
    for i, part in enumerate(parts):
        item = db.tree(tid).get(part.encode())
        if item is None:
            return None, b""
        _name, mode, oid = item
        if i == len(parts) - 1:
            return mode, oid
        if mode != MODE_TREE:
            return None, b""
        tid = oid
    return None, b""


def commit_tree(reader: ObjectReader, commit_id: bytes) -> bytes:
    """The root tree of a commit; GitObjectDamaged if the commit or that tree is not stored.

    Checking the tree is there costs one lookup and keeps a fast path that
    compares only tree ids (status, commit) from calling a damaged commit clean.
    """
    tree = reader.commit(commit_id).tree
    if not reader.has(tree):
        raise GitObjectDamaged(tree, "tree", f"of commit {commit_id.decode()} is missing")
    return tree


def flatten_commit(
    reader: ObjectReader, commit_id: bytes | None, scope: Iterable[str] = ("",)
) -> FlatMap:
    """:func:`flatten` of a commit's tree under each path of ``scope`` (no commit: {})."""
    if commit_id is None:
        return {}
    tree = commit_tree(reader, commit_id)
    out: FlatMap = {}
    for prefix in scope:
        out.update(flatten(reader, tree, prefix))
    return out


def require_path(flat: FlatMap, path: str, rev: str) -> None:
    if not any(is_under(p, path) for p in flat):
        raise PathNotInRevision(path, rev)
