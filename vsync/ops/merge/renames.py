"""Rename detection, only where it changes a merge's outcome.

A rename matters to a merge in one situation: one side (the *renamer*)
deleted path OLD and the other side (the *editor*) changed OLD. Without
rename detection that is a modify/delete conflict; with it, the editor's
change is carried to the renamer's new name. So only those OLD paths are
looked at, and the candidates for their new name are the paths the renamer
added that neither the base nor the editor has.

A candidate NEW matches OLD (base version against the renamer's NEW) when:

- both are symlinks with the same target, or both are regular files and
- their manifests are identical (an exact rename: score 1.0), or
- neither is empty, their sizes are within a factor of 2, and
  - both are text of at most 1 MiB: at least 50 % of their lines are shared
    (``2 * common lines / (lines of OLD + lines of NEW)``, lines as multisets), or
  - otherwise: at least 50 % of their chunk ids are shared
    (``|common ids| / max(|ids of OLD|, |ids of NEW|)``).

Pairs are taken best score first; ties prefer a NEW with the same file name,
then path order. Each OLD and each NEW is used once. Empty files are never
rename candidates (every empty file looks alike). The rule is the same for
both sides, so swapping ours and theirs finds the same renames.
"""

from __future__ import annotations

from vsync.model.folder_scan import MODE_LINK
from vsync.model.snapshot import Entry, FlatMap
from vsync.ops.merge.content import ContentSource, line_similarity

THRESHOLD = 0.5
SMALL_TEXT = 1024 * 1024


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def similarity(old: Entry, new: Entry, reader: ContentSource) -> float:
    """How alike two entries are, 0.0 to 1.0 (see the module docstring)."""
    old_link, new_link = old[0] == MODE_LINK, new[0] == MODE_LINK
    if old_link or new_link:
        return 1.0 if old_link and new_link and old[1] == new[1] else 0.0
    size_old, size_new = reader.size(old), reader.size(new)
    if size_old == 0 or size_new == 0:
        return 0.0
    if old[1] == new[1]:
        return 1.0
    if min(size_old, size_new) * 2 < max(size_old, size_new):
        return 0.0
    if size_old <= SMALL_TEXT and size_new <= SMALL_TEXT:
        text_old, text_new = reader.text(old), reader.text(new)
        if text_old is not None and text_new is not None:
            return line_similarity(text_old, text_new)
    ids_old, ids_new = set(reader.chunk_ids(old)), set(reader.chunk_ids(new))
    if not ids_old or not ids_new:
        return 0.0
    return len(ids_old & ids_new) / max(len(ids_old), len(ids_new))


def find_renames(
    base: FlatMap, renamer: FlatMap, editor: FlatMap, reader: ContentSource
) -> dict[str, str]:
    """``{old: new}`` for paths ``renamer`` moved away while ``editor`` changed them."""
    gone = sorted(p for p in base if p not in renamer and p in editor and editor[p] != base[p])
    if not gone:
        return {}
    added = sorted(p for p in renamer if p not in base and p not in editor)
    if not added:
        return {}
    scored: list[tuple[float, int, str, str]] = []
    for old in gone:
        for new in added:
            score = similarity(base[old], renamer[new], reader)
            if score >= THRESHOLD:
                scored.append((-score, 0 if _name(old) == _name(new) else 1, old, new))
    scored.sort()
    pairs: dict[str, str] = {}
    used: set[str] = set()
    for _score, _same_name, old, new in scored:
        if old in pairs or new in used:
            continue
        pairs[old] = new
        used.add(new)
    return pairs
