"""The training loop on Tiny Shakespeare: it learns; it is deterministic for a seed; a crashed run resumed
from its checkpoint reproduces the uninterrupted loss curve (and final checkpoint) exactly;
fine-tuning starts only from the recorded checkpoint digest; transfer learning leaves frozen blocks
bitwise unchanged."""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import replace

import pytest
import torch

from custody.home import Home
from custody.train.checkpoint import (
    CheckpointDigestMismatch,
    CheckpointError,
    init_from_checkpoint,
    load_checkpoint,
)
from custody.train.loop import Hooks, TrainConfig, lr_at, make_optimizer, train
from train_support import VOCAB, tiny_gpt, token_data, torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


FAST = TrainConfig(
    seed=7, steps=20, batch_size=8, lr=3e-3, min_lr=3e-4, warmup=4, eval_interval=10, eval_steps=2, log_interval=5
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-data")
    home = Home.init(root / "home")
    try:
        yield token_data(home, root, limit=2000)
    finally:
        home.close()


class Recorder(Hooks):
    def __init__(self, crash_at: int | None = None) -> None:
        self.started, self.steps, self.evals, self.checkpoints = [], [], [], []
        self.crash_at = crash_at

    def on_start(self, info):
        self.started.append(info)

    def on_step(self, step, metrics):
        self.steps.append(step)
        if step == self.crash_at:
            raise KeyboardInterrupt("simulated crash")

    def on_eval(self, step, metrics):
        self.evals.append((step, metrics))

    def on_checkpoint(self, checkpoint):
        self.checkpoints.append(checkpoint)


def test_it_learns_shakespeare(data, tmp_path) -> None:
    hooks = Recorder()
    config = replace(FAST, steps=80, batch_size=16, eval_interval=40, eval_steps=4, warmup=8)
    result = train(tiny_gpt(), data, config, tmp_path, hooks=hooks)
    assert len(result.losses) == 80 and result.steps == 80
    assert result.losses[0] > math.log(VOCAB) - 0.2
    assert sum(result.losses[-10:]) / 10 < result.losses[0] - 1.0
    (_, first), (_, last) = hooks.evals
    assert last["val_loss"] < first["val_loss"] < math.log(VOCAB)
    assert last["val_perplexity"] == pytest.approx(math.exp(last["val_loss"]))
    assert hooks.steps == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80]
    info = hooks.started[0]
    assert info["params"] > 0 and info["data"]["tokens_digest"] == data.digest and info["origin"]["init"] == "random"
    assert result.tokens == 80 * 16 * data.block_size and result.tokens_per_s > 0


def test_same_seed_same_curve_and_checkpoint_other_seed_not(data, tmp_path) -> None:
    a = train(tiny_gpt(seed=1), data, FAST, tmp_path / "a")
    b = train(tiny_gpt(seed=1), data, FAST, tmp_path / "b")
    assert a.losses == b.losses and a.evals == b.evals
    assert a.final.digest == b.final.digest  # bitwise-identical weights and optimizer state
    c = train(tiny_gpt(seed=1), data, replace(FAST, seed=8), tmp_path / "c")
    assert c.losses != a.losses


def test_checkpoints_are_atomic_and_named_by_their_bytes(data, tmp_path) -> None:
    hooks = Recorder()
    result = train(tiny_gpt(), data, replace(FAST, checkpoint_interval=10), tmp_path, hooks=hooks)
    assert [c.step for c in hooks.checkpoints] == [10, 20] == [c.step for c in result.checkpoints]
    for saved in result.checkpoints:
        assert hashlib.sha256(saved.path.read_bytes()).hexdigest() == saved.digest
        assert saved.path.stat().st_size == saved.bytes and "val_loss" in saved.metrics
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000010.pt", "step-0000020.pt"]  # no temp files
    state = load_checkpoint(result.final.path, result.final.digest).state
    assert state["step"] == 20 and state["losses"] == result.losses and state["data"]["tokens_digest"] == data.digest
    assert state["train_config"] == FAST.as_json() | {"checkpoint_interval": 10}


def test_a_crashed_run_resumed_from_its_checkpoint_reproduces_the_curve_exactly(data, tmp_path) -> None:
    config = replace(FAST, checkpoint_interval=10)
    straight = train(tiny_gpt(dropout=0.1), data, config, tmp_path / "straight")

    crashed = Recorder(crash_at=15)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_gpt(dropout=0.1), data, config, tmp_path / "crashed", hooks=crashed)
    (at_10,) = crashed.checkpoints
    resumed_hooks = Recorder()
    resumed = train(
        tiny_gpt(seed=99, dropout=0.1),  # its own init is overwritten by the checkpoint
        data,
        config,
        tmp_path / "crashed",
        hooks=resumed_hooks,
        resume_from=at_10.path,
        resume_digest=at_10.digest,
    )
    assert resumed.losses == straight.losses  # all 20 steps, bit for bit
    assert resumed.evals == straight.evals
    assert resumed.final.digest == straight.final.digest
    assert resumed_hooks.started[0]["resumed_from"] == {"checkpoint_digest": at_10.digest, "step": 10}
    assert resumed.tokens == 10 * config.batch_size * data.block_size


def test_resume_refuses_a_different_run(data, tmp_path) -> None:
    first = train(tiny_gpt(), data, replace(FAST, steps=10, checkpoint_interval=5), tmp_path)
    at_5 = first.checkpoints[0]
    with pytest.raises(CheckpointDigestMismatch):
        train(tiny_gpt(), data, FAST, tmp_path, resume_from=at_5.path, resume_digest="0" * 64)
    with pytest.raises(CheckpointError, match=r"training settings changed.*lr"):
        train(tiny_gpt(), data, replace(FAST, lr=1e-3), tmp_path, resume_from=at_5.path)
    with pytest.raises(CheckpointError, match="model config differs"):
        train(tiny_gpt(n_embd=32), data, FAST, tmp_path, resume_from=at_5.path)
    other = replace(data, val=data.val[:-1])
    with pytest.raises(CheckpointError, match="trained on tokens"):
        train(tiny_gpt(), other, FAST, tmp_path, resume_from=at_5.path)


def test_fine_tuning_starts_only_from_the_recorded_digest(data, tmp_path) -> None:
    base = train(tiny_gpt(), data, replace(FAST, steps=30), tmp_path / "base")
    with pytest.raises(CheckpointDigestMismatch, match="refusing"):
        init_from_checkpoint(base.final.path, "f" * 64)
    with pytest.raises(CheckpointError, match="digest"):
        init_from_checkpoint(base.final.path, "")
    tampered = tmp_path / "tampered.pt"
    tampered.write_bytes(base.final.path.read_bytes() + b"\0")
    with pytest.raises(CheckpointDigestMismatch):
        init_from_checkpoint(tampered, base.final.digest)

    model = init_from_checkpoint(base.final.path, base.final.digest)
    tuned = train(model, data, replace(FAST, seed=11, lr=1e-3, warmup=2), tmp_path / "tuned")
    assert tuned.losses[0] < base.losses[0] - 0.5  # it starts from what was learned
    origin = load_checkpoint(tuned.final.path).state["origin"]
    assert origin == {"init": "checkpoint", "checkpoint_digest": base.final.digest, "step": 30, "changes": []}


def test_transfer_learning_leaves_frozen_blocks_bitwise_unchanged(data, tmp_path) -> None:
    base = train(tiny_gpt(n_layer=3), data, replace(FAST, steps=10), tmp_path / "base")
    model = init_from_checkpoint(base.final.path, base.final.digest)
    model.freeze_blocks([0, 1])
    torch.manual_seed(5)
    new_blocks = model.add_blocks(1)
    model.replace_head(VOCAB)  # a fresh, untied head
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    frozen = set(model.frozen_parameter_names())
    assert frozen == {n for n in before if n.startswith(("transformer.h.0.", "transformer.h.1."))}
    assert not {id(p) for n, p in model.named_parameters() if n in frozen} & {
        id(p) for group in make_optimizer(model, FAST, torch.device("cpu")).param_groups for p in group["params"]
    }

    result = train(model, data, FAST, tmp_path / "transfer")
    after = dict(model.named_parameters())
    for name in before:
        if name in frozen:
            assert torch.equal(after[name], before[name]), f"{name} moved"
        else:
            assert not torch.equal(after[name], before[name]), f"{name} did not train"
    assert any(n.startswith(f"transformer.h.{new_blocks[0]}.") for n in before)
    state = load_checkpoint(result.final.path).state
    assert set(state["frozen"]) == frozen and state["model_config"]["n_layer"] == 4
    assert state["origin"]["changes"] == [{"freeze_blocks": [0, 1]}, {"add_blocks": 1}, {"replace_head": VOCAB}]


def test_learning_rate_warms_up_then_decays_to_min_lr() -> None:
    config = TrainConfig(steps=100, warmup=10, lr=1.0, min_lr=0.1)
    assert lr_at(0, config) == pytest.approx(0.1) and lr_at(9, config) == pytest.approx(1.0)
    assert lr_at(10, config) == pytest.approx(1.0)
    assert lr_at(55, config) == pytest.approx(0.55)
    assert lr_at(100, config) == pytest.approx(0.1) and lr_at(500, config) == pytest.approx(0.1)
    rates = [lr_at(s, config) for s in range(10, 100)]
    assert all(a >= b for a, b in itertools.pairwise(rates))


def test_bad_settings_are_refused(data, tmp_path) -> None:
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(lr=1e-4, min_lr=1e-3)
    with pytest.raises(ValueError, match="at least 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="block_size"):
        train(tiny_gpt(block=16), data, FAST, tmp_path)


def test_gradient_accumulation_follows_the_one_batch_curve(data, tmp_path) -> None:
    config = replace(FAST, steps=8, eval_interval=0)
    whole = train(tiny_gpt(), data, config, tmp_path / "whole")
    for parts in (2, 4):
        model, seen = tiny_gpt(), []
        model.register_forward_pre_hook(lambda _, args, seen=seen: seen.append(args[0].shape[0]))
        split = train(model, data, replace(config, grad_accum=parts), tmp_path / f"split-{parts}")
        assert split.losses == pytest.approx(whole.losses, abs=1e-5)  # the same sums, in another order
        assert split.tokens == whole.tokens
        assert seen.count(8 // parts) == 8 * parts  # every step really ran in `parts` micro-batches
    with pytest.raises(ValueError, match="split evenly into grad_accum 3"):
        train(tiny_gpt(), data, replace(config, grad_accum=3), tmp_path / "uneven")
    with pytest.raises(ValueError, match="grad_accum must be at least 1"):
        replace(config, grad_accum=0)


@pytest.mark.slow
def test_torch_compile_follows_the_eager_curve(data, tmp_path) -> None:
    config = replace(FAST, steps=6, eval_interval=0)
    eager = train(tiny_gpt(), data, config, tmp_path / "eager")
    compiled = train(tiny_gpt(), data, replace(config, compile=True), tmp_path / "compiled")
    assert compiled.losses == pytest.approx(eager.losses, abs=1e-5)  # fused kernels round differently
    state = load_checkpoint(compiled.final.path).state
    assert set(state["model"]) == set(tiny_gpt().state_dict())  # the plain module's names, loadable anywhere
