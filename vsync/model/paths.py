"""Repository paths: NFC-normalised, '/'-separated, relative, never escaping.

Every path that arrives from a tree (ours or a remote's) passes
:func:`check_tree_name` per component before anything touches the disk, and
every folder of a tree passes :func:`control_shaped` (it must not look like
a vsync repository).

Names that *alias* ``.vsync`` or ``.git`` on some file system are refused
too: on NTFS, HFS+, APFS or FAT a name such as ``.vsync.``, ``VSYNC~1``,
``.GIT`` or ``.g\\u200cit`` opens the real ``.vsync`` or ``.git``. The rules
are ported from git, which refuses the same aliases of ``.git``
(``verify_path`` with ``is_ntfs_dotgit`` in path.c and ``is_hfs_dotgit`` /
``next_hfs_char`` in utf8.c; git v2.2.1 and v2.24.1 security releases).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from vsync.errors import UnsafePath

CONTROL_NAME = ".vsync"
# vsync's temporary files in the working folder (materialize): never recorded
TEMP_PREFIX = ".vsync-tmp-"
GIT_NAME = ".git"
# A folder holding these three is what vsync opens as a repository (the
# control folder or a bare repository; see repository.is_control_dir).
CONTROL_PARTS = ("config", "git", "chunks")

# NTFS short (8.3) names: git~1 is .git (path.c is_ntfs_dotgit); vsync~N is
# .vsync. git refuses only "git~1" because git makes .git first in a folder;
# vsync cannot promise any order, so any ~N of either is refused.
_SHORT_NAME = re.compile(r"(vsync|git)~[0-9]+")
_ALIAS_HEADS = frozenset(".vVgG")  # first character of any name that folds to a reserved one
_PART_HEADS = frozenset("cCgG")  # ... and of any that folds to a CONTROL_PARTS name


# Why the scan skips a name: another one in its folder is the same text in another Unicode
# form (NFC against NFD); vsync keys names by NFC, as macOS's file systems do.
UNICODE_TWINS = (
    "two names in its folder are the same text in different Unicode forms (NFC and NFD), "
    "one name for vsync and on macOS; rename one of them"
)


class UnicodeTwin(str):
    """The scan's warning for a name it skipped as a Unicode twin of another in its
    folder; ``path`` is the (NFC) path both spell, for ``portability.strict``."""

    path: str


def unicode_twin(path: str) -> UnicodeTwin:
    """The warning that the second name spelling ``path`` (NFC) is skipped."""
    warning = UnicodeTwin(f"skipping a second '{path}': {UNICODE_TWINS}")
    warning.path = path
    return warning


def nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def fold_name(text: str) -> str:
    """The name ``text`` opens on the most forgiving file system vsync guards against.

    Follows git's alias rules (see the module docstring):

    - HFS+ ignores some code points in names (git's ``next_hfs_char`` lists
      them: U+200C-U+200F, U+202A-U+202E, U+206A-U+206F, U+FEFF). All of
      them are Unicode format characters (category Cf); every Cf code point
      is dropped here, which also covers U+200B ZERO WIDTH SPACE, U+00AD SOFT
      HYPHEN and U+2060 WORD JOINER.
    - Case-insensitive file systems (NTFS, HFS+, APFS, FAT): case is folded.
    - NTFS: ``name:stream`` is a stream of ``name`` (git stops at ``:``), and
      trailing spaces and periods are dropped (``.git . .`` is ``.git``).
    """
    if not text.isascii():
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return text.casefold().partition(":")[0].rstrip(" .")


def reserved_reason(text: str) -> str | None:
    """Why ``text`` may not name a tracked file or folder, or None.

    Refused: ``.vsync`` and every alias of it (fold_name, short names
    ``VSYNC~N``); every alias of ``.git`` (``.GIT``, ``.git.``, ``git~1``,
    ``.g\\u200cit`` ...). ``.git`` itself, spelled exactly so, is allowed:
    synced folders hold git checkouts (what vsync writes into them is
    limited by :mod:`vsync.model.holdback`).
    """
    if text[:1] not in _ALIAS_HEADS and text.isascii():
        return None
    folded = fold_name(text)
    short = _SHORT_NAME.fullmatch(folded)
    if folded == CONTROL_NAME or (short is not None and short.group(1) == "vsync"):
        if text == CONTROL_NAME:
            return f"name is reserved ({CONTROL_NAME})"
        return f"name is reserved: it would be {CONTROL_NAME} on some file systems"
    if (folded == GIT_NAME and text != GIT_NAME) or short is not None:
        return f"name is reserved: it would be {GIT_NAME} on some file systems"
    return None


def control_shaped(names: Iterable[str]) -> bool:
    """True if a folder holding entries with these names could be taken for a vsync
    repository on some file system: it holds entries (of any kind: a symlink
    resolves) whose folded names are ``config``, ``git`` and ``chunks``.

    A superset of :func:`vsync.model.repository.is_control_dir`, which is what
    vsync opens; such a folder is never written from a tree (a peer could
    otherwise plant a repository whose hooks and remote commands run when a
    command is started inside it)."""
    names = list(names)
    joined = "\0".join(names)
    if joined.isascii():  # a quick look first: most folders hold none of the three
        low = "\0" + joined.lower()
        if "\0git" not in low or "\0chunks" not in low or "\0config" not in low:
            return False
    found: set[str] = set()
    for name in names:
        if name[:1] in _PART_HEADS or not name.isascii():
            key = fold_name(name)
            if key in CONTROL_PARTS:
                found.add(key)
    return len(found) == len(CONTROL_PARTS)


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
    reason = reserved_reason(text)
    if reason is not None:
        raise UnsafePath(label, reason)
    if not text.isascii() and text != nfc(text):  # ASCII is always NFC
        raise UnsafePath(label, "name is not NFC-normalised")
    return text


def check_tree_path(raw: bytes) -> str:
    """Validate a '/'-separated path from a tree diff, name by name; returns it decoded."""
    return "/".join(check_tree_name(part, repr(raw)) for part in raw.split(b"/"))


def check_folder_names(names: Iterable[str], where: str) -> None:
    """Refuse (UnsafePath) a folder of a tree that :func:`control_shaped` says looks
    like a vsync repository; ``where`` names the folder ('' is the top)."""
    if control_shaped(names):
        raise UnsafePath(
            where or "/",
            "the folder holds 'config', 'git' and 'chunks', the shape of a vsync repository",
        )


def check_repo_path(path: str) -> str:
    """Validate a whole '/'-separated repository path."""
    if path.startswith("/"):
        raise UnsafePath(path, "absolute path")
    for part in path.split("/"):
        check_tree_name(part.encode("utf-8", "surrogateescape"), path)
    return path


def ancestors(path: str) -> list[str]:
    """The parent folders of ``path``, outermost first."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def is_under(path: str, prefix: str) -> bool:
    """True if ``path`` is ``prefix`` or inside the folder ``prefix`` ('' is the root)."""
    return not prefix or path == prefix or path.startswith(prefix + "/")
