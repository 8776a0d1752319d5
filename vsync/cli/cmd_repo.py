"""Commands that make and snapshot a repository: init, status, commit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vsync.cli.output import escape_text, quote_path, short, warn
from vsync.model.repository import Repository
from vsync.wording import plural

# Each command imports its operation when it runs: status need not load commit's
# modules, and start-up is paid by every call.

STATUS_WORDS = {
    "UU": "both changed",
    "AA": "both added",
    "UD": "deleted by them",
    "DU": "deleted by us",
    "AU": "file/folder",
    "UA": "folder/file",
    "??": "new file",
    " M": "modified",
    " T": "type changed",
    " D": "deleted",
}


def register(sub: Any) -> None:
    p = sub.add_parser("init", help="make a folder a vsync repository")
    p.add_argument("path", nargs="?", default=".")
    p.add_argument("--bare", action="store_true", help="no working folder (server, USB drive)")
    p.add_argument(
        "--encrypted",
        action="store_true",
        help="an encrypted remote (with --bare; a path, an ssh:// or s3:// URL)",
    )
    p.add_argument("--endpoint", metavar="URL", help="the S3 endpoint of an s3:// path")
    p.add_argument("--password-file", metavar="FILE", help="its passphrase (first line)")
    p.add_argument("--remote-cmd", metavar="CMD", help="how to start vsync on the remote")
    p.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="trust an SSH host seen for the first time",
    )
    p.add_argument(
        "--scrypt-log2n",
        type=int,
        choices=range(10, 21),
        metavar="N",
        help="scrypt N = 2^N, r 8, p 2: 2^N KiB of memory (10-20, default 16: 64 MiB)",
    )
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("status", help="show what changed since the last commit")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--porcelain", action="store_true", help="stable output for scripts")
    form.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("commit", help="snapshot the whole folder")
    p.add_argument("-m", "--message", required=True)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_commit)


def cmd_init(args: argparse.Namespace) -> int:
    if args.encrypted:
        return _init_encrypted(args)
    if args.path.startswith("s3://"):
        return _init_plain_s3(args)
    repo = Repository.init(Path(args.path), bare=args.bare)
    kind = "bare repository" if args.bare else "repository"
    print(f"Initialised empty vsync {kind} in {escape_text(str(repo.control), keep='')}")
    repo.close()
    return 0


def _init_plain_s3(args: argparse.Namespace) -> int:
    """``vsync init --bare s3://BUCKET/PREFIX``: a plain remote in a bucket (the
    encrypted layout with the null seal; docs/format.md, "Plain remotes")."""
    from vsync.errors import UsageError
    from vsync.sync.crypt.create import create_plain_in
    from vsync.sync.crypt.remote import open_s3
    from vsync.sync.url import parse_url

    if not args.bare:
        raise UsageError("a bucket holds no working folder: use 'vsync init --bare s3://...'")
    url = parse_url(args.path)
    create_plain_in(open_s3(url, args.endpoint), str(url))
    print(f"Initialised empty plain vsync remote in {escape_text(str(url), keep='')}")
    return 0


def _init_encrypted(args: argparse.Namespace) -> int:
    from vsync.cli.passphrase import passphrase_source
    from vsync.errors import UsageError
    from vsync.sync.crypt.create import (
        create_encrypted,
        create_encrypted_in,
        create_encrypted_served,
    )
    from vsync.sync.crypt.keys import DEFAULT_LOG2N
    from vsync.sync.url import parse_url

    if not args.bare:
        raise UsageError("an encrypted remote holds no working folder: use --bare --encrypted")
    log2n = DEFAULT_LOG2N if args.scrypt_log2n is None else args.scrypt_log2n
    url = parse_url(args.path)
    if args.endpoint is not None and url.kind != "s3":
        raise UsageError("--endpoint is for s3:// remotes only")
    if url.kind == "s3":
        from vsync.sync.crypt.remote import open_s3

        store = open_s3(url, args.endpoint)
        passphrase = passphrase_source(args.password_file, confirm=True)()
        create_encrypted_in(store, str(url), passphrase, log2n)
        print(f"Initialised empty encrypted vsync remote in {escape_text(str(url), keep='')}")
        return 0
    passphrase = passphrase_source(args.password_file, confirm=True)()
    if url.kind == "ssh":
        create_encrypted_served(url, passphrase, log2n, args.remote_cmd, args.accept_new_host_key)
        where = escape_text(args.path, keep="")
    else:
        create_encrypted(Path(args.path), passphrase, log2n)
        where = escape_text(str(Path(args.path)), keep="")
    print(f"Initialised empty encrypted vsync remote in {where}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from vsync.ops.status import status

    with Repository.discover() as repo:
        repo.require_worktree()
        result = status(repo, warn)
    if args.json:
        from vsync.cli.json_out import status_json, write_json

        write_json(status_json(result, STATUS_WORDS))
        return 0
    if args.porcelain:
        out = sys.stdout
        for code, path in result.entries:
            out.write(f"{code} {quote_path(path)}\n")
        for path in result.held:
            out.write(f"!H {quote_path(path)}\n")
        for path in result.unreadable:
            out.write(f"!S {quote_path(path or '.')}\n")
        return 0
    print("On branch main" + ("" if result.head else " (no commits yet)"))
    if result.merge is not None:
        left = len(result.merge.unresolved())
        theirs = result.merge.theirs.decode()[:10]
        print(f"Merging {theirs}: {plural(left, 'unresolved conflict')}")
        print("  (settle them with 'vsync resolve', then 'vsync commit'; 'vsync merge --abort')")
    if result.held:
        print("Held back from .git folders (not written; see safety.trustGitFolders):")
        for path in result.held:
            print(f"  {quote_path(path)}")
    if result.unreadable:
        print("Skipped, could not be read (a commit keeps their last committed version):")
        for path in result.unreadable:
            print(f"  {quote_path(path or '.')}")
    if not result.entries:
        print("nothing to commit, working folder clean")
        return 0
    print("Changes not yet committed:")
    for code, path in result.entries:
        print(f"  {STATUS_WORDS.get(code, code.strip()) + ':':<14}{quote_path(path)}")
    return 0


def cmd_commit(args: argparse.Namespace) -> int:
    from vsync.ops.commit import commit
    from vsync.ui.progress import human_bytes, progress_for

    with Repository.discover() as repo:
        repo.require_worktree()
        progress = progress_for("Committing", args.quiet)
        result = commit(repo, args.message, warn, progress)
    if result.post_commit_output:
        sys.stderr.write(result.post_commit_output)
    if result.commit_id is None:
        print("nothing to commit, working folder clean")
        return 0
    if not args.quiet:
        subject = escape_text(args.message.strip().split("\n")[0], keep="")
        print(
            f"[main {short(result.commit_id)}] {subject}\n"
            f" {plural(result.files, 'file')}, {result.hashed} read, "
            f"{plural(result.chunks_new, 'new chunk')} ({human_bytes(result.bytes_new)} stored)"
        )
    return 0
