"""The units of work the pipeline hands to an executor, and what comes back from each shard.

A job is set up by the driver (the process that called `run_check` or `run_stage`) and names
everything a worker needs; a result names the files a worker wrote, which only the driver
accepts and records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.checks.base import Check, Tally
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.pipeline.shard_work import ShardWork
from custody.pipeline.timeline import Timeline


@dataclass(frozen=True)
class ScanJob:
    """One check over one dataset, as the driver set it up (the check is already opened here)."""

    home: Home
    dataset: RegisteredDataset
    check: Check
    config_digest: str
    work: ShardWork
    blueprint: Any = None  # what `Executor.bind` returned for the unopened check
    timeline: Timeline | None = None  # where the workers' spans go, when someone measures


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
    timing: dict[str, Any] | None = None  # a worker's own stamps (timeline.py), when it reports them


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
    worker: str = "local"
