"""What the history browser shows, as prompt-toolkit formatted text.

The rows of the left-hand list (a file's versions or a folder's commits), the
right-hand preview (content with line numbers, binary details, a commit's
changed paths, a coloured diff), the help and the key hints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.styles import Style

from vsync.ops.diff import DiffKind, FileDiff, Pair, Version
from vsync.ops.log import LogEntry
from vsync.ops.versions import FileVersion, FolderCommit, Preview, PreviewKind
from vsync.ui.history_rows import changed_text, host_of, when
from vsync.ui.progress import human_bytes
from vsync.wording import plural

DIFF_LINES = 2000  # diff lines drawn in all; the rest is counted or named, not drawn
FILE_LINES = 500  # diff lines drawn per path
MAX_PATHS = 500  # paths diffed (and then named) at most
Fragments = list[tuple[str, str]]

STYLE = Style.from_dict(
    {
        "title": "reverse bold",
        "selected": "reverse",
        "dim": "ansibrightblack",
        "heading": "bold",
        "lineno": "ansibrightblack",
        "hunk": "ansicyan",
        "add": "ansigreen",
        "del": "ansired",
        "letter-a": "ansigreen",
        "letter-d": "ansired",
        "letter-m": "ansiyellow",
        "letter-t": "ansimagenta",
        "error": "ansired bold",
        "ok": "ansigreen",
        "note": "ansiyellow",
        "help": "bg:ansiblack ansiwhite",
        "toolbar": "reverse",
    }
)

FILE_KEYS = [
    ("Up/Down, j/k", "select a version (Home/End, g/G: newest/oldest)"),
    ("PgUp/PgDn, space", "scroll the preview"),
    ("v, Enter", "show the selected version's content"),
    ("d", "diff: the selected version -> the file in the folder now"),
    ("p", "diff: the previous version -> the selected version"),
    ("r", "restore the selected version in place (refuses to overwrite uncommitted edits)"),
    ("s", "save the selected version beside the file as name.<id>.ext"),
    ("?", "this help (any key closes it)"),
    ("q, Esc", "quit"),
]
FOLDER_KEYS = [
    ("Up/Down, j/k", "select a commit (Home/End, g/G: newest/oldest)"),
    ("PgUp/PgDn, space", "scroll the preview"),
    ("v, Enter", "show the commit and the paths it changed"),
    ("d", "diff: the selected commit -> the folder now"),
    ("p", "diff: the commit's parent -> the commit (what it changed)"),
    ("r", "(put a whole commit back with 'vsync checkout REV')"),
    ("?", "this help (any key closes it)"),
    ("q, Esc", "quit"),
]


def render_list(rows: list[str], selected: int) -> FormattedText:
    out: Fragments = []
    for i, row in enumerate(rows):
        if i == selected:
            out.append(("class:selected", f"> {row}\n"))
        else:
            out.append(("", f"  {row}\n"))
    if not rows:
        out.append(("class:dim", "(no commits yet)\n"))
    return FormattedText(out)


def _header(e: LogEntry, label: str) -> Fragments:
    out: Fragments = [("class:heading", f"{label}\n")]
    out.append(("class:dim", f"commit {e.commit_id.decode()}\n"))
    out.append(("class:dim", f"{when(e)}  {host_of(e)}  {e.author}\n"))
    for line in e.message.rstrip("\n").split("\n"):
        out.append(("", f"    {line}\n"))
    return out


def render_version(v: FileVersion, preview: Preview, digest: str) -> FormattedText:
    """A version's details and its content: numbered text lines, or binary details."""
    out = _header(v.entry, f"{v.path} at {v.short}")
    kind = "symlink" if v.is_link else f"{plural(v.size, 'byte')} ({human_bytes(v.size)})"
    chunks = plural(v.chunk_count, "chunk")
    out.append(("class:dim", f"{kind}, {chunks}, manifest {v.oid.decode()}\n"))
    if preview.kind is PreviewKind.SYMLINK:
        out.append(("", f"\nsymlink -> {preview.target}\n"))
        out.append(("class:dim", f"BLAKE3 {digest}\n"))
        return FormattedText(out)
    if preview.kind is PreviewKind.BINARY:
        out.append(("class:heading", "\nbinary file\n"))
        out.append(("", f"  size      {v.size} bytes ({human_bytes(v.size)})\n"))
        out.append(("", f"  chunks    {v.chunk_count}\n"))
        out.append(("", f"  BLAKE3    {digest}\n"))
        out.append(("", f"  manifest  {v.oid.decode()}\n"))
        return FormattedText(out)
    out.append(("", "\n"))
    width = len(str(len(preview.lines))) + 1
    for n, line in enumerate(preview.lines, 1):
        out.append(("class:lineno", f"{n:>{width}} │ "))
        out.append(("", line.rstrip("\r").expandtabs(8) + "\n"))
    if preview.truncated:
        shown = len(preview.lines)
        out.append(("class:note", f"… only the first {shown} lines are shown\n"))
    if not preview.lines:
        out.append(("class:dim", "(empty file)\n"))
    return FormattedText(out)


def render_commit(c: FolderCommit) -> FormattedText:
    out = _header(c.entry, f"commit {c.short}")
    if len(c.entry.parents) > 1:
        parents = " ".join(p.decode()[:10] for p in c.entry.parents)
        out.append(("class:dim", f"merge of {parents}; changes against the first parent\n"))
    out.append(("class:heading", f"\n{changed_text(c)} changed\n"))
    for letter, path in c.changes:
        out.append((f"class:letter-{letter.lower()}", f"  {letter}"))
        out.append(("", f"  {path}\n"))
    return FormattedText(out)


def _side(v: Version | None, size: int | None) -> str:
    if v is None or size is None:
        return "absent"
    return f"{size} bytes ({human_bytes(size)})"


def _render_one(out: Fragments, fd: FileDiff, room: int) -> int:
    """One path's diff, at most ``room`` diff lines; returns how many were drawn."""
    out.append(("class:heading", f"{fd.path}\n"))
    if fd.kind is DiffKind.MODE or fd.mode_changed:
        old = fd.old.mode if fd.old else 0
        new = fd.new.mode if fd.new else 0
        out.append(("class:note", f"mode {old:o} -> {new:o}\n"))
    if fd.kind is DiffKind.BINARY:
        old_side, new_side = _side(fd.old, fd.old_size), _side(fd.new, fd.new_size)
        out.append(("class:note", f"binary: {old_side} -> {new_side}\n"))
    elif fd.kind is DiffKind.TEXT:
        if fd.old is None:
            out.append(("class:add", "(new file)\n"))
        elif fd.new is None:
            out.append(("class:del", "(deleted)\n"))
        for line in fd.lines[:room]:
            text = line.rstrip("\n").rstrip("\r").expandtabs(8)
            style = {"@": "class:hunk", "+": "class:add", "-": "class:del"}.get(line[:1], "")
            out.append((style, text + "\n"))
        if len(fd.lines) > room:
            out.append(("class:note", f"… {len(fd.lines) - room} more lines of this diff\n"))
    out.append(("", "\n"))
    return min(room, len(fd.lines))


def render_diffs(
    title: str, pairs: list[Pair], diff_of: Callable[[Pair], Iterable[FileDiff]], empty: str
) -> FormattedText:
    """Coloured unified diffs of ``pairs``: at most FILE_LINES lines of each path and
    DIFF_LINES in all; the paths past that are named, and their content is not read."""
    out: Fragments = [("class:heading", title + "\n\n")]
    drawn = 0
    for i, pair in enumerate(pairs):
        if drawn >= DIFF_LINES or i >= MAX_PATHS:
            rest = pairs[i:]
            out.append(("class:note", f"{len(rest)} more changed paths, not shown:\n"))
            out.extend(("", f"  {path}\n") for path, _a, _b in rest[:MAX_PATHS])
            if len(rest) > MAX_PATHS:
                out.append(("class:note", f"  … and {len(rest) - MAX_PATHS} more\n"))
            break
        for fd in diff_of(pair):
            drawn += _render_one(out, fd, min(FILE_LINES, DIFF_LINES - drawn))
    if not pairs:
        out.append(("class:ok", empty + "\n"))
    return FormattedText(out)


def render_help(folder: bool) -> FormattedText:
    out: Fragments = [("class:heading", "Keys\n\n")]
    for key, what in FOLDER_KEYS if folder else FILE_KEYS:
        out.append(("class:heading", f"  {key:<18}"))
        out.append(("", what + "\n"))
    return FormattedText(out)


def toolbar_text(folder: bool) -> str:
    if folder:
        return " ↑↓ select  d diff vs folder  p what it changed  v view  ? help  q quit "
    return (
        " ↑↓ select  d diff vs folder  p diff vs previous  v view  "
        "r restore  s save beside  ? help  q quit "
    )


def plain(fragments: FormattedText) -> str:
    return "".join(fragment[1] for fragment in fragments)
