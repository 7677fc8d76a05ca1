"""`--executor` and the `--ray-*` options, shared by `custody check`, `prepare` and `run`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from custody.cli.common import fail
from custody.pipeline.executors import Executor, ExecutorError, make_executor

ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="where shards are scanned: local (this process) or ray (a Ray cluster) [default: local, or the spec's]",
        show_default=False,
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster to join, HOST:PORT or ray://HOST:10001 [default: $RAY_ADDRESS, else a local one]",
        show_default=False,
    ),
]


RayCpusOption = Annotated[
    float | None,
    typer.Option(
        "--ray-cpus-per-worker",
        help="CPUs each Ray actor holds; the pii check forks that many scanners from one model [default: 1]",
        show_default=False,
    ),
]


RayKeepWarmOption = Annotated[
    float | None,
    typer.Option(
        "--ray-keep-warm",
        metavar="SECONDS",
        help="keep a check's or stage's Ray actors loaded this long after the run, for its next run "
        "(a cluster that outlives the command; `custody ray release` stops them) [default: 0]",
        show_default=False,
    ),
]


@contextmanager
def executor_for(
    kind: str | None,
    address: str | None,
    workers: int | None = None,
    cpus_per_worker: float | None = None,
    keep_warm: float | None = None,
) -> Iterator[Executor]:
    """The executor asked for; closed (a Ray cluster it started is stopped) when the command ends."""
    try:
        executor = make_executor(kind or "local", address, workers, cpus_per_worker, keep_warm)
    except ExecutorError as exc:
        fail(f"--executor: {exc}")
    try:
        yield executor
    finally:
        executor.close()
