"""A new tree from an old one and a few changed paths, reading only the trees on their way.

What :func:`~vsync.model.gitdb.encode.build_tree` gives for the whole flat map, at
the cost of the changed folders only: a commit that the fsmonitor told what
changed builds its tree this way (tests/test_fsmonitor.py checks both agree).
"""

from __future__ import annotations

import hashlib
from binascii import unhexlify

from vsync.model.gitdb.reader import ObjectReader
from vsync.model.gitdb.types import MODE_TREE, TREE, RawObject

Entry = tuple[int, bytes]
_Changes = dict[bytes, "Entry | _Changes | None"]


def edit_tree(
    reader: ObjectReader, base: bytes | None, changes: dict[str, Entry | None]
) -> tuple[bytes, list[RawObject]]:
    """The tree ``base`` (None: empty) with each path of ``changes`` set to its entry, or
    removed (None); a folder left empty is dropped, as git keeps none. Returns the new
    root id and the tree objects made (stored or not)."""
    root: _Changes = {}
    for path, entry in changes.items():
        *folders, name = path.encode("utf-8").split(b"/")
        level: _Changes | None = root
        for folder in folders:
            assert level is not None
            sub = level.get(folder)
            if isinstance(sub, dict):
                level = sub
            elif folder not in level or entry is not None:
                level[folder] = level = {}  # (a file there becomes a folder)
            else:
                level = None  # removing below a path that goes or becomes a file: implied
                break
        if level is None:
            continue
        if entry is not None or not isinstance(level.get(name), dict):
            level[name] = entry  # (a folder becoming a file loses what was below it)
    trees: list[RawObject] = []
    tree_id = _edit(reader, base, root, trees)
    if tree_id is None:
        tree_id = _encode({}, trees)
    return tree_id, trees


def _edit(
    reader: ObjectReader, tree_id: bytes | None, changes: _Changes, trees: list[RawObject]
) -> bytes | None:
    items: dict[bytes, Entry] = {}
    if tree_id is not None:
        items = {name: (mode, oid) for name, mode, oid in reader.tree(tree_id).items}
    for name, change in changes.items():
        if isinstance(change, dict):
            old = items.get(name)
            sub = old[1] if old is not None and old[0] == MODE_TREE else None
            new = _edit(reader, sub, change, trees)
            if new is None:
                items.pop(name, None)
            else:
                items[name] = (MODE_TREE, new)
        elif change is None:
            items.pop(name, None)
        else:
            items[name] = change
    if not items:
        return None
    return _encode(items, trees)


def _encode(items: dict[bytes, Entry], trees: list[RawObject]) -> bytes:
    order = sorted(items, key=lambda n: n + b"/" if items[n][0] == MODE_TREE else n)
    body = b"".join(b"%o %s\0%s" % (items[n][0], n, unhexlify(items[n][1])) for n in order)
    tree_id = hashlib.sha1(b"tree %d\0%s" % (len(body), body)).hexdigest().encode("ascii")
    trees.append(RawObject(TREE, tree_id, body))
    return tree_id
