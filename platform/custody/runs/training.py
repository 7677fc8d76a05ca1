"""The training half of `custody run`: tokenizer, model, the core loop, and the run's ledger entries.

Only called after `require_allow` (see governed.py). The tokenizer file and the final checkpoint
go to the artifact store, so a later fine-tuning or transfer run names its starting point by
digest (`[finetune] checkpoint = "sha256:..."`) and gets exactly those bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from custody import __version__
from custody.home import Home, actor_name
from custody.ledger.entry import canonical_json
from custody.runs.api import GovernedRun
from custody.runs.outcome import (
    RunOutcome,
    carbon_config,
    emissions_body,
)
from custody.runs.spec import RunSpec
from custody.train.checkpoint import SavedCheckpoint, load_checkpoint
from custody.train.data import derive_seed, verified_texts
from custody.train.loop import Hooks, TrainConfig, train
from custody.train.model import GPT, GPTConfig
from custody.train.token_shards import PreparedTokens, prepare_tokens
from custody.train.tokenizer import BPETokenizer, load_tokenizer, train_tokenizer


class _LedgerHooks(Hooks):
    """Records run.started before the first step and run.checkpoint for each checkpoint, through the run."""

    def __init__(self, run: GovernedRun, started: dict[str, Any]) -> None:
        self.run, self.started = run, started
        self.tokens_per_step = 0

    def on_start(self, info: dict) -> None:
        fields = {
            **self.started,
            "device": info["device_name"] if info["device"] != "cpu" else "cpu",
            "world_size": info["world_size"],
            "parameters": info["params"],
        }
        data = self.run.home.store.put_bytes(canonical_json(info["data"]))
        index = self.run.record_started("run.started/v4", fields, refs=[f"sha256:{data}"])
        self.run.say(
            f"run {self.run.run_id} started: {info['params']:,} parameters on {fields['device']} (ledger index {index})"
        )

    def on_eval(self, step: int, metrics: dict) -> None:
        self.run.say(f"  step {step}: val loss {metrics['val_loss']:.4f}, perplexity {metrics['val_perplexity']:.1f}")

    def on_checkpoint(self, checkpoint: SavedCheckpoint) -> None:
        metrics = checkpoint.metrics
        body = {
            "run_id": self.run.run_id,
            "step": checkpoint.step,
            "checkpoint_digest": checkpoint.digest,
            "tokens": checkpoint.step * self.tokens_per_step,
            "train_loss": metrics["loss"],
            "val_loss": metrics.get("val_loss"),
            "val_perplexity": metrics.get("val_perplexity"),
        }
        index = self.run.home.record("run.checkpoint/v1", self.run.subject, body, actor=self.run.actor)
        self.run.say(f"  checkpoint at step {checkpoint.step}: sha256 {checkpoint.digest[:16]} (ledger index {index})")


def tokenizer_for(home: Home, spec: RunSpec, outcome: RunOutcome, start: dict | None) -> BPETokenizer:
    """The checkpoint's tokenizer (fine-tune, transfer), the spec's file, or one trained on the approved data."""
    if start is not None:  # fine-tuning and transfer keep the tokenizer the checkpoint was trained with
        digest = start["meta"]["tokenizer_digest"]
        return load_tokenizer(home.store.path_for(digest), digest)
    if spec.tokenizer.file:
        return load_tokenizer(spec.tokenizer.file)
    texts = verified_texts(outcome.prepared)  # only the approved bytes, re-hashed as they are read
    return train_tokenizer(texts, vocab_size=spec.tokenizer.vocab_size, min_frequency=spec.tokenizer.min_frequency)


def model_for(home: Home, spec: RunSpec, tokenizer: BPETokenizer) -> tuple[GPT, str | None]:
    """The model to train and the digest of the checkpoint it starts from (None: new weights). New
    weights are drawn from the spec's seed, so every process (and every rank) builds the same ones."""
    m = spec.model
    torch.manual_seed(derive_seed(spec.training.seed, "init"))
    if spec.kind == "pretrain":
        config = GPTConfig(tokenizer.vocab_size, m.block_size, m.n_layer, m.n_head, m.n_embd, m.dropout, m.bias)
        return GPT(config), None
    start = spec.finetune or spec.transfer
    digest = start.checkpoint.removeprefix("sha256:")
    model = load_checkpoint(home.store.path_for(digest), digest).build_model()
    if spec.transfer is not None:
        model.add_blocks(spec.transfer.add_blocks)
        model.freeze_blocks(spec.transfer.freeze_blocks)
        if spec.transfer.freeze_embeddings:
            model.freeze_embeddings()
    return model, digest


def start_state(home: Home, spec: RunSpec) -> dict | None:
    """The state of the checkpoint a fine-tune or transfer run starts from (None for pretraining)."""
    start = spec.finetune or spec.transfer
    if start is None:
        return None
    digest = start.checkpoint.removeprefix("sha256:")
    path = home.store.path_for(digest)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {start.checkpoint} is not in this home's artifact store")
    return load_checkpoint(path, digest).state


def train_config(spec: RunSpec) -> TrainConfig:
    """The core loop's settings from the spec's [training] table (every run kind that trains a GPT)."""
    t = spec.training
    return TrainConfig(
        seed=t.seed, steps=t.steps, batch_size=t.batch_size, grad_accum=t.grad_accum, lr=t.lr, min_lr=t.min_lr,
        warmup=t.warmup, weight_decay=t.weight_decay, grad_clip=t.grad_clip, eval_interval=t.eval_interval,
        eval_steps=t.eval_steps, checkpoint_interval=t.checkpoint_interval, log_interval=t.log_interval,
        compile=t.compile, device=t.device, deterministic=t.deterministic,
    )  # fmt: skip


@dataclass
class LanguageModelStart:
    """What a language-model run trains from: its tokenizer, the model, and the token shards."""

    tokenizer: BPETokenizer
    tokenizer_digest: str
    model: GPT
    init_digest: str | None  # the checkpoint it starts from (fine-tune, transfer), None for new weights
    tokens: PreparedTokens


def prepare_language_model(run: GovernedRun) -> LanguageModelStart:
    """The tokenizer (the interrupted run's when resuming, by digest), the model, and the approved data
    tokenized once into digest-named shards (reused by later runs, read memory-mapped): one process and
    torchrun's launcher prepare the same way."""
    home, outcome, spec = run.home, run.outcome, run.outcome.spec.spec
    resume = run.resume
    if resume is not None:
        tokenizer = load_tokenizer(home.store.path_for(resume.tokenizer_digest), resume.tokenizer_digest)
    else:
        tokenizer = tokenizer_for(home, spec, outcome, start_state(home, spec))
    tokenizer_digest = home.store.put_bytes(tokenizer.data)
    model, init_digest = model_for(home, spec, tokenizer)
    block, held_out = model.config.block_size, spec.training.val_fraction
    tokens = prepare_tokens(home, outcome.prepared, tokenizer, block, held_out, actor_name(run.actor), run.say)
    return LanguageModelStart(tokenizer, tokenizer_digest, model, init_digest, tokens)


def train_run(run: GovernedRun) -> None:
    """Train the allowed run's language model (pretrain, fine-tune, transfer) on its approved data."""
    home, outcome, say = run.home, run.outcome, run.say
    spec = outcome.spec.spec
    out = run.directory
    resume = run.resume
    lm = prepare_language_model(run)
    model, tokens = lm.model, lm.tokens
    block_size = model.config.block_size
    data = tokens.data
    t = spec.training
    config = train_config(spec)
    started = {
        "trainer": "custody",
        "launch": {"launcher": "process", "world_size": 1},
        "tokens_index": tokens.entry_index,
        "resumed_from": resume.as_json() if resume else None,
        "tokenizer_digest": lm.tokenizer_digest,
        "model_config_digest": home.store.put_bytes(canonical_json(model.config.as_json())),
        "train_config_digest": home.store.put_bytes(canonical_json(config.as_json())),
        "init_checkpoint_digest": lm.init_digest,
        "code_version": f"custody {__version__}, torch {torch.__version__}",
        "seed": t.seed,
    }
    hooks = _LedgerHooks(run, started)
    hooks.tokens_per_step = config.batch_size * block_size
    meta = {"run_id": outcome.run_id, "spec_digest": outcome.spec.digest, "tokenizer_digest": lm.tokenizer_digest}
    try:
        result = train(
            model,
            data,
            config,
            out,
            hooks=hooks,
            carbon=carbon_config(spec),
            meta=meta,
            resume_from=resume.path(home) if resume else None,
            resume_digest=resume.checkpoint_digest if resume else None,
        )
    except BaseException as exc:
        run.record_failed(exc, "run.finished/v4")
        raise
    outcome.result = result
    final = result.final
    home.store.put_file(final.path)  # by digest, for fine-tuning and transfer runs
    metrics = {
        "steps": [{"step": i + 1, "train_loss": loss} for i, loss in enumerate(result.losses)],
        "evals": result.evals,
    }
    last_eval = result.evals[-1] if result.evals else {}
    body = {
        "status": "completed",
        "steps": result.steps,
        "tokens": result.steps * hooks.tokens_per_step,
        "tokens_per_s": round(result.tokens_per_s, 1),
        "final_train_loss": result.losses[-1] if result.losses else None,
        "final_val_loss": last_eval.get("val_loss"),
        "final_val_perplexity": last_eval.get("val_perplexity"),
        "model_digest": final.digest,
        "metrics_digest": home.store.put_bytes(canonical_json(metrics)),
        "emissions": emissions_body(result.emissions),
        "mfu": result.mfu,
    }
    index = run.record_finished("run.finished/v4", body, refs=[f"sha256:{final.digest}"])
    home.checkpoint()
    e = result.emissions
    say(
        f"run {outcome.run_id} finished: {result.steps} steps, {result.tokens_per_s:,.0f} tokens/s, "
        f"val loss {body['final_val_loss']:.4f}; {e.energy_kwh * 1000:.3f} Wh, "
        f"{e.emissions_kg_co2e * 1000:.3f} g CO2e, {e.water_l:.4f} L water (ledger index {index})"
    )
