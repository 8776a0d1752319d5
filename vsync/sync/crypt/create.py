"""``vsync init --bare --encrypted PATH|s3://BUCKET/PREFIX``: a new, empty encrypted
remote."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from vsync.errors import UsageError
from vsync.sync.crypt.detect import MARKER, MARKER_TEXT
from vsync.sync.crypt.keys import DEFAULT_LOG2N, new_master, wrap
from vsync.sync.objstore import BadObjectName, ObjectStore
from vsync.sync.objstore.folder import FolderStore


def create_encrypted(path: Path, passphrase: str, log2n: int = DEFAULT_LOG2N) -> str:
    """Make ``path`` an empty encrypted remote with one key; its repository id (hex).

    Built in ``PATH.init-tmp`` and renamed into place, so a half-made remote is
    never taken for one; the marker is written last.
    """
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{path} already exists and is not an empty folder")
    if not passphrase:
        raise UsageError("an empty passphrase would protect nothing; give one")
    tmp = path.with_name(path.name + ".init-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    master = new_master()
    store = FolderStore(tmp)
    store.write_if_absent(f"keys/{secrets.token_hex(8)}", wrap(master, passphrase, log2n))
    store.write_if_absent(MARKER, MARKER_TEXT)
    if path.exists():
        path.rmdir()
    os.rename(tmp, path)
    return master.repo_id.hex()


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
    if not passphrase:
        raise UsageError("an empty passphrase would protect nothing; give one")
    try:
        held = bool(store.list(""))
    except BadObjectName:  # objects no vsync remote would hold
        held = True
    if held:
        raise UsageError(f"{where} already holds objects; choose an empty prefix")
    master = new_master()
    store.write_if_absent(f"keys/{secrets.token_hex(8)}", wrap(master, passphrase, log2n))
    if not store.write_if_absent(MARKER, MARKER_TEXT):
        raise UsageError(f"{where} was made an encrypted remote by someone else meanwhile")
    return master.repo_id.hex()
