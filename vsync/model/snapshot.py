"""Snapshots as git trees: building them from flat path maps and reading them back.

A *flat map* is ``{path: (git mode, object id)}`` for every file and symlink
of a snapshot; folders are implied by the paths (as in git, empty folders
are not recorded).
"""

from __future__ import annotations

from typing import TypeVar

from dulwich.object_store import BaseObjectStore
from dulwich.objects import Blob, Commit, ShaFile, Tree

from vsync.errors import DamagedRepository, PathNotInRevision
from vsync.model.paths import check_tree_name, is_under
from vsync.model.worktree import MODE_TREE

Entry = tuple[int, bytes]
T = TypeVar("T", bound=ShaFile)
FlatMap = dict[str, Entry]


def build_tree(flat: FlatMap) -> tuple[bytes, list[ShaFile]]:
    """The root tree id for ``flat`` and the tree objects that make it up."""
    children: dict[str, dict[str, Entry | None]] = {"": {}}
    for path in flat:
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[: i - 1])
            folder = "/".join(parts[:i])
            children.setdefault(folder, {})
            children.setdefault(parent, {})[parts[i - 1]] = None
        parent = "/".join(parts[:-1])
        children.setdefault(parent, {})[parts[-1]] = flat[path]
    trees: list[ShaFile] = []
    ids: dict[str, bytes] = {}
    for folder in sorted(children, key=lambda f: f.count("/") + (1 if f else 0), reverse=True):
        tree = Tree()
        for name, entry in children[folder].items():
            if entry is None:
                sub = f"{folder}/{name}" if folder else name
                tree.add(name.encode(), MODE_TREE, ids[sub])
            else:
                tree.add(name.encode(), entry[0], entry[1])
        trees.append(tree)
        ids[folder] = tree.id
    return ids[""], trees


def flatten(store: BaseObjectStore, tree_id: bytes, prefix: str = "") -> FlatMap:
    """Every file and symlink under ``tree_id`` (optionally only under ``prefix``).

    Names are validated on the way, so a damaged or hostile tree is refused.
    """
    out: FlatMap = {}
    start = tree_id
    base = ""
    if prefix:
        mode, sha = lookup(store, tree_id, prefix)
        if mode is None:
            return {}
        if mode != MODE_TREE:
            return {prefix: (mode, sha)}
        start, base = sha, prefix
    stack = [(start, base)]
    while stack:
        tid, folder = stack.pop()
        tree = _tree(store, tid)
        for item in tree.iteritems():
            name = check_tree_name(item.path)
            path = f"{folder}/{name}" if folder else name
            if item.mode == MODE_TREE:
                stack.append((item.sha, path))
            elif item.mode == 0o160000:
                continue  # gitlinks are never written by vsync; ignore foreign ones
            else:
                out[path] = (item.mode, item.sha)
    return out


def load_typed(store: BaseObjectStore, oid: bytes, kind: type[T]) -> T:
    """The object ``oid`` as a ``kind`` (Commit, Tree, Blob); DamagedRepository if not."""
    what = kind.type_name.decode()
    try:
        obj = store[oid]
    except KeyError:
        raise DamagedRepository(f"{what} {oid.decode()} is missing") from None
    if not isinstance(obj, kind):
        raise DamagedRepository(f"object {oid.decode()} should be a {what}")
    return obj


def load_commit(store: BaseObjectStore, oid: bytes) -> Commit:
    return load_typed(store, oid, Commit)


def _tree(store: BaseObjectStore, tid: bytes) -> Tree:
    return load_typed(store, tid, Tree)


def lookup(store: BaseObjectStore, tree_id: bytes, path: str) -> tuple[int | None, bytes]:
    """The (mode, id) at ``path`` in a tree, or (None, b"") if absent."""
    if not path:
        return MODE_TREE, tree_id
    tid = tree_id
    parts = path.split("/")
    for i, part in enumerate(parts):
        tree = _tree(store, tid)
        try:
            mode, sha = tree[part.encode()]
        except KeyError:
            return None, b""
        if i == len(parts) - 1:
            return mode, sha
        if mode != MODE_TREE:
            return None, b""
        tid = sha
    return None, b""


def commit_tree(store: BaseObjectStore, commit_id: bytes) -> bytes:
    return load_commit(store, commit_id).tree


def blob_bytes(store: BaseObjectStore, blob_id: bytes) -> bytes:
    return load_typed(store, blob_id, Blob).as_raw_string()


def require_path(flat: FlatMap, path: str, rev: str) -> None:
    if not any(is_under(p, path) for p in flat):
        raise PathNotInRevision(path, rev)
