"""The classifier half of `custody run` (kind = 'classifier'): custody-linear on labelled records.

Only called after `require_allow` (see governed.py), like the language-model half. It reads every
record of the approved datasets from shard bytes re-hashed against their manifests, with each
dataset's label field; a record whose text SHA-256 falls under `[classifier] held_out` is never
trained on and is scored afterwards (the same rule as a language model's validation split, so a
reader can recompute which records were held out from the bytes alone). The weights are written
deterministically (the same data and settings give the same file), stored by digest, named in
run.finished, and described by a model card that cites the ledger entries that produced them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody import __version__
from custody.ledger.entry import canonical_json
from custody.runs.api import GovernedRun
from custody.runs.labelled import LabelError, labelled_set
from custody.runs.model_card import model_card
from custody.runs.outcome import (
    carbon_config,
    emissions_body,
)
from custody.runs.spec import RunSpec
from custody.toxicity import linear
from custody.train.carbon import Emissions, track_emissions

WEIGHTS_FILE = "model.npz"
CARD_FILE = "MODEL_CARD.md"


@dataclass(frozen=True)
class ClassifierResult:
    """What a classifier run leaves: the weights (in the run folder and the store), the card, the scores."""

    weights: Path
    digest: str
    card: Path
    held_out: list[dict[str, Any]]
    emissions: Emissions


def held_out_scores(name: str, labels: list[int], probabilities: list[float]) -> dict[str, Any]:
    from sklearn.metrics import f1_score, roc_auc_score

    both = len(set(labels)) == 2
    return {
        "dataset": name,
        "records": len(labels),
        "positives": int(sum(labels)),
        "roc_auc": round(float(roc_auc_score(labels, probabilities)), 4) if both else None,
        "f1": round(float(f1_score(labels, [int(p >= 0.5) for p in probabilities], zero_division=0)), 4),
    }


def _log_loss(labels: list[int], probabilities: Any) -> float | None:
    from sklearn.metrics import log_loss

    return round(float(log_loss(labels, probabilities, labels=[0, 1])), 6) if labels else None


def _settings(spec: RunSpec) -> dict[str, Any]:
    c = spec.classifier
    labels = {d.ref: spec.label_for(d) for d in spec.datasets}
    return {"model": c.model, "C": c.c, "held_out": c.held_out, "labels": labels}


def train_classifier(run: GovernedRun) -> None:
    """Train the allowed run's classifier on its labelled, approved records."""
    home, outcome, say = run.home, run.outcome, run.say
    spec = outcome.spec.spec
    settings = _settings(spec)
    out = run.directory
    out.mkdir(parents=True, exist_ok=True)
    sets = [  # prepared datasets come in the spec's order
        labelled_set(dataset, spec.label_for(item), spec.classifier.held_out)
        for item, dataset in zip(spec.datasets, outcome.prepared, strict=True)
    ]
    texts = [t for s in sets for t in s.train_texts]
    labels = [y for s in sets for y in s.train_labels]
    if len(set(labels)) < 2:
        raise LabelError(f"{outcome.spec.path}: the records trained on hold one class only; a classifier needs both")
    started = {
        "tokenizer_digest": home.store.put_bytes(canonical_json(linear.FEATURES)),
        "model_config_digest": home.store.put_bytes(canonical_json({"format": linear.FORMAT, **settings})),
        "train_config_digest": home.store.put_bytes(canonical_json(settings)),
        "code_version": f"custody {__version__}, {linear.versions()}",
        "device": "cpu",
        "world_size": 1,
        "seed": 0,  # liblinear's dual coordinate descent with a fixed random_state: deterministic
        "parameters": linear.columns(),
    }
    run.record_started("run.started/v2", started)
    say(
        f"run {outcome.run_id} started: {spec.classifier.model} on {len(texts):,} records "
        f"({sum(labels):,} positive) (ledger index {outcome.entries['run.started']})"
    )
    try:
        with track_emissions(carbon_config(spec), label="custody-classifier") as meter:
            began = time.perf_counter()
            model = linear.fit(texts, labels, c=spec.classifier.c)
            fit_s = time.perf_counter() - began
            trained_on = [
                {"dataset": str(s.dataset.ref), "digest": s.dataset.digest, "records": len(s.train_texts)} for s in sets
            ]
            meta = {"trained_on": trained_on, "C": spec.classifier.c, "held_out": spec.classifier.held_out}
            weights = out / WEIGHTS_FILE
            digest = linear.save(weights, model["coef"], model["intercept"], meta)
            scorer = linear.LinearScorer(weights, digest)
            train_loss = _log_loss(labels, scorer.probabilities(texts))
            held: list[dict[str, Any]] = []
            all_held, all_probabilities, scoring_s = [], [], 0.0
            for s in sets:
                began = time.perf_counter()
                probabilities = [float(p) for p in scorer.probabilities(s.held_texts)]
                scoring_s += time.perf_counter() - began
                held.append(held_out_scores(str(s.dataset.ref), s.held_labels, probabilities))
                all_held += s.held_labels
                all_probabilities += probabilities
    except BaseException as exc:
        run.record_failed(exc, "run.finished/v2")
        raise
    emissions = meter.result
    home.store.put_file(weights)
    metrics = {
        "steps": [],
        "evals": [],
        "classifier": {
            "model": spec.classifier.model,
            "iterations": model["iterations"],
            "fit_s": round(fit_s, 3),
            "nonzero_weights": model["nonzero"],
            "held_out_docs_per_s": round(len(all_held) / scoring_s, 1) if scoring_s > 0 else None,
            "held_out": held,
        },
    }
    body = {
        "status": "completed",
        "steps": model["iterations"],
        "tokens": 0,
        "tokens_per_s": 0.0,
        "final_train_loss": train_loss,
        "final_val_loss": _log_loss(all_held, all_probabilities),
        "model_digest": digest,
        "metrics_digest": home.store.put_bytes(canonical_json(metrics)),
        "emissions": emissions_body(emissions),
        "records_trained": len(texts),
        "records_held_out": len(all_held),
        "held_out": held,
    }
    index = run.record_finished("run.finished/v2", body, refs=[f"sha256:{digest}"])
    home.checkpoint()
    card = model_card(home, outcome, sets, metrics["classifier"], digest)
    (out / CARD_FILE).write_text(card, encoding="utf-8")
    outcome.result = ClassifierResult(weights, digest, out / CARD_FILE, held, emissions)
    for row in held:
        say(f"  held out {row['dataset']}: {row['records']} records, ROC-AUC {row['roc_auc']}, F1 {row['f1']}")
    say(
        f"run {outcome.run_id} finished: weights sha256 {digest[:16]} in {Path(weights)}; "
        f"{emissions.energy_kwh * 1000:.3f} Wh, {emissions.emissions_kg_co2e * 1000:.3f} g CO2e "
        f"(ledger index {index}); model card {out / CARD_FILE}"
    )
