"""`custody eval RUN_OR_CHECKPOINT EVALSET@VERSION`: score recorded weights on a registered,
annotated dataset and record `eval.completed/v1`.

The weights are named by a run id (its final model) or a checkpoint's digest (`sha256:...`, any
checkpoint a run recorded); they are loaded only when their bytes hash to that digest. The
evaluation set is read from its verified shards and checked by task shape (`evalsets/records.py`:
`choices` and `answer` make a multiple-choice set, `label` a classification set, plain text a
next-token loss set, or `--task`). Every record is checked before anything is scored, and an
evaluation that fails records nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.evals import entry_types  # noqa: F401  registers eval.completed/v1
from custody.evals.tasks import classification, lm_loss, multiple_choice
from custody.evalsets.records import EvalError, EvalRecord, load_records
from custody.home import Home
from custody.ledger import query
from custody.runs.outcome import emissions_body, run_dir
from custody.train.carbon import CarbonConfig, track_emissions

DIGEST = re.compile(r"^(sha256:)?[0-9a-f]{64}$")


@dataclass(frozen=True)
class Weights:
    digest: str
    run_id: str | None
    kind: str  # a run kind: pretrain, finetune, transfer (a GPT) or classifier
    path: Path


def _run_kind(home: Home, run_id: str) -> str:
    started = query.first(home.storage, "run.started/", f"run:{run_id}")
    return query.body(started)["kind"] if started is not None else "pretrain"


def resolve(home: Home, target: str) -> Weights:
    """The weights a run id or a checkpoint digest names, with the file holding them."""
    if DIGEST.fullmatch(target.strip()):
        digest = target.strip().removeprefix("sha256:")
        run_id = None
        for row in query.entries(home.storage, "run.checkpoint/"):
            if query.body(row)["checkpoint_digest"] == digest:
                run_id = query.body(row)["run_id"]
        for row in query.entries(home.storage, "run.finished/"):
            if query.body(row).get("model_digest") == digest:
                run_id = query.body(row)["run_id"]
        if run_id is None:
            raise EvalError(f"no recorded run wrote a checkpoint or model with sha256 {digest}")
    else:
        run_id = target.strip()
        finished = query.latest(home.storage, "run.finished/", f"run:{run_id}")
        if finished is None:
            raise EvalError(f"{run_id!r} is neither a finished run's id nor a checkpoint digest (sha256:...)")
        digest = query.body(finished).get("model_digest")
        if not digest:
            raise EvalError(f"run {run_id} recorded no model (status {query.body(finished)['status']})")
    return Weights(digest, run_id, _run_kind(home, run_id), _weights_file(home, digest, run_id))


def _weights_file(home: Home, digest: str, run_id: str | None) -> Path:
    if home.store.exists(digest):
        return home.store.path_for(digest)
    if run_id is not None:
        folder = run_dir(home, run_id)
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
                return path
    raise EvalError(f"the weights sha256 {digest} are neither in the artifact store nor in the run's folder")


def score(home: Home, weights: Weights, task: str, records: list[EvalRecord]) -> dict[str, dict[str, Any]]:
    """Metrics per slice for `records` under `task`, with the weights loaded digest-checked."""
    if weights.kind == "classifier":
        if task != "classification":
            raise EvalError(f"run {weights.run_id} trained a classifier: it answers classification sets, not {task}")
        from custody.toxicity.linear import LinearScorer

        scorer = LinearScorer(weights.path, weights.digest)
        return classification(lambda texts: scorer.probabilities(texts).tolist(), records)
    if weights.kind == "reward":
        raise EvalError(f"run {weights.run_id} trained a reward model: it scores preference pairs, not {task} sets")
    if task == "classification":
        raise EvalError(f"run {weights.run_id} trained a language model: it has no classification head")
    from custody.train.checkpoint import CheckpointError, load_checkpoint
    from custody.train.tokenizer import load_tokenizer

    try:
        checkpoint = load_checkpoint(weights.path, weights.digest)
    except CheckpointError as exc:
        raise EvalError(str(exc)) from None
    tokenizer_digest = checkpoint.state["meta"]["tokenizer_digest"]
    tokenizer = load_tokenizer(home.store.path_for(tokenizer_digest), tokenizer_digest)
    model = checkpoint.build_model()
    if task == "multiple-choice":
        return multiple_choice(model, tokenizer, records)
    return lm_loss(model, tokenizer, records)


def evaluate(
    home: Home,
    target: str,
    dataset: RegisteredDataset,
    task: str = "auto",
    actor: Any = None,
    carbon: CarbonConfig | None = None,
) -> tuple[int, dict[str, Any]]:
    """Score and record; (ledger index of eval.completed, its body)."""
    weights = resolve(home, target)
    task, records = load_records(dataset, task)
    with track_emissions(carbon or CarbonConfig(), label="custody-eval") as meter:
        metrics = score(home, weights, task, records)
    body = {
        "model_digest": weights.digest,
        "run_id": weights.run_id,
        "evalset": str(dataset.ref),
        "evalset_digest": dataset.digest,
        "task": task,
        "records": len(records),
        "results": metrics,
        "emissions": emissions_body(meter.result),
    }
    refs = [f"sha256:{weights.digest}", f"sha256:{dataset.digest}", f"ledger:{dataset.index}"]
    index = home.record("eval.completed/v1", f"model:{weights.digest}", body, refs=refs, actor=actor)
    return index, body


def evaluations_of(home: Home, model_digest: str) -> list[tuple[int, dict[str, Any]]]:
    """Every evaluation recorded for exactly these weights, oldest first."""
    return [
        (row.idx, query.body(row)) for row in query.entries(home.storage, "eval.completed/", f"model:{model_digest}")
    ]
