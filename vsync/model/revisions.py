"""Revision names: what ``HEAD~2``, ``a1b2c3``, ``origin/main`` or ``HEAD@{2 days ago}`` mean.

Grammar (docs/user-guide.md)::

    rev     := base [ "@{" when "}" ] { "~" [N] | "^" [N] }
    base    := "HEAD" | "@" | ref name | full or abbreviated (>= 4 hex) commit id
    when    := N (the Nth earlier position of the ref) | a date: "yesterday",
               "3 days ago", "2026-11-01", "2026-11-01 14:00[:SS]", a Unix time

A date selects where the ref pointed at that moment, from its reflog.
``--at DATE`` (:func:`resolve_at`) is ``main@{DATE}`` with DATE always read
as a date.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from dulwich.approxidate import parse_approxidate

from vsync.errors import UnknownRevision, UsageError
from vsync.model.gitdb import Commit, ReflogEntry
from vsync.model.repository import BRANCH, Repository

_SUFFIX = re.compile(r"([~^])(\d*)")
_HEX = re.compile(r"[0-9a-fA-F]{4,40}")
_MINUTES = re.compile(r"^(\d{4}[-/]\d{2}[-/]\d{2})[ T](\d{1,2}):(\d{2})$")


def parse_when(text: str) -> int:
    """A Unix time for a date expression; raises ValueError."""
    t = text.strip()
    m = _MINUTES.match(t)
    if m:
        t = f"{m.group(1)} {int(m.group(2)):02d}:{m.group(3)}:00"
    if t in ("yesterday",):
        return int(time.time()) - 86400
    if re.fullmatch(r"\d+\s+\w+", t):  # "3 days" means "3 days ago"
        t += " ago"
    try:
        return parse_approxidate(t)
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(t).timestamp())
    except ValueError:
        raise ValueError(f"cannot understand the date {text!r}") from None


def _ref_candidates(name: str) -> list[bytes]:
    if name in ("HEAD", "@"):
        return [BRANCH]
    if name.startswith("refs/"):
        return [name.encode()]
    return [
        f"refs/heads/{name}".encode(),
        f"refs/remotes/{name}".encode(),
        f"refs/tags/{name}".encode(),
        f"refs/remotes/{name}/main".encode(),
    ]


def _split(spec: str) -> tuple[str, str | None, list[tuple[str, int]]]:
    when = None
    rest = spec
    suffix_start = len(rest)
    # peel ~N / ^N suffixes from the end
    ops: list[tuple[str, int]] = []
    m = re.search(r"((?:[~^]\d*)+)$", rest)
    if m and "}" not in m.group(1):
        suffix_start = m.start(1)
        ops = [(op, int(n) if n else 1) for op, n in _SUFFIX.findall(m.group(1))]
    rest = rest[:suffix_start]
    if rest.endswith("}") and "@{" in rest:
        idx = rest.index("@{")
        when = rest[idx + 2 : -1]
        rest = rest[:idx] or "HEAD"
    return rest, when, ops


def _typed_commit(repo: Repository, oid: bytes, spec: str) -> Commit:
    """The commit a user typed the id of: UnknownRevision if there is none (exit 2).

    Ids that history names (refs, reflogs, parents) are read with
    ``repo.gitdb.commit`` instead: one missing there is damage (exit 3).
    """
    obj = repo.gitdb.find(oid)
    if obj is None:
        raise UnknownRevision(spec, "no such commit")
    if not isinstance(obj, Commit):
        raise UnknownRevision(spec, "not a commit")
    return obj


def resolve(repo: Repository, spec: str) -> bytes:
    """The commit id ``spec`` names. Raises UnknownRevision."""
    spec = spec.strip()
    if not spec:
        raise UnknownRevision(spec, "empty revision")
    base, when, ops = _split(spec)
    db = repo.gitdb
    ref_name: bytes | None = None
    oid: bytes | None = None
    for cand in _ref_candidates(base):
        oid = db.ref(cand)
        if oid is not None:
            ref_name = cand
            break
    if oid is None and base in ("HEAD", "@"):
        raise UnknownRevision(spec, "there are no commits yet")
    commit: Commit | None = None
    if oid is None and _HEX.fullmatch(base):
        prefix = base.lower().encode()
        if len(prefix) == 40:
            commit = _typed_commit(repo, prefix, spec)
        else:
            matches = [o for o in db.ids_with_prefix(prefix) if isinstance(db.find(o), Commit)]
            if len(matches) > 1:
                raise UnknownRevision(spec, f"ambiguous: {len(matches)} commits start with {base}")
            if not matches:
                raise UnknownRevision(spec)
            commit = db.commit(matches[0])
    elif oid is None:
        raise UnknownRevision(spec)
    if when is not None:
        if ref_name is None:
            raise UnknownRevision(spec, "@{...} needs a ref name such as HEAD or main")
        if when.strip() != "0":  # @{0} is where the ref points now, reflog or not
            oid = _reflog_at(repo, ref_name, when, spec)
    if commit is None or when is not None:
        assert oid is not None
        commit = db.commit(oid)
    for op, n in ops:
        if op == "~":
            for _ in range(n):
                if not commit.parents:
                    raise UnknownRevision(spec, "history is not that long")
                commit = db.commit(commit.parents[0])
        else:
            if n == 0:
                continue
            if n > len(commit.parents):
                raise UnknownRevision(spec, f"commit has no parent #{n}")
            commit = db.commit(commit.parents[n - 1])
    return commit.id


def _reflog(repo: Repository, ref: bytes) -> list[ReflogEntry]:
    """The ref's readable reflog lines, oldest first (a torn line is skipped)."""
    return [e for e in repo.gitdb.reflog(ref) if isinstance(e, ReflogEntry)]


def _reflog_at(repo: Repository, ref: bytes, when: str, spec: str) -> bytes:
    entries = _reflog(repo, ref)
    if not entries:
        raise UnknownRevision(spec, "no history of where the ref pointed is recorded")
    if when.isdigit() and int(when) < 100000:
        n = int(when)
        if n >= len(entries):
            raise UnknownRevision(spec, f"the ref has only {len(entries)} recorded positions")
        new = entries[-1 - n].new
        if new is None:
            raise UnknownRevision(spec, "the ref pointed at no commit then")
        return new
    try:
        target = parse_when(when)
    except ValueError as exc:
        raise UnknownRevision(spec, str(exc)) from None
    found = _position_at(entries, target)
    if found is None:
        first = datetime.fromtimestamp(entries[0].time).strftime("%Y-%m-%d %H:%M:%S")
        raise UnknownRevision(spec, f"that is before the first recorded commit ({first})")
    return found


def _position_at(entries: list[ReflogEntry], target: int) -> bytes | None:
    """Where the ref pointed at Unix time ``target``; None if it pointed nowhere then."""
    for entry in reversed(entries):
        if entry.time <= target:
            return entry.new
    return None


def resolve_at(repo: Repository, when: str) -> bytes:
    """The commit ``main`` pointed at on the date ``when`` (``--at``), from its reflog.

    ``when`` is always a date (``--at 3`` is not a reflog position). Raises
    UsageError (exit 2) for a date vsync cannot read, a date before the first
    recorded commit, or a moment when the branch had no commit.
    """
    try:
        target = parse_when(when)
    except ValueError as exc:
        raise UsageError(f"--at: {exc} (try '2026-11-01 14:00' or '3 days ago')") from None
    entries = _reflog(repo, BRANCH)
    if not entries:
        raise UsageError("--at: there are no commits yet")
    found = _position_at(entries, target)
    if found is None:
        first = datetime.fromtimestamp(entries[0].time).strftime("%Y-%m-%d %H:%M:%S")
        stamp = datetime.fromtimestamp(target).strftime("%Y-%m-%d %H:%M:%S")
        raise UsageError(
            f"--at {when!r}: main had no commit on {stamp} (the first was recorded on "
            f"{first}); pick a later date"
        )
    return repo.gitdb.commit(found).id


def split_rev_path(spec: str) -> tuple[str, str] | None:
    """``REV:PATH`` split at its first ':' outside an ``@{...}`` date; None without one."""
    i = 0
    while i < len(spec):
        if spec.startswith("@{", i):
            close = spec.find("}", i + 2)
            if close < 0:
                return None
            i = close + 1
        elif spec[i] == ":":
            return spec[:i], spec[i + 1 :]
        else:
            i += 1
    return None


def resolve_rev_path(repo: Repository, spec: str) -> tuple[bytes, str]:
    """Split ``REV:PATH`` (``:PATH`` means HEAD) into a commit id and a path."""
    parts = split_rev_path(spec)
    if parts is None:
        raise UnknownRevision(spec, "expected REV:PATH")
    rev, path = parts[0] or "HEAD", parts[1].strip("/")
    return resolve(repo, rev), path
