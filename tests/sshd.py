"""A real OpenSSH ``sshd`` on 127.0.0.1 (and ::1) for the SSH transport tests.

:func:`start_sshd` makes a temporary host key, client keys, an
``authorized_keys`` and an ``sshd_config``, starts ``sshd -D -e`` on a free
port and waits for its banner. The returned :class:`SSHD` knows how to build
a client HOME (``~/.ssh/config`` with a ``Host vsync-test`` alias,
``known_hosts`` holding the host key as ``[127.0.0.1]:PORT ssh-ed25519 ...``,
the client key as ``~/.ssh/id_ed25519``) and the environment for ``vsync``
subprocesses (``env()``: HOME set to that folder, no ssh-agent).

The remote side runs as the current user (root in CI: ``PermitRootLogin
prohibit-password``); its login shell starts commands with the system PATH, so
tests pass ``remote_cmd`` (this Python with ``-m vsync``). ``VSYNC_*``
variables of the client's environment are forwarded (``SendEnv``/``AcceptEnv``).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD_PATHS = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/usr/bin/sshd")
ALIAS = "vsync-test"
MISSING = (
    "OpenSSH sshd is not installed, so the SSH transport cannot be tested; "
    "run 'make test' (it installs openssh-server) or 'apt-get install openssh-server'"
)


class SSHDMissing(RuntimeError):
    pass


def find_sshd() -> str:
    for path in SSHD_PATHS:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("sshd")
    if found:
        return found
    raise SSHDMissing(MISSING)


def keygen(path: Path, comment: str) -> str:
    """A fresh ed25519 key pair at ``path``; returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@dataclass
class SSHD:
    root: Path
    port: int
    user: str
    host_key: str  # "ssh-ed25519 AAAA..." (no comment)
    client_key: Path  # private key; authorized
    alias_key: Path  # private key named by the alias's IdentityFile; authorized
    home: Path  # the shared client HOME
    ipv6: bool
    proc: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"
    alias: str = ALIAS
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "sshd.log"

    # -- URLs and commands ------------------------------------------------
    def url(self, path: str | os.PathLike[str], host: str | None = None) -> str:
        host = host or self.host
        bracketed = f"[{host}]" if ":" in host else host
        return f"ssh://{bracketed}:{self.port}{os.fspath(path)}"

    def alias_url(self, path: str | os.PathLike[str]) -> str:
        return f"{self.alias}:{os.fspath(path)}"

    @property
    def remote_cmd(self) -> str:
        """What ``--remote-cmd`` must say for the remote to run this checkout's vsync."""
        return f"{shlex.quote(sys.executable)} -m vsync"

    def known_hosts_line(self, host: str = "127.0.0.1", key: str | None = None) -> str:
        name = f"[{host}]:{self.port}"
        return f"{name} {key or self.host_key}\n"

    # -- client homes -------------------------------------------------------
    def make_home(
        self,
        dest: Path,
        *,
        known_hosts: str | None = None,
        default_key: bool = True,
        alias_hostname: str = "127.0.0.1",
    ) -> Path:
        """A client HOME at ``dest``: ``.ssh/config``, ``known_hosts`` and keys.

        ``known_hosts`` replaces the default file content (the host key for
        127.0.0.1 and ::1); ``default_key=False`` leaves out ``~/.ssh/id_ed25519``
        so only the alias's IdentityFile can log in.
        """
        ssh = dest / ".ssh"
        ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
        if default_key:
            for suffix in ("", ".pub"):
                shutil.copy(f"{self.client_key}{suffix}", ssh / f"id_ed25519{suffix}")
        for suffix in ("", ".pub"):
            shutil.copy(f"{self.alias_key}{suffix}", ssh / f"vsync_test_key{suffix}")
        for key in ssh.glob("*"):
            if not key.name.endswith(".pub"):
                key.chmod(0o600)
        (ssh / "config").write_text(
            f"Host {self.alias}\n"
            f"    HostName {alias_hostname}\n"
            f"    Port {self.port}\n"
            f"    User {self.user}\n"
            "    IdentityFile ~/.ssh/vsync_test_key\n"
            "    IdentitiesOnly yes\n"
            "\n"
            "Host *\n"
            "    SendEnv VSYNC_*\n"
        )
        if known_hosts is None:
            known_hosts = self.known_hosts_line()
            if self.ipv6:
                known_hosts += self.known_hosts_line("::1")
        (ssh / "known_hosts").write_text(known_hosts)
        return dest

    def env(self, home: Path | None = None, **extra: str) -> dict[str, str]:
        """Environment for a client process: HOME with the ssh config, no agent."""
        env = dict(os.environ)
        env.pop("SSH_AUTH_SOCK", None)
        env["HOME"] = str(home or self.home)
        env.update(extra)
        return env

    # -- life cycle ---------------------------------------------------------
    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill_all(self) -> None:
        """Kill sshd and the connections it serves at once (a network outage): the
        listener's process group, which holds every per-connection sshd."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def start_again(self) -> None:
        """Start sshd again on the same port, with the same keys and config."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [find_sshd(), "-D", "-e", "-f", str(self.root / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        if not _wait_for_banner(self):
            raise RuntimeError(f"sshd did not start again:\n{self.log.read_text(errors='replace')}")


def start_sshd(root: Path) -> SSHD:
    """Start sshd under ``root`` (a fresh directory); raises :class:`SSHDMissing`."""
    sshd = find_sshd()
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
    root.mkdir(parents=True, exist_ok=True)
    host_key = keygen(root / "ssh_host_ed25519_key", "vsync-test-host")
    client_pub = keygen(root / "client_key", "vsync-test-client")
    alias_pub = keygen(root / "alias_key", "vsync-test-alias")
    (root / "authorized_keys").write_text(f"{client_pub}\n{alias_pub}\n")
    user = getpass.getuser()
    ipv6 = ipv6_loopback()
    last_error = ""
    for _attempt in range(5):
        port = free_port()
        server = SSHD(
            root=root,
            port=port,
            user=user,
            host_key=" ".join(host_key.split()[:2]),
            client_key=root / "client_key",
            alias_key=root / "alias_key",
            home=root / "home",
            ipv6=ipv6,
        )
        config = root / "sshd_config"
        config.write_text(_sshd_config(root, port, user, ipv6))
        with open(server.log, "wb") as log:
            server.proc = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        if _wait_for_banner(server):
            server.make_home(server.home)
            return server
        server.stop()
        last_error = server.log.read_text(errors="replace")
    raise RuntimeError(f"sshd did not start:\n{last_error}")


def _sshd_config(root: Path, port: int, user: str, ipv6: bool) -> str:
    listen = "ListenAddress 127.0.0.1\n" + ("ListenAddress ::1\n" if ipv6 else "")
    return (
        f"Port {port}\n"
        f"{listen}"
        f"HostKey {root}/ssh_host_ed25519_key\n"
        f"PidFile {root}/sshd.pid\n"
        f"AuthorizedKeysFile {root}/authorized_keys\n"
        f"AllowUsers {user}\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "UseDNS no\n"
        "PrintMotd no\n"
        "PrintLastLog no\n"
        "X11Forwarding no\n"
        # ProxyJump through this sshd (tests/test_ssh_proxy.py): forwarding to
        # loopback only, never a listener
        "AllowTcpForwarding local\n"
        "PermitOpen 127.0.0.1:* [::1]:*\n"
        "AllowAgentForwarding no\n"
        "AcceptEnv VSYNC_*\n"
        "MaxStartups 64\n"
        "MaxSessions 64\n"
        "LoginGraceTime 30\n"
        "LogLevel VERBOSE\n"
    )


def _wait_for_banner(server: SSHD, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.proc is not None
        if server.proc.poll() is not None:
            return False
        try:
            with socket.create_connection((server.host, server.port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False
