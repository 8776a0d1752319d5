"""Commands that move snapshots between copies: clone, remote, fetch, pull, push, sync, serve."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vsync.cli.ask import add_allow_mass_change, mass_change_confirm
from vsync.cli.output import escape_text, one_line, short, warn
from vsync.cli.passphrase import key_passphrase_source, passphrase_source
from vsync.model.repository import Repository
from vsync.sync.client import SyncOptions, TransferResult, fetch, push
from vsync.sync.pull import SyncResult, clone, pull, sync
from vsync.sync.remotes import add_remote, find_remote, list_remotes, remove_remote
from vsync.sync.server import serve_stdio
from vsync.ui.progress import human_bytes, transfer_progress_for
from vsync.wording import plural


def add_ssh_options(p: argparse.ArgumentParser) -> None:
    """--remote-cmd, --accept-new-host-key and --password-file, for every command that
    reaches a remote."""
    p.add_argument("--remote-cmd", metavar="CMD", help="how to start vsync on the remote")
    p.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="trust an SSH host seen for the first time (like StrictHostKeyChecking=accept-new)",
    )
    p.add_argument(
        "--password-file", metavar="FILE", help="an encrypted remote's passphrase (first line)"
    )


def _net_options(p: argparse.ArgumentParser, json: bool = False) -> None:
    add_ssh_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    form = p.add_mutually_exclusive_group()
    form.add_argument(
        "--porcelain", action="store_true", help="print a stable key=value summary for scripts"
    )
    if json:
        form.add_argument("--json", action="store_true", help="the summary as one JSON object")


def register(sub: Any) -> None:
    p = sub.add_parser("clone", help="copy a repository from a URL or path")
    p.add_argument("url")
    p.add_argument("dir")
    p.add_argument("--bare", action="store_true")
    p.add_argument("--endpoint", metavar="URL", help="the S3 endpoint of an s3:// URL")
    _net_options(p)
    p.set_defaults(func=cmd_clone)

    p = sub.add_parser("remote", help="list, add or remove remotes")
    p.add_argument("-v", "--verbose", action="store_true", help="show URLs")
    rsub = p.add_subparsers(dest="remote_cmd_name", metavar="ACTION")
    r = rsub.add_parser("add")
    r.add_argument("name")
    r.add_argument("url")
    r.add_argument("--remote-cmd", metavar="CMD")
    r.add_argument("--endpoint", metavar="URL", help="an s3:// remote's S3 endpoint")
    r.set_defaults(func=cmd_remote_add)
    r = rsub.add_parser("remove")
    r.add_argument("name")
    r.set_defaults(func=cmd_remote_remove)
    r = rsub.add_parser("list")
    r.add_argument("-v", "--verbose", action="store_true")
    r.set_defaults(func=cmd_remote_list)
    p.set_defaults(func=cmd_remote_list)

    for name, helptext, func in (
        ("fetch", "bring the remote's new commits (the folder is not touched)", cmd_fetch),
        ("pull", "fetch, then bring the folder up to date", cmd_pull),
        ("push", "send your commits to the remote", cmd_push),
        ("sync", "commit what changed, pull, push", cmd_sync),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("remote", nargs="?", help="remote name or URL (default: origin)")
        _net_options(p, json=name != "sync")
        if name == "push":
            p.add_argument("--create", action="store_true", help="create a missing path remote")
        if name == "pull":
            p.add_argument(
                "--dry-run", action="store_true", help="fetch, then print the merge plan only"
            )
        if name in ("pull", "sync"):
            add_allow_mass_change(p)
        if name == "sync":
            p.add_argument(
                "-m",
                "--message",
                help="the message of the commit sync makes (default: commit.autoMessage)",
            )
        p.set_defaults(func=func)

    p = sub.add_parser("serve", help="the remote end of push and fetch (used over SSH)")
    p.add_argument("--stdio", action="store_true", required=True)
    p.add_argument("--restrict-to", metavar="DIR", help="refuse repositories outside DIR")
    p.add_argument("path")
    p.set_defaults(func=cmd_serve)


def sync_options(args: argparse.Namespace) -> SyncOptions:
    return SyncOptions(
        remote_cmd=args.remote_cmd,
        accept_new_host_key=args.accept_new_host_key,
        progress=transfer_progress_for(args.quiet),
        passphrase=passphrase_source(args.password_file),
        key_passphrase=key_passphrase_source(),
    )


def _porcelain(r: TransferResult, **extra: object) -> str:
    s = r.stats
    fields: dict[str, object] = {
        "remote": escape_text(r.remote, keep=""),
        "old": r.old.decode() if r.old else "-",
        "new": r.new.decode() if r.new else "-",
        "up_to_date": int(r.up_to_date),
        "objects": s.objects,
        "pack_bytes": s.pack_bytes,
        "chunks": s.chunks,
        "chunk_bytes": s.chunk_bytes,
        "wire_sent": r.wire_sent,
        "wire_received": r.wire_received,
        "seconds": f"{r.seconds:.3f}",
        **extra,
    }
    return "".join(f"{k}={v}\n" for k, v in fields.items())


def _report(verb: str, r: TransferResult, args: argparse.Namespace, **extra: object) -> None:
    if getattr(args, "json", False):
        from vsync.cli.json_out import transfer_json, write_json

        write_json(transfer_json(r, **extra))
    elif args.porcelain:
        sys.stdout.write(_porcelain(r, **extra))
    elif not args.quiet:
        print(_summary(verb, r))


def _summary(verb: str, r: TransferResult) -> str:
    s = r.stats
    return (
        f"{verb} {escape_text(r.remote, keep='')}: {plural(s.objects, 'object')}, "
        f"{plural(s.chunks, 'chunk')} "
        f"({human_bytes(s.chunk_bytes)}), {human_bytes(r.wire_sent)} sent, "
        f"{human_bytes(r.wire_received)} received in {r.seconds:.1f} s"
    )


def cmd_clone(args: argparse.Namespace) -> int:
    opts = sync_options(args)
    opts.endpoint = args.endpoint
    repo, fetched = clone(args.url, Path(args.dir), opts, warn, bare=args.bare)
    repo.close()
    if not args.quiet and not args.porcelain:
        where = escape_text(f"{args.url} into {args.dir}", keep="")
        print(f"Cloned {where} ({short(fetched.new) if fetched.new else 'empty'})")
    _report("fetched from", fetched, args)
    return 0


def cmd_remote_add(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        add_remote(repo, args.name, args.url, args.remote_cmd, args.endpoint)
    return 0


def cmd_remote_remove(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        remove_remote(repo, args.name)
    return 0


def cmd_remote_list(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        for remote in list_remotes(repo):
            line = f"{remote.label}\t{remote.url}" if args.verbose else remote.label
            print(escape_text(line, keep="\t"))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        result = fetch(repo, find_remote(repo, args.remote), sync_options(args))
    _report("fetched from", result, args)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from vsync.cli.cmd_merge import report_integration

    with Repository.discover() as repo:
        remote = find_remote(repo, args.remote)
        result = pull(
            repo,
            remote,
            sync_options(args),
            warn,
            dry_run=args.dry_run,
            allow_mass_change=args.allow_mass_change,
            confirm=mass_change_confirm(),
        )
        code = report_integration(
            repo, result.merged, remote.label, quiet=args.quiet or args.porcelain or args.json
        )
    _report("fetched from", result.fetched, args, outcome=result.merged.outcome.value)
    return code


def cmd_push(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        result = push(repo, find_remote(repo, args.remote), sync_options(args), create=args.create)
    if args.json:
        from vsync.cli.json_out import transfer_json, write_json

        write_json(transfer_json(result))
    elif args.porcelain:
        sys.stdout.write(_porcelain(result))
    elif not args.quiet:
        if result.up_to_date:
            print("Everything up to date")
        else:
            where = escape_text(result.remote, keep="")
            print(f"{short(result.old)}..{short(result.new)}  main -> {where}")
            print(_summary("pushed to", result))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from vsync.cli.cmd_merge import report_integration

    with Repository.discover() as repo:
        remote = find_remote(repo, args.remote)
        result = sync(
            repo,
            remote,
            sync_options(args),
            warn,
            allow_mass_change=args.allow_mass_change,
            confirm=mass_change_confirm(),
            message=args.message,
        )
        quiet = args.quiet or args.porcelain
        if result.committed is not None and not quiet:
            print(f"Committed {short(result.committed.commit_id)}")
        code = report_integration(repo, result.pulled.merged, remote.label, quiet=quiet)
    if args.porcelain:
        sys.stdout.write(_sync_porcelain(result))
    elif not args.quiet and result.pushed is not None:
        print(_summary("pushed to", result.pushed))
    return code


def _sync_porcelain(result: SyncResult) -> str:
    """``vsync sync --porcelain``: the commit, what travelled during it (``offered_*``),
    the pull's outcome, then the push's counters as ``push --porcelain`` prints them
    (``pushed=0`` and no counters when nothing was pushed)."""
    committed = result.committed
    fields: dict[str, object] = {
        "commit": committed.commit_id.decode() if committed and committed.commit_id else "-",
        "offered_chunks": result.offered.chunks,
        "offered_bytes": result.offered.bytes,
        "sessions": result.sessions,
        "outcome": result.pulled.merged.outcome.value,
        "pushed": int(result.pushed is not None),
    }
    head = "".join(f"{k}={v}\n" for k, v in fields.items())
    return head + (_porcelain(result.pushed) if result.pushed is not None else "")


def cmd_serve(args: argparse.Namespace) -> int:
    # stdout is the protocol channel: nothing else may be written to it.
    def serve_warn(message: str) -> None:
        print(f"vsync serve: warning: {one_line(message)}", file=sys.stderr)

    return serve_stdio(args.path, args.restrict_to, serve_warn)
