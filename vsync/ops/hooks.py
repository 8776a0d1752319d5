"""Running the repository's hooks (``.vsync/hooks/<name>``, when executable)."""

from __future__ import annotations

import os
import subprocess
from typing import NamedTuple

from vsync.errors import HookFailed
from vsync.model.repository import Repository


class HookResult(NamedTuple):
    name: str
    returncode: int
    output: str


def run_hook(repo: Repository, name: str, *args: str, stdin: bytes = b"") -> HookResult | None:
    """Run a hook if it exists and is executable; None when there is none."""
    path = repo.hooks_dir / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    env = dict(os.environ)
    env["VSYNC_DIR"] = str(repo.control)
    if repo.root is not None:
        env["VSYNC_WORK_TREE"] = str(repo.root)
    try:
        proc = subprocess.run(
            [str(path), *args],
            cwd=str(repo.root or repo.control),
            env=env,
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
    except OSError as exc:
        raise HookFailed(f"{name} hook could not run: {exc.strerror}") from None
    return HookResult(name, proc.returncode, proc.stdout.decode("utf-8", "replace"))


def require_hook_ok(repo: Repository, name: str, *args: str) -> HookResult | None:
    """Run a gate hook (pre-*); a non-zero exit aborts with the hook's message."""
    result = run_hook(repo, name, *args)
    if result is not None and result.returncode != 0:
        lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit status {result.returncode}"
        raise HookFailed(f"{name} hook refused: {detail}")
    return result
