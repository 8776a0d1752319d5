"""``vsync completion bash|zsh|fish``: a shell completion script, generated from the
argument parser by shtab (an optional dependency: ``pip install 'vsync[completion]'``).

Install it as each shell expects, e.g.
``vsync completion bash > ~/.local/share/bash-completion/completions/vsync``,
``vsync completion zsh > ~/.zfunc/_vsync`` (with ``~/.zfunc`` in ``fpath``) or
``vsync completion fish > ~/.config/fish/completions/vsync.fish``.

Besides commands and options, the script completes remote names (``fetch``,
``pull``, ``push``, ``sync``) and revisions (``checkout``, ``merge``,
``revert-to``, ``restore --source``, ``log --rev``, ``show``) by running
``vsync completion --list remotes|revisions`` in the current folder: the
remotes' names; ``HEAD``, ``main``, ``REMOTE/main`` and the 20 newest commits'
short ids. Outside a repository the lists are empty. (``diff`` takes its
revisions and paths as free arguments, so only files complete there.)
"""

from __future__ import annotations

import argparse
from typing import Any

from vsync.errors import UsageError

SHELLS = ("bash", "zsh", "fish")
LISTS = ("remotes", "revisions")
RECENT = 20  # commits offered as revisions

# (command, option string or positional dest) -> what it completes
REMOTE_ARGS = [(cmd, "remote") for cmd in ("fetch", "pull", "push", "sync")]
REVISION_ARGS = [
    ("checkout", "rev"),
    ("merge", "rev"),
    ("revert-to", "rev"),
    ("restore", "--source"),
    ("log", "--rev"),
    ("show", "spec"),
]


def register(sub: Any) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh, fish)")
    p.add_argument("shell", nargs="?", choices=SHELLS)
    p.add_argument("--list", choices=LISTS, help=argparse.SUPPRESS)  # used by the scripts
    p.set_defaults(func=cmd_completion)


def cmd_completion(args: argparse.Namespace) -> int:
    if args.list is not None:
        for name in candidates(args.list):
            print(name)
        return 0
    if args.shell is None:
        raise UsageError(f"name a shell: vsync completion {'|'.join(SHELLS)}")
    print(script(args.shell), end="")
    return 0


def candidates(what: str) -> list[str]:
    """Remote names, or revisions (see the module docstring); [] outside a repository."""
    from vsync.errors import VsyncError
    from vsync.model.repository import Repository
    from vsync.sync.remotes import list_remotes

    try:
        with Repository.discover() as repo:
            remotes = [r.name for r in list_remotes(repo) if r.name]
            if what == "remotes":
                return remotes
            from vsync.ops.log import walk

            head = repo.head()
            entries = [] if head is None else walk(repo, head, limit=RECENT)
            recent = [e.commit_id.decode()[:10] for e in entries]
            return ["HEAD", "main", *(f"{r}/main" for r in remotes), *recent]
    except VsyncError:
        return []


def script(shell: str) -> str:
    """The completion script for ``shell``, from the whole parser."""
    try:
        import shtab
    except ImportError:
        raise UsageError(
            "shell completion needs the shtab package: pip install 'vsync[completion]'"
        ) from None
    from vsync.cli.main import build_parser

    parser = build_parser([])
    remotes = shtab.cmd("vsync completion --list remotes 2>/dev/null")
    revisions = shtab.cmd("vsync completion --list revisions 2>/dev/null")
    commands = _subparsers(parser)
    for table, complete in ((REMOTE_ARGS, remotes), (REVISION_ARGS, revisions)):
        for command, name in table:
            for action in commands[command]._actions:
                if name in action.option_strings or action.dest == name:
                    action.complete = complete  # type: ignore[attr-defined]
    return str(shtab.complete(parser, shell=shell))


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}
