"""What the conflict shell shows, as prompt-toolkit formatted text.

The list of conflicts, one conflict in detail (for text, the three-way diff:
the hunks from the base to ours, then from the base to theirs; for anything
else sizes and ids), a file with its conflict markers, and the help.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.styles import Style

from vsync.model.folder_scan import MODE_EXEC, MODE_LINK
from vsync.model.snapshot import Entry
from vsync.ops.merge import PathState, RepoContent, is_text
from vsync.ui.conflict_actions import CommitInfo, ConflictInfo
from vsync.ui.progress import human_bytes
from vsync.wording import plural

MAX_LINES = 400  # per diff or file shown; the rest is counted, not printed
PATH_WIDTH = 36

STYLE = Style.from_dict(
    {
        "title": "bold",
        "dim": "ansibrightblack",
        "current": "bold ansicyan",
        "unresolved": "ansired",
        "resolved": "ansigreen",
        "error": "ansired bold",
        "note": "ansiyellow",
        "ok": "ansigreen",
        "diff-hunk": "ansicyan",
        "diff-add": "ansigreen",
        "diff-del": "ansired",
        "ours": "ansigreen",
        "base": "ansiyellow",
        "theirs": "ansimagenta",
        "marker": "bold",
        "prompt": "bold",
        "bottom-toolbar": "noreverse bg:ansiblue ansiwhite",
    }
)

KIND_WORDS = {
    "content": "both sides changed the same lines",
    "binary": "both sides changed a binary file (or a symlink's target)",
    "add-add": "both sides created it with different content",
    "modify-delete": "ours changed it, theirs deleted it",
    "delete-modify": "ours deleted it, theirs changed it",
    "type": "a symlink on one side, a regular file on the other",
    "file-folder": "a file on one side, a folder on the other",
}

HELP = [
    ("list", "l", "the list of conflicts"),
    ("show [PATH|N]", "s", "the three-way diff (text) or sizes and ids (binary)"),
    ("markers [PATH|N]", "v", "the file as it is in the folder, with its conflict markers"),
    ("ours [PATH|N]", "o", "take ours (vsync resolve --ours PATH)"),
    ("theirs [PATH|N]", "t", "take theirs (vsync resolve --theirs PATH)"),
    ("base [PATH|N]", "b", "take the base version (vsync resolve --base PATH)"),
    ("both [PATH|N]", "k", "keep both: both sides where they clash (vsync resolve --both PATH)"),
    ("edit [PATH|N]", "e", "open the file in $EDITOR, then say whether it is resolved"),
    ("mark [PATH|N]", "m", "take the file as it is now (vsync resolve --mark PATH)"),
    ("undo [PATH|N]", "u", "undo the last choice, or reopen a resolved path"),
    ("next", "n", "move to the next conflict"),
    ("prev", "p", "move to the previous conflict"),
    ("goto PATH|N", "g", "move to a conflict (a bare number works too)"),
    ("commit [MESSAGE]", "c", "finish: make the merge commit once nothing is unresolved"),
    ("help", "?", "this help"),
    ("quit", "q", "leave the shell; the merge stays as it is (Ctrl-D too)"),
]


@dataclass
class Sides:
    ours: CommitInfo
    theirs: CommitInfo
    base_label: str


def line(*parts: tuple[str, str]) -> FormattedText:
    return FormattedText([*parts, ("", "\n")])


def short_path(path: str, width: int = PATH_WIDTH) -> str:
    if len(path) <= width:
        return path
    keep = width - 1
    return path[: keep // 2] + "…" + path[-(keep - keep // 2) :]


def _size_text(reader: RepoContent, entry: Entry | None) -> str:
    if entry is None:
        return "deleted"
    if entry[0] == MODE_LINK:
        return "symlink"
    return human_bytes(reader.size(entry)) + (" exec" if entry[0] == MODE_EXEC else "")


def state_word(s: PathState, choice: str | None) -> tuple[str, str]:
    if not s.resolved:
        return "class:unresolved", "unresolved"
    return "class:resolved", {None: "resolved", "mark": "marked"}.get(choice, choice or "")


def render_list(
    infos: list[ConflictInfo],
    current: str,
    sides: Sides,
    reader: RepoContent,
    choices: dict[str, str],
) -> FormattedText:
    left = sum(1 for i in infos if not i.state.resolved)
    out: list[tuple[str, str]] = [
        ("class:title", f"Merging theirs {sides.theirs.short}"),
        ("", f" ({sides.theirs.host}, {sides.theirs.when}) into ours {sides.ours.short}"),
        ("", f" ({sides.ours.host}, {sides.ours.when}): "),
        ("class:title", f"{plural(len(infos), 'conflict')}, {left} unresolved\n"),
    ]
    pw = max([4, *(len(short_path(i.path)) for i in infos)])
    out.append(("class:dim", f"    {'#':>2}  {'path':<{pw}}  {'kind':<13}  {'state':<10}  "))
    out.append(("class:dim", f"{'ours':<34}  theirs\n"))
    for info in infos:
        s = info.state
        mark = ">" if info.path == current else " "
        style = "class:current" if info.path == current else ""
        out.append((style, f" {mark}  {info.index:>2}  {short_path(info.path):<{pw}}  "))
        out.append(("", f"{s.kind:<13}  "))
        st_style, word = state_word(s, choices.get(info.path))
        out.append((st_style, f"{word:<10}  "))
        ours = f"{_size_text(reader, s.ours)}, {sides.ours.host} {sides.ours.when}"
        theirs = f"{_size_text(reader, s.theirs)}, {sides.theirs.host} {sides.theirs.when}"
        out.append(("", f"{ours:<34}  {theirs}\n"))
    return FormattedText(out)


def _diff(out: list[tuple[str, str]], old: bytes, new: bytes, title: str, style: str) -> None:
    a = old.decode("utf-8").splitlines()
    b = new.decode("utf-8").splitlines()
    out.append((f"{style} bold", f"{title}\n"))
    lines = list(difflib.unified_diff(a, b, lineterm="", n=3))[2:]  # no ---/+++ header
    if not lines:
        out.append(("class:dim", "  (no change)\n"))
    for text in lines[:MAX_LINES]:
        if text.startswith("@@"):
            out.append(("class:diff-hunk", text + "\n"))
        elif text.startswith("+"):
            out.append(("class:diff-add", text + "\n"))
        elif text.startswith("-"):
            out.append(("class:diff-del", text + "\n"))
        else:
            out.append(("", text + "\n"))
    if len(lines) > MAX_LINES:
        out.append(("class:dim", f"  ... {len(lines) - MAX_LINES} more lines\n"))


def _side_row(
    out: list[tuple[str, str]], name: str, reader: RepoContent, entry: Entry | None, who: str
) -> None:
    oid = entry[1].decode()[:10] if entry is not None else "-"
    out.append((f"class:{name}", f"  {name:<7}"))
    out.append(("", f"{_size_text(reader, entry):<14}  id {oid:<10}  {who}\n"))


def render_show(
    info: ConflictInfo,
    total: int,
    sides: Sides,
    reader: RepoContent,
    choice: str | None,
) -> FormattedText:
    s = info.state
    st_style, word = state_word(s, choice)
    out: list[tuple[str, str]] = [
        ("class:current", f"[{info.index}/{total}] {s.path}"),
        ("", f"  {s.kind} conflict ({s.code}), "),
        (st_style, f"{word}\n"),
        ("class:dim", f"  {KIND_WORDS.get(s.kind, s.kind)}\n"),
    ]
    _side_row(out, "base", reader, s.base, sides.base_label)
    _side_row(out, "ours", reader, s.ours, f"{sides.ours.host} {sides.ours.when}")
    _side_row(out, "theirs", reader, s.theirs, f"{sides.theirs.host} {sides.theirs.when}")
    if s.copy:
        out.append(("class:note", f"  the other version is beside it as '{s.copy}'\n"))
    texts = {
        name: (reader.text(e) if e is not None else None)
        for name, e in (("base", s.base), ("ours", s.ours), ("theirs", s.theirs))
    }
    present = {n: e for n, e in (("base", s.base), ("ours", s.ours), ("theirs", s.theirs)) if e}
    if any(texts[n] is None for n in present) or not (s.ours or s.theirs):
        out.append(("class:dim", "  (not text: no line diff; 'ours', 'theirs' or 'both')\n"))
        return FormattedText(out)
    ours, theirs = texts["ours"], texts["theirs"]
    if s.base is None and ours is not None and theirs is not None:
        _diff(out, ours, theirs, "ours -> theirs (no base: both created it)", "class:theirs")
        return FormattedText(out)
    base = texts["base"] or b""
    for name, text, who in (("ours", ours, sides.ours), ("theirs", theirs, sides.theirs)):
        if text is None:
            out.append((f"class:{name} bold", f"base -> {name} ({who.host}): deleted\n"))
        else:
            _diff(out, base, text, f"base -> {name} ({who.host} {who.short})", f"class:{name}")
    return FormattedText(out)


def render_markers(path: str, data: bytes | None, what: str = "") -> FormattedText:
    """The file as it is in the folder; marker sections coloured ours/base/theirs."""
    out: list[tuple[str, str]] = [("class:title", f"{path} in the folder:\n")]
    if data is None:
        out.append(("class:note", f"  {what or 'not in the folder'}\n"))
        return FormattedText(out)
    if not is_text(data):
        out.append(("class:note", f"  a binary file of {human_bytes(len(data))}; no markers\n"))
        return FormattedText(out)
    section = ""
    lines = data.decode("utf-8").splitlines()
    for n, text in enumerate(lines[:MAX_LINES], 1):
        if text.startswith("<<<<<<< "):
            section, style = "ours", "class:marker class:ours"
        elif text.startswith("||||||| ") and section:
            section, style = "base", "class:marker class:base"
        elif text.startswith("=======") and section:
            section, style = "theirs", "class:marker class:theirs"
        elif text.startswith(">>>>>>> ") and section:
            section, style = "", "class:marker class:theirs"
        else:
            style = f"class:{section}" if section else ""
        out.append(("class:dim", f"{n:>5} "))
        out.append((style, text + "\n"))
    if len(lines) > MAX_LINES:
        out.append(("class:dim", f"  ... {len(lines) - MAX_LINES} more lines\n"))
    return FormattedText(out)


def render_help() -> FormattedText:
    out: list[tuple[str, str]] = [
        ("class:title", "Commands"),
        ("", " (the key in brackets is the short form; PATH|N is a conflicted path\n"),
        ("", " or its number in the list, the current conflict when left out):\n"),
    ]
    for cmd, key, what in HELP:
        out.append(("class:title", f"  {cmd:<18}"))
        out.append(("class:dim", f"[{key}]  "))
        out.append(("", what + "\n"))
    out.append(("", "Tab completes commands and paths; Ctrl-C clears the line.\n"))
    return FormattedText(out)


def render_toolbar(index: int, total: int, s: PathState | None, left: int) -> FormattedText:
    if s is None:
        return FormattedText([("", " no conflicts ")])
    word = "unresolved" if not s.resolved else "resolved"
    head = f" [{index}/{total}] {short_path(s.path, 30)} {s.kind} {word} | {left} left | "
    if left:
        keys = "o ours  t theirs  b base  k both  e edit  m mark  u undo  n/p move  ? help"
    else:
        keys = "all resolved: c commit  u undo  q quit  ? help"
    return FormattedText([("", head + keys + " ")])
