"""``vsync completion bash|zsh|fish``: scripts generated from the parser (shtab) that a
shell accepts and that complete commands, options, remote names and revisions. The bash
script is sourced in a real bash and its completion function called as bash would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_vsync

pytest.importorskip("shtab")


def complete(script: Path, cwd: Path, words: list[str]) -> list[str]:
    """What bash offers for the last of ``words`` (``vsync`` first), with ``script`` sourced."""
    bindir = cwd.parent / "bin"
    bindir.mkdir(exist_ok=True)
    shim = bindir / "vsync"  # the script runs 'vsync completion --list ...'
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m vsync "$@"\n')
    shim.chmod(0o755)
    quoted = " ".join(f"'{w}'" for w in words)
    line = " ".join(words)
    prog = (
        f"source '{script}'\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n"
        f"_shtab_vsync vsync '{words[-1]}' '{words[-2]}'\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", "--norc", "-c", prog], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return [w for w in out.stdout.splitlines() if w]


def test_bash_script_is_valid_and_completes(tmp_path: Path) -> None:
    work, hub = tmp_path / "work", tmp_path / "hub.vsync"
    work.mkdir()
    run_vsync("init", cwd=work)
    script = tmp_path / "vsync.bash"
    script.write_text(run_vsync("completion", "bash", cwd=work).stdout)
    subprocess.run(["bash", "-n", str(script)], check=True)

    assert complete(script, work, ["vsync", "pu"]) == ["pull", "push"]
    assert "completion" in complete(script, work, ["vsync", "co"])
    assert "--porcelain" in complete(script, work, ["vsync", "push", "--p"])
    assert complete(script, work, ["vsync", "push", ""]) == []  # no remote yet

    run_vsync("init", "--bare", hub, cwd=tmp_path)
    run_vsync("remote", "add", "origin", hub, cwd=work)
    run_vsync("remote", "add", "usb", hub, cwd=work)
    assert complete(script, work, ["vsync", "push", ""]) == ["origin", "usb"]
    assert complete(script, work, ["vsync", "fetch", "u"]) == ["usb"]
    (work / "f.txt").write_text("1\n")
    run_vsync("commit", "-m", "one", cwd=work)
    head = run_vsync("log", "--oneline", "-n", "1", cwd=work).stdout.split()[0]
    assert complete(script, work, ["vsync", "checkout", ""]) == [
        "HEAD",
        "main",
        "origin/main",
        "usb/main",
        head,
    ]
    assert complete(script, work, ["vsync", "restore", "--source", "ma"]) == ["main"]
    assert complete(script, tmp_path, ["vsync", "push", ""]) == []  # not a repository


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts(tmp_path: Path, shell: str) -> None:
    text = run_vsync("completion", shell, cwd=tmp_path).stdout
    assert "vsync completion --list remotes" in text and "revert-to" in text
    if shutil.which(shell):  # not installed here: the syntax check runs where it is
        path = tmp_path / f"vsync.{shell}"
        path.write_text(text)
        subprocess.run([shell, "-n", str(path)], check=True)


def test_completion_needs_a_shell(tmp_path: Path) -> None:
    for args in (["completion"], ["completion", "tcsh"]):
        bad = run_vsync(*args, cwd=tmp_path, check=False)
        assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1
