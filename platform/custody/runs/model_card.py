"""The model card of a classifier run: what people wrote in the spec, and what the ledger proves.

The facts (data, license, check results, the gate's decision, the run's entries, the held-out
scores, energy) come from the ledger and the run; each ledger entry is cited by index and leaf
hash (RFC 9162: SHA-256 of 0x00 || the entry's canonical bytes), so a reader holding the run's
report (`custody report RUN_ID --format json`) can match every line to a proved entry offline.
"""

from __future__ import annotations

from typing import Any

from custody.checks.results import latest_results
from custody.home import Home
from custody.runs.labelled import LabelledSet
from custody.runs.outcome import RunOutcome


def _entry(home: Home, index: int, what: str) -> str:
    row = home.ledger.entry(index)
    return f"| {what} | `{row.type}` | {index} | `{row.leaf_hash.hex()}` |"


def cited_entries(home: Home, outcome: RunOutcome, sets: list[LabelledSet]) -> list[str]:
    """Table rows for every ledger entry that produced the model, in the order they happened."""
    rows = []
    if "run.requested" in outcome.entries:
        rows.append(_entry(home, outcome.entries["run.requested"], "the signed request for this run"))
    for labelled in sets:
        dataset = labelled.dataset
        rows.append(_entry(home, dataset.index, f"{dataset.ref} registered with its card and shard digests"))
        for name, result in sorted(latest_results(home, dataset).items()):
            if result.dataset_digest == dataset.digest:
                rows.append(_entry(home, result.entry_index, f"{name} check on {dataset.ref}: {result.status}"))
    rows.append(_entry(home, outcome.gate.ledger_index, f"the gate: {outcome.gate.decision.decision}"))
    rows.append(_entry(home, outcome.entries["run.started"], "training started"))
    rows.append(_entry(home, outcome.entries["run.finished"], "training finished: names the weights' digest"))
    return rows


def _bullets(items: list[str], none: str) -> str:
    return "\n".join(f"- {item}" for item in items) if items else f"- {none}"


def model_card(
    home: Home, outcome: RunOutcome, sets: list[LabelledSet], classifier: dict[str, Any], digest: str
) -> str:
    spec = outcome.spec.spec
    card = spec.classifier.card
    title = card.title or f"{spec.name}: a {spec.classifier.model} classifier"
    data_rows = []
    for labelled in sets:
        dataset = labelled.dataset
        declared = dataset.card.license.declared or "not declared"
        data_rows.append(
            f"| {dataset.ref} | `{dataset.digest[:16]}` | {declared} | `{labelled.label_field}` | "
            f"{len(labelled.train_texts):,} ({sum(labelled.train_labels):,} positive) | "
            f"{len(labelled.held_texts):,} ({sum(labelled.held_labels):,} positive) |"
        )
    score_rows = [
        f"| {row['dataset']} | {row['records']:,} | {row['positives']:,} | {row['roc_auc']} | {row['f1']} |"
        for row in classifier["held_out"]
    ]
    gate = outcome.gate
    return f"""# {title}

Trained by `custody run` as run `{outcome.run_id}` from spec `{outcome.spec.path.name}` (sha256
`{outcome.spec.digest}`), under {gate.describe_policies()}. Weights: SHA-256 `{digest}`,
format {spec.classifier.model} ({classifier["nonzero_weights"]:,} non-zero weights, C = {spec.classifier.c}).

## How it was made: the ledger entries

Ledger origin `{home.config.origin}`. Every entry below is in the run's report
(`custody report {outcome.run_id} --format json`) with its inclusion proof and a signed
checkpoint; `custody verify-report` checks them offline. Leaf hash: SHA-256 of 0x00 and the
entry's canonical bytes (RFC 9162).

| what | entry type | index | leaf hash |
|---|---|---|---|
{chr(10).join(cited_entries(home, outcome, sets))}

## Data

Only datasets the gate allowed for exactly these bytes were read, each shard re-hashed against
its manifest as it was read. A record whose text SHA-256, read as a fraction of 2^64, falls under
{spec.classifier.held_out} was held out: never trained on, scored below.

| dataset | digest | license (declared) | label | trained on | held out |
|---|---|---|---|---|---|
{chr(10).join(data_rows)}

## Scores on the held-out records

| dataset | records | positives | ROC-AUC | F1 at 0.5 |
|---|---|---|---|---|
{chr(10).join(score_rows)}

Scoring ran at {classifier["held_out_docs_per_s"]:,} docs/s on this machine during the run.

## Intended use

{card.intended_use or "Not stated in the spec."}

## Limitations

{_bullets(card.limitations, "None stated in the spec.")}

## Bias

{_bullets(card.bias, "None stated in the spec.")}
"""
