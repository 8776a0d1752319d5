"""The history browser's rows as plain text (no prompt-toolkit: the table uses them too)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from vsync.ops.log import LogEntry
from vsync.ops.versions import FileVersion, FolderCommit
from vsync.ui.escape import escape_text
from vsync.ui.progress import human_bytes
from vsync.wording import plural

HOST_WIDTH = 12  # the most a host name takes in the list (longer ones are cut)
DATE_WIDTH = 16  # "YYYY-MM-DD HH:MM"
SIZE_WIDTH = 10  # a version's size ("1023.9 KiB")
PATHS_WIDTH = 9  # a folder commit's "N paths"
MARK_WIDTH = 2  # "> " or "  " before each row (history_view.render_list)
MIN_SUBJECT = 24  # columns of the commit message the list keeps when it can
MIN_PREVIEW = 24  # columns the preview pane keeps whatever the list wants


def when(e: LogEntry) -> str:
    """``YYYY-MM-DD HH:MM`` in the author's own UTC offset."""
    tz = timezone(timedelta(seconds=e.tz_offset))
    return datetime.fromtimestamp(e.time, tz).strftime("%Y-%m-%d %H:%M")


def host_of(e: LogEntry) -> str:
    return escape_text(e.host, keep="") or "-"


def subject_of(e: LogEntry) -> str:
    return escape_text(e.subject, keep="")


def size_text(v: FileVersion) -> str:
    return "symlink" if v.is_link else human_bytes(v.size)


def changed_text(c: FolderCommit) -> str:
    return plural(len(c.changes), "path")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def host_width(entries: list[LogEntry]) -> int:
    """The host column's width: the longest host shown, at most HOST_WIDTH."""
    return min(HOST_WIDTH, max((len(host_of(e)) for e in entries), default=1))


def version_row(v: FileVersion, hosts: int = HOST_WIDTH) -> str:
    """The browser's list row: date, host, size, subject (padded to line up)."""
    host = _cut(host_of(v.entry), hosts)
    return f"{when(v.entry)}  {host:<{hosts}}  {size_text(v):>{SIZE_WIDTH}}  {subject_of(v.entry)}"


def commit_row(c: FolderCommit, hosts: int = HOST_WIDTH) -> str:
    host = _cut(host_of(c.entry), hosts)
    return (
        f"{when(c.entry)}  {host:<{hosts}}  {changed_text(c):>{PATHS_WIDTH}}  {subject_of(c.entry)}"
    )


def list_width(columns: int, rows: list[str], hosts: int, folder: bool) -> int:
    """The list pane's width in a terminal ``columns`` wide, for ``rows``.

    The list takes 2/5 of the width (the preview the rest), but at least what
    shows MIN_SUBJECT columns of each commit message, as long as the preview
    keeps MIN_PREVIEW columns; never more than its longest row needs."""
    share = (columns - 1) * 2 // 5
    third = PATHS_WIDTH if folder else SIZE_WIDTH
    before_subject = MARK_WIDTH + DATE_WIDTH + 2 + hosts + 2 + third + 2
    longest = MARK_WIDTH + max((len(r) for r in rows), default=0) + 1
    wanted = min(longest, before_subject + MIN_SUBJECT, columns - 1 - MIN_PREVIEW)
    return max(share, wanted, 1)


def table_row(item: FileVersion | FolderCommit) -> str:
    """``<10 hex>  <date>  <host>  <size | N paths>  <subject>`` (docs in cli/cmd_browse)."""
    third = size_text(item) if isinstance(item, FileVersion) else changed_text(item)
    return "  ".join(
        (item.short, when(item.entry), host_of(item.entry), third, subject_of(item.entry))
    )
