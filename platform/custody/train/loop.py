"""The training loop, after karpathy/nanoGPT's train.py, with the hooks a governed run needs.

Next-token training with AdamW (fused on CUDA), linear warmup then cosine decay, gradient
clipping, bf16 autocast on a GPU, optional torch.compile, periodic evaluation on the held-out
split, and checkpoints named by their digest. `Hooks` are how the caller records the run (ledger
entries for start, evaluations, checkpoints); they run on rank 0 only. `train()` is the loop itself;
setup, the step's parts, evaluation, checkpoints and the hooks are small named pieces below it,
grouped by part.

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
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from custody.train.carbon import CarbonConfig, Emissions, EmissionsMeter, note_measured
from custody.train.checkpoint import CheckpointError, CheckpointWriter, SavedCheckpoint, load_checkpoint
from custody.train.data import TokenData, derive_seed
from custody.train.distributed import Distributed, setup_distributed
from custody.train.model import GPT

# Dense bf16 peak FLOP/s by device name, for MFU on a GPU (vendor data sheets; SXM unless named,
# and the more specific names first: the first key the device name contains wins).
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 125e12,
}


@dataclass
class TrainConfig:
    seed: int = 1337
    steps: int = 1000  # optimizer steps in the whole run (the cosine schedule ends here)
    batch_size: int = 16  # sequences per step, over all data-parallel ranks
    # Micro-batches per step on each rank: activations are held for batch_size / (ranks x
    # grad_accum) sequences at a time; the global batch, and so the loss curve, stay the same.
    grad_accum: int = 1
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
        for name in ("steps", "batch_size", "grad_accum", "eval_steps", "log_interval"):
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

    @property
    def mfu(self) -> float | None:
        """Model FLOPs utilization over the session (all ranks' tokens against all ranks' peak), when the
        device's peak is known (a listed GPU, or TrainConfig.peak_flops); None on the CPU."""
        peak, flops = self.info.get("peak_flops"), self.info.get("flops_per_token")
        if not peak or not flops or not self.wall_s:
            return None
        return flops * self.tokens_per_s / (peak * self.info.get("world_size", 1))


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of the optimizer step with 0-based index `step`: linear warmup, then cosine to min_lr."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if step >= config.steps:
        return config.min_lr
    ratio = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (config.lr - config.min_lr)


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
    dist = setup_distributed()
    device = resolve_device(config.device, dist)
    hooks = _RankZero(hooks or Hooks(), dist)
    _check_fits(model, data, config, dist)
    progress, optimizer_state = _resume(model, data, config, resume_from, resume_digest)
    raw, net, optimizer = _prepare(model, config, device, dist, optimizer_state)
    del optimizer_state  # the optimizer holds it now
    info = _run_info(raw, data, config, device, dist, progress.resumed_from, meta)
    info["peak_flops"] = config.peak_flops or _peak_flops(device)
    meter = _CarbonMeter(carbon, progress.emissions, dist, device)
    checkpoints = _Checkpoints(raw, optimizer, config, data, meta, dist, out_dir, hooks)

    tokens_per_step = config.batch_size * data.block_size
    grad_norm = torch.zeros(())  # logged as 0 when clipping is off
    started = time.perf_counter()
    log = _StepLog(raw, progress.losses, tokens_per_step, config.peak_flops or _peak_flops(device))
    last = progress.step
    try:
        hooks.on_start(info)
        with _Determinism(config.deterministic, device):
            for step in range(progress.step, config.steps):
                torch.manual_seed(derive_seed(config.seed, "dropout", dist.rank, step))
                lr = _set_lr(optimizer, step, config)
                x, y = data.batch("train", step, config.batch_size, config.seed, dist.rank, dist.world_size)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                loss = _forward_backward(net, x, y, config.grad_accum, device)
                if config.grad_clip > 0:
                    grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), config.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                log.add(dist.mean(loss.detach().float().clone()))
                last = done = step + 1

                is_eval = _due(done, config.eval_interval, config)
                is_ckpt = _due(done, config.checkpoint_interval, config)
                if done % config.log_interval == 0 or is_eval or is_ckpt:
                    hooks.on_step(done, log.read(lr, grad_norm))
                    log.restart()
                ev = None
                if is_eval:
                    ev = {"step": done, **evaluate(net, data, config, dist, device)}
                    progress.evals.append(ev)
                    hooks.on_eval(done, ev)
                if is_ckpt:
                    checkpoints.save(done, progress, ev, meter.snapshot())
                    log.skip()  # snapshotting is not training throughput
                checkpoints.poll()
        checkpoints.drain()  # the final checkpoint is durable before train() returns
    except BaseException as exc:
        # No collective here: another rank may be the one that failed. The exception carries what
        # this rank measured up to the failure (and the sessions before a resume), for the ledger.
        note_measured(exc, meter.abort())
        checkpoints.salvage()  # a checkpoint already being written is still a good one
        raise
    finally:
        checkpoints.close()
    emissions = meter.stop()
    saved = dist.broadcast(checkpoints.saved)  # every rank learns what rank 0 wrote
    wall = time.perf_counter() - started
    tokens = (last - progress.step) * tokens_per_step
    return TrainResult(last, progress.losses, progress.evals, saved, emissions, tokens, wall, info)


# -- setup: device, resume, model and optimizer, what on_start records ---------------------------------


def resolve_device(name: str, dist: Distributed) -> torch.device:
    """The device to train on: "auto" is this rank's own GPU (cuda:LOCAL_RANK) when there is one, else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{dist.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


def _check_fits(model: GPT, data: TokenData, config: TrainConfig, dist: Distributed) -> None:
    """Refuse, before anything is loaded, a run that cannot work: the data's sequences must be the model's
    length, and a batch must split evenly over the ranks and each rank's share into micro-batches."""
    if data.block_size != model.config.block_size:
        raise ValueError(f"data block_size {data.block_size} differs from the model's {model.config.block_size}")
    if config.batch_size % dist.world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {dist.world_size} ranks")
    if (config.batch_size // dist.world_size) % config.grad_accum:
        raise ValueError(
            f"each rank's {config.batch_size // dist.world_size} sequences must split evenly into "
            f"grad_accum {config.grad_accum} micro-batches"
        )


@dataclass
class _Progress:
    """The run's record so far: empty at step 0, or a checkpoint's when resuming. The loop extends it, so a
    resumed session reports (and checkpoints) the whole run's losses, evaluations and emissions."""

    step: int = 0  # the step this session starts at
    losses: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    emissions: Emissions | None = None  # of the sessions before this one, summed over their ranks
    resumed_from: dict | None = None  # the checkpoint's digest and step


def _resume(
    model: GPT, data: TokenData, config: TrainConfig, path: Path | None, digest: str | None
) -> tuple[_Progress, dict | None]:
    """Continue a run from one of its checkpoints: verify its bytes (against `digest` when given), check it is
    the same run, and load its weights, frozen set and origin into `model`. Returns the run's record and the
    optimizer state, which can only be loaded once the model is on its device. Without `path`: a fresh start."""
    if path is None:
        return _Progress(), None
    ckpt = load_checkpoint(path, digest)
    state = ckpt.state
    _check_resumable(state, model, data, config)
    model.load_state_dict(state["model"])
    frozen = set(state["frozen"])
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
    model.origin = state["origin"]
    losses, evals = list(state["losses"]), list(state["evals"])
    emissions = Emissions.from_json(state["emissions"]) if state.get("emissions") else None
    resumed_from = {"checkpoint_digest": ckpt.digest, "step": ckpt.step}
    return _Progress(ckpt.step, losses, evals, emissions, resumed_from), state["optimizer"]


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


def _prepare(
    model: GPT, config: TrainConfig, device: torch.device, dist: Distributed, optimizer_state: dict | None
) -> tuple[GPT, torch.nn.Module, torch.optim.AdamW]:
    """The model on its device with its optimizer (restored when resuming), and the module the loop calls:
    compiled and/or wrapped in DDP. Checkpoints take the raw model, so they hold the plain module's names."""
    raw = model.to(device)
    optimizer = make_optimizer(raw, config, device)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    net: torch.nn.Module = torch.compile(raw) if config.compile else raw
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(net, device_ids=[dist.local_rank] if device.type == "cuda" else None)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # only fp32 leftovers outside autocast
        torch.backends.cudnn.allow_tf32 = True
    return raw, net, optimizer


def make_optimizer(model: GPT, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over trainable parameters only; weight decay on matrices, not on norms, biases or 1-D tensors."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), **fast)


def _run_info(
    model: GPT,
    data: TokenData,
    config: TrainConfig,
    device: torch.device,
    dist: Distributed,
    resumed_from: dict | None,
    meta: dict | None,
) -> dict:
    """What on_start records, so the ledger says what trained on what, where: model size, configs, data and
    origin, device, resume point."""
    return {
        "params": model.num_params(),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "flops_per_token": model.flops_per_token(),
        "model_config": model.config.as_json(),
        "train_config": config.as_json(),
        "data": data.describe(),
        "origin": model.origin,
        "frozen": model.frozen_parameter_names(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "world_size": dist.world_size,
        "torch_version": str(torch.__version__),
        "resumed_from": resumed_from,
        "meta": meta or {},
    }


def _peak_flops(device: torch.device) -> float | None:
    """Dense bf16 peak of a known GPU, for MFU; None on the CPU or an unknown part (MFU is then left out)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


# -- the step: learning rate, precision, when to evaluate and checkpoint, what to log ------------------


def _set_lr(optimizer: torch.optim.Optimizer, step: int, config: TrainConfig) -> float:
    """Set this step's rate on every parameter group. The schedule (lr_at) is a function of the step alone,
    so a resumed run picks it up exactly where it was."""
    lr = lr_at(step, config)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def _autocast(device: torch.device) -> AbstractContextManager:
    """bf16 autocast on a GPU that has it; fp32 elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()  # fp32 on the CPU: bf16 there is slow and changes the numbers


def _forward_backward(
    net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, micro_batches: int, device: torch.device
) -> torch.Tensor:
    """Gradients of the mean loss over this rank's batch, in `micro_batches` equal parts (each
    part's loss scaled by 1/parts, so the sum is the whole batch's mean); DDP all-reduces once,
    on the last part. Returns the batch's mean loss."""
    if micro_batches == 1:
        with _autocast(device):
            _, loss = net(x, y)
        loss.backward()
        return loss
    total = torch.zeros((), device=device)
    parts = list(zip(x.chunk(micro_batches), y.chunk(micro_batches), strict=True))
    for i, (mx, my) in enumerate(parts):
        last = i == len(parts) - 1
        with nullcontext() if last or not hasattr(net, "no_sync") else net.no_sync():
            with _autocast(device):
                _, loss = net(mx, my)
            (loss / micro_batches).backward()
        total += loss.detach().float()
    return total / micro_batches


def _due(done: int, every: int, config: TrainConfig) -> bool:
    """Whether a periodic event (evaluation, checkpoint) falls after step `done`: every `every` steps (0: never),
    and always after the last, so a run always ends evaluated and checkpointed."""
    return done == config.steps or bool(every and done % every == 0)


class _StepLog:
    """The on_step metrics. Step losses stay on the device until a log line reads them all at once (one
    device sync per line, not per step); tokens/s is over the steps since the last line."""

    def __init__(self, model: GPT, losses: list[float], tokens_per_step: int, peak_flops: float | None) -> None:
        self.model, self.losses, self.tokens_per_step, self.peak_flops = model, losses, tokens_per_step, peak_flops
        self.pending: list[torch.Tensor] = []
        self.restart()

    def add(self, loss: torch.Tensor) -> None:
        """One step's loss, already averaged over the ranks and still on the device."""
        self.pending.append(loss)
        self.steps += 1

    def read(self, lr: float, grad_norm: torch.Tensor) -> dict:
        """Move the pending losses into the run's record; loss, lr, grad_norm, tokens_per_s and (on a known GPU) mfu."""
        self.losses.extend(torch.stack(self.pending).tolist())  # one device sync per log line
        self.pending.clear()
        elapsed = time.perf_counter() - self.since
        tps = self.steps * self.tokens_per_step / elapsed if elapsed else 0.0
        metrics = {"loss": self.losses[-1], "lr": lr, "grad_norm": float(grad_norm), "tokens_per_s": tps}
        if self.peak_flops:
            metrics["mfu"] = self.model.mfu(tps, self.peak_flops)
        return metrics

    def restart(self) -> None:
        """A new window, after a log line: the time its hook takes is not the next line's."""
        self.since, self.steps = time.perf_counter(), 0

    def skip(self) -> None:
        """Leave the time since the window began out of it (a checkpoint's snapshot); its steps still count."""
        self.since = time.perf_counter()


# -- evaluation ----------------------------------------------------------------------------------------


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


# -- checkpoints ---------------------------------------------------------------------------------------


class _Checkpoints:
    """Rank 0's checkpoints: written in the background under their final names and handed to on_checkpoint
    once durable. The other ranks write none, so every method is a no-op there."""

    def __init__(
        self,
        model: GPT,
        optimizer: torch.optim.Optimizer,
        config: TrainConfig,
        data: TokenData,
        meta: dict | None,
        dist: Distributed,
        out_dir: Path,
        hooks: Hooks,
    ) -> None:
        self.model, self.optimizer, self.config, self.data, self.meta = model, optimizer, config, data, meta
        self.dist, self.out_dir, self.hooks = dist, out_dir, hooks
        self.saved: list[SavedCheckpoint] = []  # durable, in the order written
        self.writer = CheckpointWriter() if dist.is_main else None

    def save(self, step: int, progress: _Progress, ev: dict | None, emissions: Emissions | None) -> None:
        """Snapshot the run at `step` for the writer, with the step's loss and evaluation (if any) as its metrics."""
        if self.writer is None:
            return
        state = _checkpoint_state(
            self.model,
            self.optimizer,
            self.config,
            self.data,
            step,
            progress.losses,
            progress.evals,
            emissions,
            self.meta,
            self.dist,
        )
        metrics = {"loss": progress.losses[-1], **{k: v for k, v in (ev or {}).items() if k != "step"}}
        path = Path(self.out_dir) / f"step-{step:07d}.pt"
        self._report(self.writer.submit(state, path, step, metrics, emissions and emissions.as_json()))

    def poll(self) -> None:
        """Report the checkpoints finished since the last call, without waiting."""
        if self.writer is not None:
            self._report(self.writer.poll())

    def drain(self) -> None:
        """Wait for every checkpoint in flight and report it."""
        if self.writer is not None:
            self._report(self.writer.drain())

    def salvage(self) -> None:
        """After a failure: report what is already being written, and let nothing here hide the failure."""
        if self.writer is not None:
            with suppress(Exception):
                self._report(self.writer.drain())

    def close(self) -> None:
        """Stop the background writer."""
        if self.writer is not None:
            self.writer.close()

    def _report(self, finished: list[SavedCheckpoint]) -> None:
        for record in finished:
            self.saved.append(record)
            self.hooks.on_checkpoint(record)


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
    """Everything a resume needs to continue the run exactly: its record, settings and origin, the weights
    and the optimizer state."""
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


# -- hooks: the caller's (rank 0 only) and carbon metering ---------------------------------------------


class _RankZero(Hooks):
    """The caller's hooks, called on rank 0 only: every rank sees the same run, and the ledger has one writer."""

    def __init__(self, hooks: Hooks, dist: Distributed) -> None:
        self.hooks, self.is_main = hooks, dist.is_main

    def on_start(self, info: dict) -> None:
        if self.is_main:
            self.hooks.on_start(info)

    def on_step(self, step: int, metrics: dict) -> None:
        if self.is_main:
            self.hooks.on_step(step, metrics)

    def on_eval(self, step: int, metrics: dict) -> None:
        if self.is_main:
            self.hooks.on_eval(step, metrics)

    def on_checkpoint(self, checkpoint: SavedCheckpoint) -> None:
        if self.is_main:
            self.hooks.on_checkpoint(checkpoint)


class _CarbonMeter:
    """CodeCarbon over this session (when `carbon` is given), as the run's total so far: summed over the ranks,
    each of which measures its own process, and added to the sessions before a resume. Without `carbon`,
    every figure is None."""

    def __init__(
        self, carbon: CarbonConfig | None, prior: Emissions | None, dist: Distributed, device: torch.device
    ) -> None:
        self.prior, self.dist, self.device = prior, dist, device
        self.meter = EmissionsMeter(carbon, label="custody-train").start() if carbon is not None else None

    def snapshot(self) -> Emissions | None:
        """The total so far, for a checkpoint; the meter keeps running. A collective: every rank calls it."""
        return self._total(self.meter.snapshot()) if self.meter is not None else None

    def stop(self) -> Emissions | None:
        """The run's final total. A collective: every rank calls it."""
        return self._total(self.meter.stop()) if self.meter is not None else None

    def abort(self) -> Emissions | None:
        """Stop measuring after a failure, with no collective: another rank may be the one that failed.
        Returns this rank's measurement so far (added to the sessions before a resume), or None."""
        if self.meter is None:
            return None
        try:
            session = self.meter.stop()
        except Exception:  # the failure that brought us here is the one to report
            return None
        return self.prior + session if self.prior else session

    def _total(self, session: Emissions) -> Emissions:
        emissions = _reduce_emissions(session, self.dist, self.device)
        return self.prior + emissions if self.prior else emissions


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


# -- determinism ---------------------------------------------------------------------------------------


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
