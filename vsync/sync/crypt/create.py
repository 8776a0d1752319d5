"""``vsync init --bare --encrypted PATH|URL``: a new, empty encrypted remote (a folder,
over SSH through ``vsync serve``, or a prefix of an S3 bucket)."""

from __future__ import annotations

import secrets
from pathlib import Path

from vsync.errors import UsageError
from vsync.sync.crypt.detect import MARKER, MARKER_TEXT, plain_marker
from vsync.sync.crypt.keys import DEFAULT_LOG2N, new_master, wrap
from vsync.sync.objstore import BadObjectName, ObjectStore
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


def create_encrypted_in(
    store: ObjectStore, where: str, passphrase: str, log2n: int = DEFAULT_LOG2N
) -> str:
    """Make the empty ``store`` (a bucket's prefix) an encrypted remote with one key;
    its repository id (hex).

    Storage without renames cannot build it aside: the key file is written
    first and the marker last (write-if-absent), so a half-made remote has no
    marker and is never taken for one; ``init`` run again refuses it as not
    empty, and the objects can be deleted by hand.
    """
    name, key_file, repo_id = _first_key(passphrase, log2n)
    _require_empty(store, where)
    store.write_if_absent(name, key_file)
    if not store.write_if_absent(MARKER, MARKER_TEXT):
        raise UsageError(f"{where} was made an encrypted remote by someone else meanwhile")
    return repo_id


def _require_empty(store: ObjectStore, where: str) -> None:
    try:
        held = bool(store.list(""))
    except BadObjectName:  # objects no vsync remote would hold
        held = True
    if held:
        raise UsageError(f"{where} already holds objects; choose an empty prefix")


def create_plain_in(store: ObjectStore, where: str) -> str:
    """Make the empty ``store`` (a bucket's prefix) a plain remote: one object, its
    marker stating the format and a new repository id (hex), written if absent."""
    _require_empty(store, where)
    repo_id = secrets.token_bytes(16)
    if not store.write_if_absent(MARKER, plain_marker(repo_id)):
        raise UsageError(f"{where} was made a vsync remote by someone else meanwhile")
    return repo_id.hex()
