"""`custody prepare`: run preparation stages, each output a derived dataset with lineage."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli.common import (
    DatabaseOption,
    HomeOption,
    JsonOption,
    KeyOption,
    acting,
    console,
    err_console,
    fail,
    opened,
    print_json,
)
from custody.cli.executor_opts import ExecutorOption, RayAddressOption, RayCpusOption, RayKeepWarmOption, executor_for
from custody.datasets.names import DatasetRef, next_version, parse_ref
from custody.datasets.registry import DatasetRegistry
from custody.pipeline.chain import parse_option, run_chain
from custody.pipeline.executors import ExecutorError
from custody.pipeline.run_stage import StageResult
from custody.stages.base import StageError
from custody.stages.catalog import STAGES, available_stages


def prepare(
    ref: Annotated[str, typer.Argument(help="input dataset NAME@VERSION")],
    stages: Annotated[str, typer.Option(help=f"comma-separated stages, in order ({', '.join(available_stages())})")],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="the output dataset NAME@VERSION [default: NAME@<next version>]"),
    ] = None,
    legacy_output: Annotated[
        str | None, typer.Option("--as", hidden=True, help="old spelling of --output (deprecated)")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="a stage setting, STAGE.KEY=VALUE (VALUE as TOML; repeatable)"),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="who you expect to act as: checked against the roster name of --key"),
    ] = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
    ray_cpus_per_worker: RayCpusOption = None,
    ray_keep_warm: RayKeepWarmOption = None,
    index: Annotated[
        bool,
        typer.Option("--index/--no-index", help="build each output's passage index for `custody find` now"),
    ] = True,
) -> None:
    """Apply stages to a dataset; each stage registers a derived dataset with per-record decisions
    (and its passage index for `custody find`, unless --no-index).

    With --executor ray, per-record stages process the input's shards on Ray workers; stages that
    compare records (dedup-exact, dedup-near) run in this process. The output is the same either way.
    """
    names = [s.strip() for s in stages.split(",") if s.strip()]
    options: dict[str, dict] = {}
    try:
        for text in option or []:
            stage, setting, value = parse_option(text)
            options.setdefault(stage, {})[setting] = value
    except StageError as exc:
        fail(str(exc))

    def show(result: StageResult) -> None:
        if index:
            from custody.takedown.index import index_for

            index_for(result.output.home, result.output, requester)
        if as_json:
            return
        console.print(
            f"{result.stage}: {result.output.ref} — kept {result.counts['keep']}, modified "
            f"{result.counts['modify']}, dropped {result.counts['drop']} (ledger index {result.entry_index})"
        )
        for key, value in result.summary.items():
            if key not in ("stage", "version", "input", "output", "counts", "reasons"):
                console.print(f"  {key}: {value}")

    with (
        opened(home, database) as h,
        executor_for(executor, ray_address, None, ray_cpus_per_worker, ray_keep_warm) as runner,
    ):
        requester = acting(h, key, actor, "prepare")
        registry = DatasetRegistry(h)
        source = registry.get(parse_ref(ref))
        if legacy_output is not None:
            err_console.print(
                f"warning: `prepare --as {legacy_output}` names the output; use --output {legacy_output} "
                "(--as will mean who is acting, as in every other command)"
            )
            output = output or legacy_output
        target = (
            parse_ref(output)
            if output
            else DatasetRef(source.ref.name, next_version(registry.versions(source.ref.name)))
        )
        if runner.distributed:
            say = err_console.print if as_json else console.print
            for name in names:
                parallel = name in STAGES and STAGES.load(name).parallel
                where = "on Ray workers, shard by shard" if parallel else "on the driver (it compares records)"
                say(f"{name}: runs {where}")
        try:
            results = run_chain(h, source, names, target, options, actor=requester, on_result=show, executor=runner)
        except StageError as exc:
            fail(f"--stages: {exc}" if str(exc).startswith("unknown stage") else str(exc))
        except ExecutorError as exc:
            fail(str(exc))
        if as_json:
            print_json(
                [
                    {
                        "stage": r.stage,
                        "output": str(r.output.ref),
                        "digest": r.output.digest,
                        "ledger_index": r.entry_index,
                        "summary": r.summary,
                    }
                    for r in results
                ]
            )
