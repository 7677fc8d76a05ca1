"""What `torch.compile` costs the training loop on this machine: the first compiled step, once.

    python bench/train_compile.py [--steps 5] [--threads N] [--out bench/out/train_compile.json]

The model is bench/train.py's default GPT (4 layers, 384 wide, 6 heads, block 256, vocabulary
4096: 8.7M parameters, batch 4), on random tokens. A training step is what `custody.train.loop`
does per step on a CPU: forward with the loss, backward, AdamW step (the loop's own
`make_optimizer`). Timed: the first step through `torch.compile(model)` (tracing and code
generation, then the step), the next `--steps` compiled steps, and the same number of eager
steps on an identically initialised model, for reference. Compiled code is not cached between
processes here (a fresh inductor cache directory), so the first step pays the full compilation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from _meta import write_json
from custody.train.loop import TrainConfig, make_optimizer
from custody.train.model import GPT, GPTConfig

REPO = Path(__file__).resolve().parents[1]


def step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    started = time.perf_counter()
    _, loss = net(x, y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="steps timed after the first, each side")
    parser.add_argument("--threads", type=int, help="torch threads [default: torch's choice]")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "train_compile.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="custody-bench-inductor-")
    config = GPTConfig(4096, 256, 4, 6, 384, dropout=0.0, bias=False)
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, config.vocab_size, (4, config.block_size), generator=generator)
    y = torch.randint(0, config.vocab_size, (4, config.block_size), generator=generator)
    device = torch.device("cpu")
    train_config = TrainConfig()

    torch.manual_seed(1234)
    eager = GPT(config)
    eager_opt = make_optimizer(eager, train_config, device)
    step(eager, eager_opt, x, y)  # first-use costs of eager mode, not timed below
    eager_steps = [step(eager, eager_opt, x, y) for _ in range(args.steps)]

    torch.manual_seed(1234)
    model = GPT(config)
    compiled = torch.compile(model)
    optimizer = make_optimizer(model, train_config, device)
    first = step(compiled, optimizer, x, y)
    compiled_steps = [step(compiled, optimizer, x, y) for _ in range(args.steps)]

    figures = {
        "params": model.num_params(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "first_compiled_step_s": first,
        "compiled_step_s_median": statistics.median(compiled_steps),
        "eager_step_s_median": statistics.median(eager_steps),
        "compiled_steps": compiled_steps,
        "eager_steps": eager_steps,
    }
    figures["compile_s"] = first - figures["compiled_step_s_median"]
    print(
        f"{figures['params'] / 1e6:.1f}M-parameter GPT, {figures['threads']} threads: first compiled step "
        f"{first:.1f} s (compilation ~{figures['compile_s']:.1f} s); then {figures['compiled_step_s_median']:.3f} s "
        f"a step compiled, {figures['eager_step_s_median']:.3f} s eager"
    )
    write_json(args.out, {"benchmark": "torch.compile, first step", **figures})


if __name__ == "__main__":
    main()
