"""Training benchmark: tokens/s of the fully governed loop next to the same model in a bare loop, interleaved.

    python bench/train.py [--rounds 3] [--steps 20] [--checkpoint-every 10] [--threads 1] [--out FILE]

Both sides train the same GPT (by default 4 layers, 384 wide, 6 heads, block 256, BPE vocabulary
4096: 8.7M parameters) on Tiny Shakespeare from the same registered dataset, with the same seed,
batches, optimizer, schedule, clipping, final evaluation and checkpoint steps; their loss curves
must be bit-identical (the script checks). What differs is governance alone:

  bare      reads the shard files without hashing them, loads the tokenizer file unchecked, trains
            in a plain nanoGPT-style loop, and writes checkpoints with a plain `torch.save`.
  governed  opens the custody home, builds the data with the verified loader (every shard copied
            and SHA-256-checked before it is parsed), loads the tokenizer against its digest, runs
            `custody.train.loop.train` under CodeCarbon's offline tracker, writes checkpoints
            atomically (temp file, fsync, rename, on a background thread) with their digest
            computed as they are written, and appends a ledger entry at start, at every checkpoint
            (digest, metrics, cumulative kWh, CO2e and water) and at the end, then signs a ledger
            checkpoint.

Each run is timed end to end, from opening the data to the last byte written: tokens trained /
wall seconds. Runs alternate in ABBA order (bare, governed, governed, bare, ...) so drift in the
machine's load falls on both sides, after one short untimed run of each. The overhead is
1 - governed tokens/s / bare tokens/s over all runs together; each adjacent pair's is printed
too. Because other jobs move wall time on a shared machine, the script also prints CPU time for
the same tokens (training thread alone, and all threads) and a stopwatch of each governance
part on the training thread (the instrumented classes below wrap the library's, nothing else).

One torch thread by default: on a shared 2-core machine, two OpenMP threads stall whenever
another job takes a core, which makes timings swing far more than the effect measured.

One cost is paid once per process and reported apart: CodeCarbon's hardware probe (cpuinfo and
its CPU power table, about 2 s here), which CodeCarbon caches for every later tracker in the process.
The script pays it before the timed runs, as a long training process pays it once in hours.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from array import array
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

import custody.train.data as data_module
import custody.train.loop as loop_module
from _meta import load_average, log, write_json
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields, read_records
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.ledger.entry import EntryBody, entry_type
from custody.train.carbon import CarbonConfig, EmissionsMeter
from custody.train.checkpoint import CheckpointWriter, SavedCheckpoint
from custody.train.data import TokenData, in_val_split, verified_texts
from custody.train.distributed import Distributed
from custody.train.loop import Hooks, TrainConfig, evaluate, lr_at, make_optimizer, train
from custody.train.model import GPT, GPTConfig
from custody.train.tokenizer import BPETokenizer, load_tokenizer, train_tokenizer

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "corpus_tinyshakespeare" / "input.txt"
REF = "shakespeare@1"
VAL_FRACTION = 0.1


# Bench-only ledger entry types: the run.* types belong to `custody run`; these carry the same payloads.
@entry_type("bench.train_started/v1")
class BenchTrainStarted(EntryBody):
    info: dict


@entry_type("bench.train_checkpoint/v1")
class BenchTrainCheckpoint(EntryBody):
    checkpoint: dict


@entry_type("bench.train_finished/v1")
class BenchTrainFinished(EntryBody):
    steps: int
    final_digest: str
    emissions: dict


@dataclass
class Run:
    kind: str
    wall_s: float
    tokens: int
    setup_s: float  # opening data, tokenizing, building the model (and, governed, verifying)
    losses: list[float] = field(default_factory=list)
    checkpoints: int = 0
    ledger_entries: int = 0
    emissions: dict | None = None
    cpu_s: float = 0.0  # CPU time of the whole process over the run, every thread included
    thread_cpu_s: float = 0.0  # CPU time of the training thread alone: robust to time lost waiting for a core
    parts: dict[str, float] = field(default_factory=dict)  # seconds on the training thread, by part

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


# -- governance clock: seconds each governance part spends on the training thread, per run ------------
GOVERNANCE: dict[str, float] = defaultdict(float)


@contextmanager
def clock(part: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        GOVERNANCE[part] += time.perf_counter() - started


class TimedMeter(EmissionsMeter):
    def __init__(self, *args, **kwargs) -> None:
        with clock("codecarbon"):
            super().__init__(*args, **kwargs)

    def start(self) -> EmissionsMeter:
        with clock("codecarbon"):
            return super().start()

    def snapshot(self):
        with clock("codecarbon"):
            return super().snapshot()

    def stop(self):
        with clock("codecarbon"):
            return super().stop()


class TimedWriter(CheckpointWriter):
    """Time the training thread spends on checkpoints: the snapshot copy, and any wait for a write."""

    def submit(self, *args, **kwargs):
        with clock("checkpoint (snapshot + waits)"):
            return super().submit(*args, **kwargs)

    def poll(self):
        with clock("checkpoint (snapshot + waits)"):
            return super().poll()

    def drain(self):
        with clock("checkpoint (snapshot + waits)"):
            return super().drain()


_verified_copy = data_module.verified_copy


@contextmanager
def timed_verified_copy(dataset, shard) -> Iterator[Path]:
    manager = _verified_copy(dataset, shard)
    with clock("shard verification (copy + SHA-256)"):
        path = manager.__enter__()
    try:
        yield path
    finally:
        manager.__exit__(None, None, None)


def instrument() -> None:
    """Swap in the timed parts: same code, with a stopwatch around each governance call."""
    loop_module.EmissionsMeter = TimedMeter
    loop_module.CheckpointWriter = TimedWriter
    data_module.verified_copy = timed_verified_copy


def model_config(args: argparse.Namespace, vocab: int) -> GPTConfig:
    return GPTConfig(vocab, args.block, args.layers, args.heads, args.width, dropout=0.0, bias=False)


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        seed=1234,
        steps=args.steps,
        batch_size=args.batch,
        lr=1e-3,
        min_lr=1e-4,
        warmup=2,
        eval_interval=0,  # evaluate once, at the end
        eval_steps=2,
        checkpoint_interval=args.checkpoint_every,
        log_interval=args.checkpoint_every,
    )


# -- setup (untimed): a home with Tiny Shakespeare registered, and a tokenizer file ---------------
def prepare(workdir: Path, vocab: int) -> tuple[Path, Path, str]:
    text = CORPUS.read_text(encoding="utf-8")
    speeches = [p.strip() for p in text.split("\n\n") if p.strip()]
    folder = workdir / "shakespeare"
    folder.mkdir(parents=True)
    per = -(-len(speeches) // 4)
    for s in range(4):
        with open(folder / f"part-{s}.jsonl", "w", encoding="utf-8") as out:
            for i, speech in enumerate(speeches[s * per : (s + 1) * per], s * per):
                out.write(json.dumps({"id": f"ts-{i:05d}", "text": speech}) + "\n")
    home = Home.init(workdir / "home")
    try:
        dataset, _ = DatasetRegistry(home).register(
            [folder], DatasetRef("shakespeare", "1"), parse_card(CARD_TEMPLATE), Fields(id="id")
        )
        tokenizer = train_tokenizer(verified_texts([dataset]), vocab_size=vocab)
    finally:
        home.close()
    tok_path = workdir / "tokenizer.json"
    tokenizer.save(tok_path)
    return workdir / "home", tok_path, tokenizer.digest


# -- the bare loop: nanoGPT's train.py, minus everything custody adds ----------------------------
def bare_data(home_path: Path, tok_path: Path, block: int) -> TokenData:
    """The same token streams as the verified loader, from unverified reads."""
    home = Home.open(home_path)
    try:
        dataset = DatasetRegistry(home).get(REF)
        paths = [(dataset.shard_path(s), s) for s in dataset.manifest.shards]
    finally:
        home.close()
    tokenizer = BPETokenizer(tok_path.read_bytes())
    train_ids, val_ids = array("i"), array("i")
    for path, shard in paths:
        records = list(read_records(path, shard.format, Fields(id="id"), max_record_bytes=1 << 62, name=shard.name))
        for record, ids in zip(records, tokenizer.encode_batch([r.text for r in records]), strict=True):
            out = val_ids if in_val_split(record.content_hash, VAL_FRACTION) else train_ids
            out.extend(ids)
            out.append(tokenizer.eot_id)
    train_tokens, val_tokens = (torch.from_numpy(np.frombuffer(a, dtype=np.int32).copy()) for a in (train_ids, val_ids))
    return TokenData(train_tokens, val_tokens, block, tokenizer.digest)


def bare_run(args: argparse.Namespace, home_path: Path, tok_path: Path, out: Path) -> Run:
    config = train_config(args)
    GOVERNANCE.clear()
    started = time.perf_counter()
    data = bare_data(home_path, tok_path, args.block)
    torch.manual_seed(config.seed)
    model = GPT(model_config(args, args.vocab))
    optimizer = make_optimizer(model, config, torch.device("cpu"))
    setup_s = time.perf_counter() - started
    losses, checkpoints = [], 0
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        x, y = data.batch("train", step, config.batch_size, config.seed)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % config.checkpoint_interval == 0 or step + 1 == config.steps:
            with clock("checkpoint (torch.save)"):
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1}
                torch.save(state, out / f"step-{step + 1:07d}.pt")
            checkpoints += 1
    evaluate(model, data, config, Distributed(), torch.device("cpu"))
    wall = time.perf_counter() - started
    tokens = config.steps * config.batch_size * args.block
    return Run("bare", wall, tokens, setup_s, losses, checkpoints, parts=dict(GOVERNANCE))


# -- the governed loop: verified data, CodeCarbon, digests, ledger ---------------------------------
class LedgerHooks(Hooks):
    def __init__(self, home: Home, run_id: str) -> None:
        self.home, self.run_id, self.entries = home, run_id, 0

    def on_start(self, info: dict) -> None:
        with clock("ledger"):
            self.home.record("bench.train_started/v1", self.run_id, {"info": info}, refs=_refs(info))
        self.entries += 1

    def on_checkpoint(self, checkpoint: SavedCheckpoint) -> None:
        body = {"checkpoint": checkpoint.as_json()}
        with clock("ledger"):
            self.home.record("bench.train_checkpoint/v1", self.run_id, body, refs=[f"sha256:{checkpoint.digest}"])
        self.entries += 1


def _refs(info: dict) -> list[str]:
    data = info["data"]
    return [f"sha256:{s['digest']}" for s in data["sources"]] + [f"sha256:{data['tokenizer_digest']}"]


def checkpoint_costs(out: Path) -> dict:
    """One governed checkpoint (the largest file the run wrote): its size, the CPU time of its
    SHA-256, and the time to write the same bytes again and fsync them (what the background
    writer waits for)."""
    path = max((p for p in out.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = path.read_bytes()
    cpu = time.thread_time()
    hashlib.sha256(data).hexdigest()
    sha_cpu = time.thread_time() - cpu
    copy = out / "fsync-probe.bin"
    started = time.perf_counter()
    with open(copy, "wb") as handle:
        handle.write(data)
        written = time.perf_counter()
        os.fsync(handle.fileno())
    fsync = time.perf_counter() - written
    copy.unlink()
    return {"bytes": len(data), "sha256_cpu_s": sha_cpu, "write_s": written - started, "fsync_s": fsync}


def governed_run(args: argparse.Namespace, home_path: Path, tok_path: Path, tok_digest: str, out: Path) -> Run:
    config = train_config(args)
    GOVERNANCE.clear()
    started = time.perf_counter()
    home = Home.open(home_path)
    try:
        dataset = DatasetRegistry(home).get(REF)
        tokenizer = load_tokenizer(tok_path, tok_digest)
        data = TokenData.from_datasets([dataset], tokenizer, args.block, VAL_FRACTION)
        torch.manual_seed(config.seed)
        model = GPT(model_config(args, tokenizer.vocab_size))
        setup_s = time.perf_counter() - started
        hooks = LedgerHooks(home, f"run:bench-{time.time_ns()}")
        result = train(model, data, config, out, hooks=hooks, carbon=CarbonConfig())
        body = {"steps": result.steps, "final_digest": result.final.digest, "emissions": result.emissions.as_json()}
        with clock("ledger"):
            home.record("bench.train_finished/v1", hooks.run_id, body, refs=[f"sha256:{result.final.digest}"])
            home.checkpoint()  # sign the ledger head, as `custody run` does when it ends
    finally:
        home.close()
    wall = time.perf_counter() - started
    return Run(
        "governed",
        wall,
        result.tokens,
        setup_s,
        result.losses,
        len(result.checkpoints),
        hooks.entries + 1,
        result.emissions.as_json(),
        parts=dict(GOVERNANCE),
    )


def warm_up(args: argparse.Namespace) -> tuple[float, float]:
    """First-use costs both sides would pay once per process: torch kernels, and CodeCarbon's probe."""
    torch.manual_seed(0)
    model = GPT(model_config(args, args.vocab))
    x = torch.randint(0, args.vocab, (args.batch, args.block))
    started = time.perf_counter()
    _, loss = model(x, x)
    loss.backward()
    torch_s = time.perf_counter() - started
    started = time.perf_counter()
    EmissionsMeter(CarbonConfig()).start().stop()
    return torch_s, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs, in ABBA order")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see above)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "train.json")
    parser.add_argument("--dir", type=Path, default=None, help="work directory [default: a new temp dir]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    instrument()
    workdir = Path(tempfile.mkdtemp(prefix="custody-bench-train-", dir=args.dir))
    load_before = load_average()
    script_started = time.perf_counter()
    try:
        log("setup: registering Tiny Shakespeare, training the tokenizer")
        home_path, tok_path, tok_digest = prepare(workdir, args.vocab)
        torch_warm_s, codecarbon_probe_s = warm_up(args)
        params = GPT(model_config(args, args.vocab)).num_params()
        log(f"model: {params / 1e6:.2f}M parameters; CodeCarbon probe {codecarbon_probe_s:.2f} s (once per process)")
        # One short untimed run of each: first-use costs (page cache, allocator, lazy imports) fall on neither side.
        short = argparse.Namespace(**{**vars(args), "steps": 2, "checkpoint_every": 1})
        for kind in ("bare", "governed"):
            (workdir / f"warm-{kind}").mkdir()
        bare_run(short, home_path, tok_path, workdir / "warm-bare")
        governed_run(short, home_path, tok_path, tok_digest, workdir / "warm-governed")
        runs: list[Run] = []
        for i in range(args.rounds):
            order = ("bare", "governed") if i % 2 == 0 else ("governed", "bare")
            for kind in order:
                out = workdir / f"{kind}-{i}"
                out.mkdir()
                cpu, thread_cpu = time.process_time(), time.thread_time()
                run = (
                    bare_run(args, home_path, tok_path, out)
                    if kind == "bare"
                    else governed_run(args, home_path, tok_path, tok_digest, out)
                )
                run.cpu_s, run.thread_cpu_s = time.process_time() - cpu, time.thread_time() - thread_cpu
                runs.append(run)
                log(f"round {i + 1} {kind:9s} {run.tokens_per_s:8.1f} tokens/s ({run.wall_s:.1f} s)")
                if kind == "governed":
                    checkpoint = checkpoint_costs(out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    bare = [r for r in runs if r.kind == "bare"]
    governed = [r for r in runs if r.kind == "governed"]
    bare_tps = sum(r.tokens for r in bare) / sum(r.wall_s for r in bare)
    gov_tps = sum(r.tokens for r in governed) / sum(r.wall_s for r in governed)
    overhead = 1 - gov_tps / bare_tps
    pairs = [1 - g.tokens_per_s / b.tokens_per_s for b, g in zip(bare, governed, strict=True)]
    # Equal tokens on both sides, so CPU-time ratios are per-token cost ratios.
    cpu_overhead = sum(r.cpu_s for r in governed) / sum(r.cpu_s for r in bare) - 1
    thread_overhead = sum(r.thread_cpu_s for r in governed) / sum(r.thread_cpu_s for r in bare) - 1
    gov_wall = sum(r.wall_s for r in governed)
    parts = {
        k: sum(r.parts.get(k, 0.0) for r in governed) / gov_wall for k in sorted({k for r in governed for k in r.parts})
    }
    bare_saves = sum(r.parts.get("checkpoint (torch.save)", 0.0) for r in bare) / sum(r.wall_s for r in bare)
    loss_diff = max(abs(a - b) for r in governed for a, b in zip(bare[0].losses, r.losses, strict=True))
    emissions = governed[-1].emissions or {}
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": args.threads,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "model": {"params": params, **model_config(args, args.vocab).as_json()},
        "train": {"steps": args.steps, "batch": args.batch, "checkpoint_every": args.checkpoint_every},
        "one_time_s": {"torch_first_step": torch_warm_s, "codecarbon_probe": codecarbon_probe_s},
        "runs": [
            {
                "kind": r.kind,
                "wall_s": r.wall_s,
                "setup_s": r.setup_s,
                "tokens": r.tokens,
                "tokens_per_s": r.tokens_per_s,
                "cpu_s": r.cpu_s,
                "thread_cpu_s": r.thread_cpu_s,
                "parts_s": r.parts,
                "checkpoints": r.checkpoints,
                "ledger_entries": r.ledger_entries,
            }
            for r in runs
        ],
        "bare_tokens_per_s": bare_tps,
        "governed_tokens_per_s": gov_tps,
        "overhead": overhead,
        "pair_overheads": pairs,
        "pair_overhead_median": statistics.median(pairs),
        "cpu_time_overhead": cpu_overhead,
        "training_thread_cpu_overhead": thread_overhead,
        "governed_training_thread_share": parts,
        "bare_checkpoint_share": bare_saves,
        "max_abs_loss_difference": loss_diff,
        "checkpoint": checkpoint,
        "checkpoint_interval_s": [
            min((r.wall_s - r.setup_s) / args.steps * args.checkpoint_every for r in runs),
            max((r.wall_s - r.setup_s) / args.steps * args.checkpoint_every for r in runs),
        ],
        "duration_s": time.perf_counter() - script_started,
        "governed_run_emissions": emissions,
        "target": "overhead <= 3%",
        "met": overhead <= 0.03,
    }
    write_json(args.out, report)

    print(
        f"\nTraining throughput, {params / 1e6:.1f}M-parameter GPT, block {args.block}, batch {args.batch}, "
        f"{args.steps} steps, checkpoint every {args.checkpoint_every}, {args.threads} threads "
        f"(load average {load_before} -> {report['machine']['load_average_after']})"
    )
    print(f"  {'loop':<10} {'tokens/s':>10}   runs (tokens/s)")
    print(f"  {'bare':<10} {bare_tps:>10.1f}   " + ", ".join(f"{r.tokens_per_s:.1f}" for r in bare))
    print(f"  {'governed':<10} {gov_tps:>10.1f}   " + ", ".join(f"{r.tokens_per_s:.1f}" for r in governed))
    print(
        f"  governance overhead: {overhead:+.2%} (target <= 3%: {'met' if overhead <= 0.03 else 'NOT met'}); "
        f"per ABBA pair: {', '.join(f'{p:+.2%}' for p in pairs)} (median {statistics.median(pairs):+.2%})"
    )
    print(
        f"  CPU time for the same tokens, governed vs bare: training thread {thread_overhead:+.2%}, "
        f"all threads {cpu_overhead:+.2%} (less sensitive to other jobs than wall time)"
    )
    print("  governed runs, share of wall time on the training thread:")
    for part, share in parts.items():
        print(f"    {part:<40} {share:7.2%}")
    print(f"    {'total':<40} {sum(parts.values()):7.2%}   (bare: torch.save {bare_saves:.2%})")
    print(
        f"  one governed checkpoint: {checkpoint['bytes'] / 1e6:.0f} MB, "
        f"SHA-256 {checkpoint['sha256_cpu_s']:.3f} CPU-s, write {checkpoint['write_s']:.3f} s, "
        f"fsync {checkpoint['fsync_s']:.3f} s"
    )
    print(f"  loss curves: max |bare - governed| = {loss_diff:.3g} (same maths, same bits)")
    print(f"  one-time per process (paid before timing): CodeCarbon hardware probe {codecarbon_probe_s:.2f} s")
    if emissions:
        print(
            f"  last governed run: {emissions['energy_kwh'] * 1000:.3f} Wh, "
            f"{emissions['emissions_kg_co2e'] * 1000:.3f} g CO2e, {emissions['water_l'] * 1000:.2f} mL water "
            f"({emissions['cpu_model']}, {emissions['tracking_mode']} mode, {emissions['country_iso_code']})"
        )
    print(f"  raw figures: {args.out}")
    return 0 if loss_diff == 0.0 else 1


if __name__ == "__main__":
    sys.exit(main())
