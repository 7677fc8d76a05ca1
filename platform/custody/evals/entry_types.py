"""Ledger entry schemas for evaluations: `eval.completed/v1`, `model.released/v1`, and the
release-only `eval.contamination/v1`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.evalsets.entry_types import TrainingSet
from custody.ledger.entry import EntryBody, entry_type
from custody.runs.entry_types import Emissions

DIGEST = r"^[0-9a-f]{64}$"


@entry_type("eval.completed/v1")
class EvalCompleted(EntryBody):
    """A model scored on an evaluation dataset: exactly these weights on exactly these records.

    Subject `model:SHA256` (the checkpoint or model digest), so every evaluation of one set of
    weights is found together (a release rule asks for one)."""

    model_digest: str = Field(pattern=DIGEST)
    run_id: str | None = None  # the run that wrote the weights, when the ledger knows it
    evalset: str  # NAME@VERSION
    evalset_digest: str = Field(pattern=DIGEST)
    task: Literal["loss", "multiple-choice", "classification"]
    records: int = Field(ge=1)
    # slice -> metric -> value; the slice "all" covers every record
    results: dict[str, dict[str, float | int | None]]
    emissions: Emissions


@entry_type("model.released/v1")
class ModelReleased(EntryBody):
    """Recorded weights promoted for use, after the gate allowed it (subject `model:SHA256`)."""

    model_digest: str = Field(pattern=DIGEST)
    run_id: str | None = None
    decision_index: int = Field(ge=0)  # the policy.decision that allowed the release
    evaluations: list[int]  # the eval.completed entries the decision saw


@entry_type("eval.contamination/v1")
class EvalContamination(EntryBody):
    """How much of an evaluation set a run's training data holds (shared runs of `ngram` words),
    measured at release. Subject `run:RUN_ID`; the run report shows it. Superseded by
    `eval.contamination/v2` (evalsets/entry_types.py), which is measured before training too;
    kept so that older ledgers still verify and read."""

    run_id: str
    model_digest: str = Field(pattern=DIGEST)
    evalset: str
    evalset_digest: str = Field(pattern=DIGEST)
    training: list[TrainingSet]
    ngram: int = Field(ge=1)
    records: int = Field(ge=0)
    judged: int = Field(ge=0)
    contaminated: int = Field(ge=0)
    share: float = Field(ge=0, le=1)
