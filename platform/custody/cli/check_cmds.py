"""`custody check` and `custody findings`: run checks, export their per-record rows."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from custody.checks.catalog import CHECKS, CheckError
from custody.checks.results import latest_results
from custody.cli.common import (
    ActorOption,
    DatabaseOption,
    HomeOption,
    JsonOption,
    KeyOption,
    acting,
    byte_progress,
    console,
    err_console,
    fail,
    opened,
    print_json,
)
from custody.cli.executor_opts import ExecutorOption, RayAddressOption, RayCpusOption, RayKeepWarmOption, executor_for
from custody.datasets.names import parse_ref
from custody.datasets.registry import DatasetRegistry
from custody.pipeline.executors import ExecutorError
from custody.pipeline.run_check import run_check
from custody.pipeline.shard_work import CheckBusyError
from custody.wording import counts, plural


def check(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION")],
    checks: Annotated[str | None, typer.Option(help="comma-separated checks [default: all available]")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
    ray_cpus_per_worker: RayCpusOption = None,
    ray_keep_warm: RayKeepWarmOption = None,
) -> None:
    """Run checks over a dataset; each records its rows, summary and a check.completed entry.

    With --executor ray the dataset's shards are scanned by Ray workers; this process stays the
    only ledger writer, and the results are byte-identical to a local run (docs/scale.md).
    """
    names = [c.strip() for c in checks.split(",")] if checks else CHECKS.names()
    try:
        for name in names:
            CHECKS.entry(name)
    except CheckError as exc:
        fail(f"--checks: {exc}")
    with (
        opened(home, database) as h,
        executor_for(executor, ray_address, None, ray_cpus_per_worker, ray_keep_warm) as runner,
    ):
        requester = acting(h, key, actor, "check")
        dataset = DatasetRegistry(h).get(parse_ref(ref))
        if runner.distributed and not as_json:
            err_console.print(f"executor: {runner.describe()}; shards are scanned on its workers")
        results = []
        for name in names:
            with byte_progress(as_json) as bar:
                task = bar.add_task(f"{name} on {dataset.ref}", total=dataset.manifest.bytes)
                try:
                    result = run_check(
                        h,
                        dataset,
                        CHECKS.build(name),
                        actor=requester,
                        progress=lambda n, t=task: bar.advance(t, n),
                        on_resume=lambda done, total, n=name: err_console.print(
                            f"{n}: resuming, {done} of {total} shards already done by an interrupted run"
                        ),
                        executor=runner,
                    )
                except (CheckBusyError, ExecutorError) as exc:
                    fail(str(exc))
            results.append(result)
            if not as_json:
                summary = result.summary(h)
                console.print(describe_result(name, result.version, result.status, result.records, summary))
                console.print(f"  ledger index {result.entry_index}")
                if name == "pii" and summary.get("risk", {}).get("max_level"):
                    console.print(f"  {describe_risk(summary['risk'])}")
                for finding in summary["findings"]:
                    console.print(f"  {finding['severity']}: {finding['id']} — {finding['message']}")
        if as_json:
            print_json(
                [
                    {
                        "check": r.check,
                        "version": r.version,
                        "status": r.status,
                        "records": r.records,
                        "ledger_index": r.entry_index,
                        "result_digest": r.result_digest,
                        "summary": r.summary(h),
                    }
                    for r in results
                ]
            )


def describe_result(name: str, version: str, status: str, records: int, summary: dict) -> str:
    """`pii 1.1.0: flag — 120 records (108 pass, 12 flag); 1 finding (1 flag)`: the status is the
    worst of the record verdicts and the dataset's findings, and the line says which is which."""
    found = summary["findings"]
    severities = Counter(f["severity"] for f in found)
    tail = f"; {plural(len(found), 'finding')} ({counts(severities)})" if found else "; no findings"
    return f"{name} {version}: {status} — {plural(records, 'record')} ({counts(summary['verdicts'])}){tail}"


def describe_risk(risk: dict) -> str:
    """`risk (pii-codex): highest identifiable; mean score 1.62 per record; findings by level:
    40 identifiable, 12 semi-identifiable` (levels from the highest down)."""
    levels = risk["levels"]
    found = {levels[n]: c for n, c in sorted(risk["findings_by_level"].items(), reverse=True) if c}
    by_level = counts(found, order=tuple(found))
    mean = "" if risk["score_mean"] is None else f"; mean score {risk['score_mean']:.2f} per record"
    return f"risk (pii-codex): highest {levels[str(risk['max_level'])]}{mean}; findings by level: {by_level}"


def findings(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION")],
    check_name: Annotated[str, typer.Option("--check", help="which check's rows")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="output file [default: stdout for jsonl]")] = None,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Export the per-record rows of a dataset's latest result of one check."""
    if fmt not in ("jsonl", "parquet"):
        fail(f"--format must be jsonl or parquet, not {fmt!r}")
    if fmt == "parquet" and out is None:
        fail("--format parquet needs --out FILE")
    with opened(home, database) as h:
        dataset = DatasetRegistry(h).get(parse_ref(ref))
        result = latest_results(h, dataset).get(check_name)
        if result is None:
            fail(f"no recorded {check_name!r} result for {dataset.ref} (run `custody check {dataset.ref}`)")
        data = h.store.read_bytes(result.result_digest)
        if fmt == "parquet":
            out.write_bytes(data)
            console.print(f"wrote {result.records} rows to {out}")
            return
        import io

        import polars as pl

        frame = pl.read_parquet(io.BytesIO(data))
        target = open(out, "w", encoding="utf-8") if out else sys.stdout  # noqa: SIM115
        try:
            for row in frame.iter_rows(named=True):
                if isinstance(row.get("details"), str) and row["details"]:
                    row["details"] = json.loads(row["details"])  # an object in the row, not a string of JSON
                target.write(json.dumps(row, ensure_ascii=False) + "\n")
        finally:
            if out:
                target.close()
        if out:
            console.print(f"wrote {frame.height} rows to {out}")
