"""Transports: URL parsing, the local subprocess pipe and SSH through a real sshd.

The same contract tests run over both transports (``kind`` = local | ssh). The
remote command is a small Python echo that ignores the ``serve --stdio PATH``
the transport appends, but reports its arguments on stderr. Only 127.0.0.1 and
::1 are ever connected to.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import pwd
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sshd import SSHD, free_port, keygen

from vsync.errors import StoppedError, UsageError
from vsync.sync.errors import (
    AuthFailed,
    BadURL,
    ConnectionLost,
    HostKeyChanged,
    HostKeyUnknown,
    HostNotAllowed,
    RemoteCommandMissing,
    TransportClosed,
    Unreachable,
)
from vsync.sync.transport import Transport, open_transport, quote_remote_path
from vsync.sync.url import RemoteURL, parse_url

ECHO_SRC = """
import json, os, sys
os.write(2, json.dumps(sys.argv[1:]).encode() + b"\\n")
while data := os.read(0, 1 << 20):
    while data:
        data = data[os.write(1, data):]
"""
PY = shlex.quote(sys.executable)
ECHO = f"{PY} -c {shlex.quote(ECHO_SRC)}"
FAIL = f"{PY} -c " + shlex.quote(
    "import sys; sys.stderr.write('vsync: error: not a vsync repository: /nowhere\\n'); sys.exit(2)"
)

Opener = Callable[..., Transport]


# -- URLs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ssh://host/srv/repo", RemoteURL("ssh", "/srv/repo", "host", None, None, "url")),
        ("ssh://u@host:2222/srv/r", RemoteURL("ssh", "/srv/r", "host", "u", 2222, "url")),
        ("ssh://host/~/repo", RemoteURL("ssh", "~/repo", "host", None, None, "url")),
        ("ssh://host/~bob/repo", RemoteURL("ssh", "~bob/repo", "host", None, None, "url")),
        ("ssh://[::1]:2222/srv", RemoteURL("ssh", "/srv", "::1", None, 2222, "url")),
        ("ssh://me@[::1]/srv", RemoteURL("ssh", "/srv", "::1", "me", None, "url")),
        ("host:repo", RemoteURL("ssh", "repo", "host", None, None, "scp")),
        ("u@host.example:/abs/r", RemoteURL("ssh", "/abs/r", "host.example", "u", None, "scp")),
        ("host:~/r", RemoteURL("ssh", "~/r", "host", None, None, "scp")),
        ("[::1]:repo", RemoteURL("ssh", "repo", "::1", None, None, "scp")),
        ("u@[::1]:/srv/r", RemoteURL("ssh", "/srv/r", "::1", "u", None, "scp")),
        ("host:a:b", RemoteURL("ssh", "a:b", "host", None, None, "scp")),
        ("/abs/path", RemoteURL("local", "/abs/path")),
        ("relative/dir", RemoteURL("local", "relative/dir")),
        ("./a:b", RemoteURL("local", "./a:b")),
        ("dir/x:y", RemoteURL("local", "dir/x:y")),
        ("plain", RemoteURL("local", "plain")),
        ("user@host", RemoteURL("local", "user@host")),
        ("[dir]/x", RemoteURL("local", "[dir]/x")),
    ],
)
def test_parse_url(text: str, expected: RemoteURL) -> None:
    url = parse_url(text)
    assert url == expected
    assert str(url) == text
    assert parse_url(str(url)) == url


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("ssh://host", "no path"),
        ("ssh://host/", "no path"),
        ("ssh:///srv", "no host"),
        ("ssh://host:99999/x", "bad port"),
        ("ssh://host:abc/x", "bad port"),
        ("ssh://[::1/x", "closing ']'"),
        ("ssh://[nothex]/x", "bad IPv6"),
        ("ssh://-oProxyCommand=x/x", "bad host name"),
        ("ssh://a:b@host/x", "bad user name"),
        ("host:", "no path"),
        (":path", "no host"),
        ("http://host/x", "unsupported scheme"),
        ("file:///x", "unsupported scheme"),
        ("a\x00b", "NUL"),
    ],
)
def test_bad_urls_are_usage_errors(text: str, reason: str) -> None:
    with pytest.raises(BadURL) as info:
        parse_url(text)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    assert reason in str(info.value)
    assert "ssh://[user@]host[:port]/path" in str(info.value)


_names = st.from_regex(r"[a-z][a-z0-9.-]{0,10}[a-z0-9]", fullmatch=True)
_paths = st.from_regex(
    r"(/|~/|~[a-z]{1,5}/)[A-Za-z0-9._ -][A-Za-z0-9._ ~-]{0,11}(/[A-Za-z0-9._ :-]{1,8}){0,3}",
    fullmatch=True,
)


@given(
    user=st.none() | _names,
    host=_names | st.sampled_from(["::1", "127.0.0.1", "fe80::1%eth0"]),
    port=st.none() | st.integers(1, 65535),
    path=_paths,
)
def test_ssh_urls_round_trip(user: str | None, host: str, port: int | None, path: str) -> None:
    url = RemoteURL("ssh", path, host, user, port, "url")
    assert parse_url(str(url)) == url
    assert str(parse_url(str(url))) == str(url)
    if port is None:
        scp = RemoteURL("ssh", path, host, user, None, "scp")
        assert parse_url(str(scp)) == scp


def test_remote_path_quoting_keeps_tilde_expansion() -> None:
    assert quote_remote_path("~/my repo") == "~/'my repo'"
    assert quote_remote_path("~bob/x") == "~bob/x"
    assert quote_remote_path("~") == "~"
    assert quote_remote_path("/a b/'q'") == "'/a b/'\"'\"'q'\"'\"''"
    assert quote_remote_path("$(reboot)") == "'$(reboot)'"


# -- one contract, two transports ---------------------------------------------


@pytest.fixture
def ssh_home(sshd_server: SSHD, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sshd fixture's client HOME as this process's HOME (asyncssh reads ~)."""
    monkeypatch.setenv("HOME", str(sshd_server.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return sshd_server.home


@pytest.fixture(params=["local", "ssh"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opener(kind: str, request: pytest.FixtureRequest) -> Opener:
    """``opener(path, remote_cmd=ECHO)`` opens a transport of this test's kind."""
    if kind == "local":

        def open_local(path: str, remote_cmd: str = ECHO, **kw: bool) -> Transport:
            return open_transport(parse_url(path), remote_cmd, **kw)

        return open_local
    server: SSHD = request.getfixturevalue("sshd_server")
    request.getfixturevalue("ssh_home")

    def open_ssh(path: str, remote_cmd: str = ECHO, **kw: bool) -> Transport:
        return open_transport(parse_url(server.url(path)), remote_cmd, **kw)

    return open_ssh


def test_round_trip_and_counters(opener: Opener) -> None:
    path = "/tmp/vsync test/it's here"
    t = opener(path)
    t.write(b"hello ")
    t.write(b"world")
    assert t.readexactly(11) == b"hello world"  # read flushes what is pending
    t.write(b"abc")
    t.flush()
    assert t.read(2) == b"ab"
    assert t.read(10) == b"c"
    assert t.bytes_sent == 14 and t.bytes_received == 14
    assert t.close() == 0
    assert json.loads(t.stderr_text) == ["serve", "--stdio", path]


def test_home_relative_path_is_expanded_by_the_remote_shell(
    sshd_server: SSHD, ssh_home: Path
) -> None:
    t = open_transport(parse_url(sshd_server.url("/~/my repo")), ECHO)
    assert t.close() == 0
    home = pwd.getpwnam(sshd_server.user).pw_dir
    assert json.loads(t.stderr_text) == ["serve", "--stdio", f"{home}/my repo"]


def test_fifty_megabytes_round_trip(opener: Opener) -> None:
    block = os.urandom(1 << 20)
    sent = hashlib.blake2b()
    got = hashlib.blake2b()
    t = opener("/srv/big")
    for i in range(50):
        piece = i.to_bytes(4, "big") + block[4:]
        sent.update(piece)
        t.write(piece)
        t.flush()
        got.update(t.readexactly(len(piece)))
    assert t.close() == 0
    assert got.digest() == sent.digest()
    assert t.bytes_sent == t.bytes_received == 50 << 20


def test_every_byte_arrives_before_eof(opener: Opener) -> None:
    """The push pattern: write a lot without reading, then close."""
    digest = (
        "import hashlib, sys; sys.stderr.write(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"
    )
    t = opener("/x", f"{PY} -c {shlex.quote(digest)}")
    sent = hashlib.sha256()
    for i in range(24):
        piece = bytes([i]) * (1 << 20) + os.urandom(i)
        sent.update(piece)
        t.write(piece)
    t.write(b"tail")
    sent.update(b"tail")
    assert t.close() == 0
    assert t.stderr_text == sent.hexdigest()


def test_close_returns_the_remote_exit_status(opener: Opener) -> None:
    t = opener("/x", f"{PY} -c 'import sys; sys.exit(3)'")
    assert t.close() == 3


def test_early_exit_names_what_the_remote_said(opener: Opener) -> None:
    t = opener("/nowhere", FAIL)
    with pytest.raises(TransportClosed) as info:
        t.readexactly(4)
    assert "not a vsync repository: /nowhere" in str(info.value)
    assert isinstance(info.value, StoppedError)
    assert t.close() == 2


def test_a_remote_that_spoke_is_never_called_missing(opener: Opener) -> None:
    """A server that answered and then failed with "No such file or directory" in its
    last words exists: its words are reported, not "vsync was not found"."""
    said = "vsync: error: [Errno 2] No such file or directory: 'pack.vpk.tmp'"
    script = f"import sys; sys.stdout.write('hi'); sys.stdout.flush(); sys.exit({said!r})"
    t = opener("/x", f"{PY} -c {shlex.quote(script)}")
    assert t.readexactly(2) == b"hi"
    with pytest.raises(TransportClosed) as info:
        t.readexactly(4)
    assert not isinstance(info.value, RemoteCommandMissing)
    assert "No such file or directory: 'pack.vpk.tmp'" in str(info.value)
    assert t.close() == 1


@pytest.mark.parametrize("cmd", ["/nonexistent/bin/vsync", "vsync-not-installed-here"])
def test_missing_remote_command(opener: Opener, kind: str, cmd: str) -> None:
    with pytest.raises(RemoteCommandMissing) as info:
        t = opener("/srv/repo", cmd)
        t.write(b"HELLO")
        t.readexactly(8)
    host = "this machine" if kind == "local" else "127.0.0.1"
    assert str(info.value) == (
        f"vsync was not found on {host} (tried '{cmd}'); install it there or pass --remote-cmd PATH"
    )


def test_missing_remote_command_is_reported_by_close_too(sshd_server: SSHD, ssh_home: Path) -> None:
    t = open_transport(parse_url(sshd_server.url("/srv")), "/nonexistent/vsync")
    with pytest.raises(RemoteCommandMissing):
        t.close()


def test_dropped_ssh_connection_is_reported_not_hung(sshd_server: SSHD, ssh_home: Path) -> None:
    # The remote kills its own sshd session process: the TCP connection drops.
    cmd = "echo started; sleep 0.3; kill -9 $PPID; sleep 30; true"
    t = open_transport(parse_url(sshd_server.url("/srv")), cmd)
    assert t.readexactly(8) == b"started\n"
    with pytest.raises(ConnectionLost) as info:
        t.readexactly(1)
    assert str(info.value).startswith("the SSH connection to 127.0.0.1 was lost (")
    assert t.close() == 255


def test_a_reader_that_falls_behind_pauses_the_ssh_channel(
    sshd_server: SSHD, ssh_home: Path
) -> None:
    """The remote writes 40 MiB at once while nothing is read: what waits for the
    protocol thread stays near INBOX_HIGH (the channel is paused), and every byte
    still arrives, in order, once it reads."""
    from vsync.sync.ssh import INBOX_HIGH, RECEIVE_PIECE, SSHTransport

    size = 40 << 20
    flood = f"{PY} -c " + shlex.quote(
        "import os\n"
        f"for i in range({size >> 20}):\n"
        "    data = memoryview(i.to_bytes(4, 'big') * (1 << 18))\n"
        "    while data:\n"
        "        data = data[os.write(1, data):]\n"
    )
    t = open_transport(parse_url(sshd_server.url("/srv")), flood)
    assert isinstance(t, SSHTransport)
    inbox = t._bridge.inbox
    peak = 0
    for _ in range(40):  # two seconds without reading
        time.sleep(0.05)
        peak = max(peak, inbox.waiting)
    assert INBOX_HIGH // 2 < peak <= INBOX_HIGH + 8 * RECEIVE_PIECE + (1 << 20)
    for i in range(size >> 20):
        assert t.readexactly(1 << 20) == i.to_bytes(4, "big") * (1 << 18)
    assert t.close() == 0


def test_socket_reads_reach_asyncssh_in_pieces() -> None:
    """CoalescingProtocol hands asyncssh at most RECEIVE_PIECE bytes at a time, in order."""
    from vsync.sync.ssh import RECEIVE_PIECE, CoalescingProtocol

    class Connection:  # what asyncssh's connection is told
        def __init__(self) -> None:
            self.got: list[bytes] = []

        def data_received(self, data: bytes) -> None:
            self.got.append(data)

    conn = Connection()
    proto = CoalescingProtocol(conn)
    data = os.urandom(256 * 1024 + 100)
    proto.data_received(data)
    proto.data_received(b"tail")
    assert max(len(piece) for piece in conn.got) == RECEIVE_PIECE
    assert len(conn.got) == 10
    assert b"".join(conn.got) == data + b"tail"


def test_abort_stops_a_remote_that_never_ends(opener: Opener) -> None:
    t = opener("/x", f"{PY} -c 'import time; time.sleep(60)'")
    t.write(b"x" * 1000)
    t.flush()
    t.abort()
    t.abort()  # idempotent


def test_context_manager_closes(opener: Opener) -> None:
    with opener("/x") as t:  # type: ignore[attr-defined]
        t.write(b"ping")
        assert t.readexactly(4) == b"ping"
    with pytest.raises(StoppedError):
        t.write(b"more")


# -- SSH: config, host keys, authentication, reachability ---------------------


def test_config_alias_supplies_hostname_port_user_and_identity(
    sshd_server: SSHD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No default key and a local user name sshd refuses: only the alias's
    # HostName, Port, User and IdentityFile together can log in.
    home = sshd_server.make_home(tmp_path / "home", default_key=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, "vsync-nobody")
    t = open_transport(parse_url(sshd_server.alias_url("/srv/repo")), ECHO)
    t.write(b"via alias")
    assert t.readexactly(9) == b"via alias"
    assert t.close() == 0
    with pytest.raises(AuthFailed) as info:  # the same, without the alias
        open_transport(parse_url(sshd_server.url("/srv/repo")), ECHO)
    assert f"vsync-nobody@127.0.0.1:{sshd_server.port}" in str(info.value)


def test_missing_identity_files_are_skipped_like_openssh(
    sshd_server: SSHD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = sshd_server.make_home(tmp_path / "home", default_key=False)
    config = home / ".ssh/config"
    text = config.read_text().replace(
        "    IdentityFile ~/.ssh/vsync_test_key\n",
        "    IdentityFile ~/.ssh/gone_key\n    IdentityFile ~/.ssh/vsync_test_key\n",
    )
    config.write_text(text)
    monkeypatch.setenv("HOME", str(home))
    assert open_transport(parse_url(sshd_server.alias_url("/srv")), ECHO).close() == 0


def test_unknown_host_key_stops(
    sshd_server: SSHD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = sshd_server.make_home(tmp_path / "home", known_hosts="")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(HostKeyUnknown) as info:
        open_transport(parse_url(sshd_server.url("/srv")), ECHO)
    msg = str(info.value)
    assert msg.startswith(f"host key for [127.0.0.1]:{sshd_server.port} is not known (")
    assert "ssh-ed25519 SHA256:" in msg
    assert msg.endswith(
        "verify it and run with --accept-new-host-key (like ssh StrictHostKeyChecking=accept-new)"
    )
    assert (home / ".ssh/known_hosts").read_text() == ""


def test_accept_new_records_the_key_and_connects(
    sshd_server: SSHD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = sshd_server.make_home(tmp_path / "home", known_hosts="# mine\n127.0.0.9 " + "x" * 3)
    monkeypatch.setenv("HOME", str(home))
    t = open_transport(parse_url(sshd_server.url("/srv")), ECHO, accept_new_host=True)
    t.write(b"ok")
    assert t.readexactly(2) == b"ok"
    assert t.close() == 0
    lines = (home / ".ssh/known_hosts").read_text().splitlines()
    assert lines == ["# mine", "127.0.0.9 xxx", sshd_server.known_hosts_line().strip()]
    t = open_transport(parse_url(sshd_server.url("/srv")), ECHO)  # now known, no flag needed
    assert t.close() == 0


@pytest.mark.parametrize("accept_new", [False, True])
def test_changed_host_key_is_refused_even_with_accept_new(
    sshd_server: SSHD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accept_new: bool
) -> None:
    other = keygen(tmp_path / "other_host_key", "someone-else")
    stale = sshd_server.known_hosts_line(key=" ".join(other.split()[:2]))
    home = sshd_server.make_home(tmp_path / "home", known_hosts=stale)
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(HostKeyChanged) as info:
        open_transport(parse_url(sshd_server.url("/srv")), ECHO, accept_new_host=accept_new)
    assert str(info.value) == (
        f"HOST KEY FOR [127.0.0.1]:{sshd_server.port} HAS CHANGED: refusing to connect "
        "(possible man-in-the-middle); remove the old key from "
        f"{home}/.ssh/known_hosts if the change is expected"
    )
    assert (home / ".ssh/known_hosts").read_text() == stale


def test_user_known_hosts_file_from_config(
    sshd_server: SSHD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = sshd_server.make_home(tmp_path / "home", known_hosts="")
    config = home / ".ssh/config"
    config.write_text("Host *\n    UserKnownHostsFile ~/.ssh/elsewhere\n" + config.read_text())
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(HostKeyUnknown):
        open_transport(parse_url(sshd_server.url("/srv")), ECHO)
    open_transport(parse_url(sshd_server.url("/srv")), ECHO, accept_new_host=True).close()
    assert (home / ".ssh/elsewhere").read_text() == sshd_server.known_hosts_line()
    assert (home / ".ssh/known_hosts").read_text() == ""
    assert open_transport(parse_url(sshd_server.url("/srv")), ECHO).close() == 0


def test_wrong_client_key_is_an_auth_failure(
    sshd_server: SSHD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = sshd_server.make_home(tmp_path / "home")
    key = home / ".ssh/id_ed25519"
    key.unlink()
    key.with_suffix(".pub").unlink()
    keygen(key, "not-authorized")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(AuthFailed) as info:
        open_transport(parse_url(sshd_server.url("/srv")), ECHO)
    user = sshd_server.user
    msg = str(info.value)
    assert msg.startswith(f"authentication to {user}@127.0.0.1:{sshd_server.port} failed (")
    assert str(key) in msg
    assert isinstance(info.value, StoppedError) and info.value.exit_code == 1


def test_closed_port_is_unreachable(ssh_home: Path) -> None:
    port = free_port()
    with pytest.raises(Unreachable) as info:
        open_transport(parse_url(f"ssh://127.0.0.1:{port}/srv"), ECHO)
    assert str(info.value).startswith(f"cannot reach 127.0.0.1:{port}: connection refused")


@pytest.mark.parametrize(
    "url", ["ssh://192.0.2.1/srv", "ssh://[2001:db8::1]:22/srv", "user@198.51.100.7:repo"]
)
def test_only_loopback_addresses_are_connected_to(ssh_home: Path, url: str) -> None:
    with pytest.raises(HostNotAllowed) as info:
        open_transport(parse_url(url), ECHO)
    assert "allows only loopback addresses (127.0.0.1, ::1)" in str(info.value)


def test_config_hostname_is_checked_against_the_loopback_rule(
    sshd_server: SSHD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = sshd_server.make_home(tmp_path / "home", alias_hostname="192.0.2.1")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(HostNotAllowed, match=r"vsync-test \(192\.0\.2\.1\)|192\.0\.2\.1"):
        open_transport(parse_url(sshd_server.alias_url("/srv")), ECHO)


def test_ipv6_loopback(sshd_server: SSHD, ssh_home: Path) -> None:
    if not sshd_server.ipv6:
        pytest.skip("this machine has no IPv6 loopback")
    t = open_transport(parse_url(sshd_server.url("/srv", host="::1")), ECHO)
    t.write(b"six")
    assert t.readexactly(3) == b"six"
    assert t.close() == 0


def test_openssh_client_agrees_with_the_fixture(sshd_server: SSHD) -> None:
    """The fixture is a normal sshd: the OpenSSH client logs in with its key."""
    out = subprocess.run(
        [
            "ssh", "-F", "/dev/null", "-p", str(sshd_server.port),
            "-i", str(sshd_server.client_key), "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={sshd_server.home}/.ssh/known_hosts",
            "127.0.0.1", "echo fixture-ok",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"fixture-ok\n"


def test_only_the_ssh_module_imports_asyncssh() -> None:
    package = Path(__file__).resolve().parent.parent / "vsync"
    users = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "asyncssh" for n in names):
                users.append(str(path.relative_to(package)))
    assert sorted(set(users)) == ["sync/ssh.py"]
