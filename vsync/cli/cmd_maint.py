"""Commands that check, repair and tidy a repository: fsck (--repair), gc."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from vsync.cli.cmd_sync import add_ssh_options
from vsync.cli.output import escape_text, info, warn
from vsync.model.repository import Repository
from vsync.ops.fsck import FsckResult, fsck
from vsync.ops.gc import gc
from vsync.ui.progress import human_bytes, progress_for
from vsync.wording import plural

if TYPE_CHECKING:
    from vsync.sync.remotes import Remote
    from vsync.sync.repair import RepairResult

EXIT_DAMAGED = 3


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fsck", help="verify every commit, file and chunk history can reach (exit 3 if damaged)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument(
        "--repair",
        nargs="?",
        const="",
        metavar="REMOTE",
        help="fetch damaged or missing objects and chunks back from REMOTE (a name or URL; "
        "default: every configured remote in turn, origin first)",
    )
    p.add_argument(
        "--remote",
        metavar="REMOTE",
        help="check an encrypted or s3:// remote (a name or URL) instead: every pack, index, "
        "git pack and the branch record (with its passphrase if encrypted)",
    )
    add_ssh_options(p)
    p.set_defaults(func=cmd_fsck)

    p = sub.add_parser("gc", help="drop chunks and objects no commit or reflog entry needs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument(
        "--remote",
        metavar="REMOTE",
        help="collect an encrypted or s3:// remote (a name or URL) instead: delete the packs "
        "and git packs its branch no longer reaches, under the remote's exclusive lock",
    )
    unlock = p.add_mutually_exclusive_group()
    unlock.add_argument(
        "--remove-locks",
        action="store_true",
        help="with --remote: only remove the remote's stale locks (expired, or of a process "
        "of this machine that is gone), as restic's unlock; collect nothing",
    )
    unlock.add_argument(
        "--remove-all-locks",
        action="store_true",
        help="with --remote: remove every lock of the remote, live ones too (a push or gc "
        "still running elsewhere then stops at its next step); collect nothing",
    )
    add_ssh_options(p)
    p.set_defaults(func=cmd_gc)


def cmd_fsck(args: argparse.Namespace) -> int:
    if args.remote is not None:
        return _cmd_remote(args)
    if args.repair is not None:
        return _cmd_repair(args)
    with Repository.discover() as repo:
        result = fsck(repo, progress_for("fsck: checking chunks", args.quiet))
    for note in result.notes:
        info(f"fsck: {note}")
    return _report(result, "found")


def _report(result: FsckResult, verb: str) -> int:
    for line in result.problems:
        print(escape_text(line, keep=""))
    if result.problems:
        n = len(result.problems)
        print(f"fsck: {plural(n, 'problem')} {verb}")
        return EXIT_DAMAGED
    print(
        f"fsck: checked {plural(result.commits, 'commit')}, {plural(result.files, 'file')}, "
        f"{plural(result.chunks, 'chunk')} ({human_bytes(result.chunk_bytes)}): no problems"
    )
    return 0


def _object_store_remote(repo: Repository, name: str, what_instead: str) -> Remote:
    """The remote ``name``, which ``--remote`` works on: an encrypted folder, or a bucket
    (plain or encrypted). A plain folder remote is a repository: the user is told to run
    the command in it (``what_instead``: "'vsync gc' in it collects", ...)."""
    from vsync.errors import UsageError
    from vsync.sync.crypt.detect import is_encrypted
    from vsync.sync.remotes import find_remote

    remote = find_remote(repo, name)
    if remote.url.kind == "local" and not is_encrypted(remote):
        raise UsageError(f"{remote.label} is not an encrypted remote; {what_instead} a repository")
    return remote


def _cmd_remote(args: argparse.Namespace) -> int:
    from vsync.cli.cmd_sync import sync_options
    from vsync.errors import UsageError
    from vsync.sync.crypt.check import check_encrypted

    if args.repair is not None:
        raise UsageError("--remote checks an encrypted remote; it repairs nothing (no --repair)")
    with Repository.discover() as repo:
        remote = _object_store_remote(repo, args.remote, "'vsync fsck' in it checks")
        result = check_encrypted(repo, remote, sync_options(args))
    for note in result.notes:
        info(f"fsck: {note}")
    return _report(result, "found")


def _cmd_repair(args: argparse.Namespace) -> int:
    # The transfer code is loaded only here: a plain fsck starts as fast as before.
    from vsync.cli.cmd_sync import sync_options
    from vsync.sync.repair import repair, repair_remotes

    opts = sync_options(args)
    with Repository.discover() as repo:
        remotes, explicit = repair_remotes(repo, args.repair or None)
        result = repair(
            repo,
            remotes,
            opts,
            explicit=explicit,
            progress=lambda: progress_for("fsck: checking chunks", args.quiet),
        )
    return _report_repair(result)


def _report_repair(result: RepairResult) -> int:
    """What was found goes to stderr; stdout is what was repaired and the final state."""
    found = result.found
    for note in found.notes:
        info(f"fsck: {note}")
    if result.nothing_to_repair:
        code = _report(found, "found")
        for note in result.notes:
            info(f"fsck: {note}")
        print("fsck: nothing to repair")
        return code
    n = len(found.problems)
    info(f"fsck: {plural(n, 'problem')} found, repairing:")
    for line in found.problems:
        info(f"fsck: {line}")
    for note in result.notes:
        info(f"fsck: {note}")
    for failure in result.failures:
        warn(f"could not repair from {failure}")
    for s in result.sessions:
        print(
            f"fsck: repaired from {escape_text(s.label)}: {plural(s.objects, 'git object')}, "
            f"{plural(s.chunks, 'chunk')} "
            f"({human_bytes(s.chunk_bytes)})"
        )
    if result.no_remote:
        warn(
            "no remote to repair from: add one ('vsync remote add NAME URL') or name one "
            "('vsync fsck --repair REMOTE')"
        )
    for note in result.final.notes:
        if note not in found.notes:
            info(f"fsck: {note}")
    return _report(result.final, "could not be repaired")


def _gc_remote(args: argparse.Namespace) -> int:
    from vsync.cli.cmd_sync import sync_options
    from vsync.sync.crypt.collect import collect_remote

    with Repository.discover() as repo:
        remote = _object_store_remote(repo, args.remote, "'vsync gc' in it collects")
        result = collect_remote(repo, remote, sync_options(args))
    for note in result.notes:
        info(f"gc: {note}")
    mib = 1024 * 1024
    print(
        f"gc: removed {plural(result.packs_removed, 'chunk pack')} "
        f"({plural(result.chunks_removed, 'chunk')}, {result.chunk_bytes_removed / mib:.1f} MiB), "
        f"{plural(result.orphan_packs_removed, 'pack')} without an index, "
        f"{plural(result.git_packs_removed, 'git pack')} no branch names; "
        f"kept {plural(result.packs_kept, 'chunk pack')}"
    )
    if result.partly_used:
        print(
            f"gc: {plural(result.partly_used, 'kept pack')} also "
            f"{'holds' if result.partly_used == 1 else 'hold'} "
            f"{plural(result.unused_kept, 'chunk')} nothing reaches (packs are not repacked)"
        )
    return 0


def _unlock_remote(args: argparse.Namespace) -> int:
    from vsync.cli.cmd_sync import sync_options
    from vsync.errors import UsageError
    from vsync.sync.crypt.collect import unlock_remote
    from vsync.sync.crypt.detect import is_encrypted
    from vsync.sync.remotes import find_remote

    flag = "--remove-all-locks" if args.remove_all_locks else "--remove-locks"
    if args.remote is None:
        raise UsageError(f"{flag} needs --remote REMOTE: the locks are the remote's")
    with Repository.discover() as repo:
        remote = find_remote(repo, args.remote)
        if remote.url.kind == "local" and not is_encrypted(remote):
            raise UsageError(f"{remote.label} is not an encrypted remote; it has no lock objects")
        result = unlock_remote(repo, remote, sync_options(args), args.remove_all_locks)
    for name, stale in result.stale:
        print(f"gc: removed the stale lock {name}: {stale.what}")
    for name, live in result.live:
        what = live.what if live is not None else "it does not open"
        if result.live_removed:
            warn(
                f"removed the live lock {name} ({what}): if that command still runs, it "
                "stops at its next step"
            )
        else:
            print(f"gc: kept the live lock {name}: {what}")
    verb = "removed" if result.live_removed else "kept"
    print(
        f"gc: removed {plural(len(result.stale), 'stale lock')}, "
        f"{verb} {plural(len(result.live), 'live lock')}"
    )
    if result.live and not result.live_removed:
        info(
            f"gc: once no vsync uses {remote.label} (on any machine), "
            f"'vsync gc --remote {args.remote} --remove-all-locks' removes the live ones too"
        )
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    if args.remove_locks or args.remove_all_locks:
        return _unlock_remote(args)
    if args.remote is not None:
        return _gc_remote(args)
    with Repository.discover() as repo:
        result = gc(repo, progress_for("gc: verifying chunks to keep", args.quiet))
    for note in result.notes:
        info(f"gc: {note}")
    mib = 1024 * 1024
    dup = result.duplicates_removed
    dups = f" and {plural(dup, 'duplicate copy', 'duplicate copies')}" if dup else ""
    print(
        f"gc: removed {plural(result.chunks_removed, 'chunk')}{dups} "
        f"({result.bytes_removed / mib:.1f} MiB), "
        f"rewrote {plural(result.packs_rewritten, 'pack')}, "
        f"store is now {result.store_bytes / mib:.1f} MiB"
    )
    return 0
