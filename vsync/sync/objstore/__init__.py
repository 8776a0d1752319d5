"""The opaque-object store: the one small interface an encrypted remote is kept on.

An object store holds named byte strings and knows nothing of what they mean
(docs/format.md, "Encrypted remotes"). Encryption, packing and the index of
what a remote holds live above it, in :mod:`vsync.sync.crypt`, so every
backend stores the same bytes: a folder (:mod:`.folder`, a path remote or a
USB drive) now; ``vsync serve`` over SSH and S3-compatible storage later.

It lives in the sync layer because its backends are transports: the SSH one
speaks to ``vsync serve``, the S3 one to a web service. It imports nothing of
the model: a backend never parses what it stores.

Names are ``/``-separated parts, each matching ``[a-z0-9][a-z0-9._-]{0,127}``,
at most four parts and 255 bytes (:func:`check_name`): no ``..``, no leading
``.``, no absolute path. A backend refuses any other name before touching
its storage, so a name can never escape the store.
"""

from __future__ import annotations

import re
from typing import Protocol

from vsync.errors import UsageError

MAX_NAME = 255
_PART = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")


class BadObjectName(UsageError):
    def __init__(self, name: str) -> None:
        super().__init__(f"refusing object name {name!r}: not a name an object store may hold")


class ObjectMissing(UsageError):
    def __init__(self, name: str) -> None:
        super().__init__(f"the object {name} is not in the store")
        self.name = name


def check_name(name: str) -> str:
    """``name`` if it is a valid object name, else :class:`BadObjectName`."""
    parts = name.split("/")
    if (
        len(name.encode("utf-8", "replace")) > MAX_NAME
        or len(parts) > 4
        or not all(_PART.fullmatch(part) for part in parts)
    ):
        raise BadObjectName(name)
    return name


class ObjectStore(Protocol):
    """What an encrypted remote needs from storage. Every method validates names."""

    def list(self, prefix: str) -> list[str]:
        """The names that begin with ``prefix``, sorted."""
        ...

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Up to ``length`` bytes of ``name`` from ``offset`` (None: to the end);
        :class:`ObjectMissing` if there is no such object."""
        ...

    def write_if_absent(self, name: str, data: bytes | bytearray) -> bool:
        """Store ``data`` as ``name`` whole and durably, unless ``name`` exists
        (then nothing changes); whether it was written."""
        ...

    def compare_and_swap(self, name: str, old: bytes | None, new: bytes) -> bool:
        """Replace ``name`` by ``new`` if it holds exactly ``old`` (None: absent);
        atomic against other writers; whether it was replaced."""
        ...

    def delete(self, name: str) -> bool:
        """Remove ``name``; whether it was there."""
        ...
