"""The merge plan: per-path decisions over three flat maps, each with its reason.

:func:`plan_merge` is a pure function of the base, ours and theirs flat maps
(``{path: (mode, blob id)}``) and a :class:`~vsync.ops.merge.content.ContentSource`.
It returns a :class:`MergePlan`: ``merged``, the merge result for every path
that merged cleanly, and ``actions``, one :class:`Action` per path whose
folder content changes, whose two sides both changed, or that conflicts,
sorted by path. Paths that only ours changed (or nobody changed) are in
``merged`` and need no action: the working folder already holds them.

Action kinds (closed set, :data:`ACTION_KINDS`):

=========  ===========================================================
get        take theirs: "remote created", "remote changed, local unchanged"
remove     "remote deleted, local unchanged"; "remote renamed it to NEW"
merge      both changed, merged cleanly: text lines, or the exec bit on
           one side and the content on the other
carry      the target of a rename on one side receiving the other side's edit
keep       both sides made the same change (nothing to write), or ours
           renamed the path away and theirs' edit went with it
conflict   see :class:`Conflict`
=========  ===========================================================

Conflict kinds (closed set, :data:`CONFLICT_KINDS`) with git's unmerged
status codes, and what the working folder holds while unresolved:

=============  ======  =====================================================
content        UU      text changed on both sides, overlapping: the merged
                       text with conflict markers (see textmerge)
binary         UU      a binary (or a symlink's target) changed on both
                       sides: ours in place, theirs as a conflict copy beside
add-add        AA      created on both sides with different content: text
                       gets markers around the lines that differ (a two-way
                       diff, see textmerge); a binary or a symlink as for
                       ``binary``
modify-delete  UD      ours changed it, theirs deleted it ("deleted by
                       them"): ours stays in place
delete-modify  DU      ours deleted it, theirs changed it ("deleted by us"):
                       theirs is written in place
type           UU/AA   a symlink on one side, a regular file on the other
                       (AA when both created it): ours in place, theirs as
                       a conflict copy
file-folder    AU/UA   a file (or symlink) on one side where the other has a
                       folder: the folder stays; the file is written beside
                       it as a conflict copy named after its own side's commit.
                       AU when the file is ours ("added by us"), UA when it
                       is theirs
=============  ======  =====================================================

Conflict copies are named by :mod:`vsync.ops.merge.naming` after theirs'
commit (file-folder: after the file's side). ``DD`` is never produced: a
path deleted on both sides merges cleanly, and a file renamed differently on
both sides keeps both new names.

Clean cases: changed on one side only; the same change on both; the exec bit
changed on one side and the content on the other (both applied); text
changed on both without overlap (merge3 line merge); created identically on
both (a differing exec bit is then kept set). Renames (see renames): a file
one side renamed and the other edited gets the edit at the new name (text:
line merge of base, renamed version and edit; otherwise the edit is taken
when the renamer did not change the content, else a ``binary`` conflict at
the new name). A rename on one side and a deletion on the other keeps the
renamed file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from vsync.model.folder_scan import MODE_EXEC, MODE_LINK
from vsync.model.paths import ancestors
from vsync.model.snapshot import Entry, FlatMap
from vsync.ops.merge.content import ContentSource
from vsync.ops.merge.naming import conflict_copy_name
from vsync.ops.merge.renames import find_renames
from vsync.ops.merge.textmerge import MarkerLabels, merge_added, merge_text
from vsync.wording import plural

ACTION_KINDS = ("get", "remove", "merge", "carry", "keep", "conflict")
CONFLICT_KINDS = (
    "content",
    "binary",
    "add-add",
    "modify-delete",
    "delete-modify",
    "type",
    "file-folder",
)
UNMERGED_CODES = ("UU", "AA", "DU", "UD", "DD", "AU", "UA")


@dataclass(frozen=True)
class Side:
    """One side of a merge as it appears in markers and conflict-copy names."""

    name: str  # "ours" | "theirs"
    commit: bytes | None
    host: str
    stamp: str  # yyyymmdd-hhmmss of the commit, in its own time zone

    @property
    def short(self) -> str:
        return self.commit.decode()[:10] if self.commit else "none"

    @property
    def marker(self) -> str:
        return f"{self.name} ({self.host} {self.short})"


@dataclass(frozen=True)
class Labels:
    ours: Side
    theirs: Side
    base: str  # "base (COMMIT10)", "base (virtual C1+C2)", "base (none)"

    def markers(self) -> MarkerLabels:
        return MarkerLabels(self.ours.marker, self.base, self.theirs.marker)


@dataclass(frozen=True)
class Conflict:
    path: str
    kind: str  # one of CONFLICT_KINDS
    code: str  # git's unmerged status code
    base: Entry | None
    ours: Entry | None
    theirs: Entry | None
    in_place: Entry | None  # what the folder holds at ``path`` until resolved
    copy: str | None = None  # the conflict copy's path, if one is written
    copy_entry: Entry | None = None


@dataclass(frozen=True)
class Action:
    path: str
    kind: str  # one of ACTION_KINDS
    reason: str
    result: Entry | None  # the path's entry afterwards (a conflict: what is in place)
    conflict: Conflict | None = None


@dataclass
class MergePlan:
    base: FlatMap
    ours: FlatMap
    theirs: FlatMap
    labels: Labels
    merged: FlatMap  # every path that merged cleanly
    actions: list[Action]
    new_content: dict[bytes, bytes]  # content the merge made, by id (see content.py)
    bases: list[bytes] = field(default_factory=list)  # merge-base commits used

    @property
    def conflicts(self) -> list[Conflict]:
        return [a.conflict for a in self.actions if a.conflict is not None]

    @property
    def clean(self) -> bool:
        return not any(a.conflict is not None for a in self.actions)

    def virtual_result(self) -> FlatMap:
        """Clean results plus what each conflict leaves in place (a virtual base)."""
        out = dict(self.merged)
        for c in self.conflicts:
            if c.in_place is not None:
                out[c.path] = c.in_place
        return dict(sorted(out.items()))

    def target(self) -> FlatMap:
        """What the working folder holds once the plan is applied (copies included)."""
        out = self.virtual_result()
        for c in self.conflicts:
            if c.copy is not None and c.copy_entry is not None:
                out[c.copy] = c.copy_entry
        return dict(sorted(out.items()))


@dataclass
class _Outcome:
    result: Entry | None
    reason: str
    entries: tuple[Entry | None, Entry | None, Entry | None]  # base, ours, theirs
    both: bool = False  # both sides changed the path
    kind: str | None = None  # a conflict kind
    code: str = ""
    copy_entry: Entry | None = None  # theirs, written beside the path


def is_link(entry: Entry | None) -> bool:
    return entry is not None and entry[0] == MODE_LINK


def merge_mode(b: Entry | None, o: Entry, t: Entry) -> int:
    """Three-way merge of the exec bit of two regular files (symmetric)."""
    if o[0] == t[0]:
        return o[0]
    if b is None or is_link(b):
        return MODE_EXEC
    if o[0] == b[0]:
        return t[0]
    if t[0] == b[0]:
        return o[0]
    return MODE_EXEC


@dataclass
class _Planner:
    base: FlatMap
    ours: FlatMap
    theirs: FlatMap
    reader: ContentSource
    labels: Labels
    exists: Callable[[str], bool] | None
    merged: FlatMap = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.markers = self.labels.markers()
        self.occupied: set[str] = set()
        for flat in (self.base, self.ours, self.theirs):
            for path in flat:
                self.occupied.add(path)
                self.occupied.update(ancestors(path))

    # -- naming ----------------------------------------------------------------------

    def _taken(self, path: str) -> bool:
        return path in self.occupied or (self.exists is not None and self.exists(path))

    def _copy_name(self, path: str, side: Side) -> str:
        name = conflict_copy_name(path, side.host, side.stamp, self._taken)
        self.occupied.add(name)
        return name

    # -- per-path decisions ---------------------------------------------------------------

    def _conflict(
        self,
        entries: tuple[Entry | None, Entry | None, Entry | None],
        kind: str,
        code: str,
        in_place: Entry | None,
        reason: str,
        copy_entry: Entry | None = None,
    ) -> _Outcome:
        return _Outcome(in_place, reason, entries, True, kind, code, copy_entry)

    def decide(self, b: Entry | None, o: Entry | None, t: Entry | None) -> _Outcome:
        entries = (b, o, t)
        if o == t:
            if b == o:
                return _Outcome(o, "", entries)
            if o is None:
                why = "deleted on both sides"
            elif b is None:
                why = "created identically on both sides"
            else:
                why = "changed identically on both sides"
            return _Outcome(o, why, entries, both=True)
        if t == b:
            return _Outcome(o, "local changed, remote unchanged", entries)
        if o == b:
            if t is None:
                why = "remote deleted, local unchanged"
            elif b is None:
                why = "remote created"
            elif t[1] == b[1]:
                why = "remote changed the exec bit, local unchanged"
            else:
                why = "remote changed, local unchanged"
            return _Outcome(t, why, entries)
        return self._both_changed(b, o, t)

    def _both_changed(self, b: Entry | None, o: Entry | None, t: Entry | None) -> _Outcome:
        entries = (b, o, t)
        if o is None:
            assert t is not None
            why = "local deleted, remote changed"
            return self._conflict(entries, "delete-modify", "DU", t, why)
        if t is None:
            why = "local changed, remote deleted"
            return self._conflict(entries, "modify-delete", "UD", o, why)
        added = b is None
        if is_link(o) != is_link(t):
            what = "a symlink" if is_link(o) else "a file"
            other = "a file" if is_link(o) else "a symlink"
            why = f"local has {what}, remote {other}" + (" (both created it)" if added else "")
            return self._conflict(entries, "type", "AA" if added else "UU", o, why, t)
        if is_link(o):
            if added:
                why = "created on both sides as symlinks to different targets"
                return self._conflict(entries, "add-add", "AA", o, why, t)
            why = "both changed the symlink's target"
            return self._conflict(entries, "binary", "UU", o, why, t)
        mode = merge_mode(b, o, t)
        if o[1] == t[1]:
            bit = "set" if mode == MODE_EXEC else "cleared"
            why = f"same content on both sides; exec bit {bit}"
            return _Outcome((mode, o[1]), why, entries, True)
        base_regular = b is not None and not is_link(b)
        if base_regular:
            assert b is not None
            if o[1] == b[1]:
                why = "local changed the exec bit, remote the content"
                return _Outcome((mode, t[1]), why, entries, True)
            if t[1] == b[1]:
                why = "local changed the content, remote the exec bit"
                return _Outcome((mode, o[1]), why, entries, True)
        ours_text, theirs_text = self.reader.text(o), self.reader.text(t)
        if added:
            if ours_text is None or theirs_text is None:
                why = "created on both sides with different content (binary)"
                return self._conflict(entries, "add-add", "AA", o, why, t)
            merged = merge_added(ours_text, theirs_text, self.markers)
            in_place = (mode, self.reader.identify(merged.data, mode))
            why = "created on both sides with different text"
            return self._conflict(entries, "add-add", "AA", in_place, why)
        base_text = self.reader.text(b) if base_regular else b""  # type: ignore[arg-type]
        if base_text is None or ours_text is None or theirs_text is None:
            return self._conflict(entries, "binary", "UU", o, "both changed a binary file", t)
        tm = merge_text(base_text, ours_text, theirs_text, self.markers)
        entry = (mode, self.reader.identify(tm.data, mode))
        if tm.clean:
            return _Outcome(entry, "both changed text: merged cleanly", entries, True)
        n = tm.conflicts
        why = f"both changed text: {plural(n, 'overlapping change')}"
        return self._conflict(entries, "content", "UU", entry, why)

    # -- placing outcomes ------------------------------------------------------------------

    def place(self, path: str, out: _Outcome, carried: bool = False) -> None:
        if out.kind is not None:
            copy = None
            if out.copy_entry is not None:
                copy = self._copy_name(path, self.labels.theirs)
            b, o, t = out.entries
            c = Conflict(path, out.kind, out.code, b, o, t, out.result, copy, out.copy_entry)
            self.actions[path] = Action(path, "conflict", out.reason, out.result, c)
            return
        if out.result is not None:
            self.merged[path] = out.result
        if out.result == self.ours.get(path):
            if out.both or carried:
                self.actions[path] = Action(path, "keep", out.reason, out.result)
            return
        if carried:
            kind = "carry"
        elif out.result is None:
            kind = "remove"
        elif out.result == self.theirs.get(path):
            kind = "get"
        else:
            kind = "merge"
        self.actions[path] = Action(path, kind, out.reason, out.result)

    def run(self) -> None:
        base, ours, theirs = self.base, self.ours, self.theirs
        ren_ours = find_renames(base, ours, theirs, self.reader)
        ren_theirs = find_renames(base, theirs, ours, self.reader)
        carried = {new: (old, "ours") for old, new in ren_ours.items()}
        carried.update({new: (old, "theirs") for old, new in ren_theirs.items()})
        for path in sorted(base.keys() | ours.keys() | theirs.keys()):
            if path in ren_ours:
                why = f"local renamed it to '{ren_ours[path]}'; remote's changes went there"
                self.actions[path] = Action(path, "keep", why, None)
            elif path in ren_theirs:
                why = f"remote renamed it to '{ren_theirs[path]}'; local changes went there"
                self.actions[path] = Action(path, "remove", why, None)
            elif path in carried:
                old, side = carried[path]
                if side == "ours":
                    out = self.decide(base[old], ours[path], theirs[old])
                else:
                    out = self.decide(base[old], ours[old], theirs[path])
                who = "local" if side == "ours" else "remote"
                out = replace(out, reason=f"{who} renamed '{old}' to here; {out.reason}")
                self.place(path, out, carried=True)
            else:
                self.place(path, self.decide(base.get(path), ours.get(path), theirs.get(path)))
        self._file_folder()

    def _file_folder(self) -> None:
        placed = dict(self.merged)
        for a in self.actions.values():
            if a.conflict is not None and a.conflict.in_place is not None:
                placed[a.path] = a.conflict.in_place
        folders: set[str] = set()
        for path in placed:
            folders.update(ancestors(path))
        for path in sorted(p for p in placed if p in folders):
            mine = path in self.ours
            side = self.labels.ours if mine else self.labels.theirs
            copy = self._copy_name(path, side)
            self.merged.pop(path, None)
            prev = self.actions.get(path)
            entries = (self.base.get(path), self.ours.get(path), self.theirs.get(path))
            why = (
                f"{'local' if mine else 'remote'} has a file here, "
                f"{'remote' if mine else 'local'} a folder: the file is kept as "
                f"'{copy.rsplit('/', 1)[-1]}'"
            )
            if prev is not None and prev.conflict is not None:
                c0 = prev.conflict
                entries = (c0.base, c0.ours, c0.theirs)
                if c0.copy is not None:
                    self.occupied.discard(c0.copy)
                why = f"{prev.reason}; {why}"
            c = Conflict(
                path, "file-folder", "AU" if mine else "UA", *entries, None, copy, placed[path]
            )
            self.actions[path] = Action(path, "conflict", why, None, c)

    def plan(self) -> MergePlan:
        actions = [self.actions[p] for p in sorted(self.actions)]
        plan = MergePlan(
            self.base,
            self.ours,
            self.theirs,
            self.labels,
            dict(sorted(self.merged.items())),
            actions,
            {},
        )
        wanted = {e[1] for e in plan.target().values()}
        for c in plan.conflicts:  # a virtual base's text can be a conflict's base side
            wanted.update(e[1] for e in (c.base, c.ours, c.theirs) if e is not None)
        plan.new_content = {k: v for k, v in self.reader.new_content.items() if k in wanted}
        return plan


def plan_merge(
    base: FlatMap,
    ours: FlatMap,
    theirs: FlatMap,
    reader: ContentSource,
    labels: Labels,
    exists: Callable[[str], bool] | None = None,
) -> MergePlan:
    """Plan the three-way merge of ``ours`` and ``theirs`` from ``base``.

    ``exists`` tells whether a path is taken in the working folder, so a
    conflict copy never lands on an untracked file.
    """
    planner = _Planner(base, ours, theirs, reader, labels, exists)
    planner.run()
    return planner.plan()
