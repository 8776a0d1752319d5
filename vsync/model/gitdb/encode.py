"""Encoding git objects: blob ids, trees from flat path maps, commits.

The tree builder and the blob id are hot paths of ``commit`` and ``status``
(tens of thousands of manifests and folders), so they hash bytes directly
instead of going through dulwich objects; tests/test_gitdb.py checks that
they agree with dulwich byte for byte. Commits are rare and go through
dulwich's serialiser.

A *flat map* is ``{path: (git mode, object id)}`` for every file and symlink
of a snapshot; folders are implied by the paths (as in git, empty folders
are not recorded).
"""

from __future__ import annotations

import hashlib
from binascii import unhexlify
from collections.abc import Sequence

from dulwich.objects import Commit as DulwichCommit
from dulwich.objects import ObjectID

from vsync.model.gitdb.types import BLOB, COMMIT, MODE_TREE, TREE, TYPE_NAMES, RawObject

FlatMap = dict[str, tuple[int, bytes]]


def blob_id(data: bytes) -> bytes:
    """The git object id (40 hex digits, as bytes) of a blob holding ``data``."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest().encode("ascii")


def blob_object(data: bytes) -> RawObject:
    return RawObject(BLOB, blob_id(data), data)


_KINDS = {num: name.encode("ascii") for num, name in TYPE_NAMES.items()}


def object_id(type_num: int, raw: bytes) -> bytes:
    """The id of an object of ``type_num`` whose body is ``raw``."""
    h = hashlib.sha1(b"%s %d\0" % (_KINDS[type_num], len(raw)))
    h.update(raw)
    return h.hexdigest().encode("ascii")


def build_tree(flat: FlatMap) -> tuple[bytes, list[RawObject]]:
    """The root tree id for ``flat`` and the tree objects that make it up."""
    trees: list[RawObject] = []
    return _build(flat, trees), trees


def tree_id_of(flat: FlatMap) -> bytes:
    """The root tree id for ``flat``, without keeping tree objects."""
    return _build(flat, None)


def _build(flat: FlatMap, trees: list[RawObject] | None) -> bytes:
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
        tree_id = hashlib.sha1(b"tree %d\0%s" % (len(body), body)).hexdigest().encode("ascii")
        if trees is not None:
            trees.append(RawObject(TREE, tree_id, body))
        ids[folder] = tree_id
    return ids[""]


def commit_object(
    *,
    tree: bytes,
    parents: Sequence[bytes],
    author: bytes,
    time: int,
    timezone: int,
    message: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> RawObject:
    """A commit by ``author`` (also its committer) at Unix ``time``, UTF-8 encoded.

    ``headers`` are extra header lines (``vsync-host``, the undo journal's),
    written after the standard ones in the order given.
    """
    c = DulwichCommit()
    c.tree = ObjectID(tree)
    c.parents = [ObjectID(p) for p in parents]
    c.author = c.committer = author
    c.author_time = c.commit_time = time
    c.author_timezone = c.commit_timezone = timezone
    c.encoding = b"UTF-8"
    c.message = message
    c._extra.extend(headers)
    return RawObject(COMMIT, c.id, c.as_raw_string())
