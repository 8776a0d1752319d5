"""Commands for joining diverged copies: merge, resolve (and the conflict shell)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from vsync.cli.ask import add_allow_mass_change, mass_change_confirm
from vsync.cli.output import escape_text, interactive, quote_path, short, warn
from vsync.errors import StoppedError, UsageError
from vsync.model.folder_scan import MODE_LINK
from vsync.model.repository import Repository
from vsync.ops.merge import MergePlan
from vsync.wording import plural, written_deleted

if TYPE_CHECKING:
    from vsync.ops.merge.integrate import IntegrateResult


def register(sub: Any) -> None:
    p = sub.add_parser("merge", help="merge another commit (e.g. origin/main) into yours")
    p.add_argument("rev", nargs="?", help="what to merge (default: origin/main)")
    p.add_argument("--abort", action="store_true", help="undo the merge in progress")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    add_allow_mass_change(p)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("resolve", help="settle merge conflicts (no PATH: interactive shell)")
    p.add_argument("paths", nargs="*", metavar="PATH")
    how = p.add_mutually_exclusive_group()
    for name, helptext in (
        ("ours", "keep your version"),
        ("theirs", "take the other copy's version"),
        ("base", "go back to the common ancestor's version"),
        ("both", "keep both (text: ours then theirs where they conflict; binary: both files)"),
        ("mark", "the file is fine as it is now"),
        ("undo", "take back a resolution: the merge's result (markers, copies) comes back"),
        ("edit", "open the file in $EDITOR; resolved if no conflict markers remain"),
    ):
        how.add_argument(f"--{name}", dest="how", action="store_const", const=name, help=helptext)
    p.add_argument("--list", action="store_true", help="list the conflicts and exit")
    p.set_defaults(func=cmd_resolve)


def remain(left: int) -> str:
    """ "1 conflict remains", "0 conflicts remain"."""
    return f"{plural(left, 'conflict')} {'remains' if left == 1 else 'remain'}"


def print_plan(repo: Repository, plan: MergePlan, out: Any = None) -> None:
    """The merge plan as ``vsync pull --dry-run`` prints it: one line per path."""
    out = out or sys.stdout
    counts: dict[str, int] = {}
    for action in plan.actions:
        label = "conflict " + action.conflict.kind if action.conflict else action.kind
        counts[label] = counts.get(label, 0) + 1
        size = _entry_size(repo, plan, action.result)
        reason = escape_text(action.reason, keep="")
        out.write(f"{label:<24} {quote_path(action.path)}{size}  -- {reason}\n")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to do"
    out.write(f"plan: {summary}; {plural(len(plan.conflicts), 'conflict')}; nothing was changed\n")


def _entry_size(repo: Repository, plan: MergePlan, entry: tuple[int, bytes] | None) -> str:
    from vsync.model.manifest import manifest_size
    from vsync.ui.progress import human_bytes

    if entry is None:
        return ""
    mode, oid = entry
    pending = plan.new_content.get(oid)
    if pending is not None:
        return f" ({human_bytes(len(pending))})"
    if mode == MODE_LINK:
        return " (symlink)"
    return f" ({human_bytes(manifest_size(repo.gitdb.blob(oid)))})"


def report_integration(
    repo: Repository, result: IntegrateResult, label: str, quiet: bool = False
) -> int:
    """Print what a pull or merge did; returns the exit code (1 on conflicts).

    ``quiet`` prints only what needs acting on (conflicts)."""
    from vsync.ops.merge.integrate import Integration

    if quiet and result.outcome is not Integration.CONFLICTS:
        return 0
    if result.outcome is Integration.PLANNED:
        assert result.plan is not None
        print_plan(repo, result.plan)
        return 0
    if result.outcome is Integration.FAST_FORWARD:
        print(
            f"Fast-forward {short(result.old)}..{short(result.new)}: "
            f"{written_deleted(result.written, result.deleted)}"
        )
    elif result.outcome is Integration.MERGED:
        print(
            f"Merged {escape_text(label, keep='')} into main: {short(result.new)} "
            f"({written_deleted(result.written, result.deleted)})"
        )
    elif result.outcome is Integration.AHEAD:
        print("Already up to date (your copy is ahead; push to share it)")
    elif result.outcome is Integration.UP_TO_DATE:
        print("Already up to date")
    elif result.outcome is Integration.CONFLICTS:
        for code, path, kind in result.conflicts:
            print(f"{code} {quote_path(path)}  ({kind})")
        n = len(result.conflicts)
        print(
            f"vsync: {plural(n, 'conflict')} to resolve; run 'vsync resolve' (or 'vsync resolve "
            "PATH --ours|--theirs|--both'), then 'vsync commit'",
            file=sys.stderr,
        )
        return 1
    if result.hook_output:
        sys.stderr.write(result.hook_output)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from vsync.model.revisions import resolve as resolve_rev
    from vsync.ops.merge import abort
    from vsync.ops.merge.integrate import integrate

    with Repository.discover() as repo:
        if args.abort:
            result = abort(repo)
            repo.holds.report(warn)
            print(
                f"Merge aborted: {plural(len(result.restored), 'file')} restored, "
                f"{len(result.removed)} removed"
            )
            return 0
        rev = args.rev or "origin/main"
        theirs = resolve_rev(repo, rev)
        integrated = integrate(
            repo,
            theirs,
            rev,
            warn,
            args.dry_run,
            allow_mass_change=args.allow_mass_change,
            confirm=mass_change_confirm(),
        )
        return report_integration(repo, integrated, rev)


def cmd_resolve(args: argparse.Namespace) -> int:
    from vsync.cli.paths import repo_paths
    from vsync.ops.merge import resolve
    from vsync.ops.merge.resolve import require_state

    with Repository.discover() as repo:
        repo.require_worktree()
        state = require_state(repo)
        if args.list or (not args.paths and args.how is None and not interactive()):
            for path in sorted(state.files):
                ps = state.files[path]
                mark = "resolved" if ps.resolved else ps.code
                print(f"{mark:<9} {quote_path(path)}  ({ps.kind})")
            return 0
        if not args.paths:
            if args.how is not None:
                raise UsageError(
                    "name the conflicted paths to resolve, e.g. 'vsync resolve F --ours'"
                )
            return _shell(repo)
        if args.how is None:
            raise UsageError("say how: --ours, --theirs, --base, --both, --mark, --edit or --undo")
        paths = repo_paths(repo, args.paths)
        if args.how in ("undo", "edit"):
            return _undo_or_edit(repo, paths, args.how)
        result = resolve(repo, paths, args.how)
        repo.holds.report(warn)
    left = len(result.remaining)
    print(f"Resolved {plural(len(result.resolved), 'path')}; {remain(left)}")
    if not left:
        print("All conflicts are settled: run 'vsync commit -m MESSAGE' to finish the merge")
    return 0


def _shell(repo: Repository) -> int:
    from vsync.ops.commit import commit
    from vsync.ui.conflict_shell import run_conflict_shell

    outcome = run_conflict_shell(repo)
    if outcome.commit_requested:
        result = commit(repo, outcome.message or "Merge", warn)
        if result.commit_id is None:
            raise StoppedError("nothing was committed")
        subject = escape_text((outcome.message or "Merge").split("\n")[0], keep="")
        print(f"[main {short(result.commit_id)}] {subject}")
    return 0


def _undo_or_edit(repo: Repository, paths: list[str], how: str) -> int:
    from vsync.ops.merge import MergeState, resolve
    from vsync.ops.merge.undoable import reopen
    from vsync.ui.conflict_actions import edit, has_markers

    for path in paths:
        if how == "undo":
            reopen(repo, path)
            print(f"{quote_path(path)}: unresolved again (the merge's result is back)")
            continue
        _undo, changed = edit(repo, path, None)
        if changed and not has_markers((repo.require_worktree() / path).read_bytes()):
            resolve(repo, [path], "mark")
            print(f"{quote_path(path)}: edited and marked resolved")
        else:
            print(f"{quote_path(path)}: still unresolved (unchanged, or conflict markers remain)")
    state = MergeState.load(repo)
    left = len(state.unresolved()) if state is not None else 0
    print(remain(left))
    return 0
