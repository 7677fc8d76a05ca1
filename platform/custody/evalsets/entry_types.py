"""Ledger entry schema for the overlap of an evaluation set with training data:
`eval.contamination/v2` (v1, release only, stays registered in `evals/entry_types.py`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from custody.ledger.entry import EntryBody, entry_type

DIGEST = r"^[0-9a-f]{64}$"


class TrainingSet(EntryBody):
    dataset: str
    digest: str = Field(pattern=DIGEST)


@entry_type("eval.contamination/v2")
class EvalContaminationV2(EntryBody):
    """How much of an evaluation set a run's training data holds (shared runs of `ngram` words).

    `stage` says when it was measured: `before-training` by `custody run`, for each evaluation set
    the run spec lists, before the gate judges the run (subject `run:SPEC_NAME`, as the run's
    request and decision; `request_index` is the run.requested entry it answers); `release` by
    `custody release` (subject `run:RUN_ID`, the run that wrote `model_digest`)."""

    stage: Literal["before-training", "release"]
    run_id: str | None = None  # release: the run that wrote the weights
    model_digest: str | None = Field(default=None, pattern=DIGEST)  # release: exactly these weights
    request_index: int | None = Field(default=None, ge=0)  # before training: the run.requested entry
    evalset: str
    evalset_digest: str = Field(pattern=DIGEST)
    training: list[TrainingSet]
    ngram: int = Field(ge=1)
    records: int = Field(ge=0)
    judged: int = Field(ge=0)
    contaminated: int = Field(ge=0)
    share: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _stage(self) -> EvalContaminationV2:
        if self.stage == "release" and (self.run_id is None or self.model_digest is None):
            raise ValueError("a release measurement names the run and the model digest")
        if self.stage == "before-training" and self.request_index is None:
            raise ValueError("a before-training measurement names the run.requested entry it answers")
        return self
