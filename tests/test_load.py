"""Load: sixteen copies of one folder edit, commit and sync at once, through one
server repository over a real sshd, and nothing is lost.

Each client is its own folder (cloned from the server) driven by its own thread
through the real ``vsync`` CLI. Every round it edits (its own log file always;
now and then its section of a shared text file, a shared binary file, a shared
text file everyone appends to, or a file several clients create in the same
round), commits and syncs. A sync that stops on conflicts is settled as a user
keeping everything would: ``vsync resolve --both`` (text: both versions one after
the other; binary: theirs kept beside ours as a conflict copy), ``vsync commit``,
sync again. A push refused because the server moved is retried (a sync pulls
first) up to ``RETRIES`` times in a round; after that the commits wait for the
next round's sync, as a busy user's would.

Every edit writes a unique marker (``<c07-r12-own>``). At the end every client
syncs twice in turn; then every client's main is the server's main, every marker
is in the final folder (in the file it was written to, merged, or in a conflict
copy), ``vsync fsck`` is clean everywhere, and the serve processes' fault-point
trace shows sessions that really ran at the same time on the server.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import Run, run_vsync, wait_for_serve_exit

from vsync.store import faults

CLIENTS = 16
# Issue 12 asks for 25 rounds; measured on this 2-core machine that takes about 24 minutes
# under the other helpers' load (about 940 syncs, each two SSH sessions and three Python
# processes), so `make test` runs 6 and `make reliability` (VSYNC_RELIABILITY_OUT) the 25.
ROUNDS = int(
    os.environ.get("VSYNC_LOAD_ROUNDS", "25" if os.environ.get("VSYNC_RELIABILITY_OUT") else "6")
)
RETRIES = 1  # syncs again after a refused push, per round
SEED = 12
SECTIONS = "shared/sections.txt"  # client i inserts into its own section: line merges
HOT_TEXT = "shared/hot.txt"  # everyone appends in HOT_ROUNDS: text conflicts
HOT_BINARY = ("shared/hot0.bin", "shared/hot1.bin")  # binary conflicts, conflict copies
HOT_ROUNDS = (ROUNDS // 4, 2 * ROUNDS // 3)  # 25 rounds: 6, 16
ADD_ROUNDS = (ROUNDS // 8, ROUNDS // 2, 3 * ROUNDS // 4)  # new-rNN.txt: add/add conflicts
REJECTED = "remote has commits you do not have; pull first"
TIMEOUT = 300  # seconds for one command: a hang fails the test, naming the command


def own_log(i: int) -> str:
    return f"c{i:02d}/log.txt"


def header(i: int) -> str:
    return f"== section {i:02d} ==\n"


def seed_folder(root: Path) -> None:
    root.mkdir()
    run_vsync("init", cwd=root)
    (root / "shared").mkdir()
    (root / SECTIONS).write_text(
        "".join(f"{header(i)}section {i:02d} starts\n" for i in range(CLIENTS))
    )
    (root / HOT_TEXT).write_text("everyone appends here\n")
    for name in HOT_BINARY:
        (root / name).write_bytes(b"\0binary\n")
    for i in range(CLIENTS):
        (root / f"c{i:02d}").mkdir()
        (root / own_log(i)).write_text(f"client {i:02d}\n")
    run_vsync("commit", "-m", "seed", cwd=root)


def insert_in_section(path: Path, i: int, line: str) -> None:
    """Put ``line`` at the end of section ``i`` (before the next section's header)."""
    lines = path.read_text().splitlines(keepends=True)
    start = lines.index(header(i))
    end = start + 1
    while end < len(lines) and not lines[end].startswith("== section "):
        end += 1
    lines.insert(end, line)
    path.write_text("".join(lines))


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


@dataclass
class Tally:
    syncs: int = 0
    refused: int = 0
    conflicted_syncs: int = 0
    conflicts: Counter[str] = field(default_factory=Counter)
    unpushed_rounds: int = 0
    markers: list[str] = field(default_factory=list)


class Client:
    def __init__(self, i: int, root: Path, url: str, remote_cmd: str, env: dict[str, str]):
        self.i = i
        self.dir = root / f"client{i:02d}"
        self.url = url
        self.remote_cmd = remote_cmd
        self.env = {**env, "VSYNC_HOST": f"c{i:02d}", "VSYNC_AUTHOR_NAME": f"Client {i:02d}"}
        self.rng = random.Random(SEED * 1000 + i)
        self.tally = Tally()

    def vsync(self, *args: str, cwd: Path | None = None) -> Run:
        return run_vsync(*args, cwd=cwd or self.dir, env=self.env, check=False, timeout=TIMEOUT)

    def must(self, *args: str, cwd: Path | None = None) -> Run:
        r = self.vsync(*args, cwd=cwd)
        assert r.returncode == 0, self.failure(args, r)
        return r

    def failure(self, args: tuple[str, ...], r: Run) -> str:
        return f"client {self.i:02d}: vsync {' '.join(args)} exited {r.returncode}: {r.stderr}"

    def clone(self) -> None:
        self.must(
            "clone",
            "-q",
            self.url,
            str(self.dir),
            "--remote-cmd",
            self.remote_cmd,
            cwd=self.dir.parent,
        )

    def edit(self, r: int) -> None:
        def mark(what: str) -> str:
            m = f"<c{self.i:02d}-r{r:02d}-{what}>"
            self.tally.markers.append(m)
            return m

        append(self.dir / own_log(self.i), f"{mark('own')}\n".encode())
        if self.rng.random() < 0.3:
            insert_in_section(self.dir / SECTIONS, self.i, f"{mark('sec')}\n")
        if self.rng.random() < 0.2:
            name = self.rng.choice(HOT_BINARY)
            append(self.dir / name, f"{mark('bin')}\n".encode())
        if r in HOT_ROUNDS:
            append(self.dir / HOT_TEXT, f"{mark('hot')}\n".encode())
        if r in ADD_ROUNDS and self.rng.random() < 0.4:
            append(self.dir / f"shared/new-r{r:02d}.txt", f"{mark('add')}\n".encode())

    def settle(self) -> None:
        """Keep both sides of every conflict, then conclude the merge."""
        listed = self.must("resolve", "--list").stdout.splitlines()
        paths = []
        for line in listed:
            code, path, kind = line.split()
            if code != "resolved":
                paths.append(path)
                self.tally.conflicts[kind.strip("()")] += 1
        assert paths, f"client {self.i:02d}: sync said conflicts, resolve lists none"
        self.must("resolve", "--both", *paths)
        self.must("commit", "-q", "-m", f"c{self.i:02d}: keep both sides")

    def sync(self, retries: int) -> bool:
        """Sync until pushed or up to date (True), or refused ``retries`` times more."""
        refused = 0
        for _ in range(100):
            # 16 writers over ~25 files: one pull often overwrites more than 10% of them,
            # which the mass-change guard (test_mass_change.py) would stop
            r = self.vsync("sync", "-q", "--allow-mass-change")
            self.tally.syncs += 1
            if r.returncode == 0:
                return True
            if r.returncode == 1 and "to resolve; run 'vsync resolve'" in r.stderr:
                self.tally.conflicted_syncs += 1
                self.settle()
            elif r.returncode == 1 and REJECTED in r.stderr:
                self.tally.refused += 1
                refused += 1
                if refused > retries:
                    return False
            else:
                raise AssertionError(self.failure(("sync",), r))
        raise AssertionError(f"client {self.i:02d}: 100 syncs did not settle")

    def work(self, stop: threading.Event) -> None:
        try:
            self._work(stop)
        except BaseException:
            stop.set()  # the others stop at their next round: a failure ends the test soon
            raise

    def _work(self, stop: threading.Event) -> None:
        self.clone()
        for r in range(ROUNDS):
            if stop.is_set():
                return
            self.edit(r)
            self.must("commit", "-q", "-m", f"c{self.i:02d} round {r}")
            if not self.sync(RETRIES):
                self.tally.unpushed_rounds += 1

    def head(self) -> str:
        return self.must("log", "--oneline", "-n", "1").stdout.split()[0]


def serve_overlaps(trace: Path) -> tuple[int, int, int]:
    """From the trace every process appended to, in order: how many serve sessions
    there were, how many began while another was open, and the most open at once.
    Each serve passes ``session-open`` once and writes ``exit`` once (both counted)."""
    sessions = ends = overlapping = peak = 0
    for line in trace.read_text().splitlines():
        command, name, _seconds = line.split()
        if command != "serve":
            continue
        if name == "session-open":
            if sessions - ends:
                overlapping += 1
            sessions += 1
            peak = max(peak, sessions - ends)
        elif name == "exit":
            ends += 1
            assert ends <= sessions, "a serve exited without opening a session"
    assert sessions == ends, f"{sessions} serve sessions opened, {ends} ended"
    return sessions, overlapping, peak


def merges_in_history(repo: Path) -> tuple[int, int]:
    """(commits, merge commits) reachable from ``repo``'s main."""
    from vsync.model.repository import Repository

    with Repository.open_path(repo) as r:
        head = r.head()
        assert head is not None
        seen: set[bytes] = set()
        merges = 0
        todo = [head]
        while todo:
            oid = todo.pop()
            if oid in seen:
                continue
            seen.add(oid)
            parents = r.gitdb.commit(oid).parents
            merges += len(parents) > 1
            todo.extend(parents)
        return len(seen), merges


def folder_bytes(root: Path) -> bytes:
    parts = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".vsync"]
        for name in sorted(filenames):
            parts.append((Path(dirpath) / name).read_bytes())
    return b"\n".join(parts)


@pytest.mark.slow
def test_sixteen_clients_sync_through_one_server(sshd_server: object, tmp_path: Path) -> None:
    server = tmp_path / "server.vsync"
    url = sshd_server.url(server)  # type: ignore[attr-defined]
    remote_cmd: str = sshd_server.remote_cmd  # type: ignore[attr-defined]
    trace = tmp_path / "trace"
    env = {**sshd_server.env(), faults.TRACE_ENV: str(trace)}  # type: ignore[attr-defined]
    env.pop(faults.ENV, None)
    seed = tmp_path / "seed"
    seed_folder(seed)
    run_vsync("push", "-q", "--create", url, "--remote-cmd", remote_cmd, cwd=seed, env=env)
    clients = [Client(i, tmp_path, url, remote_cmd, env) for i in range(CLIENTS)]

    t0 = time.monotonic()
    stop = threading.Event()
    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(c.work, stop) for c in clients]:
            future.result()
    concurrent_seconds = time.monotonic() - t0
    for _ in range(2):  # until quiet: the last client of a pass has everything
        for c in clients:
            assert c.sync(retries=0), f"client {c.i:02d}: refused with nobody else syncing"
    wait_for_serve_exit(server)
    total_seconds = time.monotonic() - t0

    server_head = run_vsync("log", "--oneline", "-n", "1", cwd=server).stdout.split()[0]
    for c in clients:
        assert c.head() == server_head, f"client {c.i:02d} is not at the server's main"
        assert c.must("status", "--porcelain").stdout == "", f"client {c.i:02d} is not clean"
    final = folder_bytes(clients[0].dir)
    markers = [m for c in clients for m in c.tally.markers]
    lost = [m for m in markers if m.encode() not in final]
    assert not lost, f"{len(lost)} of {len(markers)} edits lost, e.g. {lost[:5]}"
    for repo in [server, *(c.dir for c in clients)]:
        r = run_vsync("fsck", cwd=repo, check=False)
        assert r.returncode == 0, f"fsck {repo}: {r.stdout}{r.stderr}"
    sessions, overlapping, peak = serve_overlaps(trace)
    assert overlapping > 0 and peak >= 2, "no two serve sessions ever ran at the same time"

    commits, merges = merges_in_history(server)
    conflicts: Counter[str] = Counter()
    for c in clients:
        conflicts.update(c.tally.conflicts)
    figures = {
        "clients": CLIENTS,
        "rounds": ROUNDS,
        "edits": len(markers),
        "syncs": sum(c.tally.syncs for c in clients),
        "refused pushes": sum(c.tally.refused for c in clients),
        "rounds left unpushed": sum(c.tally.unpushed_rounds for c in clients),
        "syncs that stopped on conflicts": sum(c.tally.conflicted_syncs for c in clients),
        "conflicts kept both ways": ", ".join(f"{n} {k}" for k, n in sorted(conflicts.items())),
        "commits on the server": commits,
        "merge commits": merges,
        "serve sessions": sessions,
        "sessions begun while another was open": overlapping,
        "most sessions open at once": peak,
        "seconds (concurrent rounds / in all)": f"{concurrent_seconds:.0f} / {total_seconds:.0f}",
    }
    print(json.dumps(figures, indent=1))
    out = os.environ.get("VSYNC_RELIABILITY_OUT")
    if out:
        _report(Path(out), figures)


def _report(out: Path, figures: dict[str, object]) -> None:
    rows = "".join(f"| {k} | {v} |\n" for k, v in figures.items())
    text = (
        f"{CLIENTS} clients, each its own folder cloned from one bare repository over a "
        f"real sshd, ran {ROUNDS} rounds of edit, `vsync commit`, `vsync sync` at once "
        "(`tests/test_load.py`, seed "
        f"{SEED}). Conflicts were settled with `vsync resolve --both`; a refused push was "
        f"synced again up to {RETRIES} times a round. After two final passes of `vsync sync` "
        "every client's main was the server's, every edit's marker was in the final folder, "
        "and `vsync fsck` was clean on all 17 repositories.\n\n"
        f"| figure | value |\n|---|---|\n{rows}"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(
        json.dumps({"kind": "load", "title": "Load: 16 clients, one server", "text": text})
    )
