"""Which S3 client vsync uses, chosen by measurement (docs/dependencies.md, "S3").

Starts a local SeaweedFS (tests/seaweed.py), checks that its gateway enforces
conditional PUTs (``If-None-Match: *`` and ``If-Match`` on the ETag), then times
each candidate client in a child process of its own (so its peak RSS is its
own): PUT and GET of a 16 MiB object, a 64 KiB range GET, and a conditional
PUT, each repeated; prints one JSON line per client and the check's verdict.

    .venv/bin/python bench/s3_clients.py [--rounds N] [--write-doc]

``--write-doc`` puts the table between the markers ``<!-- s3-clients:begin -->``
and ``<!-- s3-clients:end -->`` of docs/dependencies.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

SIZE = 16 << 20
RANGE = 64 << 10


def _obstore(bucket: str, rounds: int) -> dict[str, float]:
    import obstore
    from obstore.exceptions import AlreadyExistsError, PreconditionError
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=os.environ["AWS_ENDPOINT_URL"],
        region=os.environ["AWS_REGION"],
        access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        client_options={"allow_http": True},
    )
    data = os.urandom(SIZE)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(rounds):
        obstore.put(store, f"big/obstore-{i}", data)
    t["put_16mib_s"] = (time.perf_counter() - t0) / rounds
    t0 = time.perf_counter()
    for i in range(rounds):
        got = obstore.get(store, f"big/obstore-{i}").bytes()
        assert len(got) == SIZE
    t["get_16mib_s"] = (time.perf_counter() - t0) / rounds
    t0 = time.perf_counter()
    for i in range(rounds * 10):
        part = obstore.get_range(store, "big/obstore-0", start=i * RANGE, length=RANGE)
        assert bytes(part) == data[i * RANGE : (i + 1) * RANGE]
    t["range_64kib_s"] = (time.perf_counter() - t0) / (rounds * 10)
    t0 = time.perf_counter()
    for i in range(rounds * 10):
        put = obstore.put(store, f"refs/obstore-{i}", b"one", mode="create")
        try:
            obstore.put(store, f"refs/obstore-{i}", b"two", mode="create")
            raise AssertionError("If-None-Match: * was not enforced")
        except AlreadyExistsError:
            pass
        obstore.put(store, f"refs/obstore-{i}", b"three", mode={"e_tag": put["e_tag"]})
        try:
            obstore.put(store, f"refs/obstore-{i}", b"four", mode={"e_tag": put["e_tag"]})
            raise AssertionError("If-Match was not enforced")
        except PreconditionError:
            pass
    t["conditional_put_s"] = (time.perf_counter() - t0) / (rounds * 40)
    return t


def _boto3(bucket: str, rounds: int) -> dict[str, float]:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    data = os.urandom(SIZE)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(rounds):
        s3.put_object(Bucket=bucket, Key=f"big/boto3-{i}", Body=data)
    t["put_16mib_s"] = (time.perf_counter() - t0) / rounds
    t0 = time.perf_counter()
    for i in range(rounds):
        got = s3.get_object(Bucket=bucket, Key=f"big/boto3-{i}")["Body"].read()
        assert len(got) == SIZE
    t["get_16mib_s"] = (time.perf_counter() - t0) / rounds
    t0 = time.perf_counter()
    for i in range(rounds * 10):
        rng = f"bytes={i * RANGE}-{(i + 1) * RANGE - 1}"
        part = s3.get_object(Bucket=bucket, Key="big/boto3-0", Range=rng)["Body"].read()
        assert part == data[i * RANGE : (i + 1) * RANGE]
    t["range_64kib_s"] = (time.perf_counter() - t0) / (rounds * 10)

    def refused(**kw: object) -> bool:
        try:
            s3.put_object(Bucket=bucket, **kw)
        except ClientError as exc:
            return exc.response["Error"]["Code"] in ("PreconditionFailed", "412")
        return False

    t0 = time.perf_counter()
    for i in range(rounds * 10):
        key = f"refs/boto3-{i}"
        etag = s3.put_object(Bucket=bucket, Key=key, Body=b"one", IfNoneMatch="*")["ETag"]
        assert refused(Key=key, Body=b"two", IfNoneMatch="*"), "If-None-Match not enforced"
        s3.put_object(Bucket=bucket, Key=key, Body=b"three", IfMatch=etag)
        assert refused(Key=key, Body=b"four", IfMatch=etag), "If-Match not enforced"
    t["conditional_put_s"] = (time.perf_counter() - t0) / (rounds * 40)
    return t


def child(client: str, bucket: str, rounds: int) -> None:
    run = {"obstore": _obstore, "boto3": _boto3}[client]
    t0 = time.perf_counter()
    import_s = 0.0
    if client == "obstore":
        import obstore  # noqa: F401
    else:
        import boto3  # noqa: F401
    import_s = time.perf_counter() - t0
    result = run(bucket, rounds)
    result["import_s"] = import_s
    result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"client": client, **{k: round(v, 4) for k, v in result.items()}}))


DOC = HERE.parent / "docs" / "dependencies.md"
BEGIN, END = "<!-- s3-clients:begin -->", "<!-- s3-clients:end -->"
COLUMNS = (
    ("put_16mib_s", "PUT 16 MiB", 1000, "ms"),
    ("get_16mib_s", "GET 16 MiB", 1000, "ms"),
    ("range_64kib_s", "range GET 64 KiB", 1000, "ms"),
    ("conditional_put_s", "conditional PUT", 1000, "ms"),
    ("import_s", "import", 1000, "ms"),
    ("max_rss_mib", "peak RSS", 1, "MiB"),
)


def table(rows: list[dict[str, object]], server: str, rounds: int, commit: str) -> str:
    lines = [
        f"From `bench/s3_clients.py --rounds {rounds} --write-doc` at {commit}, against "
        f"SeaweedFS ({server}) on 127.0.0.1; means per operation. Both clients saw "
        "`If-None-Match: *` and `If-Match` enforced (a second create and a stale ETag "
        "were refused with 412).",
        "",
        "| client | " + " | ".join(c[1] for c in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for row in rows:
        cells = []
        for key, _title, scale, unit in COLUMNS:
            value = row[key]
            assert isinstance(value, int | float)
            cells.append(f"{value * scale:.1f} {unit}")
        lines.append(f"| {row['client']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_doc(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--write-doc", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("CLIENT", "BUCKET"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.rounds)
        return 0
    from seaweed import start_seaweed

    with tempfile.TemporaryDirectory(prefix="vsync-s3-clients-") as tmp:
        server = start_seaweed(Path(tmp))
        try:
            server.make_bucket("clients")
            env = {**os.environ, **server.env()}
            version = server.version()
            print(f"# SeaweedFS {version} at {server.endpoint}", flush=True)
            rows = []
            for client in ("obstore", "boto3"):
                argv = [sys.executable, __file__, "--rounds", str(args.rounds)]
                out = subprocess.run(
                    [*argv, "--child", client, "clients"],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                print(out.stdout, end="", flush=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        finally:
            server.stop()
    if args.write_doc:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
        write_doc(table(rows, version.removeprefix("version "), args.rounds, commit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
