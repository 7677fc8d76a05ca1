"""Running a check: its shards on an executor, rows to Parquet, summary to JSON, both to the store, one ledger entry."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from custody.checks import entry_types  # noqa: F401  registers check.completed/v1 and v2
from custody.checks.base import Check, CheckReport, worst
from custody.checks.results import CheckResult
from custody.checks.rows import concatenate
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger.entry import canonical_json
from custody.pipeline.executors.base import Executor
from custody.pipeline.executors.local import LocalExecutor
from custody.pipeline.jobs import ScanJob, ScannedShard
from custody.pipeline.record import record_completed
from custody.pipeline.shard_work import FinishedShard, ShardWork
from custody.pipeline.timeline import Timeline, maybe
from custody.store import sha256_file
from custody.train.carbon import CarbonConfig, UnitMeter

DEFAULT_CARBON = CarbonConfig()  # the grid, PUE and WUE a check is measured with unless told


def run_check(
    home: Home,
    dataset: RegisteredDataset,
    check: Check,
    actor: str | None = None,
    progress: Callable[[int], None] | None = None,
    on_resume: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
    carbon: CarbonConfig | None = DEFAULT_CARBON,
    timeline: Timeline | None = None,
) -> CheckResult:
    """Run one check over a dataset and record it; nothing is recorded if the check fails.

    Each finished shard's rows and tally are kept in the home's work area (`ShardWork`), so a
    run that crashed resumes at its first unfinished shard; `on_resume(done, total)` is told
    how many shards were already done. The recorded result is byte-identical either way, and
    whichever `executor` scanned the shards (None: this process, shard after shard).

    One CodeCarbon tracker measures the whole check in this process, from opening it (its model
    loads) to its result in the store, never per shard, and the entry (`check.completed/v2`)
    carries what it measured; `carbon=None` measures nothing and records `check.completed/v1`.
    A resumed check measures this session only. With a distributed executor the tracker sees the
    driver's machine only (docs/scale.md). A `timeline` is given the run's phases and what the
    executor's workers report (bench/scale.py reads it); it changes nothing recorded.
    """
    executor = executor or LocalExecutor()
    # Before open: workers rebuild the check as the caller built it, and may start loading now.
    blueprint = executor.bind(check, dataset)
    try:
        meter = UnitMeter(carbon, f"custody-check-{check.name}")
        with maybe(timeline, "meter start"):  # CodeCarbon's imports, the first time in a process
            meter.start()
        with meter:
            return _run(home, dataset, check, actor, progress, on_resume, executor, blueprint, meter, timeline)
    finally:
        executor.release()


def _run(
    home: Home,
    dataset: RegisteredDataset,
    check: Check,
    actor: str | None,
    progress: Callable[[int], None] | None,
    on_resume: Callable[[int, int], None] | None,
    executor: Executor,
    blueprint: object,
    meter: UnitMeter,
    timeline: Timeline | None,
) -> CheckResult:
    # Workers elsewhere open their own copies; the driver needs one only if `finish` does.
    if executor.scans_here or check.finish_needs_open:
        with maybe(timeline, "open"):
            check.open(dataset)
    try:
        config = check.config()
        config_digest = home.store.put_bytes(canonical_json(config))
        with ShardWork.claim(home, dataset, check, config_digest) as work:
            shards = dataset.manifest.shards
            done = work.completed()
            if done and on_resume:
                on_resume(len(done), len(shards))
            if progress:
                for number in done:
                    progress(shards[number].bytes)
            todo = [number for number in range(len(shards)) if number not in done]
            job = ScanJob(home, dataset, check, config_digest, work, blueprint, timeline)
            for scanned in executor.scan(job, todo):
                with maybe(timeline, "accept", shard=scanned.number):
                    done[scanned.number] = _accept(work, dataset, scanned)
                if progress:
                    progress(shards[scanned.number].bytes)
            # Manifest order, whatever order the shards finished in.
            finished = [done[number] for number in range(len(shards))]
            with maybe(timeline, "finish"):
                report = check.finish(dataset, [f.tally for f in finished])
            verdicts: Counter[str] = Counter()
            for f in finished:
                verdicts.update(f.verdicts)
            with tempfile.TemporaryDirectory(prefix="custody-check-") as tmp:
                rows = Path(tmp) / "rows.parquet"
                with maybe(timeline, "concatenate"):
                    concatenate([work.part_path(n) for n in range(len(shards))], rows)
                with maybe(timeline, "store"):
                    result_digest = home.store.put_file(rows)
            meter.finish()  # the measurement ends where the recording begins
            with maybe(timeline, "record"):
                body = meter.body()
                result = _record(home, dataset, check, report, verdicts, config_digest, result_digest, actor, body)
                work.remove()
            return result
    finally:
        check.close()


def _accept(work: ShardWork, dataset: RegisteredDataset, scanned: ScannedShard) -> FinishedShard:
    """Make a scanned shard durable; a part the driver cannot see, or sees changed, is refused."""
    if not scanned.written.exists():
        raise FileNotFoundError(
            f"{scanned.worker} wrote shard {scanned.number} to {scanned.written}, which this machine cannot see: "
            "the custody home must be on storage every worker shares (docs/scale.md)"
        )
    if scanned.rows_sha256 is not None and sha256_file(scanned.written) != scanned.rows_sha256:
        raise OSError(f"shard {scanned.number}: the part changed between {scanned.worker} and this machine")
    shard = dataset.manifest.shards[scanned.number]
    return work.finish_shard(scanned.number, shard, scanned.written, scanned.tally, scanned.verdicts, scanned.rows)


def _record(
    home: Home,
    dataset: RegisteredDataset,
    check: Check,
    report: CheckReport,
    verdicts: Counter[str],
    config_digest: str,
    result_digest: str,
    actor: str | None,
    emissions: dict | None,
) -> CheckResult:
    records = sum(verdicts.values())
    status = worst([f.severity for f in report.findings] + [v for v in verdicts if verdicts[v]])
    summary = {
        "check": check.name,
        "version": check.version,
        "dataset": str(dataset.ref),
        "dataset_digest": dataset.digest,
        "records": records,
        "verdicts": dict(sorted(verdicts.items())),
        "status": status,
        "findings": [asdict(f) for f in report.findings],
        **report.summary,
    }
    body = {
        "check": check.name,
        "version": check.version,
        "dataset": str(dataset.ref),
        "dataset_digest": dataset.digest,
        "config_digest": config_digest,
        "model_digest": check.model_digest(),
        "result_digest": result_digest,
        "records": records,
        "verdicts": dict(sorted(verdicts.items())),
        "status": status,
        "findings": [{"id": f.id, "severity": f.severity} for f in report.findings],
    }
    entry_type = "check.completed/v1"
    if emissions is not None:
        entry_type, body["emissions"] = "check.completed/v2", emissions
    artifacts = [dataset.digest, config_digest, result_digest]
    index, body = record_completed(home, entry_type, dataset.ref.subject, summary, body, artifacts, actor)
    return CheckResult.recorded(index, body)
