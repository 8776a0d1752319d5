"""What vsync adds to git commits: the ``vsync-host`` header naming the machine."""

from __future__ import annotations

from vsync.model.gitdb import Commit

HOST_HEADER = b"vsync-host"


def commit_host(c: Commit) -> str:
    """The host a commit was made on ('' for commits made elsewhere)."""
    value = c.header(HOST_HEADER)
    return "" if value is None else value.decode("utf-8", "replace")
