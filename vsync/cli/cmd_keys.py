"""``vsync key add|remove|change|list [REMOTE]``: the passphrases of an encrypted remote."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vsync.cli.cmd_sync import add_ssh_options
from vsync.cli.output import escape_text
from vsync.cli.passphrase import new_passphrase_source, passphrase_source
from vsync.model.repository import Repository
from vsync.sync.client import SyncOptions
from vsync.sync.objstore import ObjectStore
from vsync.sync.remotes import Remote, find_remote
from vsync.sync.url import parse_url


def register(sub: Any) -> None:
    p = sub.add_parser("key", help="add, remove, change or list an encrypted remote's passphrases")
    ksub = p.add_subparsers(dest="key_action", metavar="ACTION", required=True)
    for action, helptext in (
        ("add", "add a passphrase (the master key wrapped again; no data re-encrypted)"),
        ("remove", "remove a key (never the last; needs the passphrase of another key)"),
        ("change", "replace the key the passphrase opens by one under a new passphrase"),
        ("list", "show the key slots: ids, creation time, KDF parameters (no secrets)"),
    ):
        k = ksub.add_parser(action, help=helptext)
        k.add_argument("remote", nargs="?", help="remote name or URL (default: origin)")
        add_ssh_options(k)
        if action in ("add", "change"):
            k.add_argument(
                "--new-password-file", metavar="FILE", help="the new passphrase (first line)"
            )
            k.add_argument(
                "--scrypt-log2n",
                type=int,
                choices=range(10, 21),
                metavar="N",
                help="the new key's scrypt N = 2^N, r 8, p 2: 2^N KiB (10-20, default 16: 64 MiB)",
            )
        if action == "remove":
            k.add_argument("--id", required=True, metavar="KEYID", help="the key to remove")
        k.set_defaults(func=cmd_key)


def _remote(name_or_url: str | None) -> Remote:
    """A URL or path needs no repository; a remote name (or none: origin) does."""
    if name_or_url is not None and ("/" in name_or_url or ":" in name_or_url):
        return Remote(None, parse_url(name_or_url))
    with Repository.discover() as repo:
        return find_remote(repo, name_or_url)


@contextmanager
def _opened(remote: Remote, args: argparse.Namespace) -> Iterator[ObjectStore]:
    from vsync.sync.crypt.remote import store_for

    opts = SyncOptions(remote_cmd=args.remote_cmd, accept_new_host_key=args.accept_new_host_key)
    store = store_for(remote, opts)
    try:
        yield store
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    return time.strftime("%Y-%m-%d %H:00 UTC", time.gmtime(seconds))


def cmd_key(args: argparse.Namespace) -> int:
    from vsync.sync.crypt import keyring
    from vsync.sync.crypt.keys import DEFAULT_LOG2N

    remote = _remote(args.remote)
    where = remote.label
    label = escape_text(where, keep="")
    with _opened(remote, args) as store:
        if args.key_action == "list":
            for slot in keyring.list_keys(store, where):
                if slot.params is None:
                    print(f"{slot.key_id}  unreadable ({slot.problem})")
                    continue
                kp = slot.params
                print(
                    f"{slot.key_id}  created {_when(kp.created)}  scrypt log2n={kp.log2n} "
                    f"r={kp.r} p={kp.p} ({kp.memory >> 20} MiB)"
                )
            return 0
        passphrase = passphrase_source(args.password_file)()
        if args.key_action == "remove":
            change = keyring.remove_key(store, passphrase, args.id, where)
            print(f"removed key {change.removed} from {label}")
            return 0
        new = new_passphrase_source(args.new_password_file)()
        log2n = DEFAULT_LOG2N if args.scrypt_log2n is None else args.scrypt_log2n
        if args.key_action == "add":
            change = keyring.add_key(store, passphrase, new, where, log2n)
            print(f"added key {change.added} to {label}")
        else:
            change = keyring.change_key(store, passphrase, new, where, log2n)
            print(f"changed key {change.removed} to {change.added} on {label}")
    return 0
