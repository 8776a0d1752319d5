"""What vsync adds to git commits: the ``vsync-host`` header naming the machine."""

from __future__ import annotations

from dulwich.objects import Commit

HOST_HEADER = b"vsync-host"


def commit_host(c: Commit) -> str:
    """The host a commit was made on ('' for commits made elsewhere)."""
    for key, value in c._extra:
        if key == HOST_HEADER:
            return value.decode("utf-8", "replace")
    return ""
