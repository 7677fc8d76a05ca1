"""What an executor is: the thing that scans a check's shards and runs a per-record stage's shards.

The driver (the process that called `run_check` or `run_stage`) stays in charge of everything
recorded: it accepts each scanned shard through `ShardWork` (a durable rename), concatenates the
parts in manifest order, derives the summary and appends the one ledger entry. An executor only
decides where `scan_shard` and `Stage.process` run: in this process (`local`) or on a Ray
cluster (`ray`). Shards may come back in any order; nothing downstream depends on that order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

from custody.checks.base import Check
from custody.pipeline.jobs import ScanJob, ScannedShard, StageJob, StagePart


class ExecutorError(RuntimeError):
    """The executor cannot run here (no Ray, no cluster), or a worker disagrees with the driver."""


class Executor(ABC):
    kind: ClassVar[str]
    distributed: ClassVar[bool] = False  # False: stages run in the driver as they always did

    def bind(self, check: Check) -> Any:
        """Called with the check before the driver opens it: what a worker rebuilds it from."""
        return None

    @abstractmethod
    def scan(self, job: ScanJob, todo: list[int]) -> Iterator[ScannedShard]:
        """Scan the shards numbered `todo`; yield each as soon as it is written, in any order."""

    def stage_parts(self, job: StageJob) -> Iterator[StagePart]:
        """Process every shard of `job.source`; yield the parts in shard order."""
        raise ExecutorError(f"the {self.kind} executor runs stages in the driver")

    def describe(self) -> str:
        return self.kind

    def close(self) -> None:  # noqa: B027  optional hook
        """Release workers and connections this executor started."""
