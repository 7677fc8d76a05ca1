"""Ledger entry schemas for preference collection: a sampled pair, a judgement, an export.

The texts (prompt and completions) live in the artifact store, named by digest: model output may
carry what the training data held, so the ledger keeps digests only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.ledger.entry import EntryBody, entry_type

DIGEST = r"^[0-9a-f]{64}$"


class Sampling(EntryBody):
    temperature: float = Field(gt=0)
    max_new_tokens: int = Field(ge=1)
    seed: int


@entry_type("prefs.pair/v1")
class PairSampled(EntryBody):
    """Two completions of one prompt sampled from recorded weights (subject `model:SHA256`), for
    people to judge. `pair_digest` names the JSON artifact {prompt, completions: [a, b]}."""

    model_digest: str = Field(pattern=DIGEST)
    run_id: str | None = None
    prompts: str  # NAME@VERSION of the registered prompt set
    prompts_digest: str = Field(pattern=DIGEST)
    prompt_id: str  # the record's id in the prompt set
    pair_digest: str = Field(pattern=DIGEST)
    completion_digests: list[str] = Field(min_length=2, max_length=2)
    sampling: Sampling


@entry_type("prefs.judged/v1")
class PairJudged(EntryBody):
    """One person's judgement of a pair (subject `pair:SHA256`), signed with their own key or
    attested by the dashboard they signed in to: which completion is better, or a tie, and which
    completions they flag as harmful."""

    pair_index: int = Field(ge=0)  # the prefs.pair entry
    pair_digest: str = Field(pattern=DIGEST)
    choice: Literal["a", "b", "tie"]
    harmful: list[Literal["a", "b"]] = Field(default_factory=list)


class Dropped(EntryBody):
    ties: int = Field(ge=0)  # pairs judged a tie, or split evenly between a and b
    harmful_both: int = Field(ge=0)  # both completions flagged harmful: neither can be preferred
    unjudged: int = Field(ge=0)


@entry_type("prefs.exported/v1")
class PreferencesExported(EntryBody):
    """Judgements turned into a registered preference dataset (subject `dataset:NAME@VERSION`):
    which weights and prompts the pairs came from and which judgements decided them."""

    dataset: str
    dataset_digest: str = Field(pattern=DIGEST)
    model_digest: str = Field(pattern=DIGEST)
    run_id: str | None = None
    prompts: str
    prompts_digest: str = Field(pattern=DIGEST)
    pairs: int = Field(ge=1)
    judgements: list[int]  # ledger indices of the prefs.judged entries the records rest on
    reviewers: list[str]
    dropped: Dropped
