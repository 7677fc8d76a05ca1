"""A throwaway PostgreSQL cluster on a loopback port, for tests, benchmarks and CI.

The server refuses to run as root, so when we are root the cluster directory is given to the
`postgres` user and every server command runs as that user. Standard library only, so CI can
start it before custody is installed:

    eval "$(python3 platform/custody/testing/postgres.py start)"   # exports CUSTODY_TEST_POSTGRES_*
    python3 platform/custody/testing/postgres.py stop "$CUSTODY_TEST_POSTGRES_DIR"
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or the cluster would not start."""


def find_bindir() -> Path:
    configured = os.environ.get("CUSTODY_PG_BIN")
    candidates = (
        [configured]
        if configured
        else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    )
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (apt-get install postgresql, or set CUSTODY_PG_BIN)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Cluster:
    directory: Path
    port: int
    bindir: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            _as_server_user(
                [str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"]
            ),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def start(durable: bool = False) -> Cluster:
    """initdb + pg_ctl start in a temp dir; `durable=False` turns fsync off for test speed."""
    bindir = find_bindir()
    directory = Path(tempfile.mkdtemp(prefix="custody-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    os.chmod(directory, 0o700)
    data, port = directory / "data", free_port()
    run = lambda cmd: subprocess.run(_as_server_user(cmd), capture_output=True, text=True, check=False)  # noqa: E731
    result = run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"]
    )
    if result.returncode:
        shutil.rmtree(directory, ignore_errors=True)
        raise PostgresUnavailable(f"initdb failed: {result.stderr.strip()[-500:]}")
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    result = run(
        [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(directory / "server.log"), "-w", "start"]
    )
    if result.returncode:
        log = (
            (directory / "server.log").read_text(errors="replace")[-800:] if (directory / "server.log").exists() else ""
        )
        shutil.rmtree(directory, ignore_errors=True)
        raise PostgresUnavailable(f"pg_ctl start failed: {result.stderr.strip()[-300:]} {log}")
    return Cluster(directory, port, bindir)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[1] == "start":
        cluster = start(durable="--durable" in argv)
        print(f"export CUSTODY_TEST_POSTGRES_URL='{cluster.url}'")
        print(f"export CUSTODY_TEST_POSTGRES_DIR='{cluster.directory}'")
        return 0
    if len(argv) == 3 and argv[1] == "stop":
        Cluster(Path(argv[2]), 0, find_bindir()).stop()
        return 0
    print("usage: postgres.py start [--durable] | stop DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
