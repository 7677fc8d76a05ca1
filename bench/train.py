"""Training benchmark: tokens/s of the fully governed loop next to the same model in a bare loop, interleaved.

    python bench/train.py [--rounds 3] [--steps 20] [--checkpoint-every 10] [--threads 1] [--out FILE]
    python bench/train.py --device cuda --preset gpt2-124m --compile [--batch 32] [--steps 200]

Both sides train the same GPT on Tiny Shakespeare from the same registered dataset, with the same
seed, batches, optimizer, schedule, clipping, precision, compilation, final evaluation and
checkpoint steps. Presets (each setting can still be overridden by its own flag):

  small      4 layers, 384 wide, 6 heads, block 256, BPE vocabulary 4096: 8.7M parameters (default)
  gpt2-124m  GPT-2 small's shape: 12 layers, 768 wide, 12 heads, block 1024, vocabulary 50304.
             custody's BPE trained on Tiny Shakespeare stops at about 12.7k tokens (it runs out of
             pairs seen twice), so the model's vocabulary is padded to 50304 (rows no token uses,
             as nanoGPT pads GPT-2's 50257): 124M parameters, the compute of GPT-2 small.

On the CPU the loss curves must be bit-identical (the script checks). On a GPU both sides use the
loop's settings: bf16 autocast, fused AdamW, TF32 for fp32 leftovers, the same
torch.use_deterministic_algorithms setting, and torch.compile when --compile is given; flash
attention's backward adds with atomics, so the curves agree only to a tolerance there. What
differs is governance alone:

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
wall seconds. The training phase is timed too, from the first log line to the last (the device
synchronised at each, compilation and the first steps before it, the final evaluation and
checkpoint after it; the checkpoints in between inside it), and MFU is computed from it:
model.flops_per_token() x tokens/s / peak bf16 FLOP/s (custody.train.loop.PEAK_BF16_FLOPS by the
GPU's name, or --peak-flops; on the CPU only with --peak-flops).

Runs alternate in ABBA order (bare, governed, governed, bare, ...) so drift in the machine's load
falls on both sides, after one short untimed run of each. The overhead is
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
from custody.train.loop import PEAK_BF16_FLOPS, Hooks, TrainConfig, evaluate, lr_at, make_optimizer, train
from custody.train.model import GPT, GPTConfig
from custody.train.tokenizer import BPETokenizer, load_tokenizer, train_tokenizer

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "corpus_tinyshakespeare" / "input.txt"
REF = "shakespeare@1"
VAL_FRACTION = 0.1

# Model shapes (and a batch that suits each); explicit flags override them.
PRESETS = {
    "small": {"layers": 4, "heads": 6, "width": 384, "block": 256, "vocab": 4096, "batch": 4},
    "gpt2-124m": {"layers": 12, "heads": 12, "width": 768, "block": 1024, "vocab": 50304, "batch": 32},
}
# The loss curves on a GPU agree to this relative tolerance, step by step: bf16 autocast is the
# same on both sides, but flash attention's backward (and some other CUDA kernels) add with
# atomics, in whatever order the threads finish, so the last bits of the gradients differ from run
# to run even under torch.use_deterministic_algorithms(warn_only=True), and the curves drift apart
# slowly. On the CPU every kernel is deterministic at one thread: the check is exact there.
CUDA_LOSS_RTOL = 0.02


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
    marks: list[tuple[int, float]] = field(default_factory=list)  # (step, clock) at each log line, device synced
    loop_mfu: list[float] = field(default_factory=list)  # the governed loop's own on_step MFU, per log line

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s

    def training_phase(self, tokens_per_step: int) -> tuple[int, float] | None:
        """Tokens and seconds from the first log line to the last: compilation, setup, the final evaluation
        and checkpoint fall outside; None with fewer than two log lines."""
        if len(self.marks) < 2:
            return None
        (first, t0), (last, t1) = self.marks[0], self.marks[-1]
        return (last - first) * tokens_per_step, t1 - t0


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


def model_config(args: argparse.Namespace) -> GPTConfig:
    """The model both sides train: the tokenizer's vocabulary, padded to --vocab where the BPE stopped short."""
    vocab = max(args.vocab, args.tokenizer_vocab)
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
        log_interval=args.log_every or args.checkpoint_every,
        compile=args.compile,
        device=args.device,
        deterministic=not args.nondeterministic,
        peak_flops=args.peak_flops,
    )


def resolve_device(name: str) -> torch.device:
    """--device: auto is the GPU when torch sees one, else the CPU; cuda without one is an error that says why."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        build = torch.version.cuda or "none: a CPU-only build"
        raise SystemExit(
            f"--device cuda: torch {torch.__version__} sees no GPU (its CUDA: {build}). Run it with a CUDA build "
            "of torch on a machine with a GPU (bench/gpu/README.md), or pass --device cpu."
        )
    return torch.device(name)


def peak_flops(args: argparse.Namespace, device: torch.device) -> float | None:
    """Dense bf16 peak for MFU: --peak-flops, else the loop's table by the GPU's name; none on the CPU."""
    if args.peak_flops:
        return args.peak_flops
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a clock read after it covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- setup (untimed): a home with Tiny Shakespeare registered, and a tokenizer file ---------------
def prepare(workdir: Path, vocab: int) -> tuple[Path, Path, str, int]:
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
    return workdir / "home", tok_path, tokenizer.digest, tokenizer.vocab_size


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
    device = torch.device(config.device)
    GOVERNANCE.clear()
    started = time.perf_counter()
    data = bare_data(home_path, tok_path, args.block)
    torch.manual_seed(config.seed)
    model = GPT(model_config(args)).to(device)
    # The loop's own settings, so that only governance differs: AdamW fused on CUDA (foreach on the CPU),
    # the same compilation, TF32 for fp32 leftovers, bf16 autocast and determinism setting.
    optimizer = make_optimizer(model, config, device)
    net = torch.compile(model) if config.compile else model
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    setup_s = time.perf_counter() - started
    losses: list[float] = []
    pending: list[torch.Tensor] = []
    marks: list[tuple[int, float]] = []
    checkpoints = 0
    with loop_module._Determinism(config.deterministic, device):
        for step in range(config.steps):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, config)
            x, y = data.batch("train", step, config.batch_size, config.seed)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with loop_module._autocast(device):
                _, loss = net(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            pending.append(loss.detach().float())
            done = step + 1
            is_ckpt = done % config.checkpoint_interval == 0 or done == config.steps
            if done % config.log_interval == 0 or is_ckpt:
                losses.extend(torch.stack(pending).tolist())  # as nanoGPT: the device is read once per log line
                pending.clear()
                marks.append((done, time.perf_counter()))
            if is_ckpt:
                with clock("checkpoint (torch.save)"):
                    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": done}
                    torch.save(state, out / f"step-{done:07d}.pt")
                checkpoints += 1
    evaluate(net, data, config, Distributed(), device)
    sync(device)
    wall = time.perf_counter() - started
    tokens = config.steps * config.batch_size * args.block
    return Run("bare", wall, tokens, setup_s, losses, checkpoints, parts=dict(GOVERNANCE), marks=marks)


# -- the governed loop: verified data, CodeCarbon, digests, ledger ---------------------------------
class LedgerHooks(Hooks):
    def __init__(self, home: Home, run_id: str) -> None:
        self.home, self.run_id, self.entries = home, run_id, 0
        self.marks: list[tuple[int, float]] = []
        self.mfu: list[float] = []

    def on_step(self, step: int, metrics: dict) -> None:
        # Called once the loop has read the step's losses from the device (a sync), like the bare loop's mark.
        self.marks.append((step, time.perf_counter()))
        if "mfu" in metrics:
            self.mfu.append(metrics["mfu"])

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
        model = GPT(model_config(args))
        setup_s = time.perf_counter() - started
        hooks = LedgerHooks(home, f"run:bench-{time.time_ns()}")
        result = train(model, data, config, out, hooks=hooks, carbon=CarbonConfig())
        body = {"steps": result.steps, "final_digest": result.final.digest, "emissions": result.emissions.as_json()}
        with clock("ledger"):
            home.record("bench.train_finished/v1", hooks.run_id, body, refs=[f"sha256:{result.final.digest}"])
            home.checkpoint()  # sign the ledger head, as `custody run` does when it ends
    finally:
        home.close()
    sync(torch.device(config.device))
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
        marks=hooks.marks,
        loop_mfu=hooks.mfu,
    )


def warm_up(args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    """First-use costs both sides would pay once per process: torch kernels (on a GPU the CUDA context and
    cuBLAS too), and CodeCarbon's probe."""
    torch.manual_seed(0)
    config = model_config(args)
    model = GPT(config).to(device)
    x = torch.randint(0, args.tokenizer_vocab, (args.batch, args.block), device=device)
    started = time.perf_counter()
    with loop_module._autocast(device):
        _, loss = model(x, x)
    loss.backward()
    sync(device)
    torch_s = time.perf_counter() - started
    del model, loss
    started = time.perf_counter()
    EmissionsMeter(CarbonConfig()).start().stop()
    return torch_s, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs, in ABBA order")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--log-every", type=int, default=None, help="steps per log line [default: --checkpoint-every]")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="model shape and batch (above)")
    parser.add_argument("--batch", type=int, default=None, help="sequences per step [default: the preset's]")
    parser.add_argument("--block", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--vocab", type=int, default=None, help="BPE vocabulary asked for; the model's is padded to it")
    parser.add_argument(
        "--device", choices=("cpu", "cuda", "auto"), default="cpu", help="auto: cuda when torch sees a GPU"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model, on both sides")
    parser.add_argument(
        "--nondeterministic", action="store_true", help="leave torch.use_deterministic_algorithms off, on both sides"
    )
    parser.add_argument("--peak-flops", type=float, default=None, help="peak FLOP/s for MFU [default: by GPU name]")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see above)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "train.json")
    parser.add_argument("--dir", type=Path, default=None, help="work directory [default: a new temp dir]")
    args = parser.parse_args()
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    device = resolve_device(args.device)
    args.device = device.type
    if device.type == "cuda" and not args.nondeterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # as the loop sets it, before cuBLAS starts
    if args.compile:
        # Each run compiles a new model object (train and eval graphs); past Dynamo's default limit of 8
        # graphs per function, later runs would quietly run eager.
        dynamo = torch._dynamo.config
        limit = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"
        setattr(dynamo, limit, max(getattr(dynamo, limit), 64))
    peak = peak_flops(args, device)
    args.peak_flops = peak  # the governed loop's own on_step MFU uses the same peak
    torch.set_num_threads(args.threads)
    instrument()
    workdir = Path(tempfile.mkdtemp(prefix="custody-bench-train-", dir=args.dir))
    load_before = load_average()
    script_started = time.perf_counter()
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    checkpoint: dict = {}
    try:
        log(f"setup on {device_name}: registering Tiny Shakespeare, training the tokenizer (vocabulary {args.vocab})")
        home_path, tok_path, tok_digest, args.tokenizer_vocab = prepare(workdir, args.vocab)
        config = model_config(args)
        if config.vocab_size != args.tokenizer_vocab:
            log(
                f"the BPE stopped at {args.tokenizer_vocab} tokens (no pair left that occurs twice): "
                f"the model's vocabulary is padded to {config.vocab_size}"
            )
        torch_warm_s, codecarbon_probe_s = warm_up(args, device)
        model = GPT(config)
        params, flops_per_token = model.num_params(), model.flops_per_token()
        del model
        log(
            f"model: {params / 1e6:.2f}M parameters, {flops_per_token / 1e9:.3f} GFLOP per token; "
            f"CodeCarbon probe {codecarbon_probe_s:.2f} s (once per process)"
        )
        # One short untimed run of each: first-use costs (page cache, allocator, lazy imports, and with
        # --compile the first compilation) fall on neither side.
        short = argparse.Namespace(**{**vars(args), "steps": 2, "checkpoint_every": 1, "log_every": None})
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
                phase = run.training_phase(args.batch * args.block)
                in_phase = f", training phase {phase[0] / phase[1]:.1f} tokens/s" if phase else ""
                log(f"round {i + 1} {kind:9s} {run.tokens_per_s:8.1f} tokens/s ({run.wall_s:.1f} s{in_phase})")
                if kind == "governed" and i == args.rounds - 1:
                    checkpoint = checkpoint_costs(out)
                shutil.rmtree(out)  # a GPT-2-sized run writes gigabytes of checkpoints
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
    loss_rel = max(abs(a - b) / abs(a) for r in governed for a, b in zip(bare[0].losses, r.losses, strict=True))
    losses_agree = loss_diff == 0.0 if device.type == "cpu" else loss_rel <= CUDA_LOSS_RTOL
    emissions = governed[-1].emissions or {}
    phase = training_phase(bare, governed, args.batch * args.block, flops_per_token, peak)
    targets = {"overhead <= 3%": overhead <= 0.03, "governed >= 0.99x bare tokens/s": gov_tps >= 0.99 * bare_tps}
    if phase:
        targets["governed >= 0.99x bare tokens/s, training phase"] = phase["ratio"] >= 0.99
        if device.type == "cuda" and args.preset == "gpt2-124m" and "governed_mfu" in phase:
            targets["GPT-2 124M at >= 45% MFU (governed, training phase)"] = phase["governed_mfu"] >= 0.45
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
            "device": device.type,
            "device_name": device_name,
            "cuda": torch.version.cuda,
        },
        "model": {
            "preset": args.preset,
            "params": params,
            "flops_per_token": flops_per_token,
            "tokenizer_vocab": args.tokenizer_vocab,
            **config.as_json(),
        },
        "train": {
            "steps": args.steps,
            "batch": args.batch,
            "tokens_per_step": args.batch * args.block,
            "checkpoint_every": args.checkpoint_every,
            "log_every": args.log_every or args.checkpoint_every,
            "precision": "bf16 autocast" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32",
            "optimizer": "AdamW, fused" if device.type == "cuda" else "AdamW, foreach",
            "compile": args.compile,
            "deterministic": not args.nondeterministic,
        },
        "peak_flops": peak,
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
        "ratio": gov_tps / bare_tps,
        "overhead": overhead,
        "mfu": {"bare": mfu(bare_tps, flops_per_token, peak), "governed": mfu(gov_tps, flops_per_token, peak)},
        "training_phase": phase,
        "pair_overheads": pairs,
        "pair_overhead_median": statistics.median(pairs),
        "cpu_time_overhead": cpu_overhead,
        "training_thread_cpu_overhead": thread_overhead,
        "governed_training_thread_share": parts,
        "bare_checkpoint_share": bare_saves,
        "max_abs_loss_difference": loss_diff,
        "max_rel_loss_difference": loss_rel,
        "loss_check": "bit-identical" if device.type == "cpu" else f"relative difference <= {CUDA_LOSS_RTOL}",
        "losses_agree": losses_agree,
        "checkpoint": checkpoint,
        "checkpoint_interval_s": [
            min((r.wall_s - r.setup_s) / args.steps * args.checkpoint_every for r in runs),
            max((r.wall_s - r.setup_s) / args.steps * args.checkpoint_every for r in runs),
        ],
        "duration_s": time.perf_counter() - script_started,
        "governed_run_emissions": emissions,
        "target": "overhead <= 3%",
        "met": overhead <= 0.03,
        "targets": targets,
    }
    write_json(args.out, report)

    train_settings = report["train"]
    print(
        f"\nTraining throughput, {params / 1e6:.1f}M-parameter GPT ({args.preset}), block {args.block}, "
        f"batch {args.batch}, {args.steps} steps, checkpoint every {args.checkpoint_every}, on {device_name} "
        f"({train_settings['precision']}, {train_settings['optimizer']}, compile {'on' if args.compile else 'off'}, "
        f"deterministic {'on' if not args.nondeterministic else 'off'}), {args.threads} threads "
        f"(load average {load_before} -> {report['machine']['load_average_after']})"
    )
    print(f"  {'loop':<10} {'tokens/s':>10} {'MFU':>7}   runs (tokens/s, end to end)")
    for name, tps, side in (("bare", bare_tps, bare), ("governed", gov_tps, governed)):
        print(
            f"  {name:<10} {tps:>10.1f} {percent(mfu(tps, flops_per_token, peak)):>7}   "
            + ", ".join(f"{r.tokens_per_s:.1f}" for r in side)
        )
    print(
        f"  governed / bare: {gov_tps / bare_tps:.4f}x; governance overhead: {overhead:+.2%} "
        f"(target <= 3%: {'met' if overhead <= 0.03 else 'NOT met'}); "
        f"per ABBA pair: {', '.join(f'{p:+.2%}' for p in pairs)} (median {statistics.median(pairs):+.2%})"
    )
    if phase:
        print(
            f"  training phase (log line {phase['from_step']} to {phase['to_step']}, checkpoints inside): "
            f"bare {phase['bare_tokens_per_s']:.1f} tokens/s (MFU {percent(phase.get('bare_mfu'))}), "
            f"governed {phase['governed_tokens_per_s']:.1f} tokens/s (MFU {percent(phase.get('governed_mfu'))}), "
            f"governed / bare {phase['ratio']:.4f}x"
        )
        if phase.get("loop_reported_mfu_median") is not None:
            print(
                f"  the governed loop's own on_step MFU, median over log lines: {phase['loop_reported_mfu_median']:.1%}"
            )
    if peak is None:
        print("  MFU: left out (no peak FLOP/s for this device; give --peak-flops)")
    for target, met in targets.items():
        print(f"  target {target}: {'met' if met else 'NOT met'}")
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
    if device.type == "cpu":
        print(f"  loss curves: max |bare - governed| = {loss_diff:.3g} (same maths, same bits)")
    else:
        print(
            f"  loss curves: max |bare - governed| = {loss_diff:.3g}, relative {loss_rel:.3g} "
            f"(tolerance {CUDA_LOSS_RTOL}: atomics in CUDA kernels; {'within' if losses_agree else 'OUTSIDE'})"
        )
    print(f"  one-time per process (paid before timing): CodeCarbon hardware probe {codecarbon_probe_s:.2f} s")
    if emissions:
        print(
            f"  last governed run: {emissions['energy_kwh'] * 1000:.3f} Wh, "
            f"{emissions['emissions_kg_co2e'] * 1000:.3f} g CO2e, {emissions['water_l'] * 1000:.2f} mL water "
            f"({emissions['cpu_model']}, {emissions['tracking_mode']} mode, {emissions['country_iso_code']})"
        )
    print(f"  raw figures: {args.out}")
    return 0 if losses_agree else 1


def mfu(tokens_per_s: float, flops_per_token: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation (as GPT.mfu): achieved training FLOP/s over the peak; None without a peak."""
    return flops_per_token * tokens_per_s / peak if peak else None


def percent(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "-"


def training_phase(
    bare: list[Run], governed: list[Run], tokens_per_step: int, flops_per_token: float, peak: float | None
) -> dict | None:
    """Tokens/s from each run's first log line to its last, over all runs of a side: steady training, with
    the checkpoints in between but not setup, compilation, the final evaluation or the last checkpoint."""
    spans = {
        name: [r.training_phase(tokens_per_step) for r in runs]
        for name, runs in (("bare", bare), ("governed", governed))
    }
    if any(span is None for side in spans.values() for span in side):
        return None
    tps = {name: sum(t for t, _ in side) / sum(s for _, s in side) for name, side in spans.items()}
    loop_mfu = [m for r in governed for m in r.loop_mfu[1:]]  # the first window holds compilation and warm-up
    phase = {
        "from_step": governed[0].marks[0][0],
        "to_step": governed[0].marks[-1][0],
        "bare_tokens_per_s": tps["bare"],
        "governed_tokens_per_s": tps["governed"],
        "ratio": tps["governed"] / tps["bare"],
        "bare_runs_tokens_per_s": [t / s for t, s in spans["bare"]],
        "governed_runs_tokens_per_s": [t / s for t, s in spans["governed"]],
        "loop_reported_mfu_median": statistics.median(loop_mfu) if loop_mfu else None,
    }
    if peak:
        phase["bare_mfu"] = mfu(tps["bare"], flops_per_token, peak)
        phase["governed_mfu"] = mfu(tps["governed"], flops_per_token, peak)
    return phase


if __name__ == "__main__":
    sys.exit(main())
