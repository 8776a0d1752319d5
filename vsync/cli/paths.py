"""Paths typed on the command line, turned into repository paths.

A path a user types is relative to the current directory (as with any other
command line tool); vsync works with repository paths: NFC-normalised,
'/'-separated, relative to the working folder's root, ``""`` for the root
itself. In a bare repository there is no current directory inside it, so a
path is taken as relative to the root.

The PATH of ``REV:PATH`` (:func:`rev_path`) is different, as in git: it is
from the root wherever you are, unless it starts with ``./`` or ``../`` (or is
``.`` or ``..``), which make it relative to the current directory. A leading
'/' also means "from the root".
"""

from __future__ import annotations

import os

from vsync.errors import UsageError
from vsync.model.paths import CONTROL_NAME, nfc
from vsync.model.repository import Repository


def _from_root(text: str) -> str:
    """A root-relative path with '.', '..' and doubled separators folded."""
    parts: list[str] = []
    for part in text.replace(os.sep, "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UsageError(f"'{text}' is outside the repository")
            parts.pop()
            continue
        parts.append(part)
    return nfc("/".join(parts))


def _check_control(path: str, arg: str) -> str:
    first = path.split("/", 1)[0]
    if first.casefold() == CONTROL_NAME:
        raise UsageError(f"'{arg}' is inside vsync's own {CONTROL_NAME} folder, not a tracked path")
    return path


def repo_path(repo: Repository, arg: str) -> str:
    """The repository path for one command-line path. Raises UsageError outside the folder."""
    if not arg:
        raise UsageError("an empty path was given")
    if repo.root is None:
        return _check_control(_from_root(arg), arg)
    root = str(repo.root)
    full = os.path.normpath(os.path.join(os.getcwd(), arg))
    rel = os.path.relpath(full, root)
    if rel == os.curdir:
        return ""
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        raise UsageError(f"'{arg}' is outside the working folder {root}")
    return _check_control(nfc(rel.replace(os.sep, "/")), arg)


def repo_paths(repo: Repository, args: list[str]) -> list[str]:
    """Repository paths for command-line paths, in order, without duplicates."""
    out: list[str] = []
    for arg in args:
        path = repo_path(repo, arg)
        if path not in out:
            out.append(path)
    return out


def is_cwd_relative(text: str) -> bool:
    """``./PATH``, ``../PATH``, ``.`` or ``..``: a ``REV:PATH`` path from the current directory."""
    first = text.replace(os.sep, "/").split("/", 1)[0]
    return first in (".", "..")


def rev_path(repo: Repository, text: str) -> str:
    """The PATH of ``REV:PATH``: from the root, as in git; ``./`` and ``../`` from the cwd.

    An empty PATH (``HEAD:``) is the root folder, as in git.
    """
    if is_cwd_relative(text):
        return repo_path(repo, text)
    return _check_control(_from_root(text), text)
