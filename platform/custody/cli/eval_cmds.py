"""`custody eval RUN_OR_CHECKPOINT EVALSET@VERSION`: score recorded weights on an annotated dataset."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli.common import (
    ActorOption,
    DatabaseOption,
    HomeOption,
    JsonOption,
    KeyOption,
    WeightsArgument,
    acting,
    console,
    fail,
    opened,
    print_json,
)

METRIC_ORDER = ("records", "tokens", "nll", "perplexity", "accuracy", "accuracy_norm", "positives", "f1", "roc_auc")


def eval_command(
    target: WeightsArgument,
    evalset: Annotated[str, typer.Argument(metavar="EVALSET@VERSION", help="a registered evaluation dataset")],
    task: Annotated[
        str, typer.Option("--task", help="auto (from the fields), loss, multiple-choice or classification")
    ] = "auto",
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Score a model on an evaluation dataset and record `eval.completed` (docs/evaluation.md).

    Task shapes: next-token loss and perplexity per `slice`; multiple-choice (`choices`, `answer`);
    classification (`label`, for classifier runs). Exit 0 recorded; 2 bad input (unknown weights,
    changed bytes, a record without its labels or with one out of range): nothing recorded.
    """
    from custody.datasets.names import DatasetRefError, parse_ref
    from custody.datasets.registry import DatasetNotFound, DatasetRegistry
    from custody.evals.run_eval import EvalError, evaluate

    with opened(home, database) as h:
        who = acting(h, key, actor, "eval")
        try:
            dataset = DatasetRegistry(h).get(parse_ref(evalset))
            index, body = evaluate(h, target, dataset, task, who)
        except (DatasetRefError, DatasetNotFound, EvalError) as exc:
            fail(str(exc))
    if as_json:
        print_json({"ledger_index": index, **body})
        return
    console.print(
        f"{body['task']} evaluation of sha256 {body['model_digest'][:16]}… "
        f"({'run ' + body['run_id'] if body['run_id'] else 'no run'}) on {body['evalset']}: "
        f"recorded at ledger index {index}"
    )
    names = [m for m in METRIC_ORDER if any(m in values for values in body["results"].values())]
    console.print("  " + "  ".join(f"{h:>13}" for h in ["slice", *names]))
    for slice_name, values in body["results"].items():
        cells = [_cell(values.get(m)) for m in names]
        console.print("  " + "  ".join(f"{c:>13}" for c in [slice_name, *cells]))
    used = body["emissions"]
    console.print(f"  energy {used['energy_kwh'] * 1000:.4f} Wh, {used['emissions_kg_co2e'] * 1000:.4f} g CO2e")


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def release_command(
    target: WeightsArgument,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="the purpose to release for [default: the run's own]")
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option("--policy", help="a policy file or shipped name (can only add reasons to the bound one)"),
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Release a model: the gate judges its training data as it stands now and its recorded
    evaluations (rule release.evaluation); an allow is recorded as `model.released`.

    Exit codes as `custody gate`: 0 released; 3 denied; 4 needs review; 2 bad input.
    """
    from custody.evals.release import release
    from custody.evals.run_eval import EvalError
    from custody.policy.schema import PolicyError, load_policy

    with opened(home, database) as h:
        who = acting(h, key, actor, "release")
        try:
            loaded = load_policy(policy) if policy is not None else None
            done = release(h, target, who, purpose, loaded)
        except (EvalError, PolicyError, ValueError) as exc:
            fail(str(exc))
    decision = done.gate.decision
    if as_json:
        print_json(
            {
                "released_at": done.ledger_index,
                "model_digest": done.weights.digest,
                "contamination": done.contamination,
                **done.gate.as_json(),
            }
        )
    else:
        verdict = f"released at ledger index {done.ledger_index}" if done.ledger_index is not None else "not released"
        console.print(
            f"{decision.decision}: model sha256 {done.weights.digest[:16]}… ({verdict}; decision at ledger index "
            f"{done.gate.ledger_index}, {done.gate.describe_policies()})"
        )
        for c in done.contamination:
            console.print(
                f"  {c['evalset']}: {c['contaminated']} of {c['judged']} judged records share a run of "
                f"{c['ngram']} words with the training data (ledger index {c['ledger_index']})"
            )
        for reason in decision.reasons:
            console.print(f"  {reason.outcome}  {reason.finding}: {reason.message}")
    raise typer.Exit(decision.exit_code)
