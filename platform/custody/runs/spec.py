"""Run specs (`pipelines/*.toml`): what a training run reads, under which policy, and how it trains.

A spec is data, validated like a policy: unknown keys and wrong types are errors naming the file,
line and key. Its exact bytes are stored and their digest is in the run's ledger entries, so a
run can always be traced to the spec it ran.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from custody.datasets.names import DatasetRefError, parse_ref
from custody.tomlconfig import load_model
from custody.train.carbon import DEFAULT_COUNTRY, DEFAULT_PUE, DEFAULT_WUE_L_PER_KWH

DIGEST_REF = r"^sha256:[0-9a-f]{64}$"


class SpecError(ValueError):
    """A run spec that cannot be read or is not valid; the message names the file, line and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicySpec(_Strict):
    # The policy bound to the purpose judges the run; `file` (a path or a shipped policy's name)
    # is evaluated as well and can only add reasons. One of the two must be given.
    file: str | None = None
    purpose: Literal["commercial", "research"] | None = None  # None: the file's own purpose

    @model_validator(mode="after")
    def _purpose(self) -> PolicySpec:
        if self.file is None and self.purpose is None:
            raise ValueError("give purpose (the policy bound to it judges the run), a policy file, or both")
        return self


def _valid_ref(value: str) -> str:
    try:
        parse_ref(value)
    except DatasetRefError as exc:
        raise ValueError(str(exc)) from None
    return value


DatasetRefText = Annotated[str, AfterValidator(_valid_ref)]  # NAME@VERSION, checked


class DatasetSpec(_Strict):
    ref: DatasetRefText
    stages: list[str] | None = None  # this dataset's preparation; None: [prepare] stages
    label: str | None = None  # kind = 'classifier': this dataset's label field; None: [classifier] label


class PrepareSpec(_Strict):
    stages: list[str] = Field(default_factory=list)
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Classic cleaning stages (lowercase, remove-stopwords, spell-correct) destroy information a
    # language model should learn; a spec must name them here to use them (docs/stages.md).
    allow_off_by_default: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _stages(self) -> PrepareSpec:
        from custody.stages.catalog import STAGES, check_pretraining_plan

        for name in [*self.stages, *self.options]:
            STAGES.entry(name)  # an unknown name is refused with the known ones
        check_pretraining_plan(self.stages, allow=self.allow_off_by_default)
        for name, values in self.options.items():
            STAGES.validate(name, values)
        return self


class TokenizerSpec(_Strict):
    file: str | None = None  # a tokenizer.json to use as is; None: train one on the approved data
    vocab_size: int = Field(default=4096, ge=260, le=262_144)
    min_frequency: int = Field(default=2, ge=1)


class ModelSpec(_Strict):
    n_layer: int = Field(default=4, ge=1)
    n_head: int = Field(default=4, ge=1)
    n_embd: int = Field(default=128, ge=1)
    block_size: int = Field(default=128, ge=8)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    bias: bool = False


class TrainingSpec(_Strict):
    seed: int = 1337
    steps: int = Field(default=200, ge=1)
    batch_size: int = Field(default=16, ge=1)
    grad_accum: int = Field(default=1, ge=1)  # micro-batches per step on each rank (same global batch)
    lr: float = Field(default=1e-3, gt=0)
    min_lr: float = Field(default=1e-4, ge=0)
    warmup: int = Field(default=20, ge=0)
    weight_decay: float = Field(default=0.1, ge=0)
    grad_clip: float = Field(default=1.0, ge=0)
    eval_interval: int = Field(default=50, ge=0)
    eval_steps: int = Field(default=10, ge=1)
    checkpoint_interval: int = Field(default=0, ge=0)
    log_interval: int = Field(default=10, ge=1)
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    compile: bool = False
    device: str = "auto"
    deterministic: bool = True

    @model_validator(mode="after")
    def _schedule(self) -> TrainingSpec:
        if self.min_lr > self.lr:
            raise ValueError(
                f"min_lr ({self.min_lr}) must not exceed lr ({self.lr}): the schedule decays from lr to min_lr"
            )
        return self


class FinetuneSpec(_Strict):
    checkpoint: str = Field(pattern=DIGEST_REF)  # a checkpoint recorded by an earlier run


class TransferSpec(_Strict):
    checkpoint: str = Field(pattern=DIGEST_REF)
    freeze_blocks: list[int] = Field(default_factory=list)
    freeze_embeddings: bool = False
    add_blocks: int = Field(default=0, ge=0)


class ClassifierCard(_Strict):
    """What people write on the model card; the run adds the data, the ledger entries and the scores."""

    title: str = ""
    intended_use: str = ""
    limitations: list[str] = Field(default_factory=list)
    bias: list[str] = Field(default_factory=list)


class ClassifierSpec(_Strict):
    """kind = 'classifier': custody-linear (custody/toxicity/linear.py) trained on labelled records."""

    model: Literal["custody-linear"] = "custody-linear"
    label: str = "label"  # the record field holding the label: true/false, 1/0 or "1"/"0"
    c: float = Field(default=10.0, gt=0)  # inverse regularisation strength
    # Records whose text SHA-256 falls under this fraction are held out (never trained on) and scored.
    held_out: float = Field(default=0.2, gt=0, lt=1)
    card: ClassifierCard = Field(default_factory=ClassifierCard)


class RewardSpec(_Strict):
    """kind = 'reward': a reward model transferred from a policy checkpoint (docs/rlhf.md).

    The checkpoint's blocks are frozen (all of them unless `freeze_blocks` names some), `add_blocks`
    new blocks go on top, and a new scalar head replaces the language-model head; the loss is
    Bradley-Terry on the preference datasets' pairs."""

    checkpoint: str = Field(pattern=DIGEST_REF)  # the policy model the reward model starts from
    freeze_blocks: list[int] | Literal["all"] = "all"
    freeze_embeddings: bool = True
    add_blocks: int = Field(default=1, ge=0)
    held_out: float = Field(default=0.2, gt=0, lt=1)  # pairs never trained on, for the accuracy


class DPOSpec(_Strict):
    """kind = 'dpo': direct preference optimization of a policy against a frozen reference (docs/rlhf.md)."""

    checkpoint: str = Field(pattern=DIGEST_REF)  # the reference policy, where the policy starts
    reward_model: str = Field(pattern=DIGEST_REF)  # a reward run's model: scores held-out completions
    beta: float = Field(default=0.1, gt=0)
    # Nats per completion: an evaluation beyond it stops training with the last weights within it.
    max_kl: float = Field(default=5.0, gt=0)
    held_out: float = Field(default=0.2, gt=0, lt=1)
    eval_prompts: int = Field(default=16, ge=1)  # held-out prompts sampled at each evaluation
    samples_per_prompt: int = Field(default=4, ge=1)
    max_new_tokens: int = Field(default=24, ge=1)
    temperature: float = Field(default=1.0, gt=0)


class CarbonSpec(_Strict):
    country_iso_code: str = Field(default=DEFAULT_COUNTRY, pattern=r"^[A-Z]{3}$")
    region: str | None = None
    pue: float = Field(default=DEFAULT_PUE, ge=1)
    wue_l_per_kwh: float = Field(default=DEFAULT_WUE_L_PER_KWH, ge=0)
    # Estimates the gate's training.budget rule judges before the run starts.
    estimated_kwh: float | None = Field(default=None, ge=0)
    estimated_kg_co2e: float | None = Field(default=None, ge=0)


class ExecutorSpec(_Strict):
    """Where checks and per-record stages run (docs/scale.md); `custody run --executor` overrides it."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = None  # a Ray cluster, HOST:PORT or ray://HOST:10001; None: $RAY_ADDRESS or local
    workers: int | None = Field(default=None, ge=1)  # Ray actors; None: one per CPU of the cluster
    cpus_per_worker: float | None = Field(default=None, gt=0)  # CPUs per actor (a pii pool of that many)
    keep_warm: float | None = Field(default=None, ge=0, allow_inf_nan=False)  # seconds actors stay loaded after

    @model_validator(mode="after")
    def _ray_only(self) -> ExecutorSpec:
        if self.kind == "local" and any((self.address, self.workers, self.cpus_per_worker, self.keep_warm)):
            raise ValueError("address, workers, cpus_per_worker and keep_warm are only for kind = 'ray'")
        return self


class EvaluationSpec(_Strict):
    """An evaluation `custody run` runs on the final model when training ends (docs/evaluation.md)."""

    evalset: DatasetRefText  # a registered evaluation dataset
    task: Literal["auto", "loss", "multiple-choice", "classification"] = "auto"


class RunSpec(_Strict):
    schema_: int = Field(alias="schema")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    description: str = ""
    # external: a loop custody does not run (`custody.governed_run`, the Trainer callback) trains
    kind: Literal["pretrain", "finetune", "transfer", "classifier", "reward", "dpo", "external"] = "pretrain"
    policy: PolicySpec
    datasets: list[DatasetSpec] = Field(min_length=1)
    prepare: PrepareSpec = Field(default_factory=PrepareSpec)
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    finetune: FinetuneSpec | None = None
    transfer: TransferSpec | None = None
    classifier: ClassifierSpec | None = None
    reward: RewardSpec | None = None
    dpo: DPOSpec | None = None
    carbon: CarbonSpec = Field(default_factory=CarbonSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    evaluations: list[EvaluationSpec] = Field(default_factory=list)

    @field_validator("schema_")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"schema {value} is not supported (this custody reads schema 1)")
        return value

    @model_validator(mode="after")
    def _kind(self) -> RunSpec:
        if self.kind == "finetune" and self.finetune is None:
            raise ValueError("kind = 'finetune' needs a [finetune] table with the checkpoint to start from")
        if self.kind == "transfer" and self.transfer is None:
            raise ValueError("kind = 'transfer' needs a [transfer] table with the checkpoint and frozen blocks")
        if self.kind != "finetune" and self.finetune is not None:
            raise ValueError(f"[finetune] is only for kind = 'finetune' (this spec's kind is '{self.kind}')")
        if self.kind != "transfer" and self.transfer is not None:
            raise ValueError(f"[transfer] is only for kind = 'transfer' (this spec's kind is '{self.kind}')")
        for kind in ("reward", "dpo"):
            if self.kind == kind and getattr(self, kind) is None:
                raise ValueError(f"kind = '{kind}' needs a [{kind}] table with the checkpoint to start from")
            if self.kind != kind and getattr(self, kind) is not None:
                raise ValueError(f"[{kind}] is only for kind = '{kind}' (this spec's kind is '{self.kind}')")
        self._classifier()
        self._external()
        refs = [d.ref for d in self.datasets]
        if len(set(refs)) != len(refs):
            raise ValueError("a dataset is listed twice")
        from custody.stages.catalog import check_pretraining_plan

        used = set(self.prepare.stages)
        for dataset in self.datasets:
            if dataset.stages is not None:
                check_pretraining_plan(dataset.stages, allow=self.prepare.allow_off_by_default)
                used.update(dataset.stages)
        stray = [s for s in self.prepare.options if s not in used]
        if stray:
            raise ValueError(f"[prepare.options] for stage '{stray[0]}', which no dataset's preparation uses")
        return self

    def _classifier(self) -> None:
        if self.kind == "classifier" and self.classifier is None:
            raise ValueError("kind = 'classifier' needs a [classifier] table (its label field and settings)")
        if self.kind != "classifier":
            if self.classifier is not None:
                raise ValueError(f"[classifier] is only for kind = 'classifier' (this spec's kind is '{self.kind}')")
            labelled = [d.ref for d in self.datasets if d.label is not None]
            if labelled:
                raise ValueError(f"datasets.label ({labelled[0]}) is only for kind = 'classifier'")
            return
        language_model = sorted({"tokenizer", "model", "training"} & self.model_fields_set)
        if language_model:
            raise ValueError(f"[{language_model[0]}] is for language-model runs, not kind = 'classifier'")

    def _external(self) -> None:
        """kind = 'external' is trained by the caller's loop: custody's model and loop settings do not apply."""
        if self.kind != "external":
            return
        own = sorted({"tokenizer", "model", "training"} & self.model_fields_set)
        if own:
            raise ValueError(
                f"[{own[0]}] is for runs custody trains, not kind = 'external' (your loop's settings are yours)"
            )

    def label_for(self, dataset: DatasetSpec) -> str:
        """The field holding this dataset's label (kind = 'classifier')."""
        return dataset.label or (self.classifier.label if self.classifier else "label")

    @property
    def start_checkpoint(self) -> str | None:
        """The sha256 of the checkpoint the run starts from (fine-tune, transfer, reward, DPO)."""
        start = self.finetune or self.transfer or self.reward or self.dpo
        return start.checkpoint.removeprefix("sha256:") if start is not None else None

    def stages_for(self, dataset: DatasetSpec) -> list[str]:
        return self.prepare.stages if dataset.stages is None else dataset.stages


@dataclass(frozen=True)
class LoadedSpec:
    path: Path
    raw: bytes
    spec: RunSpec

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def spec_from_text(text: str, where: str) -> LoadedSpec:
    """A spec made in memory (`custody.governed_run` with a purpose); `where` names it in errors."""
    return LoadedSpec(Path(where), text.encode("utf-8"), load_model(text, where, RunSpec, SpecError))


def load_spec(path: str | Path) -> LoadedSpec:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{path}: run spec not found") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, expected a run spec (.toml)") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read run spec ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: run spec is not UTF-8 (byte {exc.start})") from None
    return LoadedSpec(path.resolve(), raw, load_model(text, str(path), RunSpec, SpecError))
