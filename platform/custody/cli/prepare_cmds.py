"""`custody prepare`: run preparation stages, each output a derived dataset with lineage."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli.common import DatabaseOption, HomeOption, JsonOption, console, fail, opened, print_json
from custody.datasets.names import parse_ref
from custody.datasets.registry import DatasetRegistry
from custody.stages.catalog import available_stages
from custody.stages.chain import parse_option, run_chain
from custody.stages.runner import StageError, StageResult


def prepare(
    ref: Annotated[str, typer.Argument(help="input dataset NAME@VERSION")],
    stages: Annotated[str, typer.Option(help=f"comma-separated stages, in order ({', '.join(available_stages())})")],
    output: Annotated[str, typer.Option("--as", help="output dataset NAME@VERSION")],
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="a stage setting, STAGE.KEY=VALUE (VALUE as TOML; repeatable)"),
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="who is acting [default: $CUSTODY_ACTOR]")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Apply stages to a dataset; each stage registers a derived dataset with per-record decisions."""
    names = [s.strip() for s in stages.split(",") if s.strip()]
    options: dict[str, dict] = {}
    try:
        for text in option or []:
            stage, key, value = parse_option(text)
            options.setdefault(stage, {})[key] = value
    except StageError as exc:
        fail(str(exc))

    def show(result: StageResult) -> None:
        if as_json:
            return
        console.print(
            f"{result.stage}: {result.output.ref} — kept {result.counts['keep']}, modified "
            f"{result.counts['modify']}, dropped {result.counts['drop']} (ledger index {result.entry_index})"
        )
        for key, value in result.summary.items():
            if key not in ("stage", "version", "input", "output", "counts", "reasons"):
                console.print(f"  {key}: {value}")

    with opened(home, database) as h:
        target = parse_ref(output)
        source = DatasetRegistry(h).get(parse_ref(ref))
        try:
            results = run_chain(h, source, names, target, options, actor=actor, on_result=show)
        except StageError as exc:
            fail(f"--stages: {exc}" if str(exc).startswith("unknown stage") else str(exc))
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
