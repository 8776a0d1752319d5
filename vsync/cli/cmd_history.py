"""Commands that read history: log, diff, show.

Output formats (stable; scripts may read them). In all of them a path is
quoted as git quotes it with ``core.quotePath`` (double quotes and C escapes
when it holds a control, C1 or bidi character, ``"`` or ``\\``;
:func:`vsync.ui.escape.quote_path`), and messages, authors and hosts have
those characters escaped (:func:`vsync.ui.escape.escape_text`); file content
(``show REV:PATH``, the lines of a text diff) is printed as it is.

``log``
    ``commit <40 hex>``, ``Merge: <10 hex> <10 hex>`` (merges only),
    ``Author: Name <email>``, ``Host: <host>`` (when recorded),
    ``Date:   YYYY-MM-DD HH:MM:SS +ZZZZ`` (in the author's own UTC offset, as
    git shows it), a blank line, the message indented four spaces; entries
    are separated by one blank line. ``--oneline``: ``<10 hex> <subject>``.
    With no commits: nothing on stdout, ``vsync: no commits yet`` on stderr,
    exit 0.
    ``--json``: one JSON array of commits (:mod:`vsync.cli.json_out`; ``[]``
    with no commits).

``log PATH --follow``
    The file's history across renames. Each entry is the ``log`` header with,
    after ``Date:``, ``Size:   <N> bytes (<human size>)`` (``Size:   deleted``
    for the commit that deleted it) and ``Path:   <name>`` when the file had
    another name in that commit than PATH; a rename adds
    ``Renamed: <old> -> <new>``. ``--oneline``:
    ``<10 hex> <N> bytes (<human size>) <subject>`` (``<10 hex> deleted
    <subject>`` for the deleting commit) plus ``  [<name>]`` when the name
    differs.

``log --deleted [PATH...]``
    One line per file deleted over time, newest first:
    ``<YYYY-MM-DD HH:MM> <10 hex> <path> (<N> bytes)`` (the date in the
    author's offset, the deleting commit, the size it had). On stderr, how
    to bring one back: ``vsync restore PATH --source <10 hex>~1``.

``--at DATE`` (log, diff, show)
    The branch as it was on DATE (``main@{DATE}``, from its reflog) instead
    of REV: ``log --at D`` starts there; ``diff --at D [REV] [-- PATH]``
    takes it as its first revision; ``show --at D [PATH]`` shows that commit,
    or PATH as it held it. A date before the first commit: exit 2.

``diff``
    Text: ``diff --vsync a/P b/P``, then ``new file mode M`` /
    ``deleted file mode M`` / ``old mode M`` + ``new mode M`` where they apply,
    then ``--- a/P`` (or ``/dev/null``), ``+++ b/P`` (or ``/dev/null``) and
    unified hunks with 3 lines of context (omitted for an empty file).
    Exec bit only: ``mode change 100644 => 100755 P``.
    Binary, non-UTF-8 or larger than 16 MiB (either side), one line::

        Binary P: <old> -> <new>

    where each side is ``absent`` or ``<N> bytes (<human size>, manifest
    <10 hex>)`` (``symlink <10 hex>`` for a symlink); the id is the git blob
    id of the file's manifest, so equal ids mean equal content. A binary
    change that also flips the exec bit is preceded by the ``mode change``
    line.

``diff --stat``
    One line per changed path, `` P | N +++--`` (N the lines added and removed,
    the bar scaled to at most 50 characters), `` P | Bin OLD -> NEW bytes`` for
    a binary file, then `` F files changed, I insertions(+), D deletions(-)``.
    ``--stat --json``: one JSON object (:mod:`vsync.cli.json_out`).

``show REV``
    The ``log`` header, then (if anything changed) a blank line and one
    ``<letter>\\t<path>`` line per changed path against the first parent:
    A added, M modified, D deleted, T file <-> symlink.

``show REV:PATH``
    A file: its exact bytes. A symlink: its target and a newline. A folder:
    one name per line, sub-folders ending in '/'. As in git, PATH is from the
    repository root wherever you are; ``./PATH`` and ``../PATH`` are relative
    to the current directory; an empty PATH is the root. (``show --at DATE
    PATH`` takes a plain PATH, relative to the current directory as every
    other path vsync takes.)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from vsync.cli.output import escape_text, info, quote_path, short, warn
from vsync.cli.paths import repo_path, repo_paths, rev_path
from vsync.errors import UnknownRevision, UsageError
from vsync.model.repository import Repository
from vsync.model.revisions import resolve, resolve_at, split_rev_path
from vsync.ops.diff import DiffKind, FileDiff, Version, file_diffs, revision_pairs, working_pairs
from vsync.ops.diff_stat import DiffStat
from vsync.ops.follow import deleted_files, follow
from vsync.ops.log import LogEntry, walk
from vsync.ops.show import find, list_folder, show_commit, write_file
from vsync.ui.progress import human_bytes
from vsync.wording import plural


def register(sub: Any) -> None:
    p = sub.add_parser("log", help="list commits, newest first")
    p.add_argument("paths", nargs="*", metavar="PATH", help="only commits that changed PATH")
    p.add_argument("--oneline", action="store_true", help="one line per commit")
    p.add_argument("-n", dest="limit", type=int, metavar="N", help="show at most N commits")
    p.add_argument("--rev", metavar="REV", help="start from REV instead of HEAD")
    p.add_argument("--at", metavar="DATE", help="start from the branch as it was on DATE")
    p.add_argument("--follow", action="store_true", help="follow one file across renames")
    p.add_argument("--deleted", action="store_true", help="list files deleted over time")
    p.add_argument("--json", action="store_true", help="the commits as one JSON array")
    p.set_defaults(func=cmd_log)

    p = sub.add_parser(
        "diff",
        help="show changes: HEAD or REV vs the working folder, or REV1 vs REV2",
        usage="vsync diff [--at DATE] [--stat [--json]] [REV [REV]] [-- PATH...]",
    )
    p.add_argument("--at", metavar="DATE", help="the branch as it was on DATE, as first REV")
    p.add_argument("--stat", action="store_true", help="lines added and removed per path")
    p.add_argument("--json", action="store_true", help="with --stat: one JSON object")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="[REV [REV]] [-- PATH...]")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("show", help="print a file as of a revision, or a commit's changes")
    p.add_argument("spec", nargs="?", metavar="REV[:PATH]", help="with --at: a PATH")
    p.add_argument("--at", metavar="DATE", help="the branch as it was on DATE (instead of REV)")
    p.set_defaults(func=cmd_show)


def emit(text: str) -> None:
    """Write to stdout as UTF-8 whatever the locale (names and text content are UTF-8)."""
    sys.stdout.buffer.write(text.encode("utf-8"))


# -- log ----------------------------------------------------------------------------


def format_date(when: int, offset: int) -> str:
    tz = timezone(timedelta(seconds=offset))
    return datetime.fromtimestamp(when, tz).strftime("%Y-%m-%d %H:%M:%S %z")


def header_lines(e: LogEntry) -> list[str]:
    lines = [f"commit {e.commit_id.decode()}"]
    if len(e.parents) > 1:
        lines.append("Merge: " + " ".join(short(p) for p in e.parents))
    lines.append(f"Author: {escape_text(e.author, keep='')}")
    if e.host:
        lines.append(f"Host: {escape_text(e.host, keep='')}")
    lines.append(f"Date:   {format_date(e.time, e.tz_offset)}")
    lines.append("")
    message = escape_text(e.message.rstrip("\n"))
    lines.extend(("    " + line).rstrip() for line in message.split("\n"))
    return lines


def subject(e: LogEntry) -> str:
    return escape_text(e.subject, keep="")


def _size_text(size: int | None) -> str:
    return "deleted" if size is None else f"{size} bytes ({human_bytes(size)})"


def _log_start(repo: Repository, args: argparse.Namespace) -> bytes | None:
    if args.at is not None:
        if args.rev is not None:
            raise UsageError("give either --rev or --at, not both")
        return resolve_at(repo, args.at)
    return resolve(repo, args.rev) if args.rev else repo.head()


def cmd_log(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 0:
        raise UsageError("-n needs a number of commits, 0 or more")
    if args.follow and args.deleted:
        raise UsageError("--follow and --deleted do not go together")
    if args.json and (args.oneline or args.follow or args.deleted):
        raise UsageError("--json does not go with --oneline, --follow or --deleted")
    with Repository.discover() as repo:
        paths = repo_paths(repo, args.paths) if args.paths else None
        if args.follow and (paths is None or len(paths) != 1):
            raise UsageError("--follow needs exactly one PATH (a file)")
        start = _log_start(repo, args)
        if args.json:
            from vsync.cli.json_out import commit_json, write_json

            entries = [] if start is None else walk(repo, start, paths, args.limit)
            write_json([commit_json(entry) for entry in entries])
            return 0
        if start is None:
            print("vsync: no commits yet", file=sys.stderr)
            return 0
        if args.deleted:
            _log_deleted(repo, start, paths, args.limit)
        elif args.follow:
            assert paths is not None
            _log_follow(repo, start, paths[0], args.limit, args.oneline)
        else:
            for i, entry in enumerate(walk(repo, start, paths, args.limit)):
                if args.oneline:
                    emit(f"{short(entry.commit_id)} {subject(entry)}\n")
                else:
                    emit(("\n" if i else "") + "\n".join(header_lines(entry)) + "\n")
    sys.stdout.buffer.flush()
    return 0


def _log_follow(
    repo: Repository, start: bytes, path: str, limit: int | None, oneline: bool
) -> None:
    for i, v in enumerate(follow(repo, start, path, limit)):
        if oneline:
            name = f"  [{quote_path(v.path)}]" if v.path != path else ""
            emit(f"{short(v.entry.commit_id)} {_size_text(v.size)} {subject(v.entry)}{name}\n")
            continue
        lines = header_lines(v.entry)
        at = lines.index("") if "" in lines else len(lines)
        extra = [f"Size:   {_size_text(v.size)}"]
        if v.path != path:
            extra.append(f"Path:   {quote_path(v.path)}")
        if v.renamed_from is not None:
            extra.append(f"Renamed: {quote_path(v.renamed_from)} -> {quote_path(v.path)}")
        lines[at:at] = extra
        emit(("\n" if i else "") + "\n".join(lines) + "\n")


def _log_deleted(
    repo: Repository, start: bytes, paths: list[str] | None, limit: int | None
) -> None:
    last = None
    for d in deleted_files(repo, start, paths, limit):
        tz = timezone(timedelta(seconds=d.entry.tz_offset))
        when = datetime.fromtimestamp(d.entry.time, tz).strftime("%Y-%m-%d %H:%M")
        emit(f"{when} {short(d.entry.commit_id)} {quote_path(d.path)} ({plural(d.size, 'byte')})\n")
        last = d
    sys.stdout.buffer.flush()
    if last is not None:
        info(
            f"vsync: bring one back with 'vsync restore PATH --source COMMIT~1', "
            f"e.g. vsync restore '{last.path}' --source {short(last.entry.commit_id)}~1"
        )


# -- diff ---------------------------------------------------------------------------


def _is_revision(repo: Repository, arg: str) -> bool:
    try:
        resolve(repo, arg)
    except UnknownRevision:
        return False
    return True


def split_diff_args(repo: Repository, raw: list[str]) -> tuple[list[str], list[str]]:
    """Revisions and paths: everything after '--' is a path; before it, git's guessing."""
    if "--" in raw:
        cut = raw.index("--")
        before, paths = raw[:cut], raw[cut + 1 :]
    else:
        before, paths = raw, []
    for arg in before:
        if arg.startswith("-"):
            raise UsageError(f"unknown option '{arg}' for diff (put paths after '--')")
    if "--" in raw:
        revs = before
    else:
        revs = []
        for arg in before:
            if paths:
                paths.append(arg)
                continue
            is_rev, is_path = _is_revision(repo, arg), os.path.lexists(arg)
            if is_rev and is_path:
                raise UsageError(
                    f"'{arg}' is both a revision and a file; write 'vsync diff {arg} --' "
                    f"for the revision or 'vsync diff -- {arg}' for the file"
                )
            if is_path:
                paths.append(arg)
            elif is_rev:
                revs.append(arg)
            else:
                raise UnknownRevision(
                    arg, "no such revision, nor a file or folder here (put paths after '--')"
                )
    if len(revs) > 2:
        raise UsageError("diff takes at most two revisions")
    return revs, paths


def _side(v: Version | None, size: int | None) -> str:
    if v is None or size is None:
        return "absent"
    what = "symlink" if v.is_link else "manifest"
    return f"{size} bytes ({human_bytes(size)}, {what} {short(v.oid)})"


def render_diff(fd: FileDiff) -> Iterator[str]:
    """One path's diff; the path quoted as git quotes it, the content lines as they are."""
    p, old, new = quote_path(fd.path), fd.old, fd.new
    pa, pb = quote_path("a/" + fd.path), quote_path("b/" + fd.path)
    mode_line = (
        f"mode change {old.mode:o} => {new.mode:o} {p}\n"
        if old is not None and new is not None and fd.mode_changed
        else ""
    )
    if fd.kind is DiffKind.MODE:
        yield mode_line
        return
    if fd.kind is DiffKind.BINARY:
        if mode_line:
            yield mode_line
        yield f"Binary {p}: {_side(old, fd.old_size)} -> {_side(new, fd.new_size)}\n"
        return
    yield f"diff --vsync {pa} {pb}\n"
    if old is None and new is not None:
        yield f"new file mode {new.mode:o}\n"
    elif new is None and old is not None:
        yield f"deleted file mode {old.mode:o}\n"
    elif old is not None and new is not None and fd.mode_changed:
        yield f"old mode {old.mode:o}\n"
        yield f"new mode {new.mode:o}\n"
    if fd.lines:
        yield "--- /dev/null\n" if old is None else f"--- {pa}\n"
        yield "+++ /dev/null\n" if new is None else f"+++ {pb}\n"
        yield from fd.lines


def _pop_at(raw: list[str], flags: set[str]) -> tuple[list[str], str | None]:
    """``--at DATE`` / ``--at=DATE`` taken out of diff's arguments (before any '--'); a
    ``--stat`` or ``--json`` there is moved into ``flags``."""
    end = raw.index("--") if "--" in raw else len(raw)
    out, at, i = [], None, 0
    while i < len(raw):
        arg = raw[i]
        if i < end and arg in ("--stat", "--json"):
            flags.add(arg[2:])
            i += 1
            continue
        if i < end and arg == "--at":
            if i + 1 >= end:
                raise UsageError("--at needs a DATE")
            at, i = raw[i + 1], i + 2
            continue
        if i < end and arg.startswith("--at="):
            at, i = arg[len("--at=") :], i + 1
            continue
        out.append(arg)
        i += 1
    return out, at


def cmd_diff(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        flags = {name for name in ("stat", "json") if getattr(args, name)}
        raw, at = _pop_at(list(args.args), flags)
        if "json" in flags and "stat" not in flags:
            raise UsageError("diff --json goes with --stat (the line diff has no JSON form)")
        if args.at is not None:
            if at is not None:
                raise UsageError("--at given twice")
            at = args.at
        revs, path_args = split_diff_args(repo, raw)
        if at is not None:
            if len(revs) > 1:
                raise UsageError("diff --at DATE takes at most one more revision")
            revs = [resolve_at(repo, at).decode("ascii"), *revs]
        paths = repo_paths(repo, path_args) if path_args else None
        if len(revs) == 2:
            pairs = revision_pairs(repo, resolve(repo, revs[0]), resolve(repo, revs[1]), paths)
        else:
            repo.require_worktree()
            base = resolve(repo, revs[0]) if revs else repo.head()
            pairs = working_pairs(repo, base, paths, warn)
        if "stat" in flags:
            from vsync.ops.diff_stat import diff_stat

            stat = diff_stat(file_diffs(repo, pairs))
            if "json" in flags:
                from vsync.cli.json_out import diff_stat_json, write_json

                write_json(diff_stat_json(stat))
                return 0
            emit(render_stat(stat))
        else:
            for fd in file_diffs(repo, pairs):
                emit("".join(render_diff(fd)))
    sys.stdout.buffer.flush()
    return 0


STAT_BAR = 50  # the widest +/- bar, as git's at 80 columns


def render_stat(stat: DiffStat) -> str:
    """git's ``--stat``: `` PATH | N +++--`` (``Bin OLD -> NEW bytes`` for a binary
    file), then `` F files changed, I insertions(+), D deletions(-)``."""
    if not stat.files:
        return ""
    names = [quote_path(f.path) for f in stat.files]
    width = max(len(n) for n in names)
    counts = [(f.insertions or 0) + (f.deletions or 0) for f in stat.files]
    most = max(counts)
    digits = len(str(most))
    lines = []
    for f, name, n in zip(stat.files, names, counts, strict=True):
        if f.insertions is None or f.deletions is None:
            old, new = f.old_size or 0, f.new_size or 0
            lines.append(f" {name:<{width}} | Bin {old} -> {new} bytes\n")
            continue
        plus, minus = f.insertions, f.deletions
        if most > STAT_BAR:
            plus = -(-plus * STAT_BAR // most) if plus else 0
            minus = -(-minus * STAT_BAR // most) if minus else 0
        bar = "+" * plus + "-" * minus
        lines.append(f" {name:<{width}} | {n:>{digits}} {bar}".rstrip() + "\n")
    total = (
        f" {plural(len(stat.files), 'file')} changed, "
        f"{plural(stat.insertions, 'insertion')}(+), {plural(stat.deletions, 'deletion')}(-)\n"
    )
    return "".join(lines) + total


# -- show ---------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        if args.at is not None:
            at_id = resolve_at(repo, args.at).decode("ascii")
            path = None if args.spec is None else repo_path(repo, args.spec)
            spec = at_id if path is None else f"{at_id}:/{path}"
        else:
            spec = args.spec or "HEAD"
        parts = split_rev_path(spec)
        if parts is None:
            view = show_commit(repo, resolve(repo, spec))
            lines = header_lines(view.entry)
            if view.changes:
                lines.append("")
                lines.extend(f"{letter}\t{quote_path(path)}" for letter, path in view.changes)
            emit("\n".join(lines) + "\n")
            sys.stdout.buffer.flush()
            return 0
        rev_label = parts[0] or "HEAD"
        commit_id = resolve(repo, rev_label)
        obj = find(repo, commit_id, rev_path(repo, parts[1]), rev_label)
        if obj.is_folder:
            emit("".join(quote_path(name) + "\n" for name in list_folder(repo, obj)))
            sys.stdout.buffer.flush()
            return 0
        out = sys.stdout.buffer
        try:
            if obj.is_link:
                out.write(repo.gitdb.link_target(obj.oid) + b"\n")
            else:
                write_file(repo, obj, out)
        finally:
            out.flush()
    return 0
