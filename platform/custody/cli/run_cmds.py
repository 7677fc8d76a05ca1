"""`custody run SPEC`: prepare, check, gate and train, as the run spec says; every step recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import (
    ActorOption,
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

EXIT_NOT_ALLOWED = 3  # also: the ledger holds no allow for exactly these bytes


def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="a run spec, e.g. pipelines/demo.toml")],
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
    ray_cpus_per_worker: RayCpusOption = None,
    ray_keep_warm: RayKeepWarmOption = None,
    nproc_per_node: Annotated[
        int | None,
        typer.Option("--nproc-per-node", min=1, help="train on this many torchrun ranks per node (gate once)"),
    ] = None,
    nnodes: Annotated[int, typer.Option("--nnodes", min=1, help="nodes in the run (others join with torchrun)")] = 1,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume", metavar="RUN_ID", help="continue an interrupted run of this spec from its last checkpoint"
        ),
    ] = None,
    rdzv_endpoint: Annotated[
        str | None, typer.Option("--rdzv-endpoint", metavar="HOST:PORT", help="where the nodes meet (--nnodes > 1)")
    ] = None,
) -> None:
    """Run a spec: prepare and check its datasets, ask the gate, and train only on an allow.

    With --nproc-per-node the gate runs once, here, and torchrun's ranks each verify the decision and
    every token shard before training (docs/runs.md, "Data parallel").

    Exit codes: 0 trained; 3 the gate denied (or no allow covers these bytes); 4 the gate needs a
    review first; 1 data changed after approval, or a rank failed; 2 a bad spec, policy or dataset name.
    """
    from custody.pipeline.executors import ExecutorError
    from custody.runs.governed import RunRefused
    from custody.runs.labelled import LabelError
    from custody.runs.preference_data import PreferenceDataError
    from custody.runs.resume import ResumeError
    from custody.runs.spec import SpecError, load_spec
    from custody.runs.trainers import run_spec
    from custody.stages.base import StageError
    from custody.train.checkpoint import CheckpointError

    try:
        loaded = load_spec(spec_path)
    except SpecError as exc:
        fail(str(exc))
    launch = None
    if nproc_per_node is not None or nnodes > 1:
        from custody.runs.distributed_run import Launch, LaunchError

        if nnodes > 1 and not rdzv_endpoint:
            fail("--nnodes above 1 needs --rdzv-endpoint HOST:PORT, where the other nodes' torchrun meets this one")
        launch = Launch(nproc_per_node or 1, nnodes, rdzv_endpoint)
    say = err_console.print if as_json else console.print
    # The flags override the spec's [executor] table; the address goes with the spec's Ray unless given.
    wanted = loaded.spec.executor
    kind = executor or wanted.kind
    address = ray_address or (wanted.address if kind == "ray" else None)
    workers = wanted.workers if kind == "ray" else None
    cpus = ray_cpus_per_worker or (wanted.cpus_per_worker if kind == "ray" else None)
    keep_warm = ray_keep_warm if ray_keep_warm is not None else (wanted.keep_warm if kind == "ray" else None)
    with opened(home, database) as h, executor_for(kind, address, workers, cpus, keep_warm) as runner:
        who = acting(h, key, actor, "run")
        try:
            outcome = run_spec(h, loaded, actor=who, say=say, executor=runner, launch=launch, resume=resume)
        except (
            StageError, SpecError, ExecutorError, LabelError, PreferenceDataError, CheckpointError, ResumeError
        ) as exc:  # fmt: skip
            fail(str(exc))
        except RuntimeError as exc:
            if launch is None or not isinstance(exc, LaunchError):
                raise
            fail(str(exc), 1)
        except RunRefused as exc:
            fail(f"refusing to train: {exc}", EXIT_NOT_ALLOWED)
        evaluations = _evaluate(h, loaded.spec, outcome, who, say) if outcome.result is not None else []
        if as_json:
            result = outcome.result
            print_json(
                {
                    "spec": str(loaded.path),
                    "spec_digest": loaded.digest,
                    "decision": outcome.gate.decision.decision,
                    "decision_index": outcome.gate.ledger_index,
                    "reasons": [r.as_json() for r in outcome.gate.decision.reasons],
                    "datasets": [{"ref": str(d.ref), "digest": d.digest} for d in outcome.prepared],
                    "run_id": outcome.run_id,
                    "entries": outcome.entries,
                    "evaluations": evaluations,
                    **_result_json(result),
                }
            )
    raise typer.Exit(outcome.exit_code)


def _evaluate(home, spec, outcome, who, say) -> list[dict]:
    """The spec's evaluations of the final model, each recorded as eval.completed."""
    from custody.datasets.names import parse_ref
    from custody.datasets.registry import DatasetNotFound, DatasetRegistry
    from custody.evals.run_eval import EvalError, evaluate

    done = []
    for wanted in spec.evaluations:
        try:
            dataset = DatasetRegistry(home).get(parse_ref(wanted.evalset))
            index, body = evaluate(home, outcome.run_id, dataset, wanted.task, who)
        except (DatasetNotFound, EvalError) as exc:
            fail(f"run {outcome.run_id} trained and is recorded, but its evaluation on {wanted.evalset} failed: {exc}")
        say(f"evaluated on {body['evalset']} ({body['task']}): {_headline(body)} (ledger index {index})")
        done.append(
            {"ledger_index": index, "evalset": body["evalset"], "task": body["task"], "results": body["results"]}
        )
    return done


def _headline(body: dict) -> str:
    everything = body["results"]["all"]
    shown = [f"{k} {v}" for k, v in everything.items() if k in ("perplexity", "accuracy", "f1", "roc_auc")]
    return ", ".join(shown) or f"{everything.get('records')} records"


def _result_json(result: object) -> dict:
    """What training left: a language model's final checkpoint, or a classifier's weights and scores."""
    from custody.runs.classifier import ClassifierResult

    if result is None:
        return {"final_val_loss": None, "model_digest": None, "emissions": None}
    if isinstance(result, dict):  # torchrun's ranks: what rank 0 wrote (runs/distributed_run.py)
        evals = result["evals"]
        return {
            "final_val_loss": evals[-1]["val_loss"] if evals else None,
            "model_digest": result["model_digest"],
            "emissions": result["emissions"],
            "world_size": result["world_size"],
        }
    if isinstance(result, ClassifierResult):
        return {
            "model_digest": result.digest,
            "weights": str(result.weights),
            "model_card": str(result.card),
            "held_out": result.held_out,
            "emissions": result.emissions.as_json(),
        }
    from custody.runs.preference_runs import PreferenceResult  # torch: only once a model trained

    if isinstance(result, PreferenceResult):
        return {
            "model_digest": result.digest,
            "weights": str(result.path),
            "preference": result.outcome,
            "emissions": result.emissions.as_json(),
        }
    return {
        "final_val_loss": result.evals[-1]["val_loss"] if result.evals else None,
        "model_digest": result.final.digest,
        "emissions": result.emissions.as_json() if result.emissions else None,
    }
