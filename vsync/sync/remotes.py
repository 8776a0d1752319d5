"""Named remotes in the repository config: ``[remote "NAME"] url, remotecmd, endpoint``
(``endpoint``: an ``s3://`` remote's S3 endpoint, when not from the environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from vsync.errors import UsageError
from vsync.model.config import check_remote_name
from vsync.model.repository import Repository
from vsync.sync.objstore.s3config import check_endpoint
from vsync.sync.url import RemoteURL, parse_url

DEFAULT_REMOTE = "origin"


@dataclass(frozen=True)
class Remote:
    name: str | None  # None for a URL given directly on the command line
    url: RemoteURL
    remote_cmd: str | None = None
    endpoint: str | None = None  # an s3:// remote's endpoint (else from the environment)

    @property
    def tracking_ref(self) -> bytes | None:
        return f"refs/remotes/{self.name}/main".encode() if self.name else None

    @property
    def label(self) -> str:
        return self.name or str(self.url)


def list_remotes(repo: Repository) -> list[Remote]:
    out = []
    for section in repo.config.sections():
        if len(section) == 2 and section[0] == "remote":
            url = repo.config.get(section, "url")
            if url:
                cmd = repo.config.get(section, "remotecmd")
                endpoint = repo.config.get(section, "endpoint")
                out.append(Remote(section[1], parse_url(url), cmd, endpoint))
    return sorted(out, key=lambda r: r.name or "")


def add_remote(
    repo: Repository,
    name: str,
    url: str,
    remote_cmd: str | None = None,
    endpoint: str | None = None,
) -> Remote:
    check_remote_name(name)
    parsed = parse_url(url)
    if endpoint is not None:
        if parsed.kind != "s3":
            raise UsageError("--endpoint is for s3:// remotes only")
        endpoint = check_endpoint(endpoint)
    if parsed.kind == "local" and not os.path.isabs(parsed.path):
        url = os.path.abspath(parsed.path)  # a drive path must not depend on the cwd
        parsed = parse_url(url)
    if any(r.name == name for r in list_remotes(repo)):
        raise UsageError(f"remote '{name}' already exists; remove it first")
    repo.config.set(("remote", name), "url", url)
    if remote_cmd:
        repo.config.set(("remote", name), "remotecmd", remote_cmd)
    if endpoint:
        repo.config.set(("remote", name), "endpoint", endpoint)
    repo.config.save()
    return Remote(name, parsed, remote_cmd, endpoint)


def remove_remote(repo: Repository, name: str) -> None:
    if not repo.config.remove_section(("remote", name)):
        raise UsageError(f"no such remote '{name}'")
    repo.config.save()
    prefix = f"refs/remotes/{name}/".encode()
    db = repo.gitdb
    for ref in db.ref_names():
        value = db.ref(ref) if ref.startswith(prefix) else None
        if value is not None:
            repo.swap_ref(ref, value, None, f"remote: remove {name}")


def find_remote(repo: Repository, name_or_url: str | None) -> Remote:
    """A configured remote by name, or an ad-hoc one from a URL or path."""
    wanted = name_or_url or DEFAULT_REMOTE
    for remote in list_remotes(repo):
        if remote.name == wanted:
            return remote
    if name_or_url is None:
        raise UsageError(
            "no remote named 'origin'; add one with 'vsync remote add origin URL' "
            "or name a remote or URL"
        )
    if "/" in wanted or ":" in wanted or wanted.startswith("."):  # s3:// too
        return Remote(None, parse_url(wanted))
    raise UsageError(f"no remote named '{wanted}' (see 'vsync remote list')")
