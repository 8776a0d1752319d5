"""Repository paths: NFC-normalised, '/'-separated, relative, never escaping.

Every path that arrives from a tree (ours or a remote's) passes
:func:`check_tree_name` per component before anything touches the disk.
"""

from __future__ import annotations

import unicodedata

from vsync.errors import UnsafePath

CONTROL_NAME = ".vsync"


def nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def check_tree_name(name: bytes, where: str = "") -> str:
    """Validate one tree entry name; returns it decoded. Raises UnsafePath."""
    label = where or name.decode("utf-8", "backslashreplace")
    if not name:
        raise UnsafePath(label, "empty name")
    if b"\0" in name:
        raise UnsafePath(label, "name contains NUL")
    if b"/" in name or b"\\" in name:
        raise UnsafePath(label, "name contains a path separator")
    if name in (b".", b".."):
        raise UnsafePath(label, "name is '.' or '..'")
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafePath(label, "name is not valid UTF-8") from None
    if text.casefold() == CONTROL_NAME:
        raise UnsafePath(label, f"name is reserved ({text})")
    if text != nfc(text):
        raise UnsafePath(label, "name is not NFC-normalised")
    return text


def check_repo_path(path: str) -> str:
    """Validate a whole '/'-separated repository path."""
    if path.startswith("/"):
        raise UnsafePath(path, "absolute path")
    for part in path.split("/"):
        check_tree_name(part.encode("utf-8", "surrogateescape"), path)
    return path


def is_under(path: str, prefix: str) -> bool:
    """True if ``path`` is ``prefix`` or inside the folder ``prefix`` ('' is the root)."""
    return not prefix or path == prefix or path.startswith(prefix + "/")
