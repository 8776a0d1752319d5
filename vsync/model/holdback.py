"""What vsync does not write into a tracked ``.git`` folder, and the record of it.

Synced folders often hold git checkouts, and vsync carries their ``.git``
folders as ordinary content. But git runs what some of those files say
(``.git/config``: ``core.fsmonitor``, ``core.hooksPath``, ``core.sshCommand``,
filters; ``.git/hooks/*``), so a peer could make git run its code. Unless the
copy trusts its peers (``safety.trustGitFolders = true`` in ``.vsync/config``,
which is never transferred), every writer of the working folder asks
:meth:`Holds.decide` first, and the entry is

- **held back** (not written at all) when, below the first ``.git``
  component of its path, it is a symlink, it is in or is a folder named
  ``hooks``, or it is named ``config``, ``config.worktree`` or ``commondir``
  (these cover submodule and worktree git folders, ``.git/modules/*/config``,
  too); or when it is ``.git`` itself as a file or symlink (a gitfile names
  another git folder);
- written **without its exec bit** when it is any other file under ``.git``;
- written as it is otherwise.

Names are compared after :func:`~vsync.model.paths.fold_name`, as a
case-insensitive file system would (``.git/HOOKS`` is ``.git/hooks``).

A held path must not become a deletion or a mode change in the next commit
(that would spread to every copy). So each hold is recorded in
``.vsync/held`` (like git's skip-worktree bit): the entry the tree has and the
``lstat`` of the path as the hold left it. While the path still has that
``lstat`` (or is still absent), reading the working folder takes it as the
tree's entry (:meth:`Holds.effective`); once the user changes it, it is an
ordinary local change. Writers release a record when they write or delete
the path for real; a commit drops records that no longer apply.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vsync.errors import DamagedRepository
from vsync.model.folder_scan import MODE_EXEC, MODE_FILE, MODE_LINK
from vsync.model.paths import GIT_NAME, fold_name
from vsync.model.repository import HELD_FILE
from vsync.model.statcache import Stat, StatKey, stat_key
from vsync.store.chunkstore import fsync_dir, replace_durably
from vsync.wording import plural

HELD_VERSION = 1
TRUST_KEY = "safety.trustGitFolders"
GIT_CONFIG_FILES = frozenset({"config", "config.worktree", "commondir"})
SHOWN = 10  # held paths named in the warning

Entry = tuple[int, bytes]


def hold_kind(path: str, mode: int) -> str | None:
    """``"held"``, ``"exec"`` (written without the exec bit) or None (written as is).

    The policy of the module docstring, for an entry of ``mode`` at ``path``.
    """
    if GIT_NAME not in path:
        return None
    parts = path.split("/")
    if GIT_NAME not in parts:
        return None
    rest = [fold_name(p) for p in parts[parts.index(GIT_NAME) + 1 :]]
    if not rest or mode == MODE_LINK or "hooks" in rest or rest[-1] in GIT_CONFIG_FILES:
        return "held"
    if mode == MODE_EXEC:
        return "exec"
    return None


@dataclass(frozen=True)
class Held:
    """One held path: the entry its tree has, and its lstat as the hold left it."""

    target: Entry
    disk: StatKey | None  # None: the hold left the path absent


class Holds:
    """The held paths of one repository (``.vsync/held``) and the decision for writers."""

    def __init__(self, control: Path, trusted: bool) -> None:
        self.path = control / HELD_FILE
        self.trusted = trusted
        self.records = _load(self.path)
        self.pending: dict[str, str] = {}  # held by this process, not yet reported
        self._dirty = False

    # -- the decision ------------------------------------------------------------

    def decide(self, path: str, mode: int) -> int | None:
        """The mode to write ``path``'s entry of ``mode`` with; None: do not write it."""
        if self.trusted:
            return mode
        kind = hold_kind(path, mode)
        if kind is None:
            return mode
        return MODE_FILE if kind == "exec" else None

    def settle(
        self, path: str, target: Entry, written: int | None, st: os.stat_result | None
    ) -> None:
        """Record what a writer did for ``target`` at ``path``.

        ``written`` is the mode :meth:`decide` gave (None: nothing written);
        ``st`` the path's lstat now (None: absent). Written as it is: any
        earlier hold of the path ends.
        """
        if written == target[0]:
            self.release(path)
            return
        self.records[path] = Held(target, None if st is None else stat_key(st))
        self.pending[path] = "held" if written is None else "exec"
        self._dirty = True

    def release(self, path: str) -> None:
        """``path`` was written or deleted for real: it is no longer held."""
        if self.records.pop(path, None) is not None:
            self._dirty = True

    def prune(self, active: Iterable[str]) -> None:
        """Keep only the records of ``active`` paths (after a commit of the whole folder)."""
        keep = set(active)
        for path in [p for p in self.records if p not in keep]:
            self.release(path)

    # -- reading the folder ------------------------------------------------------

    def effective(self, path: str, st: Stat | None) -> Entry | None:
        """The tree's entry for a held ``path`` whose lstat is still ``st`` as the
        hold left it (None: absent); None when it is not held or was changed since."""
        held = self.records.get(path)
        if held is None:
            return None
        return held.target if (None if st is None else stat_key(st)) == held.disk else None

    # -- keeping and reporting -----------------------------------------------------

    def save(self) -> None:
        """Write ``.vsync/held`` if it changed (temporary file, fsync, rename)."""
        if not self._dirty:
            return
        folder = self.path.parent
        if not self.records:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            fsync_dir(folder)
            self._dirty = False
            return
        body = {
            "version": HELD_VERSION,
            "held": [
                {
                    "path": path,
                    "mode": h.target[0],
                    "id": h.target[1].decode("ascii"),
                    "disk": None if h.disk is None else list(h.disk),
                }
                for path, h in sorted(self.records.items())
            ],
        }
        replace_durably(self.path, (json.dumps(body, indent=1, ensure_ascii=False) + "\n").encode())
        self._dirty = False

    def report(self, warn: Callable[[str], None]) -> None:
        """One warning naming what this process held back, and how to opt in."""
        if not self.pending:
            return
        items = sorted(self.pending.items())
        names = ", ".join(
            f"'{p}'" + (" (exec bit)" if kind == "exec" else "") for p, kind in items[:SHOWN]
        )
        more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
        warn(
            f"held back {plural(len(items), 'incoming path')} under .git folders that git "
            "could run: "
            f"{names}{more}; they were not written ('vsync status' lists them). If you trust "
            f"every copy of this folder, set {TRUST_KEY} = true in .vsync/config and run "
            "'vsync checkout HEAD'"
        )
        self.pending.clear()


def _load(path: Path) -> dict[str, Held]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        body = json.loads(raw)
        if body.get("version") != HELD_VERSION:
            raise ValueError(f"unknown version {body.get('version')!r}")
        out: dict[str, Held] = {}
        for item in body["held"]:
            disk = item["disk"]
            key: StatKey | None = None
            if disk is not None:
                a, b, c, d, e = (int(x) for x in disk)
                key = (a, b, c, d, e)
            oid = str(item["id"]).encode("ascii")
            if len(oid) != 40:
                raise ValueError("bad object id")
            out[str(item["path"])] = Held((int(item["mode"]), oid), key)
        return out
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeError) as exc:
        raise DamagedRepository(
            f"{path} is damaged ({exc}); remove it and run 'vsync checkout HEAD' "
            "(held .git paths are then written or held again)"
        ) from None
