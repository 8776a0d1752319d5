"""Remote URLs: ``ssh://[user@]host[:port]/path``, ``[user@]host:path``, ``s3://BUCKET/PREFIX``
or a local path.

The rules follow git and rsync:

- ``ssh://[user@]host[:port]/path`` names an absolute path on the host;
  ``ssh://host/~/dir`` (or ``/~user/dir``) is relative to a home directory.
  IPv6 addresses go in brackets: ``ssh://[::1]:2222/srv/repo``.
- ``[user@]host:path`` (scp-like) applies when a colon comes before any slash;
  a relative ``path`` is relative to the login directory. ``[::1]:path`` works.
- ``s3://BUCKET[/PREFIX]`` names objects in a bucket of S3-compatible storage
  (kind "s3": ``host`` is the bucket, ``path`` the prefix without its slashes
  at either end). The bucket follows S3's rules for names; the prefix is at
  most eight ``/``-separated parts of ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``.
- Anything else is a local path: ``/abs/path``, ``relative/dir``, ``./a:b``
  (prefix ``./`` to use a local path that holds a colon).

``str(url)`` gives back the text it was parsed from (in canonical form), so a
URL can be stored in the config and parsed again.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from vsync.sync.errors import BadURL

Kind = Literal["ssh", "local", "s3"]
Form = Literal["url", "scp", "path"]

_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?")
_USER = re.compile(r"[^\s@/:\x00]+")
_TILDE_USER = re.compile(r"~[A-Za-z0-9._-]*(?:/|$)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_PREFIX_PARTS = 8


@dataclass(frozen=True)
class RemoteURL:
    """A parsed remote location; ``kind`` is "ssh", "local" or "s3"."""

    kind: Kind
    path: str
    host: str = ""
    user: str | None = None
    port: int | None = None
    form: Form = "path"

    def __str__(self) -> str:
        if self.kind == "local":
            return self.path
        if self.kind == "s3":
            return f"s3://{self.host}/{self.path}" if self.path else f"s3://{self.host}"
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.form == "scp":
            return f"{user}{host}:{self.path}"
        port = f":{self.port}" if self.port is not None else ""
        path = f"/{self.path}" if self.path.startswith("~") else self.path
        return f"ssh://{user}{host}{port}{path}"

    @property
    def where(self) -> str:
        """``user@host:port`` for messages (the parts that are set)."""
        if self.kind in ("local", "s3"):
            return str(self)
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host and self.port is not None else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{user}{host}{port}"


def parse_url(text: str) -> RemoteURL:
    """Parse a remote URL; raises :class:`BadURL` (exit 2) for malformed input."""
    if not text:
        raise BadURL(text, "it is empty")
    if "\x00" in text or "\n" in text:
        raise BadURL(text, "it contains a NUL or newline character")
    if text.startswith("ssh://"):
        return _parse_ssh_url(text)
    if text.startswith("s3://"):
        return _parse_s3_url(text)
    if _SCHEME.match(text):
        scheme = text.split("://", 1)[0]
        raise BadURL(text, f"unsupported scheme '{scheme}://'")
    scp = _parse_scp(text)
    if scp is not None:
        return scp
    return RemoteURL(kind="local", path=text, form="path")


def _parse_ssh_url(text: str) -> RemoteURL:
    rest = text[len("ssh://") :]
    slash = _authority_end(text, rest)
    authority, path = rest[:slash], rest[slash:]
    if not path or path == "/":
        raise BadURL(text, "no path after the host")
    user, hostport = _split_user(text, authority)
    host, port = _split_host_port(text, hostport)
    if _TILDE_USER.match(path[1:]):
        path = path[1:]
    return RemoteURL(kind="ssh", path=path, host=host, user=user, port=port, form="url")


def _parse_s3_url(text: str) -> RemoteURL:
    bucket, _, prefix = text[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise BadURL(text, f"bad bucket name {bucket!r} (3-63 of a-z, 0-9, '.', '-')")
    prefix = prefix.strip("/")
    parts = prefix.split("/") if prefix else []
    if len(parts) > MAX_PREFIX_PARTS or not all(_PREFIX_PART.fullmatch(p) for p in parts):
        raise BadURL(
            text,
            f"bad prefix {prefix!r} (at most {MAX_PREFIX_PARTS} parts of A-Z, a-z, 0-9, "
            "'.', '_', '-', none beginning with '.', '_' or '-')",
        )
    return RemoteURL(kind="s3", path=prefix, host=bucket, form="url")


def _authority_end(text: str, rest: str) -> int:
    """Index of the slash that starts the path (a bracketed IPv6 host may hold none)."""
    at = rest.find("@")
    start = at + 1 if at != -1 and at < rest.find("/") else 0
    if rest[start : start + 1] == "[":
        close = rest.find("]", start)
        if close == -1:
            raise BadURL(text, "an IPv6 address is missing its closing ']'")
        slash = rest.find("/", close)
    else:
        slash = rest.find("/")
    return len(rest) if slash == -1 else slash


def _parse_scp(text: str) -> RemoteURL | None:
    """``[user@]host:path`` when a colon comes before any slash, else None."""
    colon = text.find(":")
    slash = text.find("/")
    if colon == -1 or (slash != -1 and slash < colon):
        # "[::1]:path" holds colons inside the brackets; look past them.
        bracket = text.find("[")
        if bracket == -1 or (slash != -1 and slash < bracket):
            return None
    at = text.find("@")
    start = at + 1 if at != -1 and (slash == -1 or at < slash) else 0
    if text[start : start + 1] == "[":
        close = text.find("]", start)
        if close == -1 or text[close + 1 : close + 2] != ":":
            return None  # "[name]/x" is a local path
        authority, path = text[: close + 1], text[close + 2 :]
    else:
        colon = text.find(":", start)
        if colon == -1 or (slash != -1 and slash < colon):
            return None
        authority, path = text[:colon], text[colon + 1 :]
    if not path:
        raise BadURL(text, "no path after ':'")
    user, host = _split_user(text, authority)
    if host.startswith("["):
        host = _ipv6(text, host[1:-1])
    else:
        _check_host(text, host)
    return RemoteURL(kind="ssh", path=path, host=host, user=user, port=None, form="scp")


def _split_user(text: str, authority: str) -> tuple[str | None, str]:
    if "@" not in authority:
        return None, authority
    user, host = authority.rsplit("@", 1)
    if not _USER.fullmatch(user):
        raise BadURL(text, f"bad user name {user!r}")
    return user, host


def _split_host_port(text: str, hostport: str) -> tuple[str, int | None]:
    port_text: str | None = None
    if hostport.startswith("["):
        close = hostport.find("]")
        host = _ipv6(text, hostport[1:close])
        after = hostport[close + 1 :]
        if after:
            if not after.startswith(":"):
                raise BadURL(text, "unexpected text after the bracketed host")
            port_text = after[1:]
    else:
        host, sep, port_text_ = hostport.partition(":")
        port_text = port_text_ if sep else None
        _check_host(text, host)
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BadURL(text, f"bad port {port_text!r} (expected 1-65535)")
    return host, int(port_text)


def _check_host(text: str, host: str) -> None:
    if not host:
        raise BadURL(text, "no host name")
    if not _HOST_NAME.fullmatch(host):
        raise BadURL(text, f"bad host name {host!r}")


def _ipv6(text: str, inside: str) -> str:
    try:
        ipaddress.IPv6Address(inside.split("%", 1)[0])
    except ValueError:
        raise BadURL(text, f"bad IPv6 address {inside!r}") from None
    return inside
