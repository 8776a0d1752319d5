"""Named fault points: places in the code where a test may pause or kill the process.

``point("name")`` does nothing unless the environment variable ``VSYNC_FAULTS``
asks for something there. Tests set it to a comma-separated list of
``[COMMAND/]NAME=ACTION``; with ``COMMAND/`` the item applies only to that
vsync command (``push/ref-swapped=kill`` kills the client of a push, not the
``serve`` it starts, which inherits the environment). NAME ``*`` stands for
every point. Actions:

- ``sleep:SECONDS``: pause there (to hold a race window open);
- ``hold:FILE``: pause there until FILE exists (the test creates it once it has
  done what it needed the window for; checked every 10 ms, and given up after
  300 s so that a test that never releases it cannot hang a run);
- ``kill``: SIGKILL this process there (a crash at exactly that step);
- ``kill@N``: SIGKILL the N-th time the point is reached (N from 1);
- ``kill-after:SECONDS``: start a timer there that SIGKILLs the process
  SECONDS later, wherever it is then (a crash at a chosen moment of the work,
  not of the interpreter's start-up: ``*=kill-after:S`` counts from the first
  point the process reaches). A process arms one timer at most.

``VSYNC_FAULTS_TRACE=FILE`` appends a line ``COMMAND NAME SECONDS`` to FILE
for every point reached (seconds since the first point of the process), and
``COMMAND exit SECONDS`` at a normal exit: the crash tests learn from it which
points a command passes and how long its work takes.

The variables are read once, at import; when both are unset a point costs one
dictionary lookup on an empty dict. Nothing but tests sets them.

The points (the crash tests kill at every one of them):

- ``lock-taken``: the repository lock is held; the command's work begins.
- ``session-open``: a client and a server have exchanged their hellos
  (commands that only read, a push's client and a fetch's server, take no lock).
- ``temp-pack-created``, ``temp-pack-sealing``: a temporary chunk pack was
  just created (not yet flocked); it is complete and fsynced, not yet renamed.
- ``git-pack-written``, ``git-pack-renamed``: a new git pack is complete
  under its temporary name; it has its final name and no index yet.
- ``ref-swap``, ``ref-swapped``: before and after a ref's compare-and-swap;
  ``ref-lock-held``: inside it, dulwich holds the ref's ``.lock`` file (the
  reflog line appended, the lock not yet renamed over the ref).
- ``merge-state-written``: a merge state is complete and synced under its
  temporary name, not yet in place.
- ``gc-marked``, ``gc-sweeping``, ``gc-pack-removed``: gc has marked every
  live chunk (nothing changed yet); has copied them and is about to delete
  old packs; has deleted one.
- ``chunk-offered``, ``offer-received``, ``offer-stored``: ``vsync sync``'s client
  has just sent one chunk while its commit runs (capability ``send-v1``); the
  server has read one offered chunk (not yet verified or stored); the server has
  stored every chunk offered in the session, not yet answered OFFER_END.
- ``incoming-pack-received``: a received git pack is whole in ``incoming/``
  (flocked), not yet checked or added to the store (both the fetching client
  and the server of a push).
- ``folder-scanned``: the working folder has been walked (every file's size
  and stat taken), none of it read yet (:func:`vsync.model.folder_snapshot.read_working`).
- ``file-replaced``: a file or symlink has just replaced its target in the
  working folder (:class:`vsync.ops.folder_writer.FolderWriter`).
- ``file-rebuilding``, ``file-rebuilt``: a new version of a working file is
  being built from the ranges its current copy shares (:mod:`vsync.model.rebuild`):
  the first range is in its temporary file; the temporary file is complete, the
  current copy not yet checked again, nothing renamed.
- ``file-filling``, ``files-filled``: a fetch that fills working files as their
  chunks arrive (:mod:`vsync.model.prefill`) has written a received chunk into
  them; has completed every one of them (temporary files, nothing renamed, the
  received git pack not yet in the object store).
- ``objstore-before-link``, ``objstore-before-swap``: a folder object store's
  temporary file is complete and fsynced, not yet linked to its name (write if
  absent) or renamed over it (compare-and-swap, under its lock). An S3 object
  store passes ``objstore-before-swap`` after reading the object back and
  comparing it, before its conditional PUT (``If-Match`` on the ETag it read).
- ``git-config-written``: opening a repository made before issue 17, vsync
  rewrites ``git/config`` (``core.fsync`` for ``core.fsyncObjectFiles``): the
  new config is complete and synced in ``config.lock``, not yet renamed.
- ``encrypted-push-before-index``, ``encrypted-push-before-branch``: a push to an
  encrypted remote has written a chunk pack and not its index; has written every
  pack and index and its git packs, and not yet moved ``refs/main``.
- ``encrypted-push-git-pack-stored``: such a push has written one more of its git
  packs (``git/<hex>``; passed in their order, once each is stored; others may be
  on their way meanwhile; a git pack the remote already held is not written again
  and does not pass here).
- ``objstore-created``: a new folder object store (``vsync init --bare --encrypted``,
  here or in ``vsync serve``) is complete under ``PATH.init-tmp``, not yet renamed.
- ``key-written``, ``key-removing``: ``vsync key add|change`` has written a new key
  file and read it back; ``key remove|change`` is about to delete an old one.
- ``remote-gc-deleting``, ``remote-gc-deleted``: ``vsync gc --remote`` holds the
  remote's exclusive lock and knows what to delete; nothing is deleted yet; it has
  just deleted one object (an index before its pack).
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time

ENV = "VSYNC_FAULTS"
TRACE_ENV = "VSYNC_FAULTS_TRACE"


def _parse(spec: str) -> dict[str, str]:
    faults = {}
    for item in spec.split(","):
        name, sep, action = item.strip().partition("=")
        if name and sep:
            faults[name] = action
    return faults


_FAULTS = _parse(os.environ.get(ENV, ""))
_TRACE = os.environ.get(TRACE_ENV, "")
_command = ""
_hits: dict[str, int] = {}
_started: float | None = None
_armed = False


def set_command(name: str) -> None:
    """The vsync command this process runs (``COMMAND/`` items match it)."""
    global _command
    _command = name
    if _TRACE:
        atexit.register(_trace, "exit")


HOLD_LIMIT = 300.0


def _hold(release: str) -> None:
    deadline = time.monotonic() + HOLD_LIMIT
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _trace(name: str) -> None:
    global _started
    now = time.monotonic()
    if _started is None:
        _started = now
    line = f"{_command or '-'} {name} {now - _started:.6f}\n".encode()
    fd = os.open(_TRACE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def wanted(name: str) -> bool:
    """Whether the tests asked for an action (or a trace) at the point ``name``."""
    if _TRACE:
        return True
    return any(key in _FAULTS for key in (name, f"{_command}/{name}", "*", f"{_command}/*"))


def point(name: str) -> None:
    """The fault point ``name``: carry out its action if the tests asked for one."""
    global _armed
    if not (_FAULTS or _TRACE):
        return
    if _TRACE:
        _trace(name)
    action = (
        _FAULTS.get(f"{_command}/{name}")
        or _FAULTS.get(name)
        or _FAULTS.get(f"{_command}/*")
        or _FAULTS.get("*")
    )
    if action is None:
        return
    kind, _, arg = action.partition(":")
    kind, _, nth = kind.partition("@")
    count = _hits[name] = _hits.get(name, 0) + 1
    if nth and count != int(nth):
        return
    if kind == "sleep":
        time.sleep(float(arg))
    elif kind == "hold":
        _hold(arg)
    elif kind == "kill":
        _kill()
    elif kind == "kill-after" and not _armed:
        _armed = True
        timer = threading.Timer(float(arg), _kill)
        timer.daemon = True
        timer.start()
