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
from pathlib import Path
from typing import Any, ClassVar

from custody.checks.base import Check
from custody.checks.rows import RowWriter
from custody.datasets.registry import RegisteredDataset
from custody.pipeline.jobs import ScanJob, ScannedShard, StageJob, StagePart
from custody.store import sha256_file


def scan_one(
    check: Check, dataset: RegisteredDataset, number: int, path: Path, worker: str = "local", digest: bool = False
) -> ScannedShard:
    """Scan shard `number` into a rows part at `path`: the unit of work every executor runs.
    A part is removed if the check fails; `digest` records its SHA-256 for a driver elsewhere."""
    writer = RowWriter(path, str(dataset.ref), check)
    try:
        tally = check.scan_shard(dataset, dataset.manifest.shards[number], writer.emit)
    except BaseException:
        writer.close()
        path.unlink(missing_ok=True)
        raise
    writer.close()
    rows_sha256 = sha256_file(path) if digest else None
    return ScannedShard(number, path, tally, dict(writer.verdicts), writer.count, rows_sha256, worker)


class ExecutorError(RuntimeError):
    """The executor cannot run here (no Ray, no cluster), or a worker disagrees with the driver."""


class Executor(ABC):
    kind: ClassVar[str]
    distributed: ClassVar[bool] = False  # False: stages run in the driver as they always did
    scans_here: ClassVar[bool] = True  # False: a check's shards are scanned by workers elsewhere

    def bind(self, check: Check, dataset: RegisteredDataset | None = None) -> Any:
        """Called with the check before the driver opens it: what a worker rebuilds it from.
        With the dataset, an executor may start its workers now, so that their start-up (and
        their models' loading) overlaps the driver's own `open`; `release` stops any left unused."""
        return None

    def release(self) -> None:  # noqa: B027  optional hook
        """Stop the workers `bind` started that no `scan` took (the run stopped before scanning)."""

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
