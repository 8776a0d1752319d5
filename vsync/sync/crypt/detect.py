"""Whether a remote is an encrypted one: cheap, imports no cryptography."""

from __future__ import annotations

from pathlib import Path

from vsync.sync.remotes import Remote

__all__ = [
    "ENCRYPTED_REMOTE",
    "MARKER",
    "MARKER_TEXT",
    "PLAIN_MARKER_HEAD",
    "is_encrypted",
    "plain_marker",
    "plain_repo_id",
]

import re

from vsync.sync.objstore.serve import MARKER, MARKER_TEXT

ENCRYPTED_REMOTE = "encrypted-remote"  # the code of serve's ERROR for an SSH encrypted remote
PLAIN_MARKER_HEAD = b"vsync plain remote\nformat 1\nrepository "
_PLAIN_MARKER = re.compile(re.escape(PLAIN_MARKER_HEAD) + rb"([0-9a-f]{32})\n")


def plain_marker(repo_id: bytes) -> bytes:
    """The ``vsync-remote`` of a plain remote (docs/format.md, "Plain remotes")."""
    return PLAIN_MARKER_HEAD + repo_id.hex().encode() + b"\n"


def plain_repo_id(marker: bytes) -> bytes | None:
    """The repository id a plain remote's ``marker`` states; None if it is not one."""
    found = _PLAIN_MARKER.fullmatch(marker)
    return None if found is None else bytes.fromhex(found.group(1).decode())


def is_encrypted(remote: Remote) -> bool:
    """A path remote holding ``vsync-remote`` (docs/format.md, "Layout"). An SSH remote
    is found to be one when ``vsync serve`` answers HELLO with ERROR code
    ``encrypted-remote`` (docs/protocol.md, "Object store"). An ``s3://`` remote is
    always an object-store remote, encrypted or plain: its marker says which
    (:func:`vsync.sync.crypt.remote.open_sealer`), and both take the same path."""
    if remote.url.kind == "s3":
        return True
    return remote.url.kind == "local" and (Path(remote.url.path) / MARKER).is_file()
