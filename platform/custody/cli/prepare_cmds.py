"""`custody prepare`: run preparation stages, each output a derived dataset with lineage."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli.common import DatabaseOption, HomeOption, JsonOption, console, fail, opened, print_json
from custody.datasets.names import DatasetRef, parse_ref
from custody.datasets.registry import DatasetRegistry
from custody.stages.catalog import available_stages, build_stage
from custody.stages.runner import StageError, run_stage


def prepare(
    ref: Annotated[str, typer.Argument(help="input dataset NAME@VERSION")],
    stages: Annotated[str, typer.Option(help=f"comma-separated stages, in order ({', '.join(available_stages())})")],
    output: Annotated[str, typer.Option("--as", help="output dataset NAME@VERSION")],
    actor: Annotated[str | None, typer.Option("--actor", help="who is acting [default: $CUSTODY_ACTOR]")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Apply stages to a dataset; each stage registers a derived dataset with per-record decisions."""
    names = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = [n for n in names if n not in available_stages()]
    if not names or unknown:
        fail(f"--stages: unknown stage '{(unknown or [''])[0]}' (available: {', '.join(available_stages())})")
    with opened(home, database) as h:
        target = parse_ref(output)
        current = DatasetRegistry(h).get(parse_ref(ref))
        results = []
        for i, name in enumerate(names):
            # Intermediate outputs are named after the final one, so lineage reads in order.
            last = i == len(names) - 1
            out = target if last else DatasetRef(target.name, f"{target.version}+{i + 1}-{name}")
            try:
                stage = build_stage(name, h)
            except ValueError as exc:  # a malformed HOME/redaction.toml or toxicity.toml
                fail(str(exc))
            try:
                result = run_stage(h, stage, current, out, actor=actor)
            except StageError as exc:
                fail(str(exc))
            results.append(result)
            current = result.output
            if not as_json:
                console.print(
                    f"{name}: {current.ref} — kept {result.counts['keep']}, modified "
                    f"{result.counts['modify']}, dropped {result.counts['drop']} (ledger index "
                    f"{result.entry_index})"
                )
                for key, value in result.summary.items():
                    if key not in ("stage", "version", "input", "output", "counts", "reasons"):
                        console.print(f"  {key}: {value}")
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
