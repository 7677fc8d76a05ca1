"""The preference half of `custody run`: a reward model (kind = 'reward') or DPO (kind = 'dpo').

Only called after `require_allow` (see governed.py), like the other halves. Both read the approved
preference datasets from re-hashed shard bytes (runs/preference_data.py) and start from a recorded
checkpoint loaded only when its bytes hash to the digest the spec names.

- **reward**: the policy model's blocks frozen (the brief's "add new layers, freeze the original
  ones"), `add_blocks` new blocks on top and a new scalar head, trained with the Bradley-Terry
  loss; the share of held-out pairs it ranks right is recorded.
- **dpo**: the policy starts as the reference and is trained with the DPO loss against it. Every
  `eval_interval` steps it samples completions of held-out prompts, which the reward model scores
  and whose KL to the reference is estimated; the reference's own completions give the reward
  before. An evaluation whose KL exceeds `max_kl` ends training with the last weights within it.

The weights are written as a checkpoint of the core loop's format (so `custody eval` and later
runs read them), stored by digest and named in `run.finished/v3` with what was measured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from custody import __version__
from custody.home import Home
from custody.ledger import query
from custody.ledger.entry import canonical_json
from custody.runs.api import GovernedRun
from custody.runs.outcome import (
    RunOutcome,
    carbon_config,
    emissions_body,
)
from custody.runs.preference_data import PreferenceDataError, PreferenceSet, preference_set
from custody.runs.spec import DPOSpec, RewardSpec
from custody.runs.training import train_config
from custody.train.carbon import Emissions, track_emissions
from custody.train.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from custody.train.loop import TrainConfig
from custody.train.model import GPT
from custody.train.preference import (
    PreferencePair,
    PreferenceTraining,
    bradley_terry_loss,
    completion_logprobs,
    device_for,
    dpo_loss,
    encode_pair,
    kl_to_reference,
    optimize,
    sample_completions,
    sequence_rewards,
)
from custody.train.tokenizer import BPETokenizer, load_tokenizer

WEIGHTS_FILE = "final.pt"


@dataclass(frozen=True)
class PreferenceResult:
    """What a preference run leaves: the weights (run folder and store), the training, the measures."""

    path: Any
    digest: str
    training: PreferenceTraining
    outcome: dict[str, Any]
    emissions: Emissions


def load_recorded(home: Home, ref: str, what: str) -> Checkpoint:
    """A checkpoint from the artifact store, only if its bytes hash to `ref`'s digest."""
    digest = ref.removeprefix("sha256:")
    if not home.store.exists(digest):
        raise CheckpointError(f"{what} {ref} is not in this home's artifact store")
    return load_checkpoint(home.store.path_for(digest), digest)


def _tokenizer(home: Home, checkpoint: Checkpoint) -> tuple[BPETokenizer, str]:
    digest = checkpoint.state["meta"]["tokenizer_digest"]
    return load_tokenizer(home.store.path_for(digest), digest), digest


def reward_run_of(home: Home, digest: str) -> str:
    """The id of the reward run that wrote these weights; anything else is refused."""
    for row in query.entries(home.storage, "run.finished/"):
        body = query.body(row)
        if body.get("model_digest") == digest and body.get("status") == "completed":
            started = query.first(home.storage, "run.started/", row.subject)
            if started is not None and query.body(started)["kind"] == "reward":
                return body["run_id"]
            raise CheckpointError(f"sha256:{digest} was not written by a reward run (kind = 'reward')")
    raise CheckpointError(f"no recorded run finished with a model of sha256 {digest}")


def build_reward_model(start: Checkpoint, settings: RewardSpec) -> GPT:
    """The policy's network with its blocks frozen, new blocks on top and a scalar head."""
    model = start.build_model()
    blocks = range(len(model.transformer.h)) if settings.freeze_blocks == "all" else settings.freeze_blocks
    if list(blocks):
        model.freeze_blocks(blocks)
    if settings.freeze_embeddings:
        model.freeze_embeddings()
    if settings.add_blocks:
        model.add_blocks(settings.add_blocks)
    model.replace_head(1)
    return model


def _pairs(tokenizer: BPETokenizer, sets: list[PreferenceSet], block: int, held: bool) -> list[PreferencePair]:
    return [
        encode_pair(tokenizer, p.prompt, p.chosen, p.rejected, block)
        for s in sets
        for p in (s.held_out if held else s.train)
    ]


def _both(batch: list[PreferencePair]) -> tuple[list, list]:
    """Prompts and completions of a batch: every chosen completion, then every rejected one."""
    prompts = [p.prompt for p in batch] * 2
    return prompts, [p.chosen for p in batch] + [p.rejected for p in batch]


def ranking_accuracy(model: GPT, pairs: list[PreferencePair], batch: int = 64) -> float | None:
    """The share of pairs whose chosen completion the reward model scores higher (a tie counts half)."""
    if not pairs:
        return None
    model.eval()
    right = 0.0
    with torch.no_grad():
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            scores = sequence_rewards(model, *_both(chunk))
            chosen, rejected = scores[: len(chunk)], scores[len(chunk) :]
            right += float((chosen > rejected).sum()) + 0.5 * float((chosen == rejected).sum())
    return round(right / len(pairs), 6)


def _train_reward(
    model: GPT, train: list[PreferencePair], held: list[PreferencePair], config: TrainConfig
) -> tuple[PreferenceTraining, dict[str, Any]]:
    def loss_of(batch: list[PreferencePair]) -> torch.Tensor:
        scores = sequence_rewards(model, *_both(batch))
        return bradley_terry_loss(scores[: len(batch)], scores[len(batch) :])

    def evaluate(step: int) -> dict:
        return {"held_out_accuracy": ranking_accuracy(model, held), "train_accuracy": ranking_accuracy(model, train)}

    training = optimize(model, train, config, loss_of, evaluate)
    return training, {"method": "bradley-terry", "held_out_accuracy": training.evals[-1]["held_out_accuracy"]}


@dataclass
class _Sampler:
    """Completions of held-out prompts, sampled with the same seeds at every evaluation."""

    prompts: list[tuple[int, ...]]
    settings: DPOSpec
    eot_id: int
    seed: int

    def completions(self, model: GPT) -> tuple[list, list]:
        prompts, completions = [], []
        for i, prompt in enumerate(self.prompts):
            for c in sample_completions(
                model,
                prompt,
                self.settings.samples_per_prompt,
                self.settings.max_new_tokens,
                self.eot_id,
                self.settings.temperature,
                seed=self.seed + i,
            ):
                prompts.append(prompt)
                completions.append(c)
        return prompts, completions


def _mean_reward(reward_model: GPT, prompts: list, completions: list) -> float:
    reward_model.eval()
    with torch.no_grad():
        return round(float(sequence_rewards(reward_model, prompts, completions).mean()), 6)


def _train_dpo(
    policy: GPT,
    reference: GPT,
    reward_model: GPT,
    train: list[PreferencePair],
    sampler: _Sampler,
    config: TrainConfig,
    settings: DPOSpec,
) -> tuple[PreferenceTraining, dict[str, Any]]:
    reference.requires_grad_(False)
    reference.eval()
    before = _mean_reward(reward_model, *sampler.completions(reference))

    def loss_of(batch: list[PreferencePair]) -> torch.Tensor:
        prompts, completions = _both(batch)
        mine = completion_logprobs(policy, prompts, completions)
        with torch.no_grad():
            theirs = completion_logprobs(reference, prompts, completions)
        n = len(batch)
        return dpo_loss(mine[:n], mine[n:], theirs[:n], theirs[n:], settings.beta)

    def evaluate(step: int) -> dict:
        prompts, completions = sampler.completions(policy)
        kl = round(kl_to_reference(policy, reference, prompts, completions), 6)
        return {"reward": _mean_reward(reward_model, prompts, completions), "kl": kl}

    training = optimize(policy, train, config, loss_of, evaluate, lambda m: m["kl"] <= settings.max_kl)
    inside = [e for e in training.evals if e["kl"] <= settings.max_kl and e["step"] <= training.steps]
    last = inside[-1] if inside else {"reward": before, "kl": 0.0}
    return training, {
        "method": "dpo",
        "beta": settings.beta,
        "eval_prompts": len(sampler.prompts),
        "reward_before": before,
        "reward_after": last["reward"],
        "kl": last["kl"],
        "max_kl": settings.max_kl,
        "stopped": training.stopped,
    }


def _held_prompts(pairs: list[PreferencePair], limit: int) -> list[tuple[int, ...]]:
    return list(dict.fromkeys(p.prompt for p in pairs))[:limit]


def train_preferences(run: GovernedRun) -> None:
    """Train the allowed run's reward model or DPO policy on its judged preference pairs."""
    home, outcome, say = run.home, run.outcome, run.say
    spec = outcome.spec.spec
    settings: RewardSpec | DPOSpec = spec.reward or spec.dpo
    out = run.directory
    start = load_recorded(home, settings.checkpoint, "checkpoint")
    tokenizer, tokenizer_digest = _tokenizer(home, start)
    roster = home.roster()
    sets = [preference_set(d, settings.held_out, roster if roster.signed else None) for d in outcome.prepared]
    reviewers = sorted({name for s in sets for name in s.reviewers})
    config = replace(train_config(spec), checkpoint_interval=0)  # one checkpoint: the final weights
    reward_model, reward_digest = None, None
    torch.manual_seed(config.seed)  # new blocks and the scalar head start from the spec's seed
    if spec.kind == "dpo":
        reward_digest = settings.reward_model.removeprefix("sha256:")
        reward_run_of(home, reward_digest)
        reward_checkpoint = load_recorded(home, settings.reward_model, "reward model")
        if reward_checkpoint.state["meta"]["tokenizer_digest"] != tokenizer_digest:
            raise CheckpointError(
                f"reward model {settings.reward_model} reads another tokenizer than checkpoint {settings.checkpoint}"
            )
        reward_model = reward_checkpoint.build_model()
        model = start.build_model()
    else:
        model = build_reward_model(start, settings)
    block = model.config.block_size
    train, held = _pairs(tokenizer, sets, block, held=False), _pairs(tokenizer, sets, block, held=True)
    if spec.kind == "dpo" and not held:
        raise PreferenceDataError(
            f"{outcome.spec.path}: no held-out pairs to sample prompts from; raise [dpo] held_out"
        )
    device = device_for(config.device)
    model.to(device)
    started = {
        "tokenizer_digest": tokenizer_digest,
        "model_config_digest": home.store.put_bytes(canonical_json(model.config.as_json())),
        "train_config_digest": home.store.put_bytes(canonical_json(config.as_json())),
        "init_checkpoint_digest": start.digest,
        "reward_model_digest": reward_digest,
        "code_version": f"custody {__version__}, torch {torch.__version__}",
        "device": str(device),
        "world_size": 1,
        "seed": config.seed,
        "parameters": model.num_params(),
    }
    run.record_started("run.started/v3", started)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    say(
        f"run {outcome.run_id} started: {spec.kind} on {len(train)} preference pairs ({len(held)} held out), "
        f"{trainable:,} of {model.num_params():,} parameters trained (ledger index {outcome.entries['run.started']})"
    )
    try:
        with track_emissions(carbon_config(spec), label=f"custody-{spec.kind}") as meter:
            if spec.kind == "dpo":
                reference = start.build_model().to(device)
                sampler = _Sampler(_held_prompts(held, settings.eval_prompts), settings, tokenizer.eot_id, config.seed)
                training, measured = _train_dpo(
                    model, reference, reward_model.to(device), train, sampler, config, settings
                )
                measured["reference_digest"] = start.digest
                measured["reward_model_digest"] = reward_digest
            else:
                training, measured = _train_reward(model, train, held, config)
        emissions = meter.result
        state = _state(model, config, training, emissions, outcome, tokenizer_digest, spec.kind)
        digest, _ = save_checkpoint(state, out / WEIGHTS_FILE)
    except BaseException as exc:
        run.record_failed(exc, "run.finished/v3")
        raise
    home.store.put_file(out / WEIGHTS_FILE)
    preference = {"pairs_trained": len(train), "pairs_held_out": len(held), "reviewers": reviewers, **measured}
    metrics = {
        "steps": [{"step": i + 1, "train_loss": loss} for i, loss in enumerate(training.losses)],
        "evals": training.evals,
        "preference": preference,
    }
    body = {
        "status": "completed",
        "steps": training.steps,
        "tokens": 0,
        "tokens_per_s": 0.0,
        "final_train_loss": training.losses[-1] if training.losses else None,
        "model_digest": digest,
        "metrics_digest": home.store.put_bytes(canonical_json(metrics)),
        "emissions": emissions_body(emissions),
        "preference": preference,
    }
    index = run.record_finished("run.finished/v3", body, refs=[f"sha256:{digest}"])
    home.checkpoint()
    outcome.result = PreferenceResult(out / WEIGHTS_FILE, digest, training, preference, emissions)
    say(_summary(outcome.run_id, preference, digest, emissions, index))


def _state(
    model: GPT,
    config: TrainConfig,
    training: PreferenceTraining,
    emissions: Emissions,
    outcome: RunOutcome,
    tokenizer_digest: str,
    kind: str,
) -> dict[str, Any]:
    """A checkpoint in the core loop's format: `custody eval`, fine-tuning and a DPO run read it."""
    return {
        "step": training.steps,
        "model_config": model.config.as_json(),
        "train_config": config.as_json(),
        "frozen": model.frozen_parameter_names(),
        "origin": model.origin,
        "data": {"kind": kind, "datasets": [str(d.ref) for d in outcome.prepared]},
        "losses": training.losses,
        "evals": training.evals,
        "emissions": emissions.as_json(),
        "meta": {"run_id": outcome.run_id, "spec_digest": outcome.spec.digest, "tokenizer_digest": tokenizer_digest},
        "world_size": 1,
        "torch_version": str(torch.__version__),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def _summary(run_id: str, p: dict[str, Any], digest: str, emissions: Emissions, index: int) -> str:
    if p["method"] == "bradley-terry":
        measured = f"held-out ranking accuracy {p['held_out_accuracy']}"
    else:
        measured = (
            f"mean reward on held-out prompts {p['reward_before']} -> {p['reward_after']}, "
            f"KL {p['kl']} nats (bound {p['max_kl']})"
        )
    return (
        f"run {run_id} finished: {measured}; weights sha256 {digest[:16]}; "
        f"{emissions.energy_kwh * 1000:.3f} Wh, {emissions.emissions_kg_co2e * 1000:.3f} g CO2e (ledger index {index})"
    )
