"""``--json`` output of status, log, history, diff --stat, push, fetch and pull: one JSON
document on stdout.

As restic's ``--json``: a script reads the whole of stdout as one JSON value
(an object for status and history, an array for log); errors stay one line
on stderr with the usual exit codes. The shapes are documented in
docs/user-guide.md ("Output for scripts: --json") and kept stable: fields
may be added, never renamed or removed.

Text is given as it is (no escaping of control characters: JSON escapes
them). A path or message that is not valid UTF-8 holds Python's
surrogate escapes (``\\udc80``-``\\udcff`` for each undecodable byte).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from vsync.model.folder_scan import MODE_EXEC
from vsync.ops.log import LogEntry
from vsync.ops.status import StatusResult
from vsync.ops.versions import FileVersion, FolderCommit, PathHistory

if TYPE_CHECKING:
    from vsync.ops.diff_stat import DiffStat
    from vsync.sync.client import TransferResult

BRANCH = "main"


def _hex(oid: bytes | None) -> str | None:
    return None if oid is None else oid.decode("ascii")


def commit_json(e: LogEntry) -> dict[str, Any]:
    """A commit: id, parents, author, host (null if not recorded), date, time, message."""
    tz = timezone(timedelta(seconds=e.tz_offset))
    return {
        "id": e.commit_id.decode("ascii"),
        "parents": [p.decode("ascii") for p in e.parents],
        "author": e.author,
        "host": e.host or None,
        "date": datetime.fromtimestamp(e.time, tz).isoformat(),
        "time": e.time,
        "message": e.message,
    }


def status_json(result: StatusResult, words: dict[str, str]) -> dict[str, Any]:
    merge = None
    if result.merge is not None:
        merge = {"theirs": _hex(result.merge.theirs), "unresolved": result.merge.unresolved()}
    return {
        "branch": BRANCH,
        "head": _hex(result.head),
        "clean": result.clean,
        "changes": [
            {"code": code, "status": words.get(code, code.strip()), "path": path}
            for code, path in result.entries
        ],
        "merge": merge,
        "held": list(result.held),
        "unreadable": list(result.unreadable),
    }


def _version_json(v: FileVersion) -> dict[str, Any]:
    return {
        "commit": commit_json(v.entry),
        "path": v.path,
        "type": "symlink" if v.is_link else "file",
        "executable": v.mode == MODE_EXEC,
        "size": v.size,
        "chunks": v.chunk_count,
        "manifest": v.oid.decode("ascii"),
    }


def _folder_commit_json(c: FolderCommit) -> dict[str, Any]:
    return {
        "commit": commit_json(c.entry),
        "changes": [{"code": code, "path": path} for code, path in c.changes],
    }


def history_json(history: PathHistory) -> dict[str, Any]:
    out: dict[str, Any] = {"path": history.path, "kind": "folder" if history.folder else "file"}
    if history.folder:
        out["commits"] = [_folder_commit_json(c) for c in history.commits]
    else:
        out["versions"] = [_version_json(v) for v in history.versions]
    return out


def diff_stat_json(stat: DiffStat) -> dict[str, Any]:
    """``diff --stat --json``: per path its status letter, kind and counts, then totals."""
    return {
        "files": [
            {
                "path": f.path,
                "status": f.status,
                "kind": f.kind.value,
                "insertions": f.insertions,
                "deletions": f.deletions,
                "old_size": f.old_size,
                "new_size": f.new_size,
            }
            for f in stat.files
        ],
        "files_changed": len(stat.files),
        "insertions": stat.insertions,
        "deletions": stat.deletions,
    }


def transfer_json(r: TransferResult, **extra: object) -> dict[str, Any]:
    """``push``/``fetch``/``pull --json``: the figures of ``--porcelain``, as numbers
    (``old``/``new`` null where ``--porcelain`` prints ``-``, ``up_to_date`` a boolean)."""
    s = r.stats
    return {
        "remote": r.remote,
        "old": _hex(r.old),
        "new": _hex(r.new),
        "up_to_date": r.up_to_date,
        "objects": s.objects,
        "pack_bytes": s.pack_bytes,
        "chunks": s.chunks,
        "chunk_bytes": s.chunk_bytes,
        "wire_sent": r.wire_sent,
        "wire_received": r.wire_received,
        "seconds": round(r.seconds, 3),
        **extra,
    }


def write_json(value: object) -> None:
    """``value`` as one JSON document and a newline on stdout (ASCII: surrogates survive)."""
    sys.stdout.write(json.dumps(value, ensure_ascii=True, indent=None) + "\n")
    sys.stdout.flush()
