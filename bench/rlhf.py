"""RLHF step costs beside the core loop's: a reward-model step and a DPO step, each against one plain
language-model training step of the same network on the same number of tokens; sampling and KL.

    python bench/rlhf.py [--sizes demo,train] [--batch 16] [--prompt 32] [--completion 48]
                         [--warmup 5] [--rounds 20] [--threads 1] [--json docs/figures/rlhf.json]

Sizes (random weights: a step's time does not depend on what the weights know):

- **demo**: the GPT `custody run` builds by default (4 layers, 4 heads, 128 wide, block 128),
  vocabulary 2048: 1.07M parameters.
- **train**: bench/train.py's model (4 layers, 6 heads, 384 wide, block 256), vocabulary 4096.

A batch is `--batch` synthetic preference pairs: a prompt of `--prompt` tokens (end-of-text first)
and two completions of `--completion` tokens (end-of-text last), so 2 x batch sequences of
prompt + completion tokens. Every step is the one `custody.train.preference.optimize` takes (lr from
the core schedule, forward, zero_grad, backward, clipping, AdamW from the core loop's
`make_optimizer`) with the library's own functions:

- **lm** (the peer, the core loop's cost): cross-entropy over the full policy network on 2 x batch
  windows of the same length, so the same number of tokens.
- **reward**: `build_reward_model` as a reward run builds it (all blocks and embeddings frozen,
  one new block, a scalar head), `sequence_rewards` on chosen and rejected, Bradley-Terry loss.
- **dpo**: `completion_logprobs` of the policy on both completions with gradients, the frozen
  reference's under no_grad, DPO loss (beta 0.1).

Each kind gets `--warmup` untimed steps, then `--rounds` rounds run one step of each kind in an
order that rotates every round, so load drift on a shared machine falls on all three. Medians of
wall time and of the thread's CPU time per step (with one torch thread all the work runs on it,
so the CPU figure is the steadier one when other jobs share the cores) and their ratios to lm.

Evaluation costs, medians of 3 repeats after an untimed warmup: `sample_completions` of `--batch`
completions of one prompt, `--completion` new tokens each, in tokens/s, beside no_grad forwards
of a batch of the same shape (sampling has no KV cache: every new token runs the whole context
again); `kl_to_reference` on those samples; and one whole DPO evaluation with the run defaults
(16 prompts x 4 samples x 24 tokens, KL to the reference, scored by the reward model).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _meta import load_average, log, write_json

SEED = 20261207
BETA = 0.1
REPEATS = 3
SIZES = {
    "demo": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128, "vocab_size": 2048},
    "train": {"n_layer": 4, "n_head": 6, "n_embd": 384, "block_size": 256, "vocab_size": 4096},
}
NO_DIGEST = "sha256:" + "0" * 64  # the specs want a digest; nothing is loaded by it here


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from custody.runs.preference_runs import _both, _mean_reward, _Sampler, build_reward_model
    from custody.runs.spec import DPOSpec, RewardSpec
    from custody.train.loop import TrainConfig, lr_at, make_optimizer
    from custody.train.model import GPT, GPTConfig
    from custody.train.preference import (
        PreferencePair,
        bradley_terry_loss,
        completion_logprobs,
        dpo_loss,
        kl_to_reference,
        sample_completions,
        sequence_rewards,
    )

    torch.manual_seed(SEED)
    config = GPTConfig(**SIZES[name])
    length = args.prompt + args.completion
    if length > config.block_size:
        raise SystemExit(f"--prompt + --completion ({length}) exceeds the block of size {name} ({config.block_size})")
    policy = GPT(config)
    eot = config.vocab_size - 1
    rng = torch.Generator().manual_seed(SEED)

    def tokens(n: int) -> list[int]:
        return torch.randint(0, eot, (n,), generator=rng).tolist()

    pairs = [
        PreferencePair(
            (eot, *tokens(args.prompt - 1)), (*tokens(args.completion - 1), eot), (*tokens(args.completion - 1), eot)
        )
        for _ in range(args.batch)
    ]
    prompts, completions = _both(pairs)
    windows = torch.randint(0, config.vocab_size, (2 * args.batch, length + 1), generator=rng)
    train = TrainConfig(steps=1000, batch_size=args.batch, lr=1e-3, warmup=10, device="cpu")

    class _Start:  # what build_reward_model reads of a recorded checkpoint
        def build_model(self) -> GPT:
            return copy.deepcopy(policy)

    lm_model = copy.deepcopy(policy)
    reward_model = build_reward_model(_Start(), RewardSpec(checkpoint=NO_DIGEST, add_blocks=1))
    dpo_policy = copy.deepcopy(policy)
    reference = copy.deepcopy(policy).requires_grad_(False).eval()

    def lm_loss() -> torch.Tensor:
        _, loss = lm_model(windows[:, :-1], windows[:, 1:])
        return loss

    def reward_loss() -> torch.Tensor:
        scores = sequence_rewards(reward_model, prompts, completions)
        return bradley_terry_loss(scores[: args.batch], scores[args.batch :])

    def dpo_step_loss() -> torch.Tensor:
        mine = completion_logprobs(dpo_policy, prompts, completions)
        with torch.no_grad():
            theirs = completion_logprobs(reference, prompts, completions)
        n = args.batch
        return dpo_loss(mine[:n], mine[n:], theirs[:n], theirs[n:], BETA)

    def stepper(model: GPT, loss_of: Callable[[], torch.Tensor]) -> Callable[[int], None]:
        """One step as `optimize` takes it."""
        optimizer = make_optimizer(model, train, torch.device("cpu"))
        trainable = [p for p in model.parameters() if p.requires_grad]

        def step(i: int) -> None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(i, train)
            model.train()
            loss = loss_of()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, train.grad_clip)
            optimizer.step()
            float(loss.detach())

        return step

    kinds = {
        "lm": (lm_model, stepper(lm_model, lm_loss)),
        "reward": (reward_model, stepper(reward_model, reward_loss)),
        "dpo": (dpo_policy, stepper(dpo_policy, dpo_step_loss)),
    }
    for kind, (_, step) in kinds.items():
        for i in range(args.warmup):
            step(i)
        log(f"{name}: {kind} {args.warmup} warmup steps done")
    wall: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    order = list(kinds)
    for r in range(args.rounds):
        for kind in order[r % 3 :] + order[: r % 3]:
            started, started_cpu = time.perf_counter(), time.thread_time()
            kinds[kind][1](args.warmup + r)
            wall[kind].append(time.perf_counter() - started)
            cpu[kind].append(time.thread_time() - started_cpu)
        if (r + 1) % 5 == 0:
            log(f"{name}: round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {wall[k][-1] * 1000:.0f} ms" for k in order))

    step_tokens = 2 * args.batch * length
    steps: dict[str, dict[str, Any]] = {}
    for kind, (model, _) in kinds.items():
        steps[kind] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "median_ms": median_ms(wall[kind]),
            "median_cpu_ms": median_ms(cpu[kind]),
            "min_ms": round(min(wall[kind]) * 1000, 2),
            "max_ms": round(max(wall[kind]) * 1000, 2),
            "tokens_per_s": round(step_tokens / statistics.median(wall[kind]), 1),
            "wall_ms": [round(t * 1000, 2) for t in wall[kind]],
        }
    for kind in ("reward", "dpo"):
        steps[kind]["ratio_to_lm"] = round(steps[kind]["median_ms"] / steps["lm"]["median_ms"], 3)
        steps[kind]["cpu_ratio_to_lm"] = round(steps[kind]["median_cpu_ms"] / steps["lm"]["median_cpu_ms"], 3)

    # Evaluation: sampling, bare forwards of the same shape, the KL estimate, one DPO evaluation.
    dpo_policy.eval()
    reward_model.eval()
    sample_s, forward_s, kl_s, evaluation_s = [], [], [], []
    shape = torch.randint(0, config.vocab_size, (args.batch, length), generator=rng)
    defaults = DPOSpec(checkpoint=NO_DIGEST, reward_model=NO_DIGEST)
    eval_prompts = [(eot, *tokens(args.prompt - 1)) for _ in range(defaults.eval_prompts)]
    sampler = _Sampler(eval_prompts, defaults, eot, SEED)
    sample_completions(dpo_policy, pairs[0].prompt, 2, 4, eot)  # untimed warmup of each path
    kl_to_reference(dpo_policy, reference, prompts[:2], completions[:2])
    _mean_reward(reward_model, prompts[:2], completions[:2])
    for i in range(REPEATS):
        started = time.perf_counter()
        sampled = sample_completions(dpo_policy, pairs[0].prompt, args.batch, args.completion, eot, seed=i)
        sample_s.append(time.perf_counter() - started)
        for _ in range(5):
            started = time.perf_counter()
            with torch.no_grad():
                dpo_policy(shape)
            forward_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        kl_to_reference(dpo_policy, reference, [pairs[0].prompt] * len(sampled), sampled)
        kl_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        eval_p, eval_c = sampler.completions(dpo_policy)
        kl_to_reference(dpo_policy, reference, eval_p, eval_c)
        _mean_reward(reward_model, eval_p, eval_c)
        evaluation_s.append(time.perf_counter() - started)
        log(f"{name}: repeat {i + 1}/{REPEATS}: sampling {sample_s[-1]:.2f} s, evaluation {evaluation_s[-1]:.2f} s")
    sampling_tps = args.batch * args.completion / statistics.median(sample_s)
    forward_tps = args.batch * length / statistics.median(forward_s)
    dpo_evaluation_s = statistics.median(evaluation_s)
    evaluation = {
        "sampled_completions": args.batch,
        "new_tokens_per_completion": args.completion,
        "sampling_tokens_per_s": round(sampling_tps, 1),
        "forward_tokens_per_s": round(forward_tps, 1),
        "sampling_ratio_to_forward": round(sampling_tps / forward_tps, 4),
        "kl_ms": median_ms(kl_s),
        "kl_ratio_to_lm_step": round(statistics.median(kl_s) * 1000 / steps["lm"]["median_ms"], 3),
        "dpo_evaluation": {
            "eval_prompts": defaults.eval_prompts,
            "samples_per_prompt": defaults.samples_per_prompt,
            "max_new_tokens": defaults.max_new_tokens,
            "median_s": round(dpo_evaluation_s, 3),
            "lm_steps_equivalent": round(dpo_evaluation_s * 1000 / steps["lm"]["median_ms"], 1),
        },
        "repeats": REPEATS,
    }
    return {
        "size": name,
        "model": {**config.as_json(), "parameters": policy.num_params(non_embedding=False)},
        "tokens_per_step": step_tokens,
        "steps": steps,
        "evaluation": evaluation,
    }


def report(result: dict[str, Any], rounds: int) -> None:
    """The side-by-side table of one size, on stdout."""
    model, steps, e = result["model"], result["steps"], result["evaluation"]
    print(
        f"\n{result['size']}: {model['n_layer']} layers, {model['n_embd']} wide, vocabulary {model['vocab_size']}, "
        f"{model['parameters'] / 1e6:.2f}M parameters; {result['tokens_per_step']} tokens per step"
    )
    head = f"step (median of {rounds})"
    print(f"{head:34s} {'wall ms':>9s} {'CPU ms':>9s} {'x lm':>7s} {'x lm CPU':>9s}")
    for label, s in (
        ("lm (peer: the core loop's step)", steps["lm"]),
        ("reward (frozen + 1 block + head)", steps["reward"]),
        ("dpo (policy + reference)", steps["dpo"]),
    ):
        ratio = f"{s.get('ratio_to_lm', 1.0):7.3f} {s.get('cpu_ratio_to_lm', 1.0):9.3f}"
        print(f"{label:34s} {s['median_ms']:9.1f} {s['median_cpu_ms']:9.1f} {ratio}")
    d = e["dpo_evaluation"]
    print(
        f"sampling {e['sampling_tokens_per_s']:.0f} tokens/s (a bare forward: {e['forward_tokens_per_s']:.0f} "
        f"tokens/s); KL estimate {e['kl_ms']:.1f} ms ({e['kl_ratio_to_lm_step']:.2f} lm steps); one DPO "
        f"evaluation {d['median_s']:.2f} s ({d['lm_steps_equivalent']:.1f} lm steps)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="demo", help=f"comma-separated, of: {', '.join(SIZES)}")
    parser.add_argument("--batch", type=int, default=16, help="preference pairs per step")
    parser.add_argument("--prompt", type=int, default=32, help="prompt tokens, end-of-text included")
    parser.add_argument("--completion", type=int, default=48, help="tokens per completion, end-of-text included")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps of each kind")
    parser.add_argument("--rounds", type=int, default=20, help="timed steps of each kind")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: see bench/train.py)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",")
    if unknown := [s for s in sizes if s not in SIZES]:
        parser.error(f"unknown size {unknown[0]!r}; sizes: {', '.join(SIZES)}")

    import torch

    torch.set_num_threads(args.threads)
    load_before = load_average()
    results = [measure(name, args) for name in sizes]
    figures = {
        "batch": {
            "pairs": args.batch,
            "prompt_tokens": args.prompt,
            "completion_tokens": args.completion,
            "sequences": 2 * args.batch,
        },
        "warmup": args.warmup,
        "rounds": args.rounds,
        "dpo_beta": BETA,
        "sizes": results,
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    for result in results:
        report(result, args.rounds)
    if args.json:
        write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
