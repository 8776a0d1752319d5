"""The mass-change guard: a step that would delete or overwrite many tracked files asks first.

The loss most reported by users of folder-sync tools: one copy's folder is
wiped, half-mounted or encrypted, the tool records that as deletions or
edits, and every other copy applies them. Before vsync writes anything, it
counts how many *tracked files* (the paths the branch's last commit holds) a
step would delete or overwrite:

- bringing in another copy's commits (``pull``, ``sync``, ``merge``): the
  paths of HEAD that the fast-forward's or the merge's result no longer
  holds (deleted) or holds with other content, mode or type (overwritten;
  a conflict that leaves markers in place counts too);
- the commit inside ``sync``: the paths of HEAD that the folder no longer
  holds, or holds changed.

A file that moved is neither: a deleted path whose exact entry (content and
mode) arrives at another path in the same step counts as moved, one for one.

A step is a *mass change* when at least ``minimum`` tracked files change and
more than ``fraction`` of them, or more than ``files`` of them, do
(:class:`MassChangeLimits`; ``[safety]`` keys ``massChangeFraction``,
``massChangeFiles``, ``massChangeMinimum`` of the repository config). A mass
change raises :class:`MassChangeRefused` (exit 1) before the step writes the
folder or moves the branch, unless it is allowed: ``allow_mass_change``, or
a ``confirm`` callback (the CLI's question on a terminal) that says yes, in
which case the step is run again, allowed (:func:`guarded`).

Errors::

    StoppedError (1)
    +-- MassChangeRefused      a step would delete or overwrite too many tracked files
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from vsync.errors import StoppedError, UsageError
from vsync.model.config import RepoConfig
from vsync.model.snapshot import FlatMap
from vsync.wording import plural

T = TypeVar("T")

SECTION = ("safety",)
ALLOW_HINT = "--allow-mass-change"


@dataclass(frozen=True)
class MassChangeLimits:
    """When a step counts as a mass change (see the module docstring)."""

    fraction: float = 0.10  # more than this share of the tracked files ...
    files: int = 50  # ... or more than this many of them
    minimum: int = 5  # below this many changed files, never

    @classmethod
    def from_config(cls, cfg: RepoConfig) -> MassChangeLimits:
        """The ``[safety] massChange*`` keys, checked: a bad value is a UsageError (exit 2)."""
        d = cls()
        return cls(
            fraction=_number(cfg, "massChangeFraction", d.fraction, 0.0, 1.0, integer=False),
            files=int(_number(cfg, "massChangeFiles", d.files, 0, math.inf, integer=True)),
            minimum=int(_number(cfg, "massChangeMinimum", d.minimum, 0, math.inf, integer=True)),
        )

    def exceeded(self, changed: int, tracked: int) -> bool:
        if changed < self.minimum:
            return False
        return changed > self.files or changed > self.fraction * tracked


def _number(
    cfg: RepoConfig, key: str, default: float, low: float, high: float, integer: bool
) -> float:
    raw = cfg.get(SECTION, key)
    if raw is None:
        return default
    try:
        value = float(int(raw.strip())) if integer else float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also NaN
        want = "a whole number, 0 or more" if integer else "a number from 0 to 1 (0.1: 10%)"
        raise UsageError(f"{cfg.path}: safety.{key} must be {want}, not {raw!r}")
    return value


@dataclass(frozen=True)
class MassChange:
    """What a refused step would have done to the tracked files."""

    step: str  # "commit" (sync's commit of the folder) | "apply" (bringing commits in)
    source: str  # apply: what was being brought in ("origin", "origin/main")
    rev: str  # apply: the commit brought in (10 hex), for 'vsync diff HEAD REV'
    deleted: int
    overwritten: int
    tracked: int
    limits: MassChangeLimits

    @property
    def changed(self) -> int:
        return self.deleted + self.overwritten

    def summary(self) -> str:
        """What the step would do, with the limit: the question a terminal is asked."""
        pct = 100 * self.changed / self.tracked if self.tracked else 100.0
        limit = (
            f"{pct:.0f}%; the limit is more than {self.limits.fraction:.0%} "
            f"or more than {plural(self.limits.files, 'file')}"
        )
        if self.step == "commit":
            return (
                f"{self.deleted} of the {self.tracked} tracked files were deleted and "
                f"{self.overwritten} changed since the last commit ({limit})"
            )
        return (
            f"applying {self.source} would delete {self.deleted} and overwrite "
            f"{self.overwritten} of the {self.tracked} tracked files here ({limit})"
        )

    def describe(self) -> str:
        """One sentence: the counts, the limit, that nothing changed, and the way out."""
        if self.step == "commit":
            return (
                f"refusing a mass change: {self.summary()}; nothing was committed or sent. "
                "If the folder is as you want it (not wiped or unmounted by mistake), "
                f"run again with {ALLOW_HINT}"
            )
        return (
            f"refusing a mass change: {self.summary()}; nothing was changed. See what it "
            f"changes with 'vsync diff HEAD {self.rev}'; if this is intended, run again "
            f"with {ALLOW_HINT}"
        )


class MassChangeRefused(StoppedError):
    """A step would delete or overwrite too many tracked files; it changed nothing."""

    def __init__(self, change: MassChange) -> None:
        super().__init__(change.describe())
        self.change = change


Confirm = Callable[[MassChange], bool]
Check = Callable[[FlatMap, FlatMap], None]


def assess(
    tracked: FlatMap, after: FlatMap, limits: MassChangeLimits, step: str, source: str, rev: str
) -> MassChange | None:
    """The mass change going from ``tracked`` (HEAD) to ``after``, or None if it is not one."""
    gone = [e for p, e in tracked.items() if p not in after]
    overwritten = sum(1 for p, e in tracked.items() if p in after and after[p] != e)
    arrived = Counter(e for p, e in after.items() if tracked.get(p) != e)
    deleted = 0
    for entry in gone:
        if arrived[entry] > 0:
            arrived[entry] -= 1  # moved: the same content and mode at a new path
        else:
            deleted += 1
    if not limits.exceeded(deleted + overwritten, len(tracked)):
        return None
    return MassChange(step, source, rev, deleted, overwritten, len(tracked), limits)


def checker(
    cfg: RepoConfig, allow: bool, step: str, source: str = "", rev: str = ""
) -> Check | None:
    """A check of a step's (tracked, after) maps raising MassChangeRefused; None if allowed.

    ``step`` is "commit" or "apply"; for "apply", ``source`` names what is brought in
    and ``rev`` its commit (see :class:`MassChange`)."""
    if allow:
        return None
    limits = MassChangeLimits.from_config(cfg)

    def check(tracked: FlatMap, after: FlatMap) -> None:
        change = assess(tracked, after, limits, step, source, rev)
        if change is not None:
            raise MassChangeRefused(change)

    return check


def guarded(run: Callable[[bool], T], allow: bool, confirm: Confirm | None) -> T:
    """``run(allow)``; a refused mass change is put to ``confirm`` and, on yes, run again
    allowed. Without ``confirm`` (no terminal) the refusal stands."""
    try:
        return run(allow)
    except MassChangeRefused as exc:
        if allow or confirm is None or not confirm(exc.change):
            raise
    return run(True)
