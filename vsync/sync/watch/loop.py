"""The watcher: folder events and remote notifications in, cycles out.

A cycle runs when the folder has settled (no event for ``settle`` seconds, no
changed file open for writing or still growing) or when the remote moved (a
REF_MOVED, or the periodic fetch when the remote cannot notify). A failed
cycle is tried again with backoff (1 s doubling to 60 s); the user is told once
when the remote is lost and once when it is back. ``stop()`` (SIGTERM) ends
the loop after the step in progress.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from vsync.errors import DamagedRepository, StoppedError, UsageError, VsyncError
from vsync.model.config import idle_timeout
from vsync.model.repository import Repository
from vsync.ops.mass_change import MassChangeRefused
from vsync.ops.merge.integrate import Integration
from vsync.sync.client import SyncOptions, TransferResult
from vsync.sync.errors import TransportError
from vsync.sync.remotes import Remote
from vsync.sync.watch.backoff import Backoff
from vsync.sync.watch.cycle import CycleResult, run_cycle, unresolved
from vsync.sync.watch.events import SETTLE_SECONDS, FolderEvents
from vsync.sync.watch.fsmon import MonitorService
from vsync.sync.watch.notify import RemoteNotifier
from vsync.sync.watch.state import Reporter, WatchState
from vsync.sync.watch.writers import open_for_writing, sizes
from vsync.wording import plural

TICK = 0.1  # the longest the loop sleeps without looking again
WRITERS_EVERY = 0.25  # seconds between two looks at the changed files (writers, sizes)
DEFAULT_POLL = 30.0
SLEEP_JUMP = 10.0  # a tick this much longer than asked: the machine slept; catch up


@dataclass
class WatchSettings:
    poll_interval: float = DEFAULT_POLL
    settle: float = SETTLE_SECONDS
    notify: bool = True  # use watch-v1 when the remote has it (never for a path remote)


def poll_interval(repo: Repository, override: float | None) -> float:
    """``--poll-interval``, else ``watch.pollInterval`` of the config, else 30 s."""
    if override is not None:
        raw: str | None = str(override)
        where = "--poll-interval"
    else:
        raw = repo.config.get(("watch",), "pollInterval")
        where = f"{repo.config.path}: watch.pollInterval"
    if raw is None:
        return DEFAULT_POLL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 86400:
        raise UsageError(f"{where} must be a number of seconds from 0.1 to 86400, not {raw!r}")
    return value


class Watcher:
    def __init__(
        self,
        repo: Repository,
        remote: Remote,
        opts: SyncOptions,
        reporter: Reporter,
        settings: WatchSettings,
    ) -> None:
        self.repo = repo
        self.root = repo.require_worktree()
        self.remote = remote
        self.opts = opts
        self.reporter = reporter
        self.settings = settings
        self.state = WatchState(remote.label)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._remote_value: bytes | None = None  # the remote's branch as last heard
        self._remote_heard = False  # a REF_MOVED (or WATCHING) not yet acted on
        self._known_remote: bytes | None = None  # the remote's branch as our last cycle left it
        self._synced_once = False
        self._backoff = Backoff()
        self._retry_at = 0.0
        self._offline = False
        self._paused = False
        self._told_conflicts: list[str] | None = None
        self._told_waiting: set[str] = set()
        self._sizes: dict[str, int] | None = None
        self._writers_at = 0.0
        self._lock = threading.Lock()
        self.notifier: RemoteNotifier | None = None
        self.events: FolderEvents | None = None

    # -- control ------------------------------------------------------------
    def stop(self) -> None:
        """End after the step in progress (SIGTERM)."""
        self.stopping.set()
        self.wake.set()

    def _warn(self, message: str) -> None:
        self.reporter.event("warning", message=message)

    # -- remote notifications (called on the notifier's thread) ---------------
    def _on_moved(self, value: bytes | None) -> None:
        with self._lock:
            self._remote_value = value
            self._remote_heard = True
        self.wake.set()

    def _on_notify_state(self, what: str, detail: str) -> None:
        if what == "listening":
            self.state.mode = "notify"
            self.reporter.event("listening", remote=self.remote.label)
        else:
            self.state.mode = "poll"
            self.reporter.event(f"notify-{what}", remote=self.remote.label, detail=detail)
        self.wake.set()

    # -- one cycle for --once --------------------------------------------------
    def once(self) -> CycleResult:
        result = run_cycle(
            self.repo, self.remote, self.opts, self._warn, fetch=True, known_remote=None
        )
        self._after_cycle(result, set())
        return result

    # -- the loop ---------------------------------------------------------------
    def run(self) -> None:
        self.events = FolderEvents(self.root, self.wake)
        self.events.start()
        monitor = MonitorService(self.root, self.repo.control, self.reporter)
        monitor.start()  # status and commit ask it what changed (docs/format.md)
        use_notify = self.settings.notify and self.remote.url.kind == "ssh"  # s3: polls
        if use_notify:
            self.notifier = RemoteNotifier(
                self.remote,
                self.opts,
                idle_timeout(self.repo.config),
                self._on_moved,
                self._on_notify_state,
            )
            self.notifier.start()
        self.state.mode = "poll"  # "notify" once the remote's WATCHING arrives
        self.reporter.event(
            "started",
            folder=str(self.root),
            remote=self.remote.label,
            mode="notify" if use_notify else "poll",
            poll=f"{self.settings.poll_interval:g}",
        )
        try:
            self._loop()
        finally:
            self.events.stop()
            monitor.stop()
            if self.notifier is not None:
                self.notifier.stop()
        self.reporter.event("stopped")

    def _loop(self) -> None:
        assert self.events is not None
        need_fetch = True  # catch up at start
        next_poll = time.monotonic() + self.settings.poll_interval
        last_tick = time.monotonic()
        while not self.stopping.is_set():
            now = time.monotonic()
            if now - last_tick > TICK + SLEEP_JUMP:
                need_fetch = True  # the machine slept: the remote may have moved
                self._retry_at = 0.0
            last_tick = now
            if self.events.error is not None:
                raise StoppedError(f"watching the folder failed: {self.events.error}")
            if now >= next_poll:
                next_poll = now + self.settings.poll_interval
                if self.notifier is None or not self.notifier.connected:
                    need_fetch = True  # no notifications: fetch periodically
            with self._lock:
                if self._remote_heard:
                    self._remote_heard = False
                    if self._remote_value != self._known_remote or not self._synced_once:
                        need_fetch = True
            self.state.pending = self.events.pending
            if self._paused:
                self._show()
                self._sleep()
                continue
            merge_open = unresolved(self.repo)
            if merge_open is not None:
                self._conflicts(merge_open)
                self._sleep()
                continue
            if self._told_conflicts is not None:  # the user settled the merge
                self._told_conflicts = None
                self.state.conflicts = 0
                self.reporter.event("resolved")
                need_fetch = True
            local = self._settled()
            if local is None:  # changes still being written: wait for them
                self._sleep()
                continue
            if (need_fetch or local) and now >= self._retry_at:
                taken = self.events.take()
                need_fetch = self._cycle(need_fetch, taken)
            self._show()
            self._sleep()

    def _sleep(self) -> None:
        self.wake.wait(TICK)
        self.wake.clear()

    def _settled(self) -> bool | None:
        """True: changes wait and have settled; False: nothing pending; None: not yet."""
        assert self.events is not None
        if not self.events.pending:
            self._sizes = None
            return False
        if self.events.quiet_for() < self.settings.settle:
            self._sizes = None
            return None
        now = time.monotonic()
        paths = self.events.peek()
        if now - self._writers_at < WRITERS_EVERY:
            return None
        self._writers_at = now
        busy = open_for_writing(self.root, paths)
        current = sizes(self.root, paths)
        growing = self._sizes is not None and current != self._sizes
        first_look = self._sizes is None
        self._sizes = current
        if busy:
            new = busy - self._told_waiting
            if new:
                self.reporter.event(
                    "waiting", reason="open-for-writing", paths=len(busy), first=sorted(new)[0]
                )
            self._told_waiting |= busy
            self.state.transfer, self.state.detail = (
                "waiting",
                f"{plural(len(busy), 'file')} being written",
            )
            self._show()
            return None
        if growing or first_look:
            return None  # look once more: a file still growing is not committed
        self._told_waiting.clear()
        self._sizes = None
        return True

    def _cycle(self, need_fetch: bool, taken: set[str]) -> bool:
        """Run one cycle; the new ``need_fetch``."""
        assert self.events is not None
        self.state.transfer, self.state.detail = "syncing", ""
        self._show()
        with self._lock:
            unchanged = (
                self.notifier is not None
                and self.notifier.connected
                and self._synced_once
                and self._remote_value == self._known_remote
            )
        try:
            result = run_cycle(
                self.repo,
                self.remote,
                self.opts,
                self._warn,
                fetch=need_fetch or not self._synced_once,
                known_remote=self._known_remote,
                remote_unchanged=unchanged,
            )
        except MassChangeRefused as refusal:
            self._paused = True
            why = refusal.change.describe()
            self.state.transfer, self.state.detail = "paused", why
            self.reporter.event(
                "paused",
                reason=why,
                hint="nothing more is synced: check the folder, run 'vsync sync "
                "--allow-mass-change' if the change is wanted, then start vsync watch again",
            )
            return False
        except DamagedRepository:
            raise
        except (UsageError, VsyncError, OSError) as exc:
            if isinstance(exc, UsageError) and not isinstance(exc, StoppedError):
                raise
            self.events.put_back(taken)
            self._failed(exc)
            return True
        self._after_cycle(result, taken)
        return result.raced

    def _failed(self, exc: BaseException) -> None:
        delay = self._backoff.failed()
        self._retry_at = time.monotonic() + delay
        self.state.transfer, self.state.detail = "offline", str(exc)
        self.state.retry_in = delay
        if not self._offline:
            self._offline = True
            name = "offline" if isinstance(exc, TransportError | OSError) else "error"
            self.reporter.event(name, remote=self.remote.label, error=str(exc), retry="backoff")

    def _after_cycle(self, result: CycleResult, taken: set[str]) -> None:
        if self._offline:
            self._offline = False
            self.reporter.event("online", remote=self.remote.label)
        self._backoff.reset()
        self._retry_at = 0.0
        self.state.retry_in = None
        self.state.transfer, self.state.detail = "idle", ""
        for path in result.skipped:
            self.reporter.event("skipped", path=path)
        if result.fetched is not None or result.pushed is not None:
            self._synced_once = True
            self._known_remote = result.remote_head
            self.state.last_sync = time.time()
        moved = result.outcome not in (None, Integration.UP_TO_DATE, Integration.AHEAD)
        if result.committed is not None or result.pushed is not None or moved:
            fields: dict[str, object] = {"changes": len(taken)}
            if result.committed is not None:
                fields["committed"] = result.committed.decode()[:10]
            if moved and result.outcome is not None:
                fields["pulled"] = result.outcome.value
            if result.pushed is not None:
                fields["pushed"] = result.pushed.new.decode()[:10] if result.pushed.new else "-"
                self._rate(result.pushed)
            if result.fetched is not None and not result.fetched.up_to_date:
                self._rate(result.fetched)
            if result.remote_head is not None:
                fields["remote"] = result.remote_head.decode()[:10]
            self.reporter.event("synced" if result.fetched is not None else "committed", **fields)
        if result.waiting_on_merge:
            self._conflicts(result.conflicts)

    def _rate(self, transfer: TransferResult) -> None:
        moved = transfer.wire_sent + transfer.wire_received
        if transfer.seconds > 0 and moved:
            self.state.last_rate = moved / transfer.seconds

    def _conflicts(self, paths: list[str]) -> None:
        self.state.conflicts = len(paths)
        self.state.transfer = "conflicts"
        if self._told_conflicts != paths:
            self._told_conflicts = paths
            self.reporter.event(
                "conflict",
                paths=len(paths),
                first=paths[0] if paths else "",
                hint="settle with 'vsync resolve' and 'vsync commit'; watching goes on",
            )
            self._show()

    def _show(self) -> None:
        self.reporter.status(self.state)
