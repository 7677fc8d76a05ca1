"""Ledger entry schemas for training runs: started, each checkpoint, finished.

A run is the subject `run:<run id>`. Everything large (the loss curve, the spec, the model
config, the checkpoint files) lives in the artifact store and is named here by digest.

The metrics artifact (`metrics_digest`) is JSON:
{"steps": [{"step": 1, "train_loss": 5.1, "lr": 0.0003, "tokens": 4096}, ...],
 "evals": [{"step": 50, "val_loss": 4.2, "val_perplexity": 66.7}, ...]}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.emissions import Emissions  # one schema for runs, checks and stages
from custody.ledger.entry import EntryBody, entry_type

DIGEST = r"^[0-9a-f]{64}$"


class RunDataset(EntryBody):
    ref: str  # NAME@VERSION of the prepared dataset the loader reads
    digest: str = Field(pattern=DIGEST)
    source: str | None = None  # the registered dataset it was prepared from
    source_digest: str | None = Field(default=None, pattern=DIGEST)


@entry_type("run.requested/v1")
class RunRequested(EntryBody):
    """A person asks for a run, signed with their key: the gate's requester, duties compare against it."""

    run: str  # the spec's name; the subject is run:NAME
    spec_digest: str = Field(pattern=DIGEST)
    purpose: str
    datasets: list[str] = Field(min_length=1)


@entry_type("run.started/v1")
class RunStarted(EntryBody):
    run_id: str
    name: str
    kind: Literal["pretrain", "finetune", "transfer"]
    spec_path: str
    spec_digest: str = Field(pattern=DIGEST)
    decision_index: int = Field(ge=0)  # the policy.decision entry that allowed this run
    datasets: list[RunDataset]
    tokenizer_digest: str = Field(pattern=DIGEST)
    model_config_digest: str = Field(pattern=DIGEST)
    train_config_digest: str = Field(pattern=DIGEST)
    init_checkpoint_digest: str | None = Field(default=None, pattern=DIGEST)  # fine-tune / transfer
    code_version: str
    device: str
    world_size: int = Field(ge=1)
    seed: int
    parameters: int = Field(ge=0)
    preparation_emissions: Emissions | None = None  # checks and stages run for this spec


@entry_type("run.checkpoint/v1")
class RunCheckpoint(EntryBody):
    run_id: str
    step: int = Field(ge=0)
    checkpoint_digest: str = Field(pattern=DIGEST)
    tokens: int = Field(ge=0)
    train_loss: float
    val_loss: float | None = None
    val_perplexity: float | None = None


@entry_type("run.finished/v1")
class RunFinished(EntryBody):
    run_id: str
    status: Literal["completed", "failed"]
    error: str | None = None
    steps: int = Field(ge=0)
    tokens: int = Field(ge=0)
    tokens_per_s: float = Field(ge=0)
    final_train_loss: float | None = None
    final_val_loss: float | None = None
    final_val_perplexity: float | None = None
    model_digest: str | None = Field(default=None, pattern=DIGEST)  # the last checkpoint
    metrics_digest: str = Field(pattern=DIGEST)  # JSON artifact: per-step loss, lr, evals
    emissions: Emissions


@entry_type("run.started/v2")
class RunStartedV2(RunStarted):
    """v1, and kind 'classifier': a model trained on labelled records (runs/classifier.py). For a
    classifier the tokenizer digest names its feature settings and `parameters` its weight columns."""

    kind: Literal["pretrain", "finetune", "transfer", "classifier"]


class HeldOutScores(EntryBody):
    """A classifier's scores on the records of one dataset it never trained on."""

    dataset: str
    records: int = Field(ge=0)
    positives: int = Field(ge=0)
    roc_auc: float | None = None  # None when the held-out records hold one class only
    f1: float = Field(ge=0, le=1)


@entry_type("run.finished/v2")
class RunFinishedV2(RunFinished):
    """v1, plus what a classifier run trained on and its held-out scores (steps: solver iterations;
    tokens: 0, a classifier reads records)."""

    records_trained: int | None = Field(default=None, ge=0)
    records_held_out: int | None = Field(default=None, ge=0)
    held_out: list[HeldOutScores] = Field(default_factory=list)


@entry_type("run.started/v3")
class RunStartedV3(RunStartedV2):
    """v2, and the kinds that learn from human preferences (runs/preference_runs.py): 'reward' (a
    reward model transferred from `init_checkpoint_digest`) and 'dpo' (a policy optimized from it,
    its completions scored by `reward_model_digest`)."""

    kind: Literal["pretrain", "finetune", "transfer", "classifier", "reward", "dpo"]
    reward_model_digest: str | None = Field(default=None, pattern=DIGEST)


class PreferenceOutcome(EntryBody):
    """What a reward-model or DPO run measured on preference pairs and prompts it never trained on."""

    method: Literal["bradley-terry", "dpo"]
    pairs_trained: int = Field(ge=1)
    pairs_held_out: int = Field(ge=0)
    reviewers: list[str]  # roster names of the people whose judgements the pairs carry
    held_out_accuracy: float | None = Field(default=None, ge=0, le=1)  # reward: r(chosen) > r(rejected)
    reference_digest: str | None = Field(default=None, pattern=DIGEST)  # dpo: the frozen reference
    reward_model_digest: str | None = Field(default=None, pattern=DIGEST)
    beta: float | None = None
    eval_prompts: int | None = Field(default=None, ge=0)
    reward_before: float | None = None  # mean reward of the reference's completions
    reward_after: float | None = None  # mean reward of the policy's completions
    kl: float | None = None  # nats per completion, policy against reference, on its own samples
    max_kl: float | None = None
    stopped: str | None = None  # why training ended before its steps, when it did


@entry_type("run.finished/v3")
class RunFinishedV3(RunFinishedV2):
    """v2, plus what a preference run measured (`preference`)."""

    preference: PreferenceOutcome | None = None


class Launch(EntryBody):
    """How a run's processes were started: one process, or torchrun's ranks on one or more nodes."""

    launcher: Literal["process", "torchrun"]
    world_size: int = Field(ge=1)
    nnodes: int = Field(default=1, ge=1)
    nproc_per_node: int = Field(default=1, ge=1)


class ResumedFrom(EntryBody):
    run_id: str
    step: int = Field(ge=1)
    checkpoint_digest: str = Field(pattern=DIGEST)


@entry_type("run.started/v4")
class RunStartedV4(EntryBody):
    """A run trained by a loop custody does not own (`custody.governed_run`, the Hugging Face Trainer
    callback: kind 'external'), or by custody's loop under torchrun. The fields v1-v3 require that
    only custody's own loop can know (its tokenizer, model and loop configs) are optional here."""

    run_id: str
    name: str
    kind: Literal["pretrain", "finetune", "transfer", "classifier", "reward", "dpo", "external"]
    spec_path: str
    spec_digest: str = Field(pattern=DIGEST)
    decision_index: int = Field(ge=0)
    datasets: list[RunDataset]
    trainer: str  # "custody", "transformers.Trainer 5.25.0", "python", ...
    code_version: str
    world_size: int = Field(default=1, ge=1)
    launch: Launch | None = None
    device: str | None = None
    seed: int | None = None
    parameters: int | None = Field(default=None, ge=0)
    tokenizer_digest: str | None = Field(default=None, pattern=DIGEST)
    model_config_digest: str | None = Field(default=None, pattern=DIGEST)
    train_config_digest: str | None = Field(default=None, pattern=DIGEST)
    init_checkpoint_digest: str | None = Field(default=None, pattern=DIGEST)
    tokens_index: int | None = Field(default=None, ge=0)  # the tokens.prepared entry the ranks read
    resumed_from: ResumedFrom | None = None  # custody run --resume: the interrupted run it continues
    preparation_emissions: Emissions | None = None


@entry_type("run.checkpoint/v2")
class RunCheckpointV2(EntryBody):
    """A checkpoint of any loop: a file, or a folder recorded as a manifest of its files' digests
    (format custody-checkpoint-folder/1); the loss is optional, the loop's metrics at that step kept."""

    run_id: str
    step: int = Field(ge=0)
    checkpoint_digest: str = Field(pattern=DIGEST)
    name: str  # the file's or folder's name
    tokens: int = Field(default=0, ge=0)
    train_loss: float | None = None
    val_loss: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


@entry_type("run.finished/v4")
class RunFinishedV4(RunFinishedV3):
    """v3, for the runs v4 starts: model FLOPs utilization when the peak of the device is known, and,
    for a run that stopped, which rank failed first."""

    mfu: float | None = Field(default=None, ge=0)
    failed_rank: int | None = Field(default=None, ge=0)
