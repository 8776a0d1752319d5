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

from types import ModuleType
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
    from vsync.model.gitdb.pack import PackStream, Presence
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
    "BLOB": "types",
    "Blob": "types",
    "ChangeSide": "types",
    "Commit": "types",
    "FlatMap": "encode",
    "GitDB": "db",
    "GitObject": "types",
    "MODE_EXEC": "types",
    "MODE_FILE": "types",
    "MODE_GITLINK": "types",
    "MODE_LINK": "types",
    "MODE_TREE": "types",
    "ObjectReader": "reader",
    "PackStream": "pack",
    "Presence": "pack",
    "RawObject": "types",
    "ReflogEntry": "types",
    "ReflogLine": "types",
    "TREE": "types",
    "Tag": "types",
    "TornReflogLine": "types",
    "Tree": "types",
    "blob_id": "encode",
    "blob_object": "encode",
    "build_tree": "encode",
    "commit_object": "encode",
    "object_id": "encode",
    "tree_id_of": "encode",
}


def __getattr__(name: str) -> object:
    """Import what ``name`` lives in when it is first asked for (PEP 562)."""
    home = _HOMES.get(name)
    module: ModuleType
    if home == "db":
        from vsync.model.gitdb import db as home_db

        module = home_db
    elif home == "encode":
        from vsync.model.gitdb import encode as home_encode

        module = home_encode
    elif home == "pack":
        from vsync.model.gitdb import pack as home_pack

        module = home_pack
    elif home == "reader":
        from vsync.model.gitdb import reader as home_reader

        module = home_reader
    elif home == "types":
        from vsync.model.gitdb import types as home_types

        module = home_types
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
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
    "PackStream",
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
