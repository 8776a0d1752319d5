"""Snapshots as git trees: building them from flat path maps and reading them back.

A *flat map* is ``{path: (git mode, object id)}`` for every file and symlink
of a snapshot; folders are implied by the paths (as in git, empty folders
are not recorded).
"""

from __future__ import annotations

from binascii import unhexlify
from hashlib import sha1
from typing import TypeVar

from dulwich.object_store import BaseObjectStore
from dulwich.objects import Blob, Commit, ShaFile, Tree, parse_tree

from vsync.errors import DamagedRepository, PathNotInRevision
from vsync.model.paths import check_folder_names, check_tree_name, is_under
from vsync.model.worktree import MODE_TREE

Entry = tuple[int, bytes]
T = TypeVar("T", bound=ShaFile)
FlatMap = dict[str, Entry]
SHA_LEN = 20


def build_tree(flat: FlatMap) -> tuple[bytes, list[ShaFile]]:
    """The root tree id for ``flat`` and the tree objects that make it up."""
    trees: list[ShaFile] = []
    return _build(flat, trees), trees


def tree_id_of(flat: FlatMap) -> bytes:
    """The root tree id for ``flat``, without making tree objects."""
    return _build(flat, None)


def _build(flat: FlatMap, trees: list[ShaFile] | None) -> bytes:
    files: dict[str, list[tuple[bytes, int, bytes]]] = {"": []}
    folders: dict[str, list[str]] = {"": []}  # folder -> its subfolders' names
    for path, (mode, sha) in flat.items():
        folder, _, name = path.rpartition("/")
        entries = files.get(folder)
        if entries is None:
            entries = files[folder] = []
            child = folder
            links: list[tuple[str, str]] = []
            while child not in folders:  # ends at "", which is always there
                folders[child] = []
                parent, _, sub = child.rpartition("/")
                links.append((parent, sub))
                child = parent
            for parent, sub in links:
                folders[parent].append(sub)
        entries.append((name.encode(), mode, sha))
    ids: dict[str, bytes] = {}
    for folder in sorted(folders, key=lambda f: f.count("/") + (1 if f else 0), reverse=True):
        prefix = folder + "/" if folder else ""
        items = [
            (name + b"/" if mode == MODE_TREE else name, name, mode, sha)
            for name, mode, sha in files.get(folder, ())
        ]
        items.extend(
            (sub.encode() + b"/", sub.encode(), MODE_TREE, ids[prefix + sub])
            for sub in folders[folder]
        )
        items.sort()
        body = b"".join(
            b"%o %s\0%s" % (mode, name, unhexlify(sha)) for _key, name, mode, sha in items
        )
        tree_id = sha1(b"tree %d\0%s" % (len(body), body)).hexdigest().encode("ascii")
        if trees is not None:
            trees.append(Tree.from_raw_string(Tree.type_num, body, sha=tree_id))
        ids[folder] = tree_id
    return ids[""]


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


def flatten(store: BaseObjectStore, tree_id: bytes, prefix: str = "") -> FlatMap:
    """Every file and symlink under ``tree_id`` (optionally only under ``prefix``).

    Names are validated on the way, and no folder may look like a vsync
    repository (:func:`vsync.model.paths.check_folder_names`), so a damaged or
    hostile tree is refused (UnsafePath) before anything is written.
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
        head = folder + "/" if folder else ""
        names: list[str] = []
        for name, mode, sha in parse_tree(_raw_tree(store, tid), SHA_LEN):
            text = _entry_name(name)
            names.append(text)
            path = head + text
            if mode == MODE_TREE:
                stack.append((sha, path))
            elif mode == 0o160000:
                continue  # gitlinks are never written by vsync; ignore foreign ones
            else:
                out[path] = (mode, sha)
        check_folder_names(names, folder)
    return out


def _raw_tree(store: BaseObjectStore, tid: bytes) -> bytes:
    try:
        type_num, raw = store.get_raw(tid)
    except KeyError:
        raise DamagedRepository(f"tree {tid.decode()} is missing") from None
    if type_num != Tree.type_num:
        raise DamagedRepository(f"object {tid.decode()} should be a tree")
    return raw


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
