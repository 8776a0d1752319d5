"""Errors of the sync transports: URLs, connections, host keys, the remote command.

::

    UsageError (2)
    +-- BadURL                 a remote URL that cannot be parsed
    +-- HostNotAllowed         a host that is not a loopback address
    +-- UnsupportedSSHConfig   ~/.ssh/config asks for something vsync cannot do
    StoppedError (1)
    +-- TransportError         the connection failed or was lost
        +-- TransportClosed    the remote side closed the stream early
        +-- ConnectionLost     the SSH connection dropped
        +-- Stalled            the peer sent (or took) nothing for the idle timeout
        +-- RemoteCommandMissing  vsync is not installed where the remote runs
        +-- Unreachable        no TCP connection (refused, timeout, DNS)
        +-- AuthFailed         the server accepted none of our credentials
        +-- HostKeyUnknown     the server's host key is not in known_hosts
        +-- HostKeyChanged     known_hosts holds a different key for the server
"""

from __future__ import annotations

from vsync.errors import StoppedError, UsageError


class BadURL(UsageError):
    def __init__(self, text: str, reason: str) -> None:
        super().__init__(
            f"bad remote URL {text!r}: {reason} "
            "(use ssh://[user@]host[:port]/path, [user@]host:path, s3://bucket/prefix "
            "or a local path)"
        )


class HostNotAllowed(UsageError):
    def __init__(self, host: str, address: str) -> None:
        where = host if host == address else f"{host} ({address})"
        super().__init__(
            f"refusing to connect to {where}: VSYNC_LOOPBACK_ONLY=1 allows only "
            "loopback addresses (127.0.0.1, ::1)"
        )


class UnsupportedSSHConfig(UsageError):
    pass


class TransportError(StoppedError):
    """The connection to the remote failed or was lost."""


class TransportClosed(TransportError):
    def __init__(self, where: str, detail: str = "") -> None:
        msg = f"the connection to {where} closed unexpectedly"
        if detail:
            msg += f"; the remote said: {detail}"
        super().__init__(msg)
        self.detail = detail


class ConnectionLost(TransportError):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(
            f"the SSH connection to {where} was lost ({reason}); run the command again to resume"
        )


class Stalled(TransportError):
    def __init__(self, who: str, seconds: float, sending: bool = False) -> None:
        what = "took nothing this side sent" if sending else "sent nothing"
        super().__init__(
            f"{who} {what} for {seconds:g} s; the transfer stopped "
            "(nothing was lost; run the command again to resume)"
        )


class RemoteCommandMissing(TransportError):
    def __init__(self, host: str, command: str) -> None:
        super().__init__(
            f"vsync was not found on {host} (tried {command!r}); "
            "install it there or pass --remote-cmd PATH"
        )


class Unreachable(TransportError):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"cannot reach {where}: {reason}")


class AuthFailed(TransportError):
    def __init__(self, who: str, detail: str) -> None:
        super().__init__(
            f"authentication to {who} failed ({detail}); check that your key is in the "
            "server's authorized_keys, loaded in ssh-agent or named by IdentityFile"
        )


class HostKeyUnknown(TransportError):
    def __init__(self, host: str, fingerprint: str) -> None:
        super().__init__(
            f"host key for {host} is not known ({fingerprint}); verify it and run with "
            "--accept-new-host-key (like ssh StrictHostKeyChecking=accept-new)"
        )


class HostKeyChanged(TransportError):
    def __init__(self, host: str, files: list[str]) -> None:
        where = " or ".join(files) if files else "your known_hosts file"
        super().__init__(
            f"HOST KEY FOR {host} HAS CHANGED: refusing to connect (possible "
            f"man-in-the-middle); remove the old key from {where} if the change is expected"
        )
