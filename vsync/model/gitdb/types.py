"""What the git database hands out and takes in: small typed records, no dulwich types.

Object ids are 40 lowercase hex digits as ``bytes`` (``b"1a2b..."``), as
everywhere in vsync. Records are read-only named tuples (every command that
touches git imports them, and making a frozen dataclass costs about 1 ms at
import where a named tuple costs a fifth of that); :class:`RawObject` is an
object encoded and ready to store (see :mod:`vsync.model.gitdb.encode`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from vsync.model.gitdb.modes import MODE_EXEC as MODE_EXEC
from vsync.model.gitdb.modes import MODE_FILE as MODE_FILE
from vsync.model.gitdb.modes import MODE_GITLINK as MODE_GITLINK
from vsync.model.gitdb.modes import MODE_LINK as MODE_LINK
from vsync.model.gitdb.modes import MODE_TREE as MODE_TREE

COMMIT, TREE, BLOB, TAG = 1, 2, 3, 4  # git's object type numbers
TYPE_NAMES = {COMMIT: "commit", TREE: "tree", BLOB: "blob", TAG: "tag"}

ZERO_ID = b"0" * 40


_OBJECT_ID = re.compile(rb"[0-9a-f]{40}")


def is_object_id(value: bytes) -> bool:
    """True for 40 lowercase hex digits."""
    return _OBJECT_ID.fullmatch(value) is not None


class RawObject(NamedTuple):
    """A git object ready to store: its type number, id and body (no ``type size\\0`` header)."""

    type_num: int
    id: bytes
    raw: bytes


# One entry of a tree: (name, mode, id). The name is one path component as
# stored (validate it before using it as a path). A plain tuple: trees of
# hundreds of thousands of entries parse at C speed.
TreeItem = tuple[bytes, int, bytes]


class Tree:
    """A tree's entries in git's order; :meth:`get` looks one up by name."""

    __slots__ = ("_by_name", "id", "items")

    def __init__(self, oid: bytes, items: tuple[TreeItem, ...]) -> None:
        self.id = oid
        self.items = items
        self._by_name: dict[bytes, TreeItem] | None = None

    def get(self, name: bytes) -> TreeItem | None:
        if self._by_name is None:
            self._by_name = {item[0]: item for item in self.items}
        return self._by_name.get(name)


class Commit(NamedTuple):
    id: bytes
    tree: bytes
    parents: tuple[bytes, ...]
    author: bytes  # b"Name <email>"
    committer: bytes
    author_time: int  # Unix seconds
    author_timezone: int  # offset from UTC in seconds
    commit_time: int
    commit_timezone: int
    encoding: bytes | None
    message: bytes
    headers: tuple[tuple[bytes, bytes], ...]  # extra headers (vsync-host, journal headers)

    def header(self, key: bytes) -> bytes | None:
        """The first extra header named ``key``, or None."""
        for k, v in self.headers:
            if k == key:
                return v
        return None

    def message_text(self) -> str:
        """The message decoded by its declared encoding (UTF-8 when none or unknown)."""
        encoding = (self.encoding or b"utf-8").decode("ascii", "replace")
        try:
            return self.message.decode(encoding, "replace")
        except LookupError:
            return self.message.decode("utf-8", "replace")


class Blob(NamedTuple):
    id: bytes
    data: bytes


class Tag(NamedTuple):
    id: bytes
    object: bytes  # the tagged object's id


GitObject = Commit | Tree | Blob | Tag


class ReflogEntry(NamedTuple):
    """One line of a reflog: where the ref went, from where (None: nowhere), why."""

    old: bytes | None
    new: bytes | None
    committer: bytes
    time: int
    timezone: int
    message: bytes


class TornReflogLine(NamedTuple):
    """A reflog line that cannot be parsed (a crash mid-append); the ids it still names."""

    ids: tuple[bytes, ...]


ReflogLine = ReflogEntry | TornReflogLine


class ChangeSide(NamedTuple):
    """One side of a tree change: the full path (``a/b/c``, as stored), mode and id."""

    path: bytes
    mode: int
    id: bytes


class TreeChange(NamedTuple):
    kind: str  # "add" | "delete" | "modify" | "unchanged"
    old: ChangeSide | None
    new: ChangeSide | None
