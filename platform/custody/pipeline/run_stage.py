"""Running stages: derived datasets with lineage, per-record decisions and a stage entry each."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from custody.datasets.names import DatasetRef
from custody.datasets.registry import DatasetRegistry, RegisteredDataset, write_records_shard
from custody.home import Home
from custody.ledger.entry import json_digest
from custody.pipeline.decisions import DecisionWriter, output_row
from custody.pipeline.executors.base import Executor
from custody.pipeline.jobs import StageJob
from custody.pipeline.record import record_completed
from custody.stages import entry_types  # noqa: F401  registers stage.completed/v1 and v2
from custody.stages.base import EmptyOutput, Stage, StageError
from custody.train.carbon import CarbonConfig, UnitMeter

DEFAULT_CARBON = CarbonConfig()  # the grid, PUE and WUE a stage is measured with unless told


@dataclass(frozen=True)
class StageResult:
    stage: str
    output: RegisteredDataset
    entry_index: int
    counts: dict[str, int]
    summary: dict


def _in_driver(
    stage: Stage, source: RegisteredDataset, decisions: DecisionWriter, progress: Callable[[int], None] | None
) -> Iterator[dict]:
    records = (record for _, record in source.records())
    for count, decision in enumerate(stage.process(records), start=1):
        row, new_hash = output_row(decision)
        if row is not None:
            yield row
        decisions.add(decision, new_hash)
        stage.observe(decision.action, decision.reason)
        if progress and count % 256 == 0:
            progress(256)


def _on_workers(job: StageJob, executor: Executor, stage: Stage, decisions: DecisionWriter) -> Iterator[dict]:
    """Shard parts from the workers, taken in shard order: the same rows, in the same order, as in the driver."""
    for part in executor.stage_parts(job):
        with open(part.records, "rb") as lines:
            for line in lines:
                yield json.loads(line)
        for row in pq.read_table(part.decisions).to_pylist():
            decisions.add_row(row)
            stage.observe(row["action"], row["reason"])


def run_stage(
    home: Home,
    stage: Stage,
    source: RegisteredDataset,
    output: DatasetRef,
    actor: str | None = None,
    progress: Callable[[int], None] | None = None,
    executor: Executor | None = None,
    options: dict[str, Any] | None = None,
    carbon: CarbonConfig | None = DEFAULT_CARBON,
) -> StageResult:
    """Apply one stage to `source` and register the result as `output` with lineage.

    With a distributed `executor` (Ray) and a per-record stage (`Stage.parallel`), the source's
    shards are processed on workers, each building the stage from its name and `options`; the
    output is the same bytes as in the driver. Other stages always run here.

    One CodeCarbon tracker measures the whole stage in this process (never per shard), up to the
    output's registration, and its entry (`stage.completed/v2`) carries what it measured;
    `carbon=None` measures nothing and records `stage.completed/v1`. With a distributed executor
    the tracker sees the driver's machine only (docs/scale.md).
    """
    registry = DatasetRegistry(home)
    if registry.find(output) is not None:
        raise StageError(f"{output} is already registered; choose another --output name or version")
    with UnitMeter(carbon, f"custody-stage-{stage.name}") as meter:
        derived, decisions, decisions_digest = _run(
            home, registry, stage, source, output, actor, progress, executor, options
        )
    return _record(home, stage, source, output, derived, decisions, decisions_digest, actor, meter.body())


def _run(
    home: Home,
    registry: DatasetRegistry,
    stage: Stage,
    source: RegisteredDataset,
    output: DatasetRef,
    actor: str | None,
    progress: Callable[[int], None] | None,
    executor: Executor | None,
    options: dict[str, Any] | None,
) -> tuple[RegisteredDataset, DecisionWriter, str]:
    config = stage.recorded_config()
    with tempfile.TemporaryDirectory(prefix="custody-stage-") as tmp:
        decisions = DecisionWriter(Path(tmp) / "decisions.parquet")
        scratch = None
        if executor is not None and executor.distributed and stage.parallel:
            # Workers write their parts where every node sees them: the home's work area.
            scratch = home.path / "work" / "stages" / uuid.uuid4().hex
            scratch.mkdir(parents=True)
            job = StageJob(home, source, stage.name, dict(options or {}), json_digest(config), scratch)
            outputs = _on_workers(job, executor, stage, decisions)
        else:
            outputs = _in_driver(stage, source, decisions, progress)
        try:
            shard = write_records_shard(outputs, Path(tmp) / "part-00000.jsonl.zst")
        finally:
            decisions.close()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        if decisions.counts.get("drop", 0) == sum(decisions.counts.values()):
            raise EmptyOutput(f"stage {stage.name} dropped every record of {source.ref}; nothing to register")
        decisions_digest = home.store.put_file(Path(tmp) / "decisions.parquet")
        derived, _ = registry.register_derived(
            output,
            [source],
            stage.name,
            config,
            shard,
            decisions_digest=decisions_digest,
            actor=actor,
            stage_options=None if options is None else dict(options),
        )
    return derived, decisions, decisions_digest


def _record(
    home: Home,
    stage: Stage,
    source: RegisteredDataset,
    output: DatasetRef,
    derived: RegisteredDataset,
    decisions: DecisionWriter,
    decisions_digest: str,
    actor: str | None,
    emissions: dict | None,
) -> StageResult:
    summary = {
        "stage": stage.name,
        "version": stage.version,
        "input": str(source.ref),
        "output": str(output),
        "counts": {a: decisions.counts.get(a, 0) for a in ("keep", "modify", "drop")},
        "reasons": dict(decisions.reasons.most_common()),
        **stage.summarize(derived),
    }
    body = {
        "stage": stage.name,
        "version": stage.version,
        "input": str(source.ref),
        "input_digest": source.digest,
        "output": str(output),
        "output_digest": derived.digest,
        "config_digest": derived.body["stage"]["config_digest"],
        "decisions_digest": decisions_digest,
        "kept": summary["counts"]["keep"],
        "modified": summary["counts"]["modify"],
        "dropped": summary["counts"]["drop"],
    }
    entry_type = "stage.completed/v1"
    if emissions is not None:
        entry_type, body["emissions"] = "stage.completed/v2", emissions
    artifacts = [source.digest, derived.digest, decisions_digest]
    index, _ = record_completed(home, entry_type, output.subject, summary, body, artifacts, actor)
    return StageResult(stage.name, derived, index, summary["counts"], summary)
