"""The training loop, after karpathy/nanoGPT's train.py, with the hooks a governed run needs.

Next-token training with AdamW (fused on CUDA), linear warmup then cosine decay, gradient
clipping, bf16 autocast on a GPU, optional torch.compile, periodic evaluation on the held-out
split, and checkpoints named by their digest. `Hooks` are how the caller records the run (ledger
entries for start, evaluations, checkpoints); they run on rank 0 only.

Determinism. Everything random is a function of the seed and the step: the batch rows
(TokenData.batch), and dropout, for which the global generator is reseeded from
(seed, rank, step) before every step. So a run is reproducible for a seed, and a resumed run needs
only the step, the weights and the optimizer state to reproduce the uninterrupted loss curve
exactly (on the same hardware and thread count; floating-point reductions differ across machines).
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from custody.train.carbon import CarbonConfig, Emissions, EmissionsMeter
from custody.train.checkpoint import CheckpointError, CheckpointWriter, SavedCheckpoint, load_checkpoint
from custody.train.data import TokenData, derive_seed
from custody.train.distributed import Distributed, setup_distributed
from custody.train.model import GPT

# Dense bf16 peak FLOP/s by device name, for MFU on a GPU (vendor data sheets, SXM parts).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


@dataclass
class TrainConfig:
    seed: int = 1337
    steps: int = 1000  # optimizer steps in the whole run (the cosine schedule ends here)
    batch_size: int = 16  # sequences per step, over all data-parallel ranks
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables
    eval_interval: int = 250  # 0: evaluate only at the end
    eval_steps: int = 20  # held-out batches per evaluation (the same batches every time)
    checkpoint_interval: int = 0  # 0: checkpoint only at the end
    log_interval: int = 10
    compile: bool = False
    device: str = "auto"  # auto: cuda:LOCAL_RANK when there is a GPU, else cpu
    deterministic: bool = True
    peak_flops: float | None = None  # for MFU; looked up for known GPUs when None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_steps", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"training setting {name} must be at least 1")
        for name in ("warmup", "eval_interval", "checkpoint_interval", "grad_clip", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"training setting {name} must not be negative")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must be between 0 and lr ({self.lr})")

    def as_json(self) -> dict:
        return asdict(self)


class Hooks:
    """Override what you need. Called on rank 0 only, from inside the loop: keep them quick."""

    def on_start(self, info: dict) -> None:
        """Before the first step: model size, configs, data and origin, device, resume point."""

    def on_step(self, step: int, metrics: dict) -> None:
        """Every log_interval steps: loss, lr, grad_norm, tokens_per_s, mfu."""

    def on_eval(self, step: int, metrics: dict) -> None:
        """After each evaluation: val_loss, val_perplexity."""

    def on_checkpoint(self, checkpoint: SavedCheckpoint) -> None:
        """Once a checkpoint is durable under its final name, with its digest. Checkpoints are
        written in the background, so this can come a few steps after `checkpoint.step`; the
        last one comes before train() returns."""


@dataclass
class TrainResult:
    steps: int  # the step the run ended at
    losses: list[float]  # training loss of every step since the run began (resumed runs included)
    evals: list[dict]
    checkpoints: list[SavedCheckpoint]  # written in this session; the last is the final one
    emissions: Emissions | None  # cumulative over the run's sessions, summed over ranks
    tokens: int  # tokens trained on in this session
    wall_s: float
    info: dict = field(default_factory=dict)

    @property
    def final(self) -> SavedCheckpoint:
        return self.checkpoints[-1]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s else 0.0


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of the optimizer step with 0-based index `step`: linear warmup, then cosine to min_lr."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if step >= config.steps:
        return config.min_lr
    ratio = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (config.lr - config.min_lr)


def resolve_device(name: str, dist: Distributed) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{dist.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


def make_optimizer(model: GPT, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over trainable parameters only; weight decay on matrices, not on norms, biases or 1-D tensors."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), **fast)


def _autocast(device: torch.device):
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()  # fp32 on the CPU: bf16 there is slow and changes the numbers


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, data: TokenData, config: TrainConfig, dist: Distributed, device: torch.device
) -> dict:
    """Mean held-out loss over the same eval_steps batches every time, and its perplexity."""
    model.eval()
    total = torch.zeros((), device=device)
    for i in range(config.eval_steps):
        x, y = data.batch("val", i, config.batch_size, config.seed, dist.rank, dist.world_size)
        with _autocast(device):
            _, loss = model(x.to(device), y.to(device))
        total += loss.float()
    model.train()
    val_loss = dist.mean(total / config.eval_steps).item()
    return {"val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 80.0))}


def _reduce_emissions(emissions: Emissions, dist: Distributed, device: torch.device) -> Emissions:
    """Energy, CO2e and water summed over ranks (each measured its own process); wall time is the longest."""
    if dist.world_size == 1:
        return emissions
    sums = torch.tensor(
        [
            emissions.energy_kwh,
            emissions.cpu_energy_kwh,
            emissions.gpu_energy_kwh,
            emissions.ram_energy_kwh,
            emissions.emissions_kg_co2e,
            emissions.water_l,
        ],
        dtype=torch.float64,
        device=device,
    )
    duration = torch.tensor([emissions.duration_s], dtype=torch.float64, device=device)
    e, cpu, gpu, ram, co2, water = dist.sum(sums).tolist()
    return Emissions(
        **{
            **emissions.as_json(),
            "duration_s": dist.max(duration).item(),
            "energy_kwh": e,
            "cpu_energy_kwh": cpu,
            "gpu_energy_kwh": gpu,
            "ram_energy_kwh": ram,
            "emissions_kg_co2e": co2,
            "water_l": water,
            "processes": dist.world_size,
        }
    )


class _Determinism:
    """torch.use_deterministic_algorithms for the loop's duration, restored afterwards."""

    def __init__(self, on: bool, device: torch.device) -> None:
        self.on, self.device = on, device

    def __enter__(self) -> None:
        self.before = torch.are_deterministic_algorithms_enabled()
        self.warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        self.fill = torch.utils.deterministic.fill_uninitialized_memory
        if self.on:
            if self.device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
            # warn_only: a kernel without a deterministic version warns instead of stopping the run.
            torch.use_deterministic_algorithms(True, warn_only=True)
            # NaN-filling every torch.empty catches bugs, it does not make results more deterministic.
            torch.utils.deterministic.fill_uninitialized_memory = False

    def __exit__(self, *exc: object) -> None:
        torch.use_deterministic_algorithms(self.before, warn_only=self.warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = self.fill


def train(
    model: GPT,
    data: TokenData,
    config: TrainConfig,
    out_dir: Path,
    *,
    hooks: Hooks | None = None,
    resume_from: Path | None = None,
    resume_digest: str | None = None,
    carbon: CarbonConfig | None = None,
    meta: dict | None = None,
) -> TrainResult:
    """Train `model` on `data`, writing checkpoints to `out_dir`; see the module docstring.

    resume_from: continue a run from one of its checkpoints (verified against resume_digest when
    given): same model, data and training config; the loss curve continues exactly.
    carbon: measure energy, CO2e and water with CodeCarbon (cumulative over resumed sessions).
    meta: plain values stored in every checkpoint (e.g. the run's id and spec digest).
    """
    hooks = hooks or Hooks()
    dist = setup_distributed()
    device = resolve_device(config.device, dist)
    if data.block_size != model.config.block_size:
        raise ValueError(f"data block_size {data.block_size} differs from the model's {model.config.block_size}")
    if config.batch_size % dist.world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {dist.world_size} ranks")

    start_step, losses, evals, prior_emissions, resumed = 0, [], [], None, None
    state = None
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from, resume_digest)
        state = ckpt.state
        _check_resumable(state, model, data, config)
        model.load_state_dict(state["model"])
        frozen = set(state["frozen"])
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)
        model.origin = state["origin"]
        start_step, losses, evals = ckpt.step, list(state["losses"]), list(state["evals"])
        prior_emissions = Emissions.from_json(state["emissions"]) if state.get("emissions") else None
        resumed = {"checkpoint_digest": ckpt.digest, "step": ckpt.step}

    raw = model.to(device)
    optimizer = make_optimizer(raw, config, device)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        del state
    net: torch.nn.Module = torch.compile(raw) if config.compile else raw
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(net, device_ids=[dist.local_rank] if device.type == "cuda" else None)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # only fp32 leftovers outside autocast
        torch.backends.cudnn.allow_tf32 = True

    tokens_per_step = config.batch_size * data.block_size
    peak = config.peak_flops or _peak_flops(device)
    info = {
        "params": raw.num_params(),
        "trainable_params": sum(p.numel() for p in raw.parameters() if p.requires_grad),
        "flops_per_token": raw.flops_per_token(),
        "model_config": raw.config.as_json(),
        "train_config": config.as_json(),
        "data": data.describe(),
        "origin": raw.origin,
        "frozen": raw.frozen_parameter_names(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "world_size": dist.world_size,
        "torch_version": str(torch.__version__),
        "resumed_from": resumed,
        "meta": meta or {},
    }
    meter = EmissionsMeter(carbon, label="custody-train").start() if carbon is not None else None
    saved: list[SavedCheckpoint] = []
    writer = CheckpointWriter() if dist.is_main else None

    def report(finished: list[SavedCheckpoint]) -> None:
        for record in finished:
            saved.append(record)
            hooks.on_checkpoint(record)

    pending: list[torch.Tensor] = []  # step losses still on the device: read them at log time, not every step
    grad_norm = torch.zeros(())
    started = window_start = time.perf_counter()
    window_steps = 0
    last = start_step
    try:
        if dist.is_main:
            hooks.on_start(info)
        with _Determinism(config.deterministic, device):
            for step in range(start_step, config.steps):
                torch.manual_seed(derive_seed(config.seed, "dropout", dist.rank, step))
                lr = lr_at(step, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x, y = data.batch("train", step, config.batch_size, config.seed, dist.rank, dist.world_size)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with _autocast(device):
                    _, loss = net(x, y)
                loss.backward()
                if config.grad_clip > 0:
                    grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), config.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                pending.append(dist.mean(loss.detach().float().clone()))
                window_steps += 1
                last = done = step + 1

                is_eval = done == config.steps or (config.eval_interval and done % config.eval_interval == 0)
                is_ckpt = done == config.steps or (
                    config.checkpoint_interval and done % config.checkpoint_interval == 0
                )
                if done % config.log_interval == 0 or is_eval or is_ckpt:
                    losses.extend(torch.stack(pending).tolist())  # one device sync per log line
                    pending.clear()
                    elapsed = time.perf_counter() - window_start
                    tps = window_steps * tokens_per_step / elapsed if elapsed else 0.0
                    metrics = {"loss": losses[-1], "lr": lr, "grad_norm": float(grad_norm), "tokens_per_s": tps}
                    if peak:
                        metrics["mfu"] = raw.mfu(tps, peak)
                    if dist.is_main:
                        hooks.on_step(done, metrics)
                    window_start, window_steps = time.perf_counter(), 0
                ev = None
                if is_eval:
                    ev = {"step": done, **evaluate(net, data, config, dist, device)}
                    evals.append(ev)
                    if dist.is_main:
                        hooks.on_eval(done, ev)
                if is_ckpt:
                    emissions = None
                    if meter is not None:
                        emissions = _reduce_emissions(meter.snapshot(), dist, device)
                        emissions = prior_emissions + emissions if prior_emissions else emissions
                    if writer is not None:
                        state = _checkpoint_state(
                            raw, optimizer, config, data, done, losses, evals, emissions, meta, dist
                        )
                        step_metrics = {"loss": losses[-1], **{k: v for k, v in (ev or {}).items() if k != "step"}}
                        path = Path(out_dir) / f"step-{done:07d}.pt"
                        report(writer.submit(state, path, done, step_metrics, emissions and emissions.as_json()))
                    window_start = time.perf_counter()  # snapshotting is not training throughput
                if writer is not None:
                    report(writer.poll())
        if writer is not None:
            report(writer.drain())  # the final checkpoint is durable before train() returns
    except BaseException:
        if meter is not None:
            meter.stop()  # no collective here: another rank may be the one that failed
        if writer is not None:
            with suppress(Exception):  # a checkpoint already being written is still a good one
                report(writer.drain())
        raise
    finally:
        if writer is not None:
            writer.close()
    final_emissions = None
    if meter is not None:
        final_emissions = _reduce_emissions(meter.stop(), dist, device)
        final_emissions = prior_emissions + final_emissions if prior_emissions else final_emissions
    saved = dist.broadcast(saved)  # every rank learns what rank 0 wrote
    wall = time.perf_counter() - started
    return TrainResult(last, losses, evals, saved, final_emissions, (last - start_step) * tokens_per_step, wall, info)


def _checkpoint_state(
    model: GPT,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    data: TokenData,
    step: int,
    losses: list[float],
    evals: list[dict],
    emissions: Emissions | None,
    meta: dict | None,
    dist: Distributed,
) -> dict:
    # Plain values go through JSON so their pickled bytes do not depend on object identity
    # (pickle memoizes shared objects): a resumed run then writes byte-identical checkpoints.
    plain = json.loads(
        json.dumps(
            {
                "step": step,
                "model_config": model.config.as_json(),
                "train_config": config.as_json(),
                "frozen": model.frozen_parameter_names(),
                "origin": model.origin,
                "data": data.describe(),
                "losses": losses,
                "evals": evals,
                "emissions": emissions.as_json() if emissions else None,
                "meta": meta or {},
                "world_size": dist.world_size,
                "torch_version": str(torch.__version__),
            }
        )
    )
    return {**plain, "model": model.state_dict(), "optimizer": optimizer.state_dict()}


def _check_resumable(state: dict, model: GPT, data: TokenData, config: TrainConfig) -> None:
    """A resume continues the same run: same architecture, same tokens, same schedule."""
    if state["model_config"] != model.config.as_json():
        raise CheckpointError("cannot resume: the checkpoint's model config differs from the model given")
    if state["data"]["tokens_digest"] != data.digest:
        raise CheckpointError(
            f"cannot resume: the checkpoint was trained on tokens {state['data']['tokens_digest']}, "
            f"the data given is {data.digest} (a different dataset, tokenizer or split)"
        )
    saved = dict(state["train_config"])
    ignore = {"device", "compile", "log_interval", "checkpoint_interval", "eval_interval", "peak_flops"}
    changed = sorted(k for k in saved if k not in ignore and saved[k] != config.as_json().get(k))
    if changed:
        raise CheckpointError(f"cannot resume: training settings changed since the checkpoint: {', '.join(changed)}")
    if state["step"] >= config.steps:
        raise CheckpointError(
            f"cannot resume: the checkpoint is at step {state['step']}, the run ends at {config.steps}"
        )


def _peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)
