"""Learning from human preferences on the GPT of model.py: sequence scores, the two losses, sampling, KL.

A preference pair is a prompt and two completions, one preferred. Every sequence is the prompt's
tokens after an end-of-text token (as training separates documents), then the completion's tokens
and an end-of-text token. Batches are padded on the right: the model is causal, so padding after a
sequence cannot change any score of the sequence itself.

- **Reward model** (Bradley-Terry; Christiano et al. 2017, Ouyang et al. 2022): a scalar head reads
  the hidden state at a sequence's last token; the loss is -log σ(r(chosen) - r(rejected)).
- **DPO** (Rafailov et al. 2023): the policy's and the frozen reference's log-likelihoods of both
  completions; the loss is -log σ(β·[(log π_c - log π_ref,c) - (log π_r - log π_ref,r)]).
- **KL to the reference** is estimated on completions the policy samples itself: per token the
  k3 estimator (ρ - 1) - log ρ, ρ = π_ref/π (unbiased and never negative), summed over each
  completion and averaged (nats per completion).

Batches are a pure function of (seed, step), as in the core loop, so a run is reproducible.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from custody.train.loop import TrainConfig, lr_at, make_optimizer
from custody.train.model import GPT


@dataclass(frozen=True)
class PreferencePair:
    """Token ids: the prompt (starting with end-of-text) and the two completions (ending with it)."""

    prompt: tuple[int, ...]
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]


def fit_to_block(prompt: Sequence[int], completion: Sequence[int], block_size: int) -> tuple[list[int], list[int]]:
    """Prompt and completion cut to one block: the completion keeps at most half of it, the prompt
    its last tokens (nearest the completion)."""
    completion = list(completion[: max(1, block_size // 2)])
    room = block_size - len(completion)
    return list(prompt[-room:]) if room > 0 else [], completion


def encode_prompt(tokenizer, text: str) -> list[int]:
    return [tokenizer.eot_id, *tokenizer.encode(text)]


def encode_completion(tokenizer, text: str) -> list[int]:
    return [*tokenizer.encode(text), tokenizer.eot_id]


def encode_pair(tokenizer, prompt: str, chosen: str, rejected: str, block_size: int) -> PreferencePair:
    p = encode_prompt(tokenizer, prompt)
    p_c, c = fit_to_block(p, encode_completion(tokenizer, chosen), block_size)
    p_r, r = fit_to_block(p, encode_completion(tokenizer, rejected), block_size)
    shared = p_c if len(p_c) <= len(p_r) else p_r  # the same prompt tokens before both completions
    return PreferencePair(tuple(shared), tuple(c[: block_size - len(shared)]), tuple(r[: block_size - len(shared)]))


def _padded(sequences: Sequence[Sequence[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, s in enumerate(sequences):
        ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    return ids.to(device), lengths.to(device)


def token_logprobs(
    model: GPT, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(token | everything before it) at every position, and the mask of completion tokens."""
    device = model.transformer.wte.weight.device
    ids, _ = _padded([[*p, *c] for p, c in zip(prompts, completions, strict=True)], device)
    logits, _ = model(ids)
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    positions = torch.arange(1, ids.size(1), device=device).unsqueeze(0)  # the target token's index
    starts = torch.tensor([len(p) for p in prompts], device=device).unsqueeze(1)
    ends = starts + torch.tensor([len(c) for c in completions], device=device).unsqueeze(1)
    return logp, (positions >= starts) & (positions < ends)


def completion_logprobs(
    model: GPT, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]
) -> torch.Tensor:
    """Σ log p(completion token | everything before it), one value per (prompt, completion)."""
    logp, mask = token_logprobs(model, prompts, completions)
    return (logp * mask).sum(dim=-1)


def sequence_rewards(
    reward_model: GPT, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]
) -> torch.Tensor:
    """The scalar head's output at each sequence's last token."""
    device = reward_model.transformer.wte.weight.device
    ids, lengths = _padded([[*p, *c] for p, c in zip(prompts, completions, strict=True)], device)
    scores, _ = reward_model(ids)
    return scores[torch.arange(ids.size(0), device=device), lengths - 1, 0].float()


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    return -F.logsigmoid(chosen - rejected).mean()


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return -F.logsigmoid(beta * margin).mean()


@torch.no_grad()
def sample_completions(
    model: GPT,
    prompt: Sequence[int],
    n: int,
    max_new_tokens: int,
    eot_id: int,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[list[int]]:
    """`n` completions of one prompt, each ending at its first end-of-text (included) or after
    `max_new_tokens`; the same seed gives the same completions."""
    model.eval()
    device = model.transformer.wte.weight.device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    block = model.config.block_size
    context = list(prompt)[-(block - 1) :]
    idx = torch.tensor([context] * n, dtype=torch.long, device=device)
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -block:])
        probs = torch.softmax(logits[:, -1, :].float() / max(temperature, 1e-6), dim=-1).cpu()
        idx = torch.cat((idx, torch.multinomial(probs, 1, generator=generator).to(device)), dim=1)
    completions = []
    for row in idx[:, len(context) :].tolist():
        completions.append(row[: row.index(eot_id) + 1] if eot_id in row else row)
    return completions


@torch.no_grad()
def kl_to_reference(
    policy: GPT, reference: GPT, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]
) -> float:
    """KL(policy ‖ reference) in nats per completion, on completions the policy sampled: per token
    the k3 estimator (ρ - 1) - log ρ with ρ = π_ref(y_t) / π(y_t), summed over the completion and
    averaged over completions. Unbiased like log π - log π_ref, but never negative, so a few
    samples cannot report a KL below zero (Schulman, "Approximating KL divergence", 2020)."""
    policy.eval()
    reference.eval()
    mine, mask = token_logprobs(policy, prompts, completions)
    theirs, _ = token_logprobs(reference, prompts, completions)
    log_ratio = (theirs - mine).clamp(max=20.0)  # exp() of a larger ratio only overflows
    k3 = (torch.exp(log_ratio) - 1 - log_ratio) * mask
    return float(k3.sum(dim=-1).mean())


@dataclass
class PreferenceTraining:
    """What a preference loop leaves: the loss per step and the evaluations along the way."""

    losses: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    steps: int = 0  # the step whose weights the model holds at the end
    stopped: str | None = None  # why training stopped before config.steps, if it did


def device_for(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def batch_indices(count: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The pairs of step `step`: a pure function of (seed, step)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(0, count, (min(batch_size, count),), generator=generator).tolist()


def optimize(
    model: GPT,
    pairs: Sequence[PreferencePair],
    config: TrainConfig,
    loss_of: Callable[[list[PreferencePair]], torch.Tensor],
    evaluate: Callable[[int], dict] | None = None,
    within_bounds: Callable[[dict], bool] | None = None,
) -> PreferenceTraining:
    """AdamW over the trainable parameters with the core loop's schedule; `evaluate` runs every
    `eval_interval` steps and at the end. When an evaluation falls outside `within_bounds`, the
    weights go back to the last evaluated state inside them and training stops."""
    if not pairs:
        raise ValueError("no preference pairs to train on")
    device = model.transformer.wte.weight.device
    optimizer = make_optimizer(model, config, device)
    result = PreferenceTraining()
    kept, kept_step = copy.deepcopy(model.state_dict()), 0
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        model.train()
        loss = loss_of([pairs[i] for i in batch_indices(len(pairs), config.batch_size, config.seed, step)])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.grad_clip)
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss is {value} at step {step + 1}; training stopped")
        result.losses.append(round(value, 6))
        result.steps = step + 1
        last = step + 1 == config.steps
        if evaluate is not None and (last or (config.eval_interval and (step + 1) % config.eval_interval == 0)):
            metrics = {"step": step + 1, **evaluate(step + 1)}
            result.evals.append(metrics)
            if within_bounds is not None and not within_bounds(metrics):
                model.load_state_dict(kept)
                result.steps = kept_step
                result.stopped = f"step {step + 1} went out of bounds; the weights of step {kept_step} are kept"
                break
            kept, kept_step = copy.deepcopy(model.state_dict()), step + 1
    return result
