"""``vsync init --bare --encrypted PATH|URL``: a new, empty encrypted remote."""

from __future__ import annotations

import secrets
from pathlib import Path

from vsync.errors import UsageError
from vsync.sync.crypt.detect import MARKER, MARKER_TEXT
from vsync.sync.crypt.keys import DEFAULT_LOG2N, new_master, wrap
from vsync.sync.objstore.folder import FolderStore
from vsync.sync.url import RemoteURL


def _first_key(passphrase: str, log2n: int) -> tuple[str, bytes, str]:
    if not passphrase:
        raise UsageError("an empty passphrase would protect nothing; give one")
    master = new_master()
    return f"keys/{secrets.token_hex(8)}", wrap(master, passphrase, log2n), master.repo_id.hex()


def create_encrypted(path: Path, passphrase: str, log2n: int = DEFAULT_LOG2N) -> str:
    """Make ``path`` an empty encrypted remote with one key; its repository id (hex).

    Built in ``PATH.init-tmp`` and renamed into place, so a half-made remote is
    never taken for one; the marker is written last.
    """
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{path} already exists and is not an empty folder")
    name, key_file, repo_id = _first_key(passphrase, log2n)
    FolderStore.create(path, [(name, key_file), (MARKER, MARKER_TEXT)])
    return repo_id


def create_encrypted_served(
    url: RemoteURL,
    passphrase: str,
    log2n: int = DEFAULT_LOG2N,
    remote_cmd: str | None = None,
    accept_new_host: bool = False,
) -> str:
    """Make ``url`` (SSH) an empty encrypted remote through ``vsync serve`` there: the
    key file is wrapped here and sent in the HELLO; the server builds the folder as
    :func:`create_encrypted` does and never sees the passphrase or the master key."""
    from vsync.sync.objstore.served import ServedStore

    name, key_file, repo_id = _first_key(passphrase, log2n)
    store = ServedStore.open(url, remote_cmd, accept_new_host, create=(name, key_file))
    try:
        if store.read(name, 0, len(key_file) + 1) != key_file:
            raise UsageError(f"{url} did not keep the key file it was sent")
    finally:
        store.close()
    return repo_id
