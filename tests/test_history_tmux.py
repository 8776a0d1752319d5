"""``vsync history`` once end to end as a person uses it: the real CLI in a real terminal (tmux).

A private tmux server (its own socket name) runs ``vsync history notes.txt``
in a repository; the test presses keys, reads the screen with
``capture-pane -p`` and finally checks the file on disk.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_vsync
from vsync.model.repository import Repository
from vsync.model.revisions import resolve

TIMEOUT = 15.0


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", os.devnull, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "hist")

    def wait_for(self, what: str, check: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + TIMEOUT
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.05)
        raise AssertionError(f"the screen never showed {what}; it shows:\n{screen}")


def list_rows(screen: str) -> list[str]:
    """The left-hand list's rows (the part of each line before the pane border)."""
    lefts = [line.split("│")[0] for line in screen.splitlines()]
    return [left for left in lefts if "notes take" in left]


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed; run 'make test', which installs it", pytrace=False)
    t = Tmux(f"vsync-hist-{secrets.token_hex(4)}")
    try:
        yield t
    finally:
        subprocess.run(
            ["tmux", "-L", t.socket, "kill-server"], capture_output=True, timeout=TIMEOUT
        )
        folder = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (folder / t.socket).unlink(missing_ok=True)  # kill-server may leave the socket file


def test_browse_diff_restore_quit_in_a_real_terminal(tmp_path: Path, tmux: Tmux) -> None:
    root = tmp_path / "work"
    root.mkdir()
    run_vsync("init", cwd=root)
    texts = [f"shopping list\nitem {n}\nend\n".encode() for n in (1, 2, 3)]
    for n, data in enumerate(texts, 1):
        (root / "notes.txt").write_bytes(data)
        run_vsync("commit", "-m", f"notes take {n}", cwd=root)
    with Repository.open_path(root) as repo:
        second = resolve(repo, "HEAD~1").decode()[:10]

    rc_file = tmp_path / "rc"
    command = shlex.join([sys.executable, "-m", "vsync", "history", "notes.txt"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    subprocess.run(
        [
            *("tmux", "-L", tmux.socket, "-f", os.devnull, "new-session", "-d"),
            *("-s", "hist", "-x", "150", "-y", "35", "-c", str(root)),
            f"{command}; echo $? > {shlex.quote(str(rc_file))}; sleep 30",
        ],
        env=env,
        check=True,
        timeout=TIMEOUT,
    )

    screen = tmux.wait_for("the list", lambda s: "notes.txt: 3 versions" in s)
    rows = list_rows(screen)
    assert [r.split()[-1] for r in rows] == ["3", "2", "1"]
    assert rows[0].startswith("> ")
    assert "2 │ item 3" in screen

    tmux("send-keys", "-t", "hist", "Down")
    screen = tmux.wait_for("version 2", lambda s: f"notes.txt at {second}" in s)
    assert "2 │ item 2" in screen
    assert [r[:2] for r in list_rows(screen)] == ["  ", "> ", "  "]

    tmux("send-keys", "-t", "hist", "d")
    screen = tmux.wait_for("the diff", lambda s: "-> the folder now" in s)
    assert "-item 2" in screen and "+item 3" in screen

    tmux("send-keys", "-t", "hist", "r")
    screen = tmux.wait_for("the restore", lambda s: f"restored notes.txt as of {second}" in s)
    assert (root / "notes.txt").read_bytes() == texts[1]

    tmux("send-keys", "-t", "hist", "q")
    deadline = time.monotonic() + TIMEOUT
    while not (rc_file.exists() and rc_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rc_file.read_text().strip() == "0"
    assert (root / "notes.txt").read_bytes() == texts[1]
    status = run_vsync("status", "--porcelain", cwd=root).stdout
    assert "notes.txt" in status  # the folder now differs from HEAD; the branch did not move


@pytest.mark.parametrize(("columns", "shown"), [(120, 23), (80, 12)])
def test_the_list_keeps_room_for_commit_messages(
    tmp_path: Path, tmux: Tmux, columns: int, shown: int
) -> None:
    """At 120 columns a list cut to 2/5 of the width showed two letters of each message."""
    root = tmp_path / "work"
    root.mkdir()
    run_vsync("init", cwd=root)
    subjects = [f"notes take {n}: the list after the shop" for n in (1, 2)]
    for n, subject in enumerate(subjects, 1):
        (root / "notes.txt").write_text(f"shopping list\nitem {n}\n")
        run_vsync("commit", "-m", subject, cwd=root)

    command = shlex.join([sys.executable, "-m", "vsync", "history", "notes.txt"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    subprocess.run(
        [
            *("tmux", "-L", tmux.socket, "-f", os.devnull, "new-session", "-d"),
            *("-s", "hist", "-x", str(columns), "-y", "30", "-c", str(root)),
            f"{command}; sleep 30",
        ],
        env=env,
        check=True,
        timeout=TIMEOUT,
    )
    screen = tmux.wait_for("the list", lambda s: "notes.txt: 2 versions" in s)
    rows = list_rows(screen)
    assert len(rows) == 2, screen
    for row, subject in zip(rows, reversed(subjects), strict=True):
        assert subject[:shown] in row, screen
    preview = [line.split("│", 1)[1] for line in screen.splitlines() if "│" in line]
    assert any("item 2" in line for line in preview), screen  # the preview keeps its room
    assert all(len(line.split("│", 1)[0]) <= columns - 1 - 24 for line in screen.splitlines()[1:3])
    tmux("send-keys", "-t", "hist", "q")
