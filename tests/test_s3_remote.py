"""Remotes in a bucket of S3-compatible storage, encrypted and plain, end to end: real
``vsync`` subprocesses against a real SeaweedFS on 127.0.0.1 (tests/seaweed.py), the
same layout as an encrypted path remote (docs/format.md, "Encrypted remotes"), in
clear with BLAKE3 checks for a plain one ("Plain remotes")."""

from __future__ import annotations

import contextlib
import os
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import Run, run_on_terminal, run_vsync, snapshot_tree, wait_for

from vsync.sync.objstore.s3 import S3Store
from vsync.sync.objstore.s3config import s3_settings
from vsync.sync.url import parse_url

PASS = {"VSYNC_PASSWORD": "correct horse battery staple"}
FILE_NAME = "quarterly-plan-zebra.txt"
CONTENT = "the launch code is walrus-4417"
MESSAGE = "plan for the heron project"


@pytest.fixture
def env(seaweed: object) -> dict[str, str]:
    return {**PASS, **seaweed.env()}  # type: ignore[attr-defined]


def vs(*args: str | Path, cwd: Path, env: dict[str, str], check: bool = True) -> Run:
    return run_vsync(*args, cwd=cwd, check=check, env=env)


def one_error_line(out: Run, code: int, *words: str) -> None:
    assert out.returncode == code, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vsync: error:"), out.stderr
    assert "Traceback" not in out.stderr
    for word in words:
        assert word in lines[0], lines[0]


def make_work(tmp_path: Path, url: str, env: dict[str, str], name: str = "a") -> Path:
    work = tmp_path / name
    work.mkdir()
    vs("init", cwd=work, env=env)
    (work / FILE_NAME).write_text(CONTENT + "\n")
    (work / "media").mkdir()
    (work / "media" / "clip.bin").write_bytes(random.Random(7).randbytes(3 << 20))
    vs("commit", "-q", "-m", MESSAGE, cwd=work, env=env)
    vs("remote", "add", "origin", url, cwd=work, env=env)
    vs("push", cwd=work, env=env)
    return work


def init_remote(tmp_path: Path, url: str, env: dict[str, str], plain: bool = False) -> None:
    if plain:
        vs("init", "--bare", url, cwd=tmp_path, env=env)
    else:
        vs("init", "--bare", "--encrypted", "--scrypt-log2n", "10", url, cwd=tmp_path, env=env)


def no_passphrase(env: dict[str, str]) -> dict[str, str]:
    """``env`` without VSYNC_PASSWORD: a plain remote must never need one (and the
    subprocess has no terminal to ask on)."""
    return {k: v for k, v in env.items() if k != "VSYNC_PASSWORD"}


def stored(url: str, env: dict[str, str]) -> dict[str, bytes]:
    """Every object under the remote's prefix, read straight from the bucket."""
    store = S3Store(parse_url(url), s3_settings(environ=env))
    return {name: store.read(name) for name in store.list("")}


def sync_both_ways(a: Path, b: Path, env: dict[str, str]) -> None:
    """A change on each side of a clone, then synced both ways through the bucket: each
    side ends with the other's change."""
    (a / FILE_NAME).write_text("changed in a\n")
    vs("commit", "-q", "-m", "two", cwd=a, env=env)
    vs("push", cwd=a, env=env)
    vs("pull", cwd=b, env=env)
    assert snapshot_tree(b) == snapshot_tree(a)
    (b / "from-b.txt").write_text("b\n")
    vs("sync", cwd=b, env=env)
    vs("fetch", cwd=a, env=env)
    vs("pull", cwd=a, env=env)
    assert (a / "from-b.txt").read_text() == "b\n"


def test_round_trip_through_an_s3_remote(tmp_path: Path, s3_url: str, env: dict[str, str]) -> None:
    init_remote(tmp_path, s3_url, env)
    a = make_work(tmp_path, s3_url, env)
    vs("clone", s3_url, "b", cwd=tmp_path, env=env)
    b = tmp_path / "b"
    assert snapshot_tree(b) == snapshot_tree(a)
    sync_both_ways(a, b, env)
    objects = stored(s3_url, env)
    assert {n.split("/")[0] for n in objects} == {
        "vsync-remote",
        "keys",
        "refs",
        "git",
        "packs",
        "index",
    }
    for data in objects.values():
        for secret in (FILE_NAME, CONTENT, MESSAGE):
            assert secret.encode() not in data


def test_a_push_sends_only_chunks_the_bucket_lacks(
    tmp_path: Path, s3_url: str, env: dict[str, str]
) -> None:
    init_remote(tmp_path, s3_url, env)
    a = make_work(tmp_path, s3_url, env)
    packs = {n for n in stored(s3_url, env) if n.startswith("packs/")}
    # a new file (a new manifest) sharing all but its tail with one the bucket holds
    (a / "longer.bin").write_bytes((a / "media" / "clip.bin").read_bytes() + b"tail")
    vs("commit", "-q", "-m", "a longer copy", cwd=a, env=env)
    out = vs("push", "--porcelain", cwd=a, env=env)
    fields = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert 0 < int(fields["chunks"]) <= 2, out.stdout
    assert int(fields["chunk_bytes"]) < 1 << 20, out.stdout
    assert len({n for n in stored(s3_url, env) if n.startswith("packs/")} - packs) == 1


def test_a_push_on_a_terminal_shows_the_total_and_an_eta(
    tmp_path: Path, s3_url: str, env: dict[str, str]
) -> None:
    """The bucket's indexes say what it lacks, so the push knows its total (issue 17)."""
    init_remote(tmp_path, s3_url, env)
    work = tmp_path / "a"
    work.mkdir()
    vs("init", cwd=work, env=env)
    (work / "clip.bin").write_bytes(random.Random(8).randbytes(20 << 20))  # two packs
    vs("commit", "-q", "-m", MESSAGE, cwd=work, env=env)
    vs("remote", "add", "origin", s3_url, cwd=work, env=env)
    run = run_on_terminal("push", cwd=work, env=env)
    assert run.returncode == 0, run.stdout
    drawn = [part for part in run.stdout.split("\r\x1b[K") if "Sending to" in part]
    final = re.match(r"Sending to origin: chunks (\d+)/(\d+), [\d.]+ MiB, .+, ETA 0:00", drawn[-1])
    assert final is not None and final.group(1) == final.group(2), drawn
    first = re.match(r"Sending to origin: chunks (\d+)/", drawn[0])
    assert first is not None and 0 < int(first.group(1)) < int(final.group(2)), drawn  # a pack


def test_a_push_that_loses_the_race_is_refused_and_sync_merges(
    tmp_path: Path, s3_url: str, env: dict[str, str]
) -> None:
    """a's push has read the branch record back and compared it, and is held just
    before its conditional PUT; b pushes meanwhile. a's PUT (If-Match on the ETag it
    read) must fail, so a is told to pull first and b's commit survives; ``sync``
    fetches, merges and pushes."""
    init_remote(tmp_path, s3_url, env)
    a = make_work(tmp_path, s3_url, env)
    vs("clone", s3_url, "b", cwd=tmp_path, env=env)
    b = tmp_path / "b"
    (a / "from-a.txt").write_text("a\n")
    vs("commit", "-q", "-m", "a", cwd=a, env=env)
    (b / "from-b.txt").write_text("b\n")
    vs("commit", "-q", "-m", "b", cwd=b, env=env)
    trace = tmp_path / "trace"
    held = {
        **env,
        "VSYNC_FAULTS": f"push/objstore-before-swap=hold:{tmp_path / 'release'}",
        "VSYNC_FAULTS_TRACE": str(trace),
    }
    with ThreadPoolExecutor(1) as pool:
        pushing = pool.submit(vs, "push", cwd=a, env=held, check=False)
        wait_for(
            "a's push to reach its compare-and-swap",
            lambda: trace.exists() and "objstore-before-swap" in trace.read_text(),
        )
        vs("push", cwd=b, env=env)  # while a's push is held
        (tmp_path / "release").touch()
        one_error_line(pushing.result(), 1, "pull first")
    vs("sync", cwd=a, env=env)
    vs("pull", cwd=b, env=env)
    assert snapshot_tree(a) == snapshot_tree(b)
    assert (a / "from-b.txt").read_text() == "b\n"
    assert (b / "from-a.txt").read_text() == "a\n"


def test_clients_syncing_at_once_lose_no_commit(
    tmp_path: Path, s3_url: str, env: dict[str, str]
) -> None:
    """Eight clients each commit a file and sync at the same moment, retrying while a
    push loses its race; every commit is in the bucket at the end."""
    clients = 8
    init_remote(tmp_path, s3_url, env)
    make_work(tmp_path, s3_url, env)
    names = [f"c{i}" for i in range(clients)]
    for name in names:
        vs("clone", s3_url, name, cwd=tmp_path, env=env)
        (tmp_path / name / f"{name}.txt").write_text(f"{name}\n")
        vs("commit", "-q", "-m", name, cwd=tmp_path / name, env=env)
    barrier = threading.Barrier(clients)
    failures: list[str] = []

    def client(name: str) -> None:
        barrier.wait()
        for _attempt in range(2 * clients):
            out = vs("sync", cwd=tmp_path / name, env=env, check=False)
            if out.returncode == 0:
                return
            if "pull first" not in out.stderr:
                failures.append(f"{name}: {out.stderr}")
                return
        failures.append(f"{name}: never pushed")

    threads = [threading.Thread(target=client, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    vs("clone", s3_url, "all", cwd=tmp_path, env=env)
    for name in names:
        assert (tmp_path / "all" / f"{name}.txt").read_text() == f"{name}\n"


def test_wrong_credentials_are_one_line(tmp_path: Path, s3_url: str, env: dict[str, str]) -> None:
    init_remote(tmp_path, s3_url, env)
    make_work(tmp_path, s3_url, env)
    bad = {**env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    one_error_line(
        vs("clone", s3_url, "b", cwd=tmp_path, env=bad, check=False), 1, "refused the credentials"
    )
    assert not (tmp_path / "b").exists()
    unknown = {**env, "AWS_ACCESS_KEY_ID": "nobody"}
    out = vs("push", cwd=tmp_path / "a", env=unknown, check=False)
    one_error_line(out, 1, "refused the credentials")


def test_a_missing_bucket_is_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    url = "s3://no-such-bucket/team"
    out = vs(
        "init",
        "--bare",
        "--encrypted",
        "--scrypt-log2n",
        "10",
        url,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    one_error_line(out, 1, "bucket 'no-such-bucket' does not exist")
    out = vs("clone", url, "b", cwd=tmp_path, env=env, check=False)
    one_error_line(out, 1, "bucket 'no-such-bucket' does not exist")


def test_an_empty_prefix_is_not_a_remote_and_init_wants_one(
    tmp_path: Path, s3_url: str, env: dict[str, str]
) -> None:
    out = vs("clone", s3_url, "b", cwd=tmp_path, env=env, check=False)
    one_error_line(out, 2, "not a vsync remote")
    init_remote(tmp_path, s3_url, env)
    out = vs("init", "--bare", "--encrypted", s3_url, cwd=tmp_path, env=env, check=False)
    one_error_line(out, 2, "already holds objects")
    other = f"{s3_url}-other"
    import obstore

    store = S3Store(parse_url("s3://vsync"), s3_settings(environ=env))
    obstore.put(store.client, f"{parse_url(other).path}/Notes.TXT", b"someone else's")
    out = vs("init", "--bare", "--encrypted", other, cwd=tmp_path, env=env, check=False)
    one_error_line(out, 2, "already holds objects")
    out = vs("init", "--bare", s3_url, cwd=tmp_path, env=env, check=False)
    one_error_line(out, 2, "already holds objects")
    out = vs("init", f"{s3_url}-third", cwd=tmp_path, env=env, check=False)
    one_error_line(out, 2, "--bare")


def test_a_flipped_byte_in_the_bucket_is_refused(
    tmp_path: Path, s3_url: str, env: dict[str, str]
) -> None:
    init_remote(tmp_path, s3_url, env)
    make_work(tmp_path, s3_url, env)
    store = S3Store(parse_url(s3_url), s3_settings(environ=env))
    (pack,) = [n for n in store.list("packs/")]
    data = bytearray(store.read(pack))
    data[200] ^= 1
    assert store.delete(pack)
    assert store.write_if_absent(pack, bytes(data))
    out = vs("clone", s3_url, "b", cwd=tmp_path, env=env, check=False)
    one_error_line(out, 3, pack, "failed authentication")


def test_a_remote_added_with_an_endpoint_needs_no_endpoint_variable(
    tmp_path: Path, s3_url: str, env: dict[str, str]
) -> None:
    """``remote add --endpoint`` and ``clone --endpoint`` are stored and used;
    credentials from a profile in ``~/.aws/credentials`` (AWS_PROFILE) instead of
    variables."""
    init_remote(tmp_path, s3_url, env)
    make_work(tmp_path, s3_url, env)
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        "[team]\n"
        f"aws_access_key_id = {env['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {env['AWS_SECRET_ACCESS_KEY']}\n"
    )
    bare = {
        **PASS,
        "HOME": str(home),
        "AWS_PROFILE": "team",
        "AWS_ENDPOINT_URL": "",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
    }
    b = tmp_path / "b"
    b.mkdir()
    vs("init", cwd=b, env=bare)
    vs("remote", "add", "origin", s3_url, "--endpoint", env["AWS_ENDPOINT_URL"], cwd=b, env=bare)
    vs("pull", cwd=b, env=bare)
    assert (b / FILE_NAME).read_text() == CONTENT + "\n"
    out = vs(
        "remote", "add", "x", "/some/path", "--endpoint", "http://h:1", cwd=b, env=bare, check=False
    )
    one_error_line(out, 2, "--endpoint")
    # clone --endpoint keeps the endpoint in the clone's remote
    vs("clone", "--endpoint", env["AWS_ENDPOINT_URL"], s3_url, "c", cwd=tmp_path, env=bare)
    (tmp_path / "c" / "from-c.txt").write_text("c\n")
    vs("sync", cwd=tmp_path / "c", env=bare)
    vs("pull", cwd=b, env=bare)
    assert (b / "from-c.txt").read_text() == "c\n"


@pytest.mark.parametrize(
    ("text", "bucket", "prefix", "canonical"),
    [
        ("s3://team-bucket/shared/Photos", "team-bucket", "shared/Photos", None),
        ("s3://team.bucket", "team.bucket", "", None),
        ("s3://abc/p/", "abc", "p", "s3://abc/p"),
    ],
)
def test_s3_urls_parse_and_print_back(
    text: str, bucket: str, prefix: str, canonical: str | None
) -> None:
    url = parse_url(text)
    assert (url.kind, url.host, url.path) == ("s3", bucket, prefix)
    assert str(url) == (canonical or text)
    assert parse_url(str(url)) == url


@pytest.mark.parametrize(
    "text", ["s3://", "s3://Team/x", "s3://a/x", "s3://abc/../x", "s3://abc/.x", "s3://abc/a b"]
)
def test_bad_s3_urls_are_refused(text: str) -> None:
    from vsync.sync.errors import BadURL

    with pytest.raises(BadURL):
        parse_url(text)


def test_settings_come_from_variables_then_profiles(tmp_path: Path) -> None:
    from vsync.sync.objstore.s3config import NoS3Credentials

    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = dk\naws_secret_access_key = ds\n"
        "[work]\naws_access_key_id = wk\naws_secret_access_key = ws\n"
    )
    (tmp_path / ".aws" / "config").write_text(
        "[profile work]\nregion = eu-west-3\nendpoint_url = https://s3.example.net\n"
    )
    home = {"HOME": str(tmp_path)}
    s = s3_settings(environ=home)
    assert (s.access_key_id, s.secret_access_key, s.endpoint, s.region) == (
        "dk",
        "ds",
        None,
        "us-east-1",
    )
    s = s3_settings(environ={**home, "AWS_PROFILE": "work"})
    assert (s.access_key_id, s.endpoint, s.region) == ("wk", "https://s3.example.net", "eu-west-3")
    s = s3_settings(
        "http://127.0.0.1:9000",
        {**home, "AWS_ACCESS_KEY_ID": "ek", "AWS_SECRET_ACCESS_KEY": "es", "AWS_REGION": "r1"},
    )
    assert (s.access_key_id, s.endpoint, s.region) == ("ek", "http://127.0.0.1:9000", "r1")
    with pytest.raises(NoS3Credentials):
        s3_settings(environ={"HOME": str(tmp_path / "nowhere")})


@pytest.mark.parametrize("plain", [False, True], ids=["encrypted", "plain"])
def test_watch_polls_an_s3_remote(
    tmp_path: Path, s3_url: str, env: dict[str, str], plain: bool
) -> None:
    """An S3 remote cannot tell a watcher that its branch moved: the watcher polls,
    and brings what another client pushed to the bucket."""
    from test_watch import Watch

    if plain:
        env = no_passphrase(env)
    init_remote(tmp_path, s3_url, env, plain)
    a = make_work(tmp_path, s3_url, env)
    vs("clone", s3_url, "b", cwd=tmp_path, env=env)
    b = tmp_path / "b"
    watch = Watch(a, {**os.environ, **env}, "--poll-interval", "1")
    try:
        watch.wait_event("started")
        assert watch.events("started")[0]["mode"] == "poll", watch.output()
        (b / "from-b.txt").write_text("pushed by hand\n")
        vs("sync", "-q", cwd=b, env=env)
        wait_for("from-b.txt on a", lambda: (a / "from-b.txt").exists())
        assert (a / "from-b.txt").read_text() == "pushed by hand\n"
    finally:
        assert watch.stop() == 0, watch.output()


@pytest.mark.parametrize(
    "point", ["encrypted-push-before-index", "encrypted-push-before-branch", "objstore-before-swap"]
)
def test_a_push_killed_mid_upload_resumes_without_sending_again(
    tmp_path: Path, s3_url: str, env: dict[str, str], point: str
) -> None:
    init_remote(tmp_path, s3_url, env)
    a = make_work(tmp_path, s3_url, env)
    before = snapshot_tree(a)
    (a / "new.bin").write_bytes(random.Random(9).randbytes(2 << 20))
    vs("commit", "-q", "-m", "new", cwd=a, env=env)
    killed = vs("push", cwd=a, env={**env, "VSYNC_FAULTS": f"push/{point}=kill"}, check=False)
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    vs("clone", s3_url, "old", cwd=tmp_path, env=env)
    assert snapshot_tree(tmp_path / "old") == before  # the bucket still holds the old state
    out = vs("push", "--porcelain", cwd=a, env=env)
    fields = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert int(fields["wire_sent"]) < 1 << 20, out.stdout  # the 2 MiB of chunks went once
    vs("pull", cwd=tmp_path / "old", env=env)
    assert snapshot_tree(tmp_path / "old") == snapshot_tree(a)
    assert "no problems" in vs("fsck", "--remote", "origin", cwd=a, env=env).stdout


GIT_PART = 8 * 1024  # VSYNC_TEST_GIT_PACK_BYTES: the git pack cut, lowered from 16 MiB


@pytest.mark.parametrize("plain", [False, True], ids=["encrypted", "plain"])
def test_a_killed_push_resumes_after_the_git_packs_it_stored(
    tmp_path: Path, s3_url: str, env: dict[str, str], plain: bool
) -> None:
    """A push whose git data is larger than the cut goes as several git packs, each
    stored on its own (four at a time); killed once the first is stored, its re-run
    writes only the others (those stored are found by their names: the same bytes
    again) and names them all."""
    env = {**(no_passphrase(env) if plain else env), "VSYNC_TEST_GIT_PACK_BYTES": str(GIT_PART)}
    init_remote(tmp_path, s3_url, env, plain)
    a = make_work(tmp_path, s3_url, env)
    before = {n for n in stored(s3_url, env) if n.startswith("git/")}
    rng = random.Random(11)
    for c in range(3):  # trees, manifests and commits: several times the cut
        for i in range(400):
            (a / f"folder-{c}" / f"sub-{i % 10}").mkdir(parents=True, exist_ok=True)
            (a / f"folder-{c}" / f"sub-{i % 10}" / f"note-{i}.txt").write_bytes(rng.randbytes(200))
        vs("commit", "-q", "-m", f"batch {c}", cwd=a, env=env)
    faults = "push/encrypted-push-git-pack-stored=kill@1"
    killed = vs("push", cwd=a, env={**env, "VSYNC_FAULTS": faults}, check=False)
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    first = {n: b for n, b in stored(s3_url, env).items() if n.startswith("git/")}
    first = {n: b for n, b in first.items() if n not in before}
    assert first, "no git pack was stored before the kill"
    trace = tmp_path / "trace"
    out = vs("push", "--porcelain", cwd=a, env={**env, "VSYNC_FAULTS_TRACE": str(trace)})
    writes = trace.read_text().count("push encrypted-push-git-pack-stored ")
    final = stored(s3_url, env)
    pushed = {n: b for n, b in final.items() if n.startswith("git/") and n not in before}
    assert len(pushed) >= 3, sorted(pushed)  # several git packs, not one
    assert len(first) < len(pushed), (sorted(first), sorted(pushed))  # killed midway
    assert writes == len(pushed) - len(first), (writes, sorted(pushed))  # none sent again
    assert all(pushed[n] == b for n, b in first.items())
    for data in pushed.values():  # each within the cut (and its seal)
        assert len(data) <= GIT_PART + 64 if plain else len(data) <= GIT_PART * 1.13 + 64
    fields = dict(line.split("=", 1) for line in out.stdout.splitlines())
    rest = sum(len(b) for n, b in pushed.items() if n not in first)
    assert int(fields["wire_sent"]) < rest + 8192, (fields, rest)
    vs("clone", s3_url, "b", cwd=tmp_path, env=env)
    assert snapshot_tree(tmp_path / "b") == snapshot_tree(a)
    assert "no problems" in vs("fsck", "--remote", "origin", cwd=a, env=env).stdout
    gc = vs("gc", "--remote", "origin", cwd=a, env=env)
    assert "0 git packs no branch names" in gc.stdout, gc.stdout  # the first is named too
    assert set(first) <= set(stored(s3_url, env))


def test_a_bucket_spanning_two_storage_nodes_with_replication(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A SeaweedFS of one master and two volume servers, every write kept on both
    (replication 001): the remote's objects land on each node, and a clone still works
    with one node gone."""
    from seaweed import start_seaweed

    server = start_seaweed(tmp_path_factory.mktemp("seaweed-2"), replication="001")
    try:
        second = server.add_volume_server()
        wait_for("two volume servers", lambda: server.data_nodes() == 2)
        server.make_bucket("spread")
        env = {**PASS, **server.env()}
        url = "s3://spread/team"
        init_remote(tmp_path, url, env)
        a = make_work(tmp_path, url, env)
        for node in (server.root / "data", server.root / "volume-1"):
            stored_bytes = sum(p.stat().st_size for p in node.rglob("*.dat"))
            assert stored_bytes > 3 << 20, (node, stored_bytes)  # the 3 MiB clip, on each
        second.kill()
        second.wait()
        vs("clone", url, "b", cwd=tmp_path, env=env)
        assert snapshot_tree(tmp_path / "b") == snapshot_tree(a)
    finally:
        server.stop()


def test_keys_of_an_s3_remote_change_without_touching_its_data(
    tmp_path: Path, s3_url: str, env: dict[str, str]
) -> None:
    """``vsync key add`` and ``key remove`` on a bucket: a second passphrase added, the
    first removed, the data read with the second."""
    init_remote(tmp_path, s3_url, env)
    a = make_work(tmp_path, s3_url, env)
    second = tmp_path / "second-passphrase"
    second.write_text("a second passphrase\n")
    (first,) = [
        line.split()[0]
        for line in vs("key", "list", s3_url, cwd=tmp_path, env=env).stdout.splitlines()
    ]
    vs(
        "key",
        "add",
        s3_url,
        "--new-password-file",
        second,
        "--scrypt-log2n",
        "10",
        cwd=tmp_path,
        env=env,
    )
    env2 = {**env, "VSYNC_PASSWORD": "a second passphrase"}
    vs("key", "remove", s3_url, "--id", first, cwd=tmp_path, env=env2)
    one_error_line(vs("clone", s3_url, "b", cwd=tmp_path, env=env, check=False), 2, "opens none")
    vs("clone", s3_url, "b", cwd=tmp_path, env=env2)
    assert snapshot_tree(tmp_path / "b") == snapshot_tree(a)


# -- plain (unencrypted) remotes: the same layout, in clear, with BLAKE3 checks --------

TEXT_NAME = "notes-kingfisher.txt"
TEXT = b"".join(b"kingfisher line %d of the plain remote\n" % i for i in range(4000))


def zstd_chunks(objects: dict[str, bytes]) -> list[bytes]:
    """Every zstd frame found in the remote's chunk packs, decompressed by a plain zstd
    decoder (no vsync code): what anyone reading the bucket would see."""
    import zstandard

    out = []
    for name, data in objects.items():
        if not name.startswith("packs/"):
            continue
        at = data.find(b"\x28\xb5\x2f\xfd")
        while at != -1:
            with contextlib.suppress(zstandard.ZstdError):  # not a frame: the bytes by chance
                out.append(zstandard.ZstdDecompressor().decompressobj().decompress(data[at:]))
            at = data.find(b"\x28\xb5\x2f\xfd", at + 1)
    return out


def test_round_trip_through_a_plain_s3_remote(
    tmp_path: Path, s3_url: str, env: dict[str, str]
) -> None:
    """``init --bare s3://...`` makes a plain remote; clone, push, pull, sync and
    fsck --remote work with no passphrase anywhere; the bucket holds the chunks as
    plain zstd (it really is not encrypted), no key files, and a marker that says
    so."""
    env = no_passphrase(env)
    init_remote(tmp_path, s3_url, env, plain=True)
    a = make_work(tmp_path, s3_url, env)
    (a / TEXT_NAME).write_bytes(TEXT)
    vs("commit", "-q", "-m", "text", cwd=a, env=env)
    vs("push", cwd=a, env=env)
    vs("clone", s3_url, "b", cwd=tmp_path, env=env)
    b = tmp_path / "b"
    assert snapshot_tree(b) == snapshot_tree(a)
    sync_both_ways(a, b, env)
    assert "no problems" in vs("fsck", "--remote", "origin", cwd=a, env=env).stdout
    objects = stored(s3_url, env)
    assert {n.split("/")[0] for n in objects} == {"vsync-remote", "refs", "git", "packs", "index"}
    assert objects["vsync-remote"].startswith(b"vsync plain remote\nformat 1\nrepository ")
    assert TEXT in zstd_chunks(objects)


def test_an_encrypted_bucket_holds_no_readable_chunk(
    tmp_path: Path, s3_url: str, env: dict[str, str]
) -> None:
    """The same content pushed to an encrypted remote: no zstd frame in its packs
    decodes to it, and its marker is the encrypted one."""
    init_remote(tmp_path, s3_url, env)
    a = make_work(tmp_path, s3_url, env)
    (a / TEXT_NAME).write_bytes(TEXT)
    vs("commit", "-q", "-m", "text", cwd=a, env=env)
    vs("push", cwd=a, env=env)
    objects = stored(s3_url, env)
    assert objects["vsync-remote"] == b"vsync encrypted remote\nformat 1\n"
    assert all(TEXT[:64] not in data for data in objects.values())
    assert TEXT not in zstd_chunks(objects)


@pytest.mark.parametrize("target", ["packs/", "index/", "git/", "refs/main"])
def test_a_flipped_byte_in_a_plain_bucket_is_refused(
    tmp_path: Path, s3_url: str, env: dict[str, str], target: str
) -> None:
    """One bit changed in any object of a plain remote (a chunk's zstd bytes, an index,
    the git pack, the branch record): a clone refuses it, exit 3, naming the object,
    and makes nothing; fsck --remote reports it."""
    env = no_passphrase(env)
    init_remote(tmp_path, s3_url, env, plain=True)
    a = make_work(tmp_path, s3_url, env)
    store = S3Store(parse_url(s3_url), s3_settings(environ=env))
    (name,) = [n for n in store.list(target)]
    data = bytearray(store.read(name))
    data[len(data) // 2] ^= 1
    assert store.delete(name)
    assert store.write_if_absent(name, bytes(data))
    out = vs("clone", s3_url, "b", cwd=tmp_path, env=env, check=False)
    one_error_line(out, 3, name, "plain remote's object", "failed its check")
    assert not (tmp_path / "b").exists()
    out = vs("fsck", "--remote", "origin", cwd=a, env=env, check=False)
    assert out.returncode == 3 and name in out.stdout, (out.stdout, out.stderr)


@pytest.mark.parametrize(
    ("target", "kind", "payload", "why"),
    [
        ("refs/main", 3, b"\x02" + bytes(60), "not a version 1 branch record"),
        ("index/", 1, b"\x07" + bytes(4), "not a version 1 index"),
    ],
)
def test_a_plain_remote_object_that_does_not_parse_is_named_as_plain(
    tmp_path: Path,
    s3_url: str,
    env: dict[str, str],
    target: str,
    kind: int,
    payload: bytes,
    why: str,
) -> None:
    """A branch record or an index whose check holds but whose payload does not parse:
    the one error line speaks of the plain remote, not of an encrypted one."""
    from vsync.sync.crypt.detect import plain_repo_id
    from vsync.sync.crypt.seal import PlainSealer

    env = no_passphrase(env)
    init_remote(tmp_path, s3_url, env, plain=True)
    make_work(tmp_path, s3_url, env)
    store = S3Store(parse_url(s3_url), s3_settings(environ=env))
    repo_id = plain_repo_id(store.read("vsync-remote"))
    assert repo_id is not None
    (name,) = store.list(target)
    assert store.delete(name)
    assert store.write_if_absent(name, PlainSealer(repo_id).seal(kind, name, payload))
    out = vs("clone", s3_url, "b", cwd=tmp_path, env=env, check=False)
    one_error_line(out, 3, f"the plain remote's object {name}", why)
    assert "encrypted" not in out.stderr


def test_plain_and_encrypted_remotes_are_told_apart(
    tmp_path: Path, s3_url: str, env: dict[str, str]
) -> None:
    """The marker decides: a plain remote never asks for a passphrase and has no keys;
    an encrypted one always needs its passphrase; neither is initialised over the
    other; a plain marker with a damaged repository id is not taken for either."""
    bare = no_passphrase(env)
    plain, encrypted = f"{s3_url}-plain", f"{s3_url}-encrypted"
    init_remote(tmp_path, plain, bare, plain=True)
    init_remote(tmp_path, encrypted, env)
    for url in (plain, encrypted):
        for args in (["--encrypted", "--scrypt-log2n", "10"], []):
            out = vs("init", "--bare", *args, url, cwd=tmp_path, env=env, check=False)
            one_error_line(out, 2, "already holds objects")
    vs("clone", plain, "p", cwd=tmp_path, env=bare)
    one_error_line(
        vs("clone", encrypted, "e", cwd=tmp_path, env=bare, check=False), 2, "needs a passphrase"
    )
    assert not (tmp_path / "e").exists()
    vs("clone", encrypted, "e", cwd=tmp_path, env=env)
    one_error_line(
        vs("key", "list", plain, cwd=tmp_path, env=env, check=False), 2, "plain (unencrypted)"
    )
    store = S3Store(parse_url(plain), s3_settings(environ=env))
    marker = store.read("vsync-remote")
    assert store.delete("vsync-remote")
    assert store.write_if_absent("vsync-remote", marker[:-3] + b"zz\n")
    out = vs("clone", plain, "q", cwd=tmp_path, env=env, check=False)
    one_error_line(out, 3, "format")
