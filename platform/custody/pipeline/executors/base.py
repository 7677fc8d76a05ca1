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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from custody.checks.base import Check, Tally
from custody.checks.work import ShardWork
from custody.datasets.registry import RegisteredDataset
from custody.home import Home


class ExecutorError(RuntimeError):
    """The executor cannot run here (no Ray, no cluster), or a worker disagrees with the driver."""


@dataclass(frozen=True)
class ScanJob:
    """One check over one dataset, as the driver set it up (the check is already opened here)."""

    home: Home
    dataset: RegisteredDataset
    check: Check
    config_digest: str
    work: ShardWork
    blueprint: Any = None  # what `Executor.bind` returned for the unopened check


@dataclass(frozen=True)
class ScannedShard:
    """One shard's rows (a part not yet accepted) and its counts."""

    number: int
    written: Path
    tally: Tally
    verdicts: dict[str, int]
    rows: int
    rows_sha256: str | None = None  # as the worker saw the part; the driver compares
    worker: str = "local"


@dataclass(frozen=True)
class StageJob:
    """One per-record stage over one dataset; parts go to `scratch` (on storage every node sees)."""

    home: Home
    source: RegisteredDataset
    stage: str
    options: dict[str, Any]
    config_digest: str
    scratch: Path


@dataclass(frozen=True)
class StagePart:
    """One shard's output records (JSON lines) and decisions (Parquet), in the shard's record order."""

    number: int
    records: Path
    decisions: Path
    count: int
    worker: str = field(default="local")


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
