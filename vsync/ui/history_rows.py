"""The history browser's rows as plain text (no prompt-toolkit: the table uses them too)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from vsync.ops.log import LogEntry
from vsync.ops.versions import FileVersion, FolderCommit
from vsync.ui.escape import escape_text
from vsync.ui.progress import human_bytes
from vsync.wording import plural

HOST_WIDTH = 12


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


def version_row(v: FileVersion) -> str:
    """The browser's list row: date, host, size, subject (padded to line up)."""
    host = _cut(host_of(v.entry), HOST_WIDTH)
    return f"{when(v.entry)}  {host:<{HOST_WIDTH}}  {size_text(v):>10}  {subject_of(v.entry)}"


def commit_row(c: FolderCommit) -> str:
    host = _cut(host_of(c.entry), HOST_WIDTH)
    return f"{when(c.entry)}  {host:<{HOST_WIDTH}}  {changed_text(c):>9}  {subject_of(c.entry)}"


def table_row(item: FileVersion | FolderCommit) -> str:
    """``<10 hex>  <date>  <host>  <size | N paths>  <subject>`` (docs in cli/cmd_browse)."""
    third = size_text(item) if isinstance(item, FileVersion) else changed_text(item)
    return "  ".join(
        (item.short, when(item.entry), host_of(item.entry), third, subject_of(item.entry))
    )
