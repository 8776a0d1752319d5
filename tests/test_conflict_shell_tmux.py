"""The conflict shell end to end, as a person uses it: the real ``vsync resolve`` in tmux.

A real merge with three conflicts (text, binary, modify/delete) is made with
the real CLI; ``vsync resolve`` runs in a 120x40 tmux pane on a private tmux
server; keys are typed with ``send-keys`` and the screen is read with
``capture-pane``. The session ends with the merge commit, and the repository
is checked afterwards: a commit with two parents and a clean folder.
"""

from __future__ import annotations

import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_vsync
from merge_repo import History, Spec

from vsync.model.repository import Repository

WAIT = 15.0  # seconds to wait for the screen to show something


def F(content: bytes | str) -> tuple[str, bytes | str, bool]:
    return ("file", content.encode() if isinstance(content, str) else content, False)


BASE: Spec = {"t.txt": F("a\nb\nc\n"), "bin.dat": F(b"\0base"), "md.txt": F("m\n")}
OURS: Spec = {**BASE, "t.txt": F("a\nB ours\nc\n"), "bin.dat": F(b"\0ours"), "md.txt": F("m2\n")}
THEIRS: Spec = {"t.txt": F("a\nB theirs\nc\n"), "bin.dat": F(b"\0theirs!")}


class Pane:
    """One tmux pane on a private server (its own socket), killed at the end."""

    def __init__(self, command: str) -> None:
        tmux = shutil.which("tmux")
        if tmux is None:
            pytest.fail("tmux is not installed; run 'make test' (it installs tmux)", pytrace=False)
        self.base = [tmux, "-L", f"vsync-test-{secrets.token_hex(6)}", "-f", "/dev/null"]
        self.tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "main", command)

    def tmux(self, *args: str) -> str:
        proc = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=10)
        assert proc.returncode == 0, f"tmux {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def screen(self, escapes: bool = False) -> str:
        """Everything the pane showed (scrollback included), one line per row."""
        return self.tmux("capture-pane", "-p", "-J", *(["-e"] if escapes else []), "-S", "-")

    def wait_for(self, text: str, before: str = "") -> str:
        """The screen once it shows ``text`` more often than the screen ``before`` did."""
        deadline = time.monotonic() + WAIT
        while True:
            screen = self.screen()
            if screen.count(text) > before.count(text):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"the screen never showed {text!r}; it shows:\n{screen}")
            time.sleep(0.05)

    def type(self, text: str, enter: bool = True) -> None:
        self.tmux("send-keys", "-t", "main", "-l", text)
        if enter:
            self.tmux("send-keys", "-t", "main", "Enter")

    def key(self, name: str) -> None:
        self.tmux("send-keys", "-t", "main", name)

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10)


def since(screen: str, typed: str) -> str:
    """What the screen shows after ``typed`` was last entered at the shell's prompt."""
    return screen.rsplit(f"> {typed}\n", 1)[-1]


@pytest.fixture
def conflicted(tmp_path: Path) -> Iterator[tuple[Path, bytes, bytes]]:
    root = tmp_path / "work"
    h = History(root)
    try:
        base = h.commit(BASE, [], "basehost")
        theirs = h.commit(THEIRS, [base], "laptop")
        ours = h.commit(OURS, [base], "desktop")
    finally:
        h.close()
    merge = run_vsync("merge", theirs.decode(), cwd=root, check=False)
    assert merge.returncode == 1 and "3 conflicts" in merge.stderr, merge
    yield root, ours, theirs


def test_resolve_in_a_terminal_from_list_to_merge_commit(
    conflicted: tuple[Path, bytes, bytes],
) -> None:
    root, ours, theirs = conflicted
    env = {
        "VSYNC_HOST": "desktop",
        "VSYNC_AUTHOR_NAME": "Ann Example",
        "VSYNC_AUTHOR_EMAIL": "ann@example.com",
        "EDITOR": 'sh -c \'printf "a\\nB by hand\\nc\\n" > "$1"\' --',
        "VISUAL": "",
    }
    command = (
        f"cd {shlex.quote(str(root))} && env "
        + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        + f' {shlex.quote(sys.executable)} -m vsync resolve; echo "[vsync exited $?]"; sleep 60'
    )
    pane = Pane(command)
    try:
        # the list, the prompt and the key hints in the bottom toolbar
        screen = pane.wait_for("resolve 1/3 bin.dat>")
        assert f"Merging theirs {theirs.decode()[:10]} (laptop, " in screen
        assert "3 conflicts, 3 unresolved" in screen
        rows = [line for line in screen.splitlines() if "unresolved  " in line]
        assert [r.lstrip(" >").split()[:3] for r in rows] == [
            ["1", "bin.dat", "binary"],
            ["2", "md.txt", "modify-delete"],
            ["3", "t.txt", "content"],
        ]
        assert "desktop 20" in rows[0] and "laptop 20" in rows[0]
        screen = pane.wait_for("o ours  t theirs")
        assert "o ours  t theirs" in screen.rstrip("\n").splitlines()[-1]  # the bottom row

        # Tab completes a path; the three-way diff, coloured
        pane.type("goto t", enter=False)
        pane.key("Tab")
        pane.wait_for("> goto t.txt")
        pane.key("Enter")
        screen = pane.wait_for("resolve 3/3 t.txt>")
        shown = since(screen, "goto t.txt")
        assert "[3/3] t.txt  content conflict (UU), unresolved" in shown
        assert "base -> ours (desktop" in shown and "+B ours" in shown
        assert "base -> theirs (laptop" in shown and "+B theirs" in shown
        assert "\x1b[32m+B theirs" in pane.screen(escapes=True)

        # the markers, then an edit in $EDITOR, marked resolved
        pane.type("markers")
        screen = pane.wait_for(">>>>>>> theirs (laptop")
        assert "<<<<<<< ours (desktop" in since(screen, "markers")
        pane.type("e")
        pane.wait_for("Mark 't.txt' resolved? [y/N]")
        pane.type("y")
        pane.wait_for("t.txt: edited and marked resolved (2 unresolved)")
        screen = pane.wait_for("resolve 1/3 bin.dat>", screen)

        # ours for the binary; theirs (delete) for md.txt, undone, then ours
        pane.type("o")
        screen = pane.wait_for("resolve 2/3 md.txt>", screen)
        assert "bin.dat: took ours (1 unresolved)" in screen
        assert not list(root.glob("bin.conflict-*"))
        pane.type("t")
        screen = pane.wait_for("md.txt: took theirs (0 unresolved)")
        assert "Every conflict is resolved" in since(screen, "t")
        assert not (root / "md.txt").exists()
        pane.type("u")
        pane.wait_for("md.txt: undid 'theirs'; it is unresolved again")
        assert (root / "md.txt").read_text() == "m2\n"
        pane.type("o")
        screen = pane.wait_for("md.txt: took ours (0 unresolved)")

        # the list says how each was settled; commit finishes the merge
        pane.type("l")
        screen = pane.wait_for("3 conflicts, 0 unresolved")
        listed = since(screen, "l")
        assert re.search(r"bin\.dat\s+binary\s+ours\s", listed)
        assert re.search(r"t\.txt\s+content\s+edited\s", listed)
        pane.type("commit")
        screen = pane.wait_for("[vsync exited 0]")
        assert f"Merge {theirs.decode()[:10]} from laptop" in since(screen, "commit")
    finally:
        pane.kill()

    with Repository.open_path(root) as repo:
        head = repo.head()
        assert head is not None
        c = repo.gitdb.commit(head)
        assert c.parents == (ours, theirs)
        assert c.message.decode().startswith(f"Merge {theirs.decode()[:10]} from laptop")
    assert run_vsync("status", "--porcelain", cwd=root).stdout == ""
    assert (root / "t.txt").read_text() == "a\nB by hand\nc\n"
    assert (root / "bin.dat").read_bytes() == b"\0ours"
    assert (root / "md.txt").read_text() == "m2\n"
    assert sorted(p.name for p in root.iterdir()) == [".vsync", "bin.dat", "md.txt", "t.txt"]
