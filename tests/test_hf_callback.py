"""`custody.integrations.hf.CustodyCallback`: a real `transformers.Trainer` (a tiny GPT-2 on CPU,
custody's own BPE tokenizer, no downloads) trains inside `custody.governed_run`; the ledger holds its
start, every checkpoint folder by the digests of its files, its metrics and its end. The callback
refuses, before a step is taken, a train dataset that was not derived from what the run handed out,
and a run that is finished, denied, or names a decision the ledger does not hold as an allow."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

import custody
from custody.home import Home
from custody.runs.api import (
    EXTERNAL_CHECKPOINT,
    EXTERNAL_FINISHED,
    EXTERNAL_STARTED,
    GovernedRun,
    _acting,
    external_spec,
    open_run,
)
from custody.runs.governed import gate_spec
from custody.train.tokenizer import train_tokenizer
from run_data import research_home

transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

from custody.integrations.hf import TRAINER, CustodyCallback, TrainingRefused, untraced  # noqa: E402

BLOCK = 32
STEPS = 4


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory, cast):
    """A home whose research policy lets 200 Tiny Shakespeare speeches through, and the trainer's key."""
    with research_home(cast, tmp_path_factory.mktemp("hf")) as made:
        yield made


def tokenized(run: GovernedRun, tokenizer) -> datasets.Dataset:
    """The run's Hugging Face dataset packed into BLOCK-token rows (each text ends with <|endoftext|>)."""

    def pack(batch):
        ids = [i for text in batch["text"] for i in [*tokenizer.encode(text), tokenizer.eot_id]]
        blocks = [ids[s : s + BLOCK] for s in range(0, len(ids) - BLOCK + 1, BLOCK)]
        return {"input_ids": blocks, "labels": blocks}

    return run.hf_dataset().map(pack, batched=True, remove_columns=["text", "id", "dataset"])


def trainer_for(train, out, vocab: int, eot: int, callbacks=()) -> transformers.Trainer:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=vocab, n_positions=BLOCK, n_layer=2, n_head=2, n_embd=32, bos_token_id=eot, eos_token_id=eot
    )
    args = transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=STEPS,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        logging_steps=1,
        save_steps=2,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        include_num_input_tokens_seen=True,
    )
    return transformers.Trainer(
        transformers.GPT2LMHeadModel(config), args, train_dataset=train, callbacks=list(callbacks)
    )


def entries(home: Home, prefix: str, subject: str | None = None) -> list[dict]:
    rows = [json.loads(row.entry) for row in home.storage.entries(0, 1_000_000, type_prefix=prefix)]
    return [r for r in rows if subject is None or r["subject"] == subject]


@pytest.fixture(scope="module")
def trained(hf_home, tmp_path_factory):
    """One governed Trainer run: checkpoints at steps 2 and 4, then the final model recorded."""
    home, _, key = hf_home
    out = tmp_path_factory.mktemp("trainer-out")
    with custody.governed_run("research", ["shakespeare@1"], home=home, name="hf", key=key, trainer=TRAINER) as run:
        tokenizer = train_tokenizer(run.texts(), vocab_size=300)
        train = tokenized(run, tokenizer)
        trainer = trainer_for(train, out, tokenizer.vocab_size, tokenizer.eot_id, [CustodyCallback(run)])
        trainer.train()
        trainer.save_model(out / "final")
        final = run.checkpoint(out / "final", step=trainer.state.global_step)
    return home, run, out, final, tokenizer, train


def test_a_trainer_run_is_recorded_start_checkpoints_metrics_and_end(trained):
    home, run, out, final, _, _ = trained
    started = entries(home, "run.started/", run.subject)
    assert [e["type"] for e in started] == [EXTERNAL_STARTED]
    assert started[0]["body"]["trainer"] == TRAINER and TRAINER.startswith("transformers.Trainer ")
    assert started[0]["body"]["decision_index"] == run.decision_index
    checkpoints = entries(home, "run.checkpoint/", run.subject)
    assert {e["type"] for e in checkpoints} == {EXTERNAL_CHECKPOINT}
    assert [(e["body"]["step"], e["body"]["name"]) for e in checkpoints] == [
        (2, "checkpoint-2"),
        (4, "checkpoint-4"),
        (4, "final"),
    ]
    for entry in checkpoints:  # each entry names a manifest of exactly the files the Trainer wrote
        body = entry["body"]
        folder = out / body["name"]
        manifest = json.loads(home.store.read_bytes(body["checkpoint_digest"]))
        on_disk = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        assert manifest["format"] == "custody-checkpoint-folder/1" and set(manifest["files"]) == set(on_disk)
        assert "model.safetensors" in on_disk
        for name, digest in manifest["files"].items():
            assert (
                digest
                == hashlib.sha256(on_disk[name]).hexdigest()
                == hashlib.sha256(home.store.read_bytes(digest)).hexdigest()
            )
        assert entry["body"]["train_loss"] is not None and entry["body"]["tokens"] > 0
    done = entries(home, "run.finished/", run.subject)
    assert [e["type"] for e in done] == [EXTERNAL_FINISHED]
    body = done[0]["body"]
    assert body["status"] == "completed" and body["steps"] == STEPS and body["model_digest"] == final
    assert body["emissions"]["energy_kwh"] > 0 and body["final_train_loss"] is not None
    metrics = json.loads(home.store.read_bytes(body["metrics_digest"]))["steps"]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4]
    assert all({"learning_rate", "grad_norm", "tokens"} <= set(m) for m in metrics if "loss" in m)
    assert metrics[-1]["tokens"] == STEPS * 4 * BLOCK
    assert not home.ledger.verify().problems


def test_a_dataset_not_from_the_run_is_refused_and_the_run_fails_naming_why(hf_home, trained, tmp_path):
    home, _, key = hf_home
    _, _, _, _, tokenizer, _ = trained
    with (
        pytest.raises(TrainingRefused, match="not the data this run was allowed to read") as refused,
        custody.governed_run("research", ["shakespeare@1"], home=home, name="swapped", key=key, trainer=TRAINER) as run,
    ):
        approved = tokenized(run, tokenizer)
        # the same rows, rebuilt in memory: nothing ties them to the approved bytes any more
        copied = datasets.Dataset.from_dict(approved[:])
        trainer = trainer_for(copied, tmp_path, tokenizer.vocab_size, tokenizer.eot_id, [CustodyCallback(run)])
        trainer.train()
    assert "held in memory" in str(refused.value)
    assert trainer.state.global_step == 0 and not any(tmp_path.glob("checkpoint-*")), "nothing trained"
    assert entries(home, "run.checkpoint/", run.subject) == []
    done = entries(home, "run.finished/", run.subject)[-1]["body"]
    assert done["status"] == "failed" and "TrainingRefused" in done["error"] and "held in memory" in done["error"]


def test_what_is_traced_to_the_run_and_what_is_not(hf_home, trained, tmp_path):
    home, _, key = hf_home
    _, other_run, _, _, tokenizer, other = trained
    with custody.governed_run("research", ["shakespeare@1"], home=home, name="traced", key=key) as run:
        assert "has not handed out one" in untraced(run, other)
        yielded = run.hf_dataset()
        derived = tokenized(run, tokenizer)
        assert untraced(run, yielded) is None
        assert untraced(run, derived) is None
        assert untraced(run, derived.shuffle(seed=1).select(range(8)).with_format("torch")) is None
        assert untraced(run, run.torch_dataset()) is None
        assert "outside the run's folder" in untraced(run, other)  # another run's data
        assert "a torch dataset of another run" in untraced(run, other_run.torch_dataset())
        both = datasets.concatenate_datasets([derived, other])
        assert "outside the run's folder" in untraced(run, both)
        elsewhere = tmp_path / "elsewhere"
        other.save_to_disk(str(elsewhere))
        assert "outside the run's folder" in untraced(run, datasets.load_from_disk(str(elsewhere)))
        assert "held in memory" in untraced(run, derived.map(lambda r: r, keep_in_memory=True))
        assert "custody cannot trace" in untraced(run, torch.utils.data.TensorDataset(torch.zeros(4, BLOCK)))
        assert "streaming" in untraced(run, derived.to_iterable_dataset())


def test_the_callback_refuses_a_finished_a_denied_and_a_forged_run(hf_home, trained, tmp_path):
    home, _, key = hf_home
    _, finished, _, _, tokenizer, train = trained
    before = len(entries(home, ""))

    def refuses(run: GovernedRun, match: str) -> None:
        trainer = trainer_for(train, tmp_path, tokenizer.vocab_size, tokenizer.eot_id, [CustodyCallback(run)])
        with pytest.raises(TrainingRefused, match=match):
            trainer.train()
        assert trainer.state.global_step == 0

    refuses(finished, "has already finished")
    # commercial has no bound policy in this home: the gate denies; a run object made from that
    # outcome anyway (not through governed_run, which raises RunDenied) still cannot train
    who = _acting(home, key, None)
    denied, _ = gate_spec(home, external_spec(home, "commercial", ["shakespeare@1"], "denied"), who, lambda _: None)
    assert denied.gate.decision.decision == "deny"
    refuses(GovernedRun(home, denied, who), "holds no allow decision")
    # an outcome that claims an allow but names the deny's ledger index: the ledger decides (the
    # entry there was judged by no bound policy, and denies)
    allowed = finished.outcome
    forged = dataclasses.replace(
        allowed, gate=dataclasses.replace(allowed.gate, ledger_index=denied.gate.ledger_index), run_id=None, entries={}
    )
    refuses(GovernedRun(home, forged, who), f"decision {denied.gate.ledger_index} (was not judged|is deny)")
    recorded = entries(home, "")[before:]
    assert not [e for e in recorded if e["type"].startswith(("run.started", "run.checkpoint", "run.finished"))]
    with pytest.raises(TypeError, match="governed_run"):
        CustodyCallback(object())  # type: ignore[arg-type]


def test_a_run_from_open_run_is_started_by_the_callback_and_finished_by_the_caller(hf_home, trained, tmp_path):
    home, _, key = hf_home
    _, _, _, _, tokenizer, _ = trained
    who = _acting(home, key, None)
    run = open_run(home, external_spec(home, "research", ["shakespeare@1"], "open"), who)
    assert "run.started" not in run.entries
    trainer = trainer_for(
        tokenized(run, tokenizer), tmp_path, tokenizer.vocab_size, tokenizer.eot_id, [CustodyCallback(run)]
    )
    trainer.train()
    run.finish(steps=trainer.state.global_step, tokens=trainer.state.num_input_tokens_seen)
    started = entries(home, "run.started/", run.subject)[0]["body"]
    parameters = sum(p.numel() for p in trainer.model.parameters())
    assert (started["trainer"], started["device"], started["seed"]) == (TRAINER, "cpu", 0)
    assert started["parameters"] == parameters and started["world_size"] == 1
    assert [e["body"]["step"] for e in entries(home, "run.checkpoint/", run.subject)] == [2, 4]
    done = entries(home, "run.finished/", run.subject)[0]["body"]
    assert done["status"] == "completed" and done["tokens"] == STEPS * 4 * BLOCK and done["emissions"]["energy_kwh"] > 0
