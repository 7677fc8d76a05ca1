"""Where checks and stages run: `local` (this process) or `ray` (a Ray cluster); see docs/scale.md."""

from __future__ import annotations

from custody.pipeline.executors.base import Executor, ExecutorError
from custody.pipeline.executors.local import LocalExecutor

KINDS = ("local", "ray")


def make_executor(kind: str = "local", address: str | None = None, workers: int | None = None) -> Executor:
    """The executor named `kind`; `address` and `workers` are for Ray only."""
    if kind == "local":
        if address:
            raise ExecutorError("--ray-address is only for --executor ray")
        return LocalExecutor()
    if kind == "ray":
        from custody.pipeline.executors.ray import RayExecutor

        return RayExecutor(address=address, workers=workers)
    raise ExecutorError(f"unknown executor {kind!r} (choose {' or '.join(KINDS)})")


__all__ = ["KINDS", "Executor", "ExecutorError", "LocalExecutor", "make_executor"]
