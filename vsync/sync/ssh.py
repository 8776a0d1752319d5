"""The SSH transport: ``vsync serve --stdio PATH`` through an asyncssh session.

The only module that imports asyncssh. It honours ``~/.ssh/config`` (Host,
HostName, Port, User, IdentityFile, UserKnownHostsFile, ProxyCommand,
ProxyJump, ...), the ssh-agent (``SSH_AUTH_SOCK`` or IdentityAgent) and the
known_hosts files the way OpenSSH does, with ``StrictHostKeyChecking=yes`` by
default and ``accept-new`` on request: an unknown host key is recorded, a
changed one is always refused.

``ProxyCommand``: the command (tokens ``%h``, ``%p``, ``%r``, ``%n``, ``%%``
expanded) runs under ``/bin/sh -c`` as OpenSSH runs it, its standard input
and output one end of a socketpair that stands for the TCP connection; it is
ended with the transport. ``ProxyJump host1[,host2...]``: each jump host is
resolved with its own ``~/.ssh/config`` entry (at most :data:`MAX_JUMPS`
levels), connected and host-key checked like the target, and the next
connection is tunnelled through it (``direct-tcpip``, as ``ssh -J``).

Keys protected by a passphrase (which asyncssh skips when loading) are tried
after the agent's and the plain keys, each once its passphrase is given by
the caller's ``key_passphrase(path, attempt)`` (at most three attempts per
key, as OpenSSH); without it they are skipped.

How bytes move: asyncssh runs on an event loop in a daemon thread. What
the protocol thread writes (buffers of up to 256 KiB) is handed to the loop
with ``call_soon_threadsafe`` and written to the SSH channel there; the
writer blocks while more than SEND_QUEUE bytes are handed over and not yet
taken by an unpaused channel. What the channel receives waits for the
protocol thread in an :class:`vsync.sync.inbox.Inbox` (no copy, no system
call); more than INBOX_HIGH bytes waiting pauses reading the channel until
the protocol thread has taken them down to INBOX_LOW. asyncssh's own writes
to the TCP socket are joined per loop turn (:class:`CoalescingWriter`).

Under ``VSYNC_LOOPBACK_ONLY=1`` (the test suite) only loopback addresses
(127.0.0.1, ::1) are ever connected to: names are resolved first and anything
else is refused before a socket is opened; a proxied host (and every jump
host) must be loopback too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

# asyncssh still names DSA keys in its type hints; cryptography 51 warns about
# that at import time. vsync offers no DSA key, and a warning on stderr would
# break the one-line error contract, so that one warning is silenced here.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    import asyncssh

from vsync.sync.errors import (
    AuthFailed,
    BadURL,
    HostKeyChanged,
    HostKeyUnknown,
    TransportError,
    Unreachable,
    UnsupportedSSHConfig,
)
from vsync.sync.inbox import Inbox
from vsync.sync.ssh_target import (
    Link,
    Target,
    failure_reason,
    known_hosts_name,
    loopback_addresses,
    loopback_only,
    open_link,
)
from vsync.sync.transport import StreamTransport, TailBuffer, remote_command
from vsync.sync.url import RemoteURL

logging.getLogger("asyncssh").addHandler(logging.NullHandler())

CONNECT_TIMEOUT = 20.0  # seconds for the TCP connection unless ConnectTimeout says otherwise
RECEIVE_PIECE = 32 << 10  # TCP data goes to asyncssh in pieces of this (CoalescingProtocol)
INBOX_HIGH = 4 << 20  # received bytes waiting for the protocol thread: pause the channel
INBOX_LOW = 1 << 20  # ... and resume it once the protocol thread has taken them down to this
SEND_QUEUE = 4 << 20  # bytes handed to the loop and not yet taken by the channel
CHANNEL_WINDOW = 2 << 20  # SSH receive window, as OpenSSH (8 MiB measured no faster locally)
# Keepalives (OpenSSH's ServerAliveInterval/CountMax, unless ~/.ssh/config sets them):
# one every idle timeout / KEEPALIVE_PER_TIMEOUT of silence, the connection dropped after
# KEEPALIVE_COUNT_MAX unanswered: a dead network without a FIN is noticed within two
# timeouts even while nothing waits for the peer. While something waits, its idle timeout
# (one timeout) ends the transfer first, with the message that says the remote stalled:
# with 3 unanswered the two ended at the same moment and either message could win.
KEEPALIVE_PER_TIMEOUT = 4
KEEPALIVE_COUNT_MAX = 7
# asyncssh's AES-GCM costs about half the client CPU of its chacha20-poly1305
# (measured on 1 GiB to 127.0.0.1); this order applies unless ~/.ssh/config names Ciphers.
PREFERRED_CIPHERS = [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
]
DEFAULT_KEYS = ("id_ed25519_sk", "id_ecdsa_sk", "id_ed448", "id_ed25519", "id_ecdsa", "id_rsa")
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
# A user name that may go into a ProxyCommand (%r): nothing a shell would act on.
_SAFE_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+-]*")
MAX_JUMPS = 8  # ProxyJump hops, counting those of the jump hosts' own entries
PASSPHRASE_ATTEMPTS = 3  # as OpenSSH's NumberOfPasswordPrompts
T = TypeVar("T")
# ``key_passphrase(path, attempt)``: the passphrase of the private key ``path`` (attempt
# 0, then 1, 2 after a wrong one), or None to skip that key.
KeyPassphrase = Callable[[str, int], "str | None"]


def open_ssh(
    url: RemoteURL,
    remote_cmd: str,
    accept_new_host: bool = False,
    idle_timeout: float | None = None,
    key_passphrase: KeyPassphrase | None = None,
) -> SSHTransport:
    """Connect to ``url``'s host and start ``<remote_cmd> serve --stdio PATH`` there."""
    target = resolve(url)
    if idle_timeout is not None:
        for t in (*target.jumps, target):
            if not t.keepalive_configured:
                t.connect_kwargs["keepalive_interval"] = idle_timeout / KEEPALIVE_PER_TIMEOUT
                t.connect_kwargs["keepalive_count_max"] = KEEPALIVE_COUNT_MAX
    link = open_link(target.jumps[0] if target.jumps else target)
    return SSHTransport(
        url, target, link, remote_cmd, accept_new_host, idle_timeout, key_passphrase
    )


# -- where to connect: ~/.ssh/config, known_hosts, the loopback rule ----------


def resolve(url: RemoteURL, depth: int = 0) -> Target:
    """Apply ``~/.ssh/config`` to ``url`` and check the address is allowed; ``depth``:
    the jump hosts already on the way (ProxyJump)."""
    config_file = Path("~/.ssh/config").expanduser()
    config = [str(config_file)] if os.access(config_file, os.R_OK) else []
    kwargs: dict[str, Any] = {"host": url.host, "config": config}
    if url.port is not None:
        kwargs["port"] = url.port
    if url.user:
        kwargs["username"] = url.user
    try:
        opts = asyncssh.SSHClientConnectionOptions(**kwargs, client_keys=None)
    except (ValueError, OSError, asyncssh.Error) as exc:
        raise UnsupportedSSHConfig(f"cannot use ~/.ssh/config for {url.host}: {exc}") from None
    cfg = opts.config
    proxy_command = _unless_none(cfg.get("ProxyCommand", None))
    proxy_jump = _unless_none(cfg.get("ProxyJump", None))
    if proxy_command and proxy_jump:
        raise UnsupportedSSHConfig(
            f"~/.ssh/config sets both ProxyJump and ProxyCommand for {url.host}; keep one"
        )
    if proxy_command and not _SAFE_USER.fullmatch(opts.username or ""):
        # %r goes into a shell command line (OpenSSH refuses the same: CVE-2023-51385)
        raise UnsupportedSSHConfig(
            f"the user name {opts.username!r} holds characters a shell would act on; "
            f"it is not given to the ProxyCommand for {url.host}"
        )
    named = [str(Path(p).expanduser()) for p in _path_list(cfg.get("IdentityFile", None))]
    identity_files = [p for p in named if os.access(p, os.R_OK)]
    if named:
        kwargs["client_keys"] = identity_files
    else:
        identity_files = [
            str(p)
            for name in DEFAULT_KEYS
            if os.access(p := Path("~/.ssh", name).expanduser(), os.R_OK)
        ]
    # Encrypted keys are not loaded here (no prompt for a key the agent holds):
    # HostKeyPolicy.public_key_auth_requested unlocks them after the others.
    kwargs["ignore_encrypted"] = True
    if not cfg.get("Ciphers", None):
        kwargs["encryption_algs"] = PREFERRED_CIPHERS
    agent_path = cfg.get("IdentityAgent", None) or os.environ.get("SSH_AUTH_SOCK", "")
    user_files = [Path(p).expanduser() for p in _string_list(cfg.get("UserKnownHostsFile", None))]
    user_files = user_files or [Path(p).expanduser() for p in DEFAULT_USER_KNOWN_HOSTS]
    global_files = [Path(p) for p in _string_list(cfg.get("GlobalKnownHostsFile", None))]
    global_files = global_files or [Path(p) for p in DEFAULT_GLOBAL_KNOWN_HOSTS]
    timeout = opts.connect_timeout or CONNECT_TIMEOUT
    target = Target(
        host=opts.host,
        port=opts.port,
        user=opts.username,
        connect_kwargs=kwargs,
        identity_files=identity_files,
        agent=bool(agent_path) and os.path.exists(os.path.expanduser(str(agent_path))),
        user_known_hosts=user_files,
        known_hosts_files=user_files + global_files,
        host_key_name=opts.host_key_alias or opts.host,
        timeout=float(timeout),
        keepalive_configured=cfg.get("ServerAliveInterval", None) is not None,
    )
    target.proxy_command = proxy_command
    if proxy_jump:
        target.jumps = _jump_targets(url.host, proxy_jump, depth)
    if not (proxy_command or proxy_jump) or loopback_only():
        # A proxied host is reached by the proxy: its name may mean nothing here.
        target.addresses = loopback_addresses(target, opts.family)
    return target


def _unless_none(value: object) -> str | None:
    """A ProxyCommand or ProxyJump value; None when unset or ``none`` (OpenSSH's off)."""
    if not value:
        return None
    text = str(value).strip()
    return None if not text or text.lower() == "none" else text


def _jump_targets(host: str, spec: str, depth: int) -> list[Target]:
    """The jump hosts of ``ProxyJump spec``, each resolved with its own config entry
    (and so its own jumps, which come first)."""
    from vsync.sync.url import parse_url

    out: list[Target] = []
    for hop in spec.split(","):
        hop = hop.strip()
        try:
            hop_url = parse_url(hop if hop.startswith("ssh://") else f"ssh://{hop}/.")
        except BadURL:
            raise UnsupportedSSHConfig(
                f"~/.ssh/config: ProxyJump for {host} names a bad host: {hop!r}"
            ) from None
        if depth + len(out) + 1 > MAX_JUMPS:
            raise UnsupportedSSHConfig(
                f"~/.ssh/config: more than {MAX_JUMPS} ProxyJump hosts on the way to {host} "
                "(a loop?)"
            )
        jump = resolve(hop_url, depth + len(out) + 1)
        out.extend(jump.jumps)
        jump.jumps = []
        out.append(jump)
    return out


def _string_list(value: object) -> list[str]:
    """A config value that lists names separated by spaces, or already a list."""
    if isinstance(value, str):
        return value.split()
    return _path_list(value)


def _path_list(value: object) -> list[str]:
    """A config value that is a list (one entry per option line), or one entry."""
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


# -- host keys ------------------------------------------------------------


def read_known_hosts(files: list[Path]) -> asyncssh.SSHKnownHosts:
    """Every readable file's entries; lines asyncssh cannot parse are skipped like ssh does."""
    known = asyncssh.SSHKnownHosts()
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        try:
            known.load(text)
        except ValueError:
            for line in text.splitlines():
                with contextlib.suppress(ValueError):
                    known.load(line)
    return known


def _needs_passphrase(path: str) -> bool:
    """Whether the private key file ``path`` is encrypted (asyncssh skips those)."""
    try:
        asyncssh.read_private_key(path)
    except asyncssh.KeyImportError as exc:
        return "passphrase" in str(exc).lower()
    except (OSError, ValueError, asyncssh.KeyEncryptionError):
        return False
    return False


def _has_entries(known: asyncssh.SSHKnownHosts, host: str, addr: str, port: int) -> bool:
    keys, cas, revoked, certs, _rc, subjects, _rs = known.match(
        host, addr, None if port == 22 else port
    )
    return bool(keys or cas or revoked or certs or subjects)


class HostKeyPolicy(asyncssh.SSHClient):
    """StrictHostKeyChecking yes, or accept-new: tells unknown keys from changed ones.

    asyncssh calls :meth:`validate_host_public_key` only for a key that no
    known_hosts entry trusts; here we decide whether that host is new.
    """

    def __init__(
        self,
        target: Target,
        known: asyncssh.SSHKnownHosts,
        accept_new: bool,
        key_passphrase: KeyPassphrase | None = None,
    ) -> None:
        super().__init__()
        self.target = target
        self.known = known
        self.accept_new = accept_new
        self.key_passphrase = key_passphrase
        self.addr = ""
        self.verdict = ""
        self.fingerprint = ""
        self.pending_line = ""
        self._locked = list(target.identity_files)  # files still to look at (encrypted?)
        self.skipped: list[str] = []  # encrypted keys no passphrase was given for
        self.unusable: list[str] = []  # encrypted keys that cannot be unlocked here

    async def public_key_auth_requested(self) -> Any:
        """After the agent's and the plain keys: the next key that needs a passphrase,
        unlocked with one from ``key_passphrase`` (None: no more keys)."""
        loop = asyncio.get_running_loop()
        while self._locked:
            path = self._locked.pop(0)
            if not _needs_passphrase(path):
                continue  # loaded (and offered) by asyncssh already, or unreadable
            if self.key_passphrase is None:
                self.skipped.append(path)
                continue
            for attempt in range(PASSPHRASE_ATTEMPTS):
                phrase = await loop.run_in_executor(None, self.key_passphrase, path, attempt)
                if phrase is None:
                    self.skipped.append(path)
                    break
                try:
                    return asyncssh.read_private_key(path, phrase)
                except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
                    if "passphrase" in str(exc).lower():
                        continue  # a wrong passphrase: ask again
                    self.unusable.append(f"{path} ({exc})")  # e.g. a cipher not supported
                    break
            else:
                self.skipped.append(path)
        return None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        self.fingerprint = f"{key.get_algorithm()} {key.get_fingerprint()}"
        self.addr = addr
        if _has_entries(self.known, host, addr, port):
            self.verdict = "changed"
            return False
        if not self.accept_new:
            self.verdict = "unknown"
            return False
        self.verdict = "new"
        fields = key.export_public_key("openssh").decode().split()
        self.pending_line = f"{known_hosts_name(host, port)} {fields[0]} {fields[1]}\n"
        return True

    def record_new_key(self) -> None:
        """Append an accepted new key to the first user known_hosts file, once proven."""
        if not self.pending_line:
            return
        line, self.pending_line = self.pending_line, ""
        path = self.target.user_known_hosts[0]
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(path, "ab+") as f:
                size = f.seek(0, os.SEEK_END)
                if size:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        line = "\n" + line
                f.write(line.encode())
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise TransportError(
                f"cannot record the host key of {self.target.label} in {path}: "
                f"{exc.strerror or exc}"
            ) from None

    def error(self) -> TransportError:
        label = self.target.label
        if self.verdict == "unknown":
            return HostKeyUnknown(label, self.fingerprint)
        holding = [
            str(p)
            for p in self.target.known_hosts_files
            if _has_entries(
                read_known_hosts([p]), self.target.host_key_name, self.addr, self.target.port
            )
        ]
        return HostKeyChanged(label, holding)


# -- the event loop thread -------------------------------------------------


class LoopThread:
    """An asyncio loop in a daemon thread; ``run`` executes a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._record)
        self.errors: list[str] = []  # kept for debugging: nothing below the CLI prints
        self._thread = threading.Thread(target=self._main, name="vsync-ssh", daemon=True)
        self._thread.start()

    def _record(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.errors.append(str(context.get("exception") or context.get("message")))

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        self.call(self.loop.stop)
        self._thread.join(10)


# -- the TCP connection: asyncssh's writes coalesced -----------------------


class CoalescingWriter:
    """What asyncssh sees as its TCP transport: writes made in one loop turn go out as one.

    asyncssh writes every SSH packet separately, and before each data packet an
    empty MSG_IGNORE packet (2.24's traffic-analysis countermeasure): two
    ``send`` calls per 32 KiB of payload, each pushing a segment through the
    kernel (on loopback: through the receiver's stack too). Joined per loop
    turn, a 256 KiB read from the protocol thread leaves as one ``send``.
    Everything but ``write`` is the real transport's.
    """

    def __init__(self, real: asyncio.Transport) -> None:
        self._real = real
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending.clear()
            if not self._real.is_closing():
                self._real.write(data)

    def close(self) -> None:
        self.flush()
        self._real.close()

    def abort(self) -> None:
        self._pending.clear()
        self._real.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class CoalescingProtocol(asyncio.Protocol):
    """Sits between the socket transport and asyncssh's connection (its protocol).

    What the socket delivers (reads of up to 256 KiB) is handed to asyncssh in
    pieces of RECEIVE_PIECE bytes. asyncssh appends what it gets to one bytes
    buffer and slices every packet off its front, copying the rest of the buffer
    twice a packet: a 256 KiB read, eight 32 KiB packets, was copied about nine
    times over. A piece the size of one packet leaves little behind to copy (a
    fifth of the receiving thread's CPU on a clone).
    """

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.conn.connection_made(CoalescingWriter(transport))

    def data_received(self, data: bytes) -> None:
        if len(data) <= RECEIVE_PIECE:
            self.conn.data_received(data)
            return
        for start in range(0, len(data), RECEIVE_PIECE):
            self.conn.data_received(data[start : start + RECEIVE_PIECE])

    def eof_received(self) -> bool | None:
        return self.conn.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()


class ConnectedSocket:
    """asyncssh's ``tunnel`` interface over an already-connected TCP socket.

    ``create_connection`` is all asyncssh asks of a tunnel; here it wraps the
    connection's transport in a :class:`CoalescingWriter`.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def create_connection(
        self, session_factory: Any, _host: str, _port: int
    ) -> tuple[asyncio.BaseTransport, Any]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_connection(
            lambda: CoalescingProtocol(session_factory()), sock=self.sock
        )
        return transport, proto.conn


# -- the bridge between the protocol thread and the SSH channel -----------


class Bridge(asyncssh.SSHClientSession[bytes]):
    """The SSH session: what its channel receives waits in ``inbox`` for the protocol
    thread; what the protocol thread sends comes in through :meth:`send`."""

    def __init__(self) -> None:
        self.chan: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stderr = TailBuffer()
        self.finished = threading.Event()
        self.returncode: int | None = None
        self.lost = ""  # why the connection dropped, if it did
        self.inbox = Inbox(INBOX_HIGH, INBOX_LOW, self._resume_soon)
        self._arrived: list[bytes] = []  # received in this loop turn, not yet in the inbox
        # protocol thread -> channel: bytes handed over and not yet released
        self.send_cv = threading.Condition()
        self.queued = 0
        self._paused = False
        self._held = 0  # written to the channel while it was paused

    # protocol thread -> SSH channel (called on the loop)
    def send(self, data: bytes | bytearray) -> None:
        if self.chan is not None and not self.finished.is_set():
            with contextlib.suppress(BrokenPipeError, OSError):
                self.chan.write(data)
        if self._paused:
            self._held += len(data)
        else:
            self._release(len(data))

    def send_eof(self) -> None:
        if self.chan is not None and not self.finished.is_set():
            with contextlib.suppress(BrokenPipeError, OSError):
                self.chan.write_eof()

    def _release(self, n: int) -> None:
        with self.send_cv:
            self.queued -= n
            self.send_cv.notify_all()

    # SSH channel -> protocol thread
    def connection_made(self, chan: Any) -> None:
        self.chan = chan
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes, datatype: Any) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self.stderr.add(data)
            return
        # Packets are 32 KiB; the ones that arrive in one loop turn are handed over at
        # once, so a waiting protocol thread is woken once per socket read, not per packet.
        if not self._arrived:
            asyncio.get_running_loop().call_soon(self._hand_over)
        self._arrived.append(data)

    def _hand_over(self) -> None:
        arrived, self._arrived = self._arrived, []
        if self.inbox.put(arrived) and self.chan is not None:
            self.chan.pause_reading()  # asyncssh keeps what still comes, within the window

    def _resume_soon(self) -> None:
        """The protocol thread took the inbox down to INBOX_LOW: read the channel again."""
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self.loop.call_soon_threadsafe(self._resume_reading)

    def _resume_reading(self) -> None:
        if self.chan is not None and not self.finished.is_set():
            self.chan.resume_reading()

    def eof_received(self) -> bool:
        self._end_inbox()
        return True

    def _end_inbox(self) -> None:
        self._hand_over()
        self.inbox.end()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        held, self._held = self._held, 0
        self._release(held)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = str(exc) if exc else ""
        if self.chan is not None:
            self.returncode = self.chan.get_returncode()
        self._end_inbox()
        self.finished.set()
        with self.send_cv:
            self.send_cv.notify_all()  # a writer waiting for room gives up


# -- the transport ---------------------------------------------------------


class SSHTransport(StreamTransport):
    """The blocking protocol side: takes from the bridge's inbox, hands writes to the loop."""

    def __init__(
        self,
        url: RemoteURL,
        target: Target,
        link: Link,
        remote_cmd: str,
        accept_new_host: bool,
        idle_timeout: float | None = None,
        key_passphrase: KeyPassphrase | None = None,
    ) -> None:
        super().__init__()
        self.idle_timeout = idle_timeout
        self.where = url.host
        self.command = remote_cmd
        self.target = target
        self._runner = LoopThread()
        self._conn: Any = None
        self._jump_conns: list[Any] = []  # ProxyJump connections, first first
        self._link = link
        self._accept_new = accept_new_host
        self._key_passphrase = key_passphrase
        self._bridge = Bridge()
        command = remote_command(remote_cmd, url.path)
        try:
            self._runner.run(self._start(link.sock, command))
        except BaseException:
            self._done = True
            self._release_once()
            link.close()
            raise

    def _policy(self, target: Target) -> HostKeyPolicy:
        known = read_known_hosts(target.known_hosts_files)
        return HostKeyPolicy(target, known, self._accept_new, self._key_passphrase)

    async def _start(self, tcp: socket.socket, command: str) -> None:
        tunnel: Any = ConnectedSocket(tcp)
        for jump in self.target.jumps:
            conn = await self._handshake(jump, tunnel, self._policy(jump))
            self._jump_conns.append(conn)
            tunnel = conn
        self._conn = await self._handshake(self.target, tunnel, self._policy(self.target))
        bridge = self._bridge
        try:
            await self._conn.create_session(
                lambda: bridge,
                command,
                encoding=None,
                request_pty=False,
                x11_forwarding=False,
                window=CHANNEL_WINDOW,
            )
        except asyncssh.ChannelOpenError as exc:
            raise TransportError(
                f"{self.target.hostport} refused to start a session: {exc.reason}"
            ) from None

    async def _handshake(self, target: Target, tunnel: Any, policy: HostKeyPolicy) -> Any:
        try:
            conn = await asyncssh.connect(
                **target.connect_kwargs,
                tunnel=tunnel,
                known_hosts=policy.known,
                client_factory=lambda: policy,
            )
        except asyncssh.HostKeyNotVerifiable:
            raise policy.error() from None
        except asyncssh.PermissionDenied:
            policy.record_new_key()  # the server proved its key before refusing us
            raise AuthFailed(
                f"{target.user}@{target.hostport}", _auth_detail(target, policy)
            ) from None
        except asyncssh.ChannelOpenError as exc:  # a jump host would not forward
            raise Unreachable(target.hostport, f"the jump host refused: {exc.reason}") from None
        except asyncssh.DisconnectError as exc:
            raise TransportError(
                f"the SSH connection to {target.hostport} failed: {exc.reason}"
            ) from None
        except (TimeoutError, OSError) as exc:
            raise Unreachable(target.hostport, failure_reason(exc, target.timeout)) from None
        try:
            policy.record_new_key()
        except TransportError:
            conn.abort()
            await conn.wait_closed()
            raise
        return conn

    # -- StreamTransport hooks --
    @property
    def stderr_text(self) -> str:
        return self._bridge.stderr.text

    def _lost(self) -> str:
        return self._bridge.lost

    def _raw_read(self, n: int) -> bytes:
        data = self._bridge.inbox.take(n, self.idle_timeout)
        if data is None:
            raise self.stalled(sending=False)
        return data

    def _raw_write(self, data: memoryview) -> None:
        bridge = self._bridge
        # StreamTransport hands over a buffer it never touches again, or the caller's bytes.
        whole = data.obj
        buf: bytes | bytearray
        if isinstance(whole, bytes | bytearray) and data.nbytes == len(whole):
            buf = whole
        else:
            buf = bytes(data)
        with bridge.send_cv:
            room = self._wait_for_room(bridge)
            if room and not bridge.finished.is_set():
                bridge.queued += len(buf)
        if not room:
            raise self.stalled(sending=True)  # not under send_cv: stopping takes the loop
        if bridge.finished.is_set():
            raise BrokenPipeError
        try:
            self._runner.loop.call_soon_threadsafe(bridge.send, buf)
        except RuntimeError:  # the loop is closed
            raise BrokenPipeError from None

    def _wait_for_room(self, bridge: Bridge) -> bool:
        """Wait (holding ``send_cv``) until the channel has room or is finished; False
        when it took nothing for the idle timeout."""
        queued, since = bridge.queued, time.monotonic()
        while bridge.queued > SEND_QUEUE and not bridge.finished.is_set():
            if bridge.queued < queued:  # the channel took some: the remote is alive
                queued, since = bridge.queued, time.monotonic()
            if self.idle_timeout is None:
                bridge.send_cv.wait()
                continue
            left = since + self.idle_timeout - time.monotonic()
            if left <= 0:
                return False
            bridge.send_cv.wait(left)
        return True

    def _close_write(self) -> None:
        self._runner.call(self._bridge.send_eof)

    def _wait_exit(self, timeout: float | None) -> int | None:
        if not self._bridge.finished.wait(timeout):
            return None
        code = self._bridge.returncode
        return 255 if code is None else code

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        jumps, self._jump_conns = self._jump_conns, []
        with contextlib.suppress(Exception):
            self._runner.run(_shutdown(conn, jumps), timeout=10)
        self._runner.stop()
        self._bridge.inbox.end()  # a reader still waiting gets the end
        self._link.close()

    def _kill(self) -> None:
        if self._conn is not None:
            self._runner.call(self._conn.abort)


def _auth_detail(target: Target, policy: HostKeyPolicy) -> str:
    tried = [*(["ssh-agent"] if target.agent else []), *target.identity_files]
    if not tried:
        return "no key to offer: no ~/.ssh/id_* key, no IdentityFile and no ssh-agent"
    detail = "the server accepted none of: " + ", ".join(tried)
    if policy.skipped:
        detail += (
            f"; {', '.join(policy.skipped)}: encrypted, and no right passphrase was given "
            "(run on a terminal, set SSH_ASKPASS, or load the key in ssh-agent)"
        )
    if policy.unusable:
        detail += f"; cannot unlock {', '.join(policy.unusable)}"
    return detail


async def _shutdown(conn: Any, jumps: list[Any] | None = None) -> None:
    """Close the SSH connection, then the jump hosts', last first."""
    for c in [conn, *reversed(jumps or [])]:
        if c is not None:
            c.close()
            await c.wait_closed()
    for _ in range(3):
        await asyncio.sleep(0)  # let the transports run their connection_lost
