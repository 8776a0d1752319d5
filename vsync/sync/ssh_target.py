"""Where an SSH connection goes: the :class:`Target` that ``~/.ssh/config`` makes of a
URL (:func:`vsync.sync.ssh.resolve`), the loopback rule, and the :class:`Link` to the
first SSH server: a TCP socket, or a ProxyCommand's standard input and output.

Under ``VSYNC_LOOPBACK_ONLY=1`` (the test suite) only loopback addresses
(127.0.0.1, ::1) are ever connected to: names are resolved first and anything
else is refused before a socket is opened.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsync.sync.errors import HostNotAllowed, Unreachable


@dataclass
class Target:
    """What ``~/.ssh/config`` makes of a URL, ready to connect."""

    host: str  # after HostName
    port: int
    user: str
    connect_kwargs: dict[str, Any]
    identity_files: list[str]  # the private keys that will be offered
    agent: bool
    user_known_hosts: list[Path]
    known_hosts_files: list[Path]  # user files first, then global ones
    host_key_name: str  # HostKeyAlias or host: the name known_hosts is searched for
    timeout: float
    addresses: list[tuple[int, int, int, Any]] = field(default_factory=list)
    keepalive_configured: bool = False  # ~/.ssh/config sets ServerAliveInterval
    proxy_command: str | None = None  # ProxyCommand, tokens expanded
    jumps: list[Target] = field(default_factory=list)  # ProxyJump hosts, first first

    @property
    def label(self) -> str:
        """The host as known_hosts writes it: ``host`` or ``[host]:port``."""
        return known_hosts_name(self.host_key_name, self.port)

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def loopback_only() -> bool:
    """``VSYNC_LOOPBACK_ONLY=1`` confines connections to 127.0.0.0/8 and ::1.

    The test suite sets it so that no test can reach beyond this machine;
    users connect wherever their URLs say.
    """
    return os.environ.get("VSYNC_LOOPBACK_ONLY") == "1"


def loopback_addresses(target: Target, family: int) -> list[tuple[int, int, int, tuple[Any, ...]]]:
    """The addresses of ``target.host``; under :func:`loopback_only`, only loopback ones."""
    host = target.host
    guard = loopback_only()
    if guard and not _is_loopback(host, names_too=True):
        raise HostNotAllowed(host, host)  # a literal address: refused before any lookup
    try:
        infos = socket.getaddrinfo(host, target.port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        reason = f"cannot resolve the host name ({exc.strerror})"
        raise Unreachable(target.hostport, reason) from None
    out: list[tuple[int, int, int, tuple[Any, ...]]] = []
    for fam, kind, proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if guard and not _is_loopback(address):
            raise HostNotAllowed(host, address)
        out.append((fam, kind, proto, sockaddr))
    return out


def _is_loopback(address: str, names_too: bool = False) -> bool:
    """Whether ``address`` is a loopback IP (a host name counts only with ``names_too``)."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return names_too


class Link:
    """The byte stream to the first SSH server: a TCP socket, or a socketpair's end
    whose other end is a ProxyCommand's standard input and output."""

    def __init__(self, sock: socket.socket, proc: subprocess.Popen[bytes] | None = None):
        self.sock = sock
        self.proc = proc

    def close(self) -> None:
        self.sock.close()
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def open_link(target: Target) -> Link:
    """The connection to ``target`` (the first jump host, or the target itself)."""
    if target.proxy_command is None:
        return Link(connect_socket(target))
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {target.proxy_command}"],
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
            start_new_session=True,  # Ctrl-C reaches vsync, which ends it
        )
    except OSError as exc:
        ours.close()
        raise Unreachable(
            target.hostport, f"cannot run the ProxyCommand: {exc.strerror or exc}"
        ) from None
    finally:
        theirs.close()
    return Link(ours, proc)


def connect_socket(target: Target) -> socket.socket:
    """A TCP connection to the first address of ``target`` that answers."""
    last: OSError | None = None
    for fam, kind, proto, sockaddr in target.addresses:
        sock = socket.socket(fam, kind, proto)
        sock.settimeout(target.timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise Unreachable(target.hostport, failure_reason(last, target.timeout))


def failure_reason(exc: BaseException | None, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is sshd running on that port?)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    if exc is None:
        return "no address to connect to"
    return str(exc) or type(exc).__name__
