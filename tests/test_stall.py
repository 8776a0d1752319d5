"""A stalled peer ends a transfer with one clear line (exit 1) on both sides, never
a hang; Ctrl-C during commit, push and pull exits 130 and leaves the repository as
a kill would (issue 12).

Stalls are held open with fault points (``VSYNC_FAULTS=...=sleep:600``) or SIGSTOP,
over a path remote and over the test sshd; the idle timeout is 2 s
(``VSYNC_IDLE_TIMEOUT``). After each: fsck clean on both sides and the same command
without the fault completes.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RemoteKind, run_vsync, serve_pids

IDLE = 2.0
SLACK = 8.0  # after the stall began: the client noticing it, exiting, the remote stopped
STALLED = "for 2 s; the transfer stopped (nothing was lost; run the command again to resume)"
SIZE = 24 << 20  # more than every pipe, socket and SSH window holds between the two ends


def _env(remote: RemoteKind | None, **extra: str) -> dict[str, str]:
    env = dict((remote.env if remote else None) or os.environ)
    env.update(VSYNC_AUTHOR_NAME="t", VSYNC_AUTHOR_EMAIL="t@e", VSYNC_HOST="testhost")
    env.pop("VSYNC_DEBUG", None)
    env.update(extra)
    return env


def _start(remote: RemoteKind | None, cwd: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vsync", *args],
        cwd=cwd,
        env=_env(remote, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_on_a_terminal,
    )


def _ctrl_c_as_on_a_terminal() -> None:
    """A command started by an interactive shell gets Ctrl-C's default disposition; a
    suite started in the background (``make test &``, some CI runners) has SIGINT
    ignored, and an ignored disposition is inherited: give the child the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _reaped(proc: subprocess.Popen[str], server: Path) -> Iterator[subprocess.Popen[str]]:
    """Whatever a test leaves running (a client held in a fault, a server sleeping
    under sshd) is killed at its end."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        _kill_all(serve_pids(server))


def _ended_within(proc: subprocess.Popen[str], seconds: float) -> tuple[int, str]:
    try:
        _out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"still running after {seconds} s: a hang") from None
    return proc.returncode, err


def _fsck(path: Path) -> None:
    r = run_vsync("fsck", cwd=path, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def _head(path: Path) -> str:
    return run_vsync("log", "--format=%H", "-n", "1", cwd=path, check=False).stdout.strip()


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A folder with one commit of SIZE random bytes and an empty bare server."""
    a = tmp_path / "a"
    a.mkdir()
    run_vsync("init", cwd=a)
    (a / "data.bin").write_bytes(random.Random(12).randbytes(SIZE))
    (a / "notes.txt").write_text("hello\n")
    run_vsync("commit", "-m", "data", cwd=a)
    server = tmp_path / "server"
    run_vsync("init", "--bare", server, cwd=tmp_path)
    return a, server


def _push_args(remote: RemoteKind, server: Path) -> list[str]:
    return ["push", "-q", remote.url(server), *remote.cmd()]


def _fetch_args(remote: RemoteKind, server: Path) -> list[str]:
    return ["fetch", "-q", remote.url(server), *remote.cmd()]


def _pushed(remote: RemoteKind, pair: tuple[Path, Path], tmp_path: Path) -> Path:
    """The server holding a's commit, and an empty folder b to fetch it into."""
    a, server = pair
    remote.run(*_push_args(remote, server), cwd=a)
    b = tmp_path / "b"
    b.mkdir()
    run_vsync("init", cwd=b)
    return b


def _check_stalled_client(rc: int, err: str) -> None:
    assert rc == 1, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("vsync: error: the remote ") and STALLED in err, err


@pytest.mark.parametrize("point", ["serve/temp-pack-created", "serve/incoming-pack-received"])
def test_server_stalled_mid_push(
    remote: RemoteKind, pair: tuple[Path, Path], tmp_path: Path, point: str
) -> None:
    a, server = pair
    trace = tmp_path / "trace"
    proc = _start(
        remote,
        a,
        *_push_args(remote, server),
        VSYNC_FAULTS=f"{point}=sleep:600",
        VSYNC_FAULTS_TRACE=str(trace),
        VSYNC_IDLE_TIMEOUT=str(IDLE),
    )
    with _reaped(proc, server):
        t0 = _stall_began(trace, point, proc)
        rc, err = _ended_within(proc, IDLE + SLACK + 30)
        assert time.monotonic() - t0 < IDLE + SLACK, err
        _check_stalled_client(rc, err)
        if remote.sshd is None:
            assert serve_pids(server) == []  # the client stopped the server it started
    assert _head(server) == ""
    remote.run(*_push_args(remote, server), cwd=a)
    assert _head(server) == _head(a)
    _fsck(a)
    _fsck(server)


def _stall_began(trace: Path, point: str, proc: subprocess.Popen[str]) -> float:
    """When the server reached ``point`` (COMMAND/NAME), where it stalls: the client's
    timeout is measured from there, not from start-up, which a loaded machine slows."""
    command, name = point.split("/")
    _wait_for_point(trace, f"{command} {name}", proc)
    return time.monotonic()


def test_server_stalled_mid_fetch(
    remote: RemoteKind, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    server = pair[1]
    b = _pushed(remote, pair, tmp_path)
    trace = tmp_path / "trace"
    proc = _start(
        remote,
        b,
        *_fetch_args(remote, server),
        VSYNC_FAULTS="serve/session-open=sleep:600",
        VSYNC_FAULTS_TRACE=str(trace),
        VSYNC_IDLE_TIMEOUT=str(IDLE),
    )
    with _reaped(proc, server):
        t0 = _stall_began(trace, "serve/session-open", proc)
        rc, err = _ended_within(proc, IDLE + SLACK + 30)
        assert time.monotonic() - t0 < IDLE + SLACK, err
        _check_stalled_client(rc, err)
        if remote.sshd is None:
            assert serve_pids(server) == []
    remote.run(*_fetch_args(remote, server), cwd=b)
    _fsck(b)
    _fsck(server)


def _wait_server_gone(server: Path, proc: subprocess.Popen[str], seconds: float) -> float:
    """Seconds until every serve of ``server`` has exited (the client stays alive)."""
    t0 = time.monotonic()
    seen = False
    while True:
        pids = serve_pids(server)
        seen = seen or bool(pids)
        if seen and not pids:
            return time.monotonic() - t0
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < seconds, "the server of a stalled client did not exit"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("command", "point"),
    [("push", "push/session-open"), ("fetch", "fetch/temp-pack-created")],
)
def test_server_of_a_stalled_client_exits_by_itself(
    remote: RemoteKind, pair: tuple[Path, Path], tmp_path: Path, command: str, point: str
) -> None:
    """The client holds still mid-session (in the push: the server waits for its
    request; in the fetch: the server is sending chunks the client no longer reads):
    the server ends by itself after its idle timeout."""
    a, server = pair
    if command == "push":
        cwd, args = a, _push_args(remote, server)
    else:
        cwd, args = _pushed(remote, pair, tmp_path), _fetch_args(remote, server)
    proc = _start(
        remote, cwd, *args, VSYNC_FAULTS=f"{point}=sleep:600", VSYNC_IDLE_TIMEOUT=str(IDLE)
    )
    with _reaped(proc, server):
        _wait_server_gone(server, proc, IDLE + SLACK + 5)
    r = remote.run(*args, cwd=cwd)
    assert r.returncode == 0
    _fsck(cwd)
    _fsck(server)
    assert _head(server) == _head(a)


def _sshd_session_of(pid: int) -> int:
    """The ``sshd`` process nearest above ``pid``: the session's end of the TCP connection."""
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sshd"):
            return pid
    raise AssertionError("no sshd above the server")


def test_dead_network_ends_an_ssh_transfer(
    sshd_server: object, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """The connection goes silent without a FIN (the sshd session process is stopped:
    no data, no keepalive answers): the client gives up within its timeout."""
    remote = RemoteKind("ssh", sshd_server)
    a, server = pair
    proc = _start(
        remote,
        a,
        *_push_args(remote, server),
        VSYNC_FAULTS="serve/temp-pack-created=sleep:1",
        VSYNC_IDLE_TIMEOUT=str(IDLE),
    )
    stopped: list[int] = []
    with _reaped(proc, server):
        deadline = time.monotonic() + 30
        while not (pids := serve_pids(server)):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        session = _sshd_session_of(pids[0])
        os.kill(session, signal.SIGSTOP)
        stopped.append(session)
        t0 = time.monotonic()
        try:
            rc, err = _ended_within(proc, IDLE + SLACK + 30)
        finally:
            _kill_all(stopped)
        assert time.monotonic() - t0 < IDLE + SLACK, err
        _check_stalled_client(rc, err)
    remote.run(*_push_args(remote, server), cwd=a)
    _fsck(a)
    _fsck(server)


# -- Ctrl-C -------------------------------------------------------------------


def _wait_for_point(trace: Path, line: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(FileNotFoundError):
            if any(x.startswith(line + " ") for x in trace.read_text().splitlines()):
                return
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"never reached {line}"
        time.sleep(0.02)


def _interrupt(proc: subprocess.Popen[str], trace: Path, point: str) -> str:
    """SIGINT ``proc`` once it is held at ``point`` (COMMAND/NAME); its stderr."""
    command, name = point.split("/")
    _wait_for_point(trace, f"{command} {name}", proc)
    proc.send_signal(signal.SIGINT)
    rc, err = _ended_within(proc, 10)
    assert rc == 130, err
    assert err == "vsync: interrupted; the last commit is intact\n", err
    return err


def test_ctrl_c_during_commit(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    run_vsync("init", cwd=work)
    (work / "notes.txt").write_text("first\n")
    run_vsync("commit", "-m", "first", cwd=work)
    before = _head(work)
    rng = random.Random(3)
    for i in range(40):  # many files: the reading threads are busy when Ctrl-C comes
        (work / f"f{i}.bin").write_bytes(rng.randbytes(300_000))
    trace = tmp_path / "trace"
    for point in ("commit/temp-pack-created", "commit/temp-pack-sealing", "commit/ref-swap"):
        trace.unlink(missing_ok=True)
        proc = _start(
            None,
            work,
            "commit",
            "-q",
            "-m",
            "second",
            VSYNC_FAULTS=f"{point}=sleep:30",
            VSYNC_FAULTS_TRACE=str(trace),
        )
        with _reaped(proc, work):
            _interrupt(proc, trace, point)
        _fsck(work)
        assert _head(work) == before, point
    run_vsync("commit", "-q", "-m", "second", cwd=work)
    _fsck(work)
    assert run_vsync("status", "--porcelain", cwd=work).stdout == ""


def test_ctrl_c_during_push(pair: tuple[Path, Path], tmp_path: Path) -> None:
    """Ctrl-C while the server it started is held mid-push (the client waits for it):
    exit 130 at once, and that server is stopped too."""
    a, server = pair
    point = "serve/temp-pack-created"
    trace = tmp_path / "trace"
    proc = _start(
        None,
        a,
        "push",
        "-q",
        str(server),
        VSYNC_FAULTS=f"{point}=sleep:30",
        VSYNC_FAULTS_TRACE=str(trace),
    )
    with _reaped(proc, server):
        _interrupt(proc, trace, point)
        assert serve_pids(server) == []
    _fsck(a)
    _fsck(server)
    assert _head(server) == ""
    run_vsync("push", "-q", str(server), cwd=a)
    assert _head(server) == _head(a)
    _fsck(server)


@pytest.mark.parametrize("point", ["serve/session-open", "pull/temp-pack-sealing"])
def test_ctrl_c_during_pull(pair: tuple[Path, Path], tmp_path: Path, point: str) -> None:
    """Ctrl-C while the server it started is held (the client waits for its hello), or
    while a received chunk pack is being sealed on a worker thread (the main thread
    waits for it): exit 130 at once, the server stopped, and the rerun completes."""
    a, server = pair
    run_vsync("push", "-q", str(server), cwd=a)
    b = tmp_path / "b"
    run_vsync("clone", "-q", str(server), b, cwd=tmp_path)
    (a / "data.bin").write_bytes(random.Random(13).randbytes(SIZE))
    (a / "more.txt").write_text("more\n")
    run_vsync("commit", "-q", "-m", "second", cwd=a)
    run_vsync("push", "-q", str(server), cwd=a)
    before = _head(b)
    trace = tmp_path / "trace"
    proc = _start(
        None,
        b,
        "pull",
        "-q",
        str(server),
        VSYNC_FAULTS=f"{point}=sleep:30",
        VSYNC_FAULTS_TRACE=str(trace),
    )
    with _reaped(proc, server):
        _interrupt(proc, trace, point)
        assert serve_pids(server) == []
    _fsck(b)
    assert _head(b) == before
    run_vsync("pull", "-q", str(server), cwd=b)
    _fsck(b)
    assert _head(b) == _head(a)
    assert (b / "data.bin").read_bytes() == (a / "data.bin").read_bytes()
    assert (b / "more.txt").read_text() == "more\n"
