"""Named fault points: places in the code where a test may pause or kill the process.

``point("name")`` does nothing unless the environment variable ``VSYNC_FAULTS``
names that point. Tests set it to a comma-separated list of ``name=action``:

- ``sleep:SECONDS``: pause there (to hold a race window open);
- ``kill``: SIGKILL this process there (a crash at exactly that step).

The variable is read once, at import; when it is unset a point costs one
dictionary lookup on an empty dict. Nothing but tests sets it.

The points (name: where, what holds then):

- ``temp-pack-created``: a temp chunk pack was just created, not yet flocked
  (:mod:`vsync.store.chunkstore`);
- ``temp-pack-sealing``: a temp chunk pack is complete and fsynced, not yet
  renamed to its final name;
- ``ref-lock-held``: dulwich holds a ref's ``.lock`` file (written, not yet
  renamed over the ref), inside :meth:`vsync.model.gitdb.GitDB.swap_ref`;
- ``gc-marked``: gc has marked what is live and planned its rewrite, holding
  the exclusive repository lock, and has changed nothing yet;
- ``incoming-pack-received``: a received git pack is whole in
  ``incoming/`` (flocked), not yet checked or added to the store
  (:mod:`vsync.sync.transfer`, both the fetching client and the server of a push).
"""

from __future__ import annotations

import os
import signal
import time

ENV = "VSYNC_FAULTS"


def _parse(spec: str) -> dict[str, str]:
    faults = {}
    for item in spec.split(","):
        name, sep, action = item.strip().partition("=")
        if name and sep:
            faults[name] = action
    return faults


_FAULTS = _parse(os.environ.get(ENV, ""))


def wanted(name: str) -> bool:
    """Whether the tests asked for an action at the point ``name``."""
    return name in _FAULTS


def point(name: str) -> None:
    """The fault point ``name``: carry out its action if the tests asked for one."""
    action = _FAULTS.get(name)
    if action is None:
        return
    kind, _, arg = action.partition(":")
    if kind == "sleep":
        time.sleep(float(arg))
    elif kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
