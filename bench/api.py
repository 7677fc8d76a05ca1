"""The Python API's overhead: the same tiny torch loop, bare and inside `custody.governed_run`, interleaved.

    python bench/api.py [--rounds 3] [--steps 200] [--checkpoint-every 50] [--threads 1] [--out FILE]

Both sides train the same small GPT (custody.train.model; by default 2 layers, 128 wide, block 128,
batch 8, vocabulary from custody's BPE tokenizer) with the same seed, on the same batches (Tiny
Shakespeare, tokenized once before any timing), and save the model with `torch.save` every
--checkpoint-every steps. Their loss curves must be bit-identical (the script checks). What differs
is the API alone:

  bare      the loop.
  governed  the same loop inside `with run:` (what `governed_run` yields): run.started recorded and a
            CodeCarbon tracker started at entry, `run.log(step, loss=..., tokens=...)` every step,
            `run.checkpoint(path, step=...)` after every save (the file copied into the artifact
            store by digest, a signed run.checkpoint/v2 entry), and at exit run.finished/v4 with the
            energy measured, the metrics stored by digest, and a signed ledger checkpoint.

Each side is timed from the block's entry (governed) or the loop's first step (bare) to the last
byte written: tokens trained / wall seconds. The gate is paid once per run before the block and is
reported apart (`open_run`: the gate request, checks, decision and the allow re-read): it does not
grow with the run's length. Runs alternate in ABBA order (bare, governed, governed, bare, ...)
after one untimed run of each, so drift in the machine's load falls on both sides; the overhead is
1 - governed tokens/s / bare tokens/s over all timed runs together, and per ABBA pair. CPU time of
the training thread is reported too (robust to time lost waiting for a core on a shared machine),
with a stopwatch of each API call on that thread.

One torch thread by default: on a shared 2-core machine two OpenMP threads stall whenever another
job takes a core, which makes timings swing far more than the effect measured.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from _meta import REPO, load_average, log, write_json

sys.path.insert(0, str(REPO / "tests"))  # the tests' home with people, a bound policy and Tiny Shakespeare

from custody.runs.api import GovernedRun, _acting, external_spec, open_run
from custody.testing.people import Cast
from custody.train.model import GPT, GPTConfig
from custody.train.tokenizer import train_tokenizer
from run_data import people_home
from train_support import register_shakespeare

OUT = REPO / "docs" / "figures" / "api_bench.json"


@dataclass
class Run:
    kind: str
    wall_s: float
    thread_cpu_s: float
    tokens: int
    losses: list[float]
    gate_s: float = 0.0
    entries: int = 0
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


class Stopwatch:
    """Seconds spent in each API call, by name (on the training thread)."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, call):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.parts[name] += time.perf_counter() - started

        return timed


def batches(tokens: torch.Tensor, args: argparse.Namespace) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """--steps fixed batches of (input, target) windows, drawn once with a fixed seed."""
    generator = torch.Generator().manual_seed(1234)
    starts = torch.randint(0, len(tokens) - args.block - 1, (args.steps, args.batch), generator=generator)
    out = []
    for row in starts:
        x = torch.stack([tokens[s : s + args.block] for s in row.tolist()])
        y = torch.stack([tokens[s + 1 : s + 1 + args.block] for s in row.tolist()])
        out.append((x, y))
    return out


def loop(args, vocab: int, data, folder: Path, run: GovernedRun | None) -> tuple[list[float], int]:
    """The loop both sides run; `run` is None for the bare side."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab, args.block, args.layers, args.heads, args.width, dropout=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses, tokens = [], 0
    for step, (x, y) in enumerate(data, start=1):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        tokens += x.numel()
        value = loss.item()
        losses.append(value)
        if run is not None:
            run.log(step, loss=value, tokens=tokens)
        if step % args.checkpoint_every == 0 or step == len(data):
            path = folder / f"step-{step}.pt"
            torch.save(model.state_dict(), path)
            if run is not None:
                run.checkpoint(path, step=step)
    return losses, tokens


def bare(args, vocab: int, data, work: Path) -> Run:
    folder = Path(tempfile.mkdtemp(dir=work))
    wall, cpu = time.perf_counter(), time.thread_time()
    losses, tokens = loop(args, vocab, data, folder, None)
    return Run("bare", time.perf_counter() - wall, time.thread_time() - cpu, tokens, losses)


def governed(args, home, loaded_spec, who, vocab: int, data, work: Path) -> Run:
    folder = Path(tempfile.mkdtemp(dir=work))
    started = time.perf_counter()
    run = open_run(home, loaded_spec, who, trainer="bench loop")  # the gate, once per run: timed apart
    gate_s = time.perf_counter() - started
    watch = Stopwatch()
    for name in ("start", "log", "checkpoint", "finish"):
        setattr(run, name, watch.wrap(name, getattr(run, name)))
    before = home.ledger.size
    wall, cpu = time.perf_counter(), time.thread_time()
    with run:
        losses, tokens = loop(args, vocab, data, folder, run)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    assert run.entries.get("run.finished") is not None
    parts = {name: round(seconds, 4) for name, seconds in watch.parts.items()}
    return Run("governed", wall, cpu, tokens, losses, gate_s, home.ledger.size - before, parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="pairs of timed runs, in ABBA order")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--speeches", type=int, default=4000, help="Tiny Shakespeare speeches registered")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="custody-api-bench-") as tmp:
        work = Path(tmp)
        cast = Cast(work / "keys")
        home = people_home(cast, work / "home")
        register_shakespeare(home, work, limit=args.speeches, shards=4)
        who = _acting(home, cast.key_file("trainer"), None)
        spec = external_spec(home, "research", ["shakespeare@1"], "api-bench")

        log("first gate (runs the policy's checks on the dataset) and the tokenizer")
        started = time.perf_counter()
        first = open_run(home, spec, who)
        first_gate_s = time.perf_counter() - started
        with first:  # the data handed over, verified as it is read
            texts = list(first.texts())
            tokenizer = train_tokenizer(texts, vocab_size=args.vocab)
            stream = [i for text in texts for i in [*tokenizer.encode(text), tokenizer.eot_id]]
        tokens = torch.tensor(stream, dtype=torch.long)
        data = batches(tokens, args)
        vocab = tokenizer.vocab_size
        shape = f"{args.steps} steps of {args.batch}x{args.block}"
        log(f"{len(texts)} speeches, {len(tokens):,} tokens, vocabulary {vocab}, {shape}")

        log("untimed warm-up: one run of each")
        warm_bare, warm_governed = bare(args, vocab, data, work), governed(args, home, spec, who, vocab, data, work)
        assert warm_bare.losses == warm_governed.losses, "the API must not change what the loop computes"

        runs: list[Run] = []
        for i in range(args.rounds):
            order = ("bare", "governed") if i % 2 == 0 else ("governed", "bare")
            for kind in order:
                one = (
                    bare(args, vocab, data, work)
                    if kind == "bare"
                    else governed(args, home, spec, who, vocab, data, work)
                )
                assert one.losses == warm_bare.losses, f"{kind} run {i}: the loss curve differs"
                runs.append(one)
                log(f"round {i} {kind:8s} {one.tokens_per_s:,.0f} tokens/s ({one.wall_s:.2f} s, load {load_average()})")
        problems = home.ledger.verify().problems
        home.close()

    side = {kind: [r for r in runs if r.kind == kind] for kind in ("bare", "governed")}
    total = {
        kind: (sum(r.tokens for r in rs), sum(r.wall_s for r in rs), sum(r.thread_cpu_s for r in rs))
        for kind, rs in side.items()
    }
    rate = {kind: t / w for kind, (t, w, _) in total.items()}
    cpu_rate = {kind: t / c for kind, (t, _, c) in total.items()}
    overhead = 1 - rate["governed"] / rate["bare"]
    cpu_overhead = 1 - cpu_rate["governed"] / cpu_rate["bare"]
    pairs = [1 - g.tokens_per_s / b.tokens_per_s for b, g in zip(side["bare"], side["governed"], strict=True)]
    parts = {
        name: statistics.median(r.parts.get(name, 0.0) for r in side["governed"])
        for name in ("start", "log", "checkpoint", "finish")
    }
    api_s = sum(parts.values())
    report = {
        "benchmark": "api",
        "config": {
            "rounds": args.rounds,
            "steps": args.steps,
            "checkpoint_every": args.checkpoint_every,
            "batch": args.batch,
            "block": args.block,
            "layers": args.layers,
            "heads": args.heads,
            "width": args.width,
            "vocab": vocab,
            "tokens_per_run": runs[0].tokens,
            "threads": args.threads,
            "speeches": args.speeches,
        },
        "results": {
            "bare_tokens_per_s": round(rate["bare"], 1),
            "governed_tokens_per_s": round(rate["governed"], 1),
            "ratio": round(rate["governed"] / rate["bare"], 5),
            "overhead": round(overhead, 5),
            "overhead_per_pair": [round(p, 5) for p in pairs],
            "overhead_median_pair": round(statistics.median(pairs), 5),
            "thread_cpu_overhead": round(cpu_overhead, 5),
            "bare_run_s_median": round(statistics.median(r.wall_s for r in side["bare"]), 3),
            "governed_run_s_median": round(statistics.median(r.wall_s for r in side["governed"]), 3),
            "api_call_s_median": {name: round(seconds, 4) for name, seconds in parts.items()},
            "api_share_of_governed_run": round(api_s / statistics.median(r.wall_s for r in side["governed"]), 5),
            "log_us_per_call": round(parts["log"] / args.steps * 1e6, 1),
            "checkpoint_ms_per_call": round(parts["checkpoint"] / -(-args.steps // args.checkpoint_every) * 1e3, 2),
            "ledger_entries_per_run": statistics.median(r.entries for r in side["governed"]),
            "first_gate_s": round(first_gate_s, 3),
            "gate_s_median": round(statistics.median(r.gate_s for r in side["governed"]), 3),
            "losses_identical": True,
            "ledger_problems": len(problems),
        },
        "runs": [
            {
                "kind": r.kind,
                "wall_s": round(r.wall_s, 4),
                "thread_cpu_s": round(r.thread_cpu_s, 4),
                "tokens_per_s": round(r.tokens_per_s, 1),
                "gate_s": round(r.gate_s, 4),
                "parts": r.parts,
            }
            for r in runs
        ],
    }
    write_json(args.out, report)
    res = report["results"]
    print(
        f"bare {res['bare_tokens_per_s']:,.0f} tokens/s, governed {res['governed_tokens_per_s']:,.0f} tokens/s: "
        f"overhead {overhead:+.2%} (thread CPU {cpu_overhead:+.2%}); per ABBA pair: "
        f"{', '.join(f'{p:+.2%}' for p in pairs)} (median {statistics.median(pairs):+.2%})"
    )
    print(
        f"API calls per run (median): {', '.join(f'{k} {v * 1e3:.1f} ms' for k, v in parts.items())}; "
        f"gate {res['gate_s_median']:.2f} s per run (first, with checks, {first_gate_s:.2f} s), outside the timing"
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
