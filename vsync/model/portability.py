"""Names that cannot exist on Windows or macOS, found before they are pushed.

Linux takes any name but ``/`` and NUL; the copies a folder is synced to may
not. :func:`name_problem` says why one name cannot be made on Windows
(reserved device names ``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM1``-``COM9``,
``LPT1``-``LPT9`` with any extension, as ``aux.txt``; a trailing dot or
space; ``<>:"|?*\\`` and control characters). :func:`case_twins` finds names
that a case-folding file system (NTFS, APFS, HFS+ by default) would take for
one: two paths that differ only by case. (Names that differ only by Unicode
normalisation, NFD against NFC, never both reach a tree: the scan keys names
by their NFC form and skips the second with a warning, and macOS stores
either form as one name; under ``portability.strict`` a commit is refused for
them instead, :data:`UNICODE_TWIN_PROBLEM`.)

``status`` and ``commit`` warn, one line per path, for paths that are new to
the branch (a clean status never looks); ``portability.strict = true`` in the
repository config makes ``commit`` refuse them (:class:`NotPortable`, exit 2,
one line per path).

:func:`folded_key` is the name a case-folding file system opens:
:mod:`vsync.ops.case_fold` uses it to keep both files of a case pair (the
second under a conflict-copy name) when a checkout writes to such a file
system.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Iterable

from vsync.errors import UsageError

_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"]
    + [f"com{n}" for n in range(1, 10)]
    + [f"lpt{n}" for n in range(1, 10)]
)
_FORBIDDEN = frozenset('<>:"|?*\\')


UNICODE_TWIN_PROBLEM = (
    "is spelled twice in its folder, in different Unicode forms (NFC and NFD), one name on macOS"
)
_HINT = "rename it, or set portability.strict = false to commit it"


class NotPortable(UsageError):
    """A commit refused by ``portability.strict``: a new path cannot exist on Windows or
    macOS. The CLI prints one line per path (:meth:`lines`)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        path, why = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"'{path}' {why}{more}; {_HINT}")
        self.problems = problems

    def lines(self) -> list[str]:
        if len(self.problems) == 1:
            return [str(self)]
        return [f"'{path}' {why}; {_HINT}" for path, why in self.problems]


def name_problem(name: str) -> str | None:
    """Why one file or folder name cannot be made on Windows, or None."""
    if name.isascii() and name.isalnum():
        stem = name.lower()
        return f"is a reserved name on Windows ({name})" if stem in _DEVICES else None
    for c in name:
        if c in _FORBIDDEN:
            return f"holds '{c}', which Windows forbids in names"
        if ord(c) < 32:
            return f"holds the control character U+{ord(c):04X}, which Windows forbids"
    if name.endswith((".", " ")):
        return "ends in a dot or a space, which Windows drops"
    stem = name.split(".", 1)[0].rstrip(" ").lower()
    if stem in _DEVICES:
        return f"is a reserved name on Windows ({stem.upper()}, with any extension)"
    return None


def folded_key(path: str) -> str:
    """``path`` as a case-folding file system compares it (NFC, case folded)."""
    if path.isascii():
        return path.lower()
    return unicodedata.normalize("NFC", path).casefold()


def case_twins(paths: Iterable[str]) -> dict[str, tuple[str, str]]:
    """For every path that a case-folding file system would take for an earlier one (in
    sorted order): the earlier spelling it meets and the path that brought it. Folders
    count: ``Docs/a`` and ``docs/b`` are twins by their folders (``("Docs", "Docs/a")``)."""
    seen: dict[str, tuple[str, str]] = {}  # folded path or folder -> (spelling, path)
    twins: dict[str, tuple[str, str]] = {}
    for path in sorted(paths):
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            spelled = "/".join(parts[:i])
            first = seen.setdefault(folded_key(spelled), (spelled, path))
            if first[0] != spelled:
                twins[path] = first
                break
    return twins


def twins_beside(
    paths: Iterable[str], names_in: Callable[[str], Collection[str] | None]
) -> dict[str, tuple[str, str]]:
    """As :func:`case_twins`, for ``paths`` new to a tree against the names the tree
    keeps: each path whose name, or the name of a folder it is in, differs only by case
    from a name the tree has in that folder, with (that spelling as a path, the path).

    ``names_in(folder)`` gives the names the tree keeps in ``folder`` ('' the root), or
    None when it has no such folder; it is asked once per folder the paths are in, so
    the cost follows the folders of ``paths``, not the tree."""
    index: dict[str, dict[str, str] | None] = {}
    twins: dict[str, tuple[str, str]] = {}
    for path in paths:
        parts = path.split("/")
        for i, name in enumerate(parts):
            folder = "/".join(parts[:i])
            if folder not in index:
                names = names_in(folder)
                index[folder] = None if names is None else {folded_key(n): n for n in names}
            known = index[folder]
            met = None if known is None else known.get(folded_key(name))
            if met is None:
                break  # a name new to its folder: nothing below it is in the tree
            if met != name:
                twins[path] = (f"{folder}/{met}" if folder else met, path)
                break
    return twins


# The first look over a joined list of paths ("\0" between paths): a forbidden character,
# a trailing dot or space, a device name (then checked to start a name). Three simple
# expressions run several times faster than one that holds them all.
_BAD_CHAR = re.compile(r'[<>:"|?*\\\x01-\x1f]')
_BAD_END = re.compile(r"[. ](?=[/\x00]|\Z)")
_DEVICE = re.compile(r"(?:con|prn|aux|nul|com[1-9]|lpt[1-9])(?= *(?:\.|[/\x00]|\Z))")
_DEVICE_ANY_CASE = re.compile(_DEVICE.pattern, re.IGNORECASE)


def _suspect_spans(joined: str) -> list[int]:
    """Offsets in ``joined`` where a name may be unportable."""
    spans = [m.start() for m in _BAD_CHAR.finditer(joined)]
    spans += [m.start() for m in _BAD_END.finditer(joined)]
    if joined.isascii():
        devices = _DEVICE.finditer(joined.lower())  # same length: the offsets hold
    else:
        devices = _DEVICE_ANY_CASE.finditer(joined)
    spans += [m.start() for m in devices if m.start() == 0 or joined[m.start() - 1] in "/\0"]
    return spans


CASE_TWIN = "only by case (one file on Windows and macOS; a push is refused)"


def problems(
    all_paths: Collection[str],
    is_new: Callable[[str], bool],
    beside: dict[str, tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """(path, why) for each path of ``all_paths`` (a whole tree) for which ``is_new`` says
    yes and that cannot exist on Windows or macOS: a name of it (:func:`name_problem`),
    or a case twin among ``all_paths``; sorted by path. ``beside``: case twins found
    outside ``all_paths`` (:func:`twins_beside`, when ``all_paths`` are only the
    changed paths of a tree).

    A first look runs over all paths at once (a regular expression over their joined
    text, and a comparison of lower-cased names), so a tree with no suspect name costs
    little; the exact checks run on what it finds."""
    found: dict[str, str] = {}
    for path, (first, _by) in (beside or {}).items():
        found[path] = f"differs from '{first}' {CASE_TWIN}"
    if not all_paths:
        return sorted(found.items())
    joined = "\0".join(all_paths)
    suspects: set[str] = set()
    for at in _suspect_spans(joined):
        begin = joined.rfind("\0", 0, at) + 1
        stop = joined.find("\0", at)
        suspects.add(joined[begin : len(joined) if stop < 0 else stop])
    for path in suspects:
        if not is_new(path):
            continue
        parts = path.split("/")
        for i, name in enumerate(parts):
            why = name_problem(name)
            if why is not None:
                folder = "/".join(parts[: i + 1])
                found[path] = why if i == len(parts) - 1 else f"is in '{folder}', which {why}"
                break
    if _may_have_twins(joined, all_paths):
        for path, (first, by) in case_twins(all_paths).items():
            if not is_new(path):
                if not is_new(by):
                    continue
                path, first = by, path  # the new one is named, the one it meets quoted
            found.setdefault(path, f"differs from '{first}' {CASE_TWIN}")
    return sorted(found.items())


def _may_have_twins(joined: str, paths: Collection[str]) -> bool:
    """A quick look: could two of ``paths`` (or their folders) differ only by case?"""
    lowered = joined.lower() if joined.isascii() else folded_key(joined)
    if lowered == joined:
        return False  # nothing to fold: no twins
    names = lowered.split("\0")
    if len(set(names)) < len(names):
        return True
    folders = {p.rpartition("/")[0] for p in paths}
    for folder in list(folders):
        while "/" in folder:
            folder = folder.rpartition("/")[0]
            folders.add(folder)
    folded = {folded_key(f) for f in folders}
    # two folders, or a folder and a file, that differ only by case
    return len(folded) < len(folders) or not folded.isdisjoint(names)


def strict(value: str | None, where: str) -> bool:
    """``portability.strict`` read from the config (absent: false)."""
    if value is None:
        return False
    if value not in ("true", "false"):
        raise UsageError(f"{where}: portability.strict must be true or false")
    return value == "true"
