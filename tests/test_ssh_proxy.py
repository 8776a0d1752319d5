"""ProxyCommand and ProxyJump from ~/.ssh/config, and keys protected by a passphrase,
through the real sshd fixture on 127.0.0.1 (tests/sshd.py): the sshd is its own jump
host (it forwards to loopback only)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_vsync, wait_for
from sshd import SSHD

from vsync.sync.errors import AuthFailed, UnsupportedSSHConfig
from vsync.sync.transport import open_transport
from vsync.sync.url import parse_url

RELAY = Path(__file__).resolve().parent / "proxy_relay.py"
PY = shlex.quote(sys.executable)
ECHO = f"{PY} -c " + shlex.quote(
    "import os\nwhile data := os.read(0, 65536):\n    os.write(1, data)\n"
)


def add_host(home: Path, server: SSHD, name: str, *lines: str) -> None:
    """A ``Host name`` entry for the fixture's sshd in ``home``'s ~/.ssh/config (first,
    so that its lines win over ``Host *``)."""
    config = home / ".ssh" / "config"
    entry = (
        f"Host {name}\n    HostName 127.0.0.1\n    Port {server.port}\n    User {server.user}\n"
        + "".join(f"    {line}\n" for line in lines)
        + "\n"
    )
    config.write_text(entry + config.read_text())


def logins(server: SSHD) -> int:
    return server.log.read_text(errors="replace").count("Accepted publickey for")


def echo_through(url: str) -> None:
    t = open_transport(parse_url(url), ECHO)
    t.write(b"through the proxy")
    assert t.readexactly(17) == b"through the proxy"
    assert t.close() == 0


@pytest.fixture
def home(sshd_server: SSHD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = sshd_server.make_home(tmp_path / "home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


def test_proxy_command_runs_with_tokens_and_ends_with_the_transport(
    sshd_server: SSHD, home: Path, tmp_path: Path
) -> None:
    log = tmp_path / "relay.log"
    add_host(home, sshd_server, "viaproxy", f"ProxyCommand {PY} {RELAY} %h %p {log}")
    echo_through("viaproxy:/srv/repo")
    host, port, pid = log.read_text().split()
    assert (host, port) == ("127.0.0.1", str(sshd_server.port))  # %h and %p expanded
    wait_for("the relay to end", lambda: not Path(f"/proc/{pid}").exists())


def test_proxy_command_that_fails_is_one_clear_error(sshd_server: SSHD, home: Path) -> None:
    add_host(home, sshd_server, "badproxy", "ProxyCommand exit 3")
    with pytest.raises(Exception) as info:
        open_transport(parse_url("badproxy:/srv"), ECHO)
    assert "badproxy" in str(info.value) or "127.0.0.1" in str(info.value)


def test_proxy_jump_through_the_same_sshd(sshd_server: SSHD, home: Path) -> None:
    jump = f"{sshd_server.user}@127.0.0.1:{sshd_server.port}"
    add_host(home, sshd_server, "viajump", f"ProxyJump {jump}")
    before = logins(sshd_server)
    echo_through("viajump:/srv/repo")
    # one login on the jump host, one on the target through it (directly: one)
    wait_for("two logins", lambda: logins(sshd_server) - before == 2)


def test_proxy_jump_by_alias_and_in_two_hops(sshd_server: SSHD, home: Path, tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    add_host(home, sshd_server, "jumpbox", f"ProxyCommand {PY} {RELAY} %h %p {log}")
    add_host(home, sshd_server, "inner", "ProxyJump jumpbox")
    add_host(home, sshd_server, "innermost", "ProxyJump jumpbox,inner")
    before = logins(sshd_server)
    echo_through("innermost:/srv")
    assert len(log.read_text().splitlines()) == 1  # the first hop went through the relay
    # jumpbox, jumpbox again (inner's own jump, which its entry brings), inner, innermost
    wait_for("four logins", lambda: logins(sshd_server) - before == 4)


def test_proxy_settings_that_cannot_work_are_refused(sshd_server: SSHD, home: Path) -> None:
    add_host(home, sshd_server, "both", "ProxyJump x", "ProxyCommand y")
    with pytest.raises(UnsupportedSSHConfig, match="both ProxyJump and ProxyCommand"):
        open_transport(parse_url("both:/srv"), ECHO)
    add_host(home, sshd_server, "loop", "ProxyJump loop")
    with pytest.raises(UnsupportedSSHConfig, match="a loop"):
        open_transport(parse_url("loop:/srv"), ECHO)


# -- keys protected by a passphrase ----------------------------------------------------


def askpass(tmp_path: Path, answer: str) -> tuple[dict[str, str], Path]:
    """An SSH_ASKPASS program answering ``answer``; each call appends its prompt to the
    returned file."""
    calls = tmp_path / "askpass.calls"
    program = tmp_path / "askpass"
    program.write_text(f'#!/bin/sh\necho "$1" >> {calls}\necho {shlex.quote(answer)}\n')
    program.chmod(0o755)
    return {"SSH_ASKPASS": str(program), "SSH_ASKPASS_REQUIRE": "force"}, calls


def encrypted_home(server: SSHD, tmp_path: Path) -> Path:
    """A client HOME whose only key (the alias's IdentityFile) has the passphrase
    'sesame'; the alias also reaches the server through itself (ProxyJump), so that one
    run logs in twice with that key."""
    home = server.make_home(tmp_path / "home", default_key=False)
    key = home / ".ssh" / "vsync_test_key"
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", "sesame", "-f", str(key)], check=True)
    add_host(
        home,
        server,
        "locked",
        "IdentityFile ~/.ssh/vsync_test_key",
        "IdentitiesOnly yes",
        "ProxyJump vsync-test",
    )
    return home


def test_passphrase_is_asked_once_per_run(sshd_server: SSHD, tmp_path: Path) -> None:
    home = encrypted_home(sshd_server, tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    run_vsync("init", cwd=src)
    (src / "a.txt").write_text("locked away\n")
    run_vsync("commit", "-m", "one", cwd=src)
    extra, calls = askpass(tmp_path, "sesame")
    env = sshd_server.env(home, **extra)
    before = logins(sshd_server)
    run_vsync(
        "clone",
        f"locked:{src}",
        tmp_path / "dst",
        "--remote-cmd",
        sshd_server.remote_cmd,
        cwd=tmp_path,
        env=env,
    )
    assert (tmp_path / "dst" / "a.txt").read_text() == "locked away\n"
    prompts = calls.read_text().splitlines()
    assert prompts == [f"Enter passphrase for key '{home}/.ssh/vsync_test_key': "]
    wait_for("two logins", lambda: logins(sshd_server) - before == 2)  # jump + target


def test_wrong_passphrase_is_asked_three_times_then_fails(
    sshd_server: SSHD, tmp_path: Path
) -> None:
    home = encrypted_home(sshd_server, tmp_path)
    extra, calls = askpass(tmp_path, "wrong")
    env = sshd_server.env(home, **extra)
    failed = run_vsync(
        "clone",
        f"vsync-test:{tmp_path}/src",
        tmp_path / "dst",
        "--remote-cmd",
        sshd_server.remote_cmd,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert failed.returncode == 1 and "authentication" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
    prompts = calls.read_text().splitlines()
    assert len(prompts) == 3 and prompts[1].startswith("Wrong passphrase. ")


def test_without_a_way_to_ask_the_key_is_skipped_and_named(
    sshd_server: SSHD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = encrypted_home(sshd_server, tmp_path)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(AuthFailed, match="encrypted, and no right passphrase"):
        open_transport(parse_url("vsync-test:/srv"), ECHO)  # no key_passphrase given
    assert os.path.exists(home / ".ssh" / "vsync_test_key")


def test_a_user_name_a_shell_would_run_never_reaches_the_proxy_command(
    sshd_server: SSHD, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, planted = tmp_path / "relay.log", tmp_path / "planted"
    monkeypatch.chdir(tmp_path)  # where the proxy's shell would make 'planted'
    add_host(home, sshd_server, "viaproxy", f"ProxyCommand {PY} {RELAY} %h %p {log} %r")
    url = parse_url("ssh://x|tee>planted@viaproxy/srv")
    with pytest.raises(UnsupportedSSHConfig, match="characters a shell would act on"):
        open_transport(url, ECHO)
    assert not planted.exists() and not log.exists()
