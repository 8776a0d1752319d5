"""What vsync/sync still needs of dulwich until it is ported to GitDB (pending removal).

``Repository.git`` hands vsync/sync dulwich's Repo, and ``vsync/sync/pull.py``
passes its object store to :func:`vsync.model.snapshot.flatten` and
:func:`~vsync.model.snapshot.commit_tree`; :func:`as_reader` turns such a
store into an :class:`ObjectReader`. Remove this module once vsync/sync
asks ``repo.gitdb`` instead.
"""

from __future__ import annotations

from dulwich.object_store import DiskObjectStore
from dulwich.repo import Repo as LegacyGitRepo

from vsync.model.gitdb.reader import ObjectReader

LegacyStore = DiskObjectStore


def as_reader(source: ObjectReader | LegacyStore) -> ObjectReader:
    """``source`` as an ObjectReader (a dulwich store from vsync/sync is wrapped)."""
    if isinstance(source, ObjectReader):
        return source
    return ObjectReader(source)


__all__ = ["LegacyGitRepo", "LegacyStore", "as_reader"]
