"""The git database: the one place where vsync reads and writes git objects and refs.

Only modules of this package import dulwich's object, pack, object-store, repo,
ref, reflog, diff-tree and graph code (tests/test_architecture.py enforces it).
Everything else asks this package for typed commits, trees and manifests;
dulwich, zlib, struct and OS errors on damaged data become
:class:`vsync.errors.DamagedRepository` (exit 3) here (:mod:`.guard`).

- :mod:`.types`: the records handed out (Commit, Tree, TreeItem, ReflogEntry,
  TreeChange...) and git's modes and type numbers;
- :mod:`.encode`: blob ids, trees from flat maps, commits (fast paths);
- :mod:`.pack`: the one-pass pack writer and :class:`Presence`;
- :mod:`.reader`: :class:`ObjectReader`, typed and verified object reads;
- :mod:`.db`: :class:`GitDB`, a repository's objects, refs, reflogs and upkeep;
- :mod:`.lockfiles`: the guard every writer of a dulwich lock file holds, so a
  lock file a killed process left is found and broken;
- :mod:`.received`, :mod:`.incoming`: received packs, checked, flocked in
  ``incoming/`` until accepted, removed when their transfer was killed.

The names below are imported on first use (PEP 562), so that importing a light
part of this package (:mod:`.types`, :mod:`.headref`) loads nothing of dulwich:
``vsync status`` on a clean folder never does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vsync.model.gitdb.db import GitDB
    from vsync.model.gitdb.encode import (
        FlatMap,
        blob_id,
        blob_object,
        build_tree,
        commit_object,
        object_id,
        tree_id_of,
    )
    from vsync.model.gitdb.pack import Presence
    from vsync.model.gitdb.reader import ObjectReader
    from vsync.model.gitdb.types import (
        BLOB,
        MODE_EXEC,
        MODE_FILE,
        MODE_GITLINK,
        MODE_LINK,
        MODE_TREE,
        TREE,
        Blob,
        ChangeSide,
        Commit,
        GitObject,
        RawObject,
        ReflogEntry,
        ReflogLine,
        Tag,
        TornReflogLine,
        Tree,
    )

_HOMES = {
    "BLOB": "vsync.model.gitdb.types",
    "Blob": "vsync.model.gitdb.types",
    "ChangeSide": "vsync.model.gitdb.types",
    "Commit": "vsync.model.gitdb.types",
    "FlatMap": "vsync.model.gitdb.encode",
    "GitDB": "vsync.model.gitdb.db",
    "GitObject": "vsync.model.gitdb.types",
    "MODE_EXEC": "vsync.model.gitdb.types",
    "MODE_FILE": "vsync.model.gitdb.types",
    "MODE_GITLINK": "vsync.model.gitdb.types",
    "MODE_LINK": "vsync.model.gitdb.types",
    "MODE_TREE": "vsync.model.gitdb.types",
    "ObjectReader": "vsync.model.gitdb.reader",
    "Presence": "vsync.model.gitdb.pack",
    "RawObject": "vsync.model.gitdb.types",
    "ReflogEntry": "vsync.model.gitdb.types",
    "ReflogLine": "vsync.model.gitdb.types",
    "TREE": "vsync.model.gitdb.types",
    "Tag": "vsync.model.gitdb.types",
    "TornReflogLine": "vsync.model.gitdb.types",
    "Tree": "vsync.model.gitdb.types",
    "blob_id": "vsync.model.gitdb.encode",
    "blob_object": "vsync.model.gitdb.encode",
    "build_tree": "vsync.model.gitdb.encode",
    "commit_object": "vsync.model.gitdb.encode",
    "object_id": "vsync.model.gitdb.encode",
    "tree_id_of": "vsync.model.gitdb.encode",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "BLOB",
    "MODE_EXEC",
    "MODE_FILE",
    "MODE_GITLINK",
    "MODE_LINK",
    "MODE_TREE",
    "TREE",
    "Blob",
    "ChangeSide",
    "Commit",
    "FlatMap",
    "GitDB",
    "GitObject",
    "ObjectReader",
    "Presence",
    "RawObject",
    "ReflogEntry",
    "ReflogLine",
    "Tag",
    "TornReflogLine",
    "Tree",
    "blob_id",
    "blob_object",
    "build_tree",
    "commit_object",
    "object_id",
    "tree_id_of",
]
