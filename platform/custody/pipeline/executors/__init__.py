"""Where checks and stages run: `local` (this process) or `ray` (a Ray cluster); see docs/scale.md."""

from __future__ import annotations

from custody.pipeline.executors.base import Executor, ExecutorError
from custody.pipeline.executors.local import LocalExecutor

KINDS = ("local", "ray")


def make_executor(
    kind: str = "local",
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float | None = None,
    keep_warm: float | None = None,
) -> Executor:
    """The executor named `kind`; `address`, `workers`, `cpus_per_worker` and `keep_warm` are for
    Ray only (an actor with N CPUs runs a check's pool of N scanners forked from one loaded model;
    `keep_warm` seconds keep a check's actors loaded for its next run)."""
    if kind == "local":
        if address:
            raise ExecutorError("--ray-address is only for --executor ray")
        if cpus_per_worker is not None:
            raise ExecutorError("--ray-cpus-per-worker is only for --executor ray")
        if keep_warm is not None:
            raise ExecutorError("--ray-keep-warm is only for --executor ray")
        return LocalExecutor()
    if kind == "ray":
        from custody.pipeline.executors.ray import RayExecutor

        if cpus_per_worker is not None and cpus_per_worker <= 0:
            raise ExecutorError(f"--ray-cpus-per-worker must be above 0, not {cpus_per_worker}")
        if keep_warm is not None and not 0 <= keep_warm < float("inf"):
            raise ExecutorError(f"--ray-keep-warm must be 0 or more seconds, not {keep_warm}")
        return RayExecutor(
            address=address, workers=workers, cpus_per_worker=cpus_per_worker or 1.0, keep_warm=keep_warm or 0.0
        )
    raise ExecutorError(f"unknown executor {kind!r} (choose {' or '.join(KINDS)})")


__all__ = ["KINDS", "Executor", "ExecutorError", "LocalExecutor", "make_executor"]
