"""Whether a remote is an encrypted one: cheap, imports no cryptography."""

from __future__ import annotations

from pathlib import Path

from vsync.sync.remotes import Remote

__all__ = ["ENCRYPTED_REMOTE", "MARKER", "MARKER_TEXT", "is_encrypted"]

from vsync.sync.objstore.serve import MARKER, MARKER_TEXT

ENCRYPTED_REMOTE = "encrypted-remote"  # the code of serve's ERROR for an SSH encrypted remote


def is_encrypted(remote: Remote) -> bool:
    """A path remote holding ``vsync-remote`` (docs/format.md, "Layout"). An SSH remote
    is found to be one when ``vsync serve`` answers HELLO with ERROR code
    ``encrypted-remote`` (docs/protocol.md, "Object store")."""
    return remote.url.kind == "local" and (Path(remote.url.path) / MARKER).is_file()
