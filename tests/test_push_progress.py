"""Push progress (issue 17): the total, the rate and the ETA, as fetch shows them.

A push's server announces how many chunks it will ask for (WANT_TOTAL, capability
want-total-v1, docs/protocol.md "Push"), so the sending side's line has a total
and an ETA: over the real sshd and a path remote, on a pseudo-terminal. A server
without the capability (an older vsync) still takes the push, and the line shows
what it can (no total, no ETA). An encrypted remote knows the total itself. Off a
terminal the same progress is a plain line at most every few seconds.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from conftest import RemoteKind, run_on_terminal, run_vsync

from vsync.ui.progress import LOG_INTERVAL, TerminalTransferProgress

SIZE = 6 * 1024 * 1024 + 12345  # incompressible: many chunks, all new to the remote
PASS = {"VSYNC_PASSWORD": "correct horse battery staple"}


def committed_pair(tmp_path: Path, remote: RemoteKind, encrypted: bool = False) -> Path:
    """An empty bare remote and a repository with one commit of SIZE random bytes
    whose ``origin`` it is."""
    bare = tmp_path / "remote"
    if encrypted:
        run_vsync(
            "init", "--bare", "--encrypted", "--scrypt-log2n", "10", bare, cwd=tmp_path, env=PASS
        )
    else:
        run_vsync("init", "--bare", bare, cwd=tmp_path)
    local = tmp_path / "local"
    local.mkdir()
    run_vsync("init", cwd=local)
    remote.run("remote", "add", "origin", remote.url(bare), *remote.cmd(), cwd=local)
    (local / "big.bin").write_bytes(os.urandom(SIZE))
    run_vsync("commit", "-q", "-m", "big", cwd=local)
    return local


def sending_lines(screen: str) -> list[str]:
    """Each drawing of the push's progress line, as the terminal received it."""
    return [part.strip() for part in re.split(r"\r\x1b\[K", screen) if "Sending to" in part]


def pushed(tmp_path: Path, local: Path) -> bool:
    head = (local / ".vsync" / "git" / "refs" / "heads" / "main").read_text()
    return (tmp_path / "remote" / "git" / "refs" / "heads" / "main").read_text() == head


def test_push_on_a_terminal_shows_the_total_and_an_eta(remote: RemoteKind, tmp_path: Path) -> None:
    local = committed_pair(tmp_path, remote)
    run = run_on_terminal("push", cwd=local, env=remote.env)
    assert run.returncode == 0, run.stdout
    lines = sending_lines(run.stdout)
    assert lines, run.stdout
    shape = r"Sending to (.+): chunks (\d+)/(\d+), (.+?), (.+?)/s, ETA \d+:\d\d"
    final = re.match(shape, lines[-1])
    assert final is not None, lines[-1]
    assert final.group(2) == final.group(3) and int(final.group(3)) >= 2  # all of them, of all
    assert final.group(4).endswith("MiB")
    assert pushed(tmp_path, local)


def test_an_older_server_takes_the_push_and_the_line_has_no_total(
    sshd_server: object, tmp_path: Path
) -> None:
    ssh = RemoteKind("ssh", sshd_server)
    local = committed_pair(tmp_path, ssh)
    old = {"VSYNC_TEST_SERVE_WITHOUT": "want-total-v1"}  # forwarded to the server (SendEnv)
    run = run_on_terminal("push", cwd=local, env={**(ssh.env or {}), **old})
    assert run.returncode == 0, run.stdout
    lines = sending_lines(run.stdout)
    assert lines and all("ETA" not in line for line in lines), run.stdout
    assert re.match(r"Sending to .+: chunks \d+, [\d.]+ MiB, ", lines[-1]), lines[-1]
    assert pushed(tmp_path, local)


def test_an_encrypted_path_remote_shows_the_total_and_an_eta(tmp_path: Path) -> None:
    local = committed_pair(tmp_path, RemoteKind("path", None), encrypted=True)
    run = run_on_terminal("push", cwd=local, env=PASS)
    assert run.returncode == 0, run.stdout
    lines = sending_lines(run.stdout)
    final = re.match(r"Sending to .+: chunks (\d+)/(\d+), .+, ETA \d+:\d\d", lines[-1])
    assert final is not None and final.group(1) == final.group(2), lines


def test_a_short_push_off_a_terminal_writes_no_progress(tmp_path: Path) -> None:
    local = committed_pair(tmp_path, RemoteKind("path", None))
    out = run_vsync("push", cwd=local)
    assert "\r" not in out.stderr and "Sending to" not in out.stderr
    assert pushed(tmp_path, local)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_the_progress_is_an_occasional_plain_line() -> None:
    """A 60-second transfer ticking twice a second: a line every LOG_INTERVAL seconds
    (not 120), none redrawn, and the final totals at the end."""
    out, clock = io.StringIO(), Clock()
    progress = TerminalTransferProgress(out, live=False, clock=clock)
    progress.phase("Sending to origin", 120)
    for i in range(1, 121):
        clock.now += 0.5
        progress.tick(i, i * 1024 * 1024)
    progress.done()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) <= 60 / LOG_INTERVAL + 1
    assert len(lines) >= 60 / LOG_INTERVAL - 1
    assert lines[0].startswith("Sending to origin: chunks 10/120, 10.0 MiB, 2.0 MiB/s, ETA 0:55")
    assert lines[-1] == "Sending to origin: chunks 120/120, 120.0 MiB, 2.0 MiB/s, ETA 0:00"


def test_off_a_terminal_a_transfer_shorter_than_the_interval_writes_nothing() -> None:
    out, clock = io.StringIO(), Clock()
    progress = TerminalTransferProgress(out, live=False, clock=clock)
    progress.phase("Receiving from origin", 3)
    for i in range(1, 4):
        clock.now += 1.0
        progress.tick(i, 100 * i)
    progress.done()
    assert out.getvalue() == ""


def test_off_a_terminal_the_final_line_is_not_written_twice() -> None:
    out, clock = io.StringIO(), Clock()
    progress = TerminalTransferProgress(out, live=False, clock=clock)
    progress.phase("Sending to origin", 2)
    clock.now += LOG_INTERVAL
    progress.tick(1, 10)
    clock.now += LOG_INTERVAL
    progress.tick(2, 20)
    progress.done()
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == [
        "Sending to origin: chunks 1/2",
        "Sending to origin: chunks 2/2",
    ]
