"""`custody run`: the gate is real. Specs validate; a deny or a missing review stops the run before
anything trains; bytes swapped after approval stop the loader; an allowed run leaves run.started,
run.checkpoint and run.finished with digests and emissions; fine-tuning and transfer start from a
recorded checkpoint by digest."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.runs.governed import RunRefused, require_allow
from custody.runs.spec import SpecError, load_spec
from custody.runs.trainers import run_spec
from custody.train.data import ShardIntegrityError
from run_data import APPROVAL, POLICY, SPEC, people_home, write
from train_support import register_shakespeare


@pytest.fixture(scope="module")
def governed(tmp_path_factory, cast):
    """One home with Shakespeare registered, a policy without run approval, and a finished run."""
    root = tmp_path_factory.mktemp("governed")
    home = people_home(cast, root / "home")
    register_shakespeare(home, root, limit=400, shards=2)
    policy = write(root / "policy.toml", POLICY.format(approval=""))
    spec = write(root / "pretrain.toml", SPEC.format(name="tiny", kind="pretrain", policy=policy, extra=""))
    said: list[str] = []
    outcome = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=said.append)
    yield home, root, policy, outcome, said
    home.close()


def entries(home: Home, prefix: str) -> list[dict]:
    return [json.loads(row.entry) for row in home.storage.entries(0, 100_000, type_prefix=prefix)]


def test_an_allowed_run_records_its_data_checkpoints_and_emissions(governed):
    home, _, _, outcome, said = governed
    assert outcome.exit_code == 0 and outcome.run_id, said
    started = entries(home, "run.started/")[-1]["body"]
    assert started["decision_index"] == outcome.gate.ledger_index
    decision = entries(home, "policy.decision/")[-1]["body"]
    approved = {s["name"]: s["digest"]["sha256"] for s in decision["subjects"] if s.get("digest")}
    assert approved == {f"dataset:{d['ref']}": d["digest"] for d in started["datasets"]}
    assert started["datasets"][0]["source"] == "shakespeare@1"
    assert home.store.read_bytes(started["spec_digest"])  # the spec's exact bytes are stored
    assert home.store.read_bytes(started["tokenizer_digest"])
    checkpoints = entries(home, "run.checkpoint/")
    assert [c["body"]["step"] for c in checkpoints] == [6, 12]
    finished = entries(home, "run.finished/")[-1]["body"]
    assert finished["status"] == "completed" and finished["steps"] == 12
    assert finished["model_digest"] == checkpoints[-1]["body"]["checkpoint_digest"]
    assert home.store.verify(finished["model_digest"]), "the final checkpoint is in the store by digest"
    metrics = json.loads(home.store.read_bytes(finished["metrics_digest"]))
    assert len(metrics["steps"]) == 12 and [e["step"] for e in metrics["evals"]] == [6, 12]
    emissions = finished["emissions"]
    assert emissions["energy_kwh"] > 0 and emissions["emissions_kg_co2e"] > 0
    assert emissions["water_l"] == pytest.approx(emissions["energy_kwh"] * emissions["wue_l_per_kwh"])
    assert "codecarbon" in emissions["tracker"]
    assert started["preparation_emissions"]["energy_kwh"] > 0
    assert not home.ledger.verify().problems


def test_rerunning_a_spec_reuses_prepared_data_and_fresh_checks(governed, cast):
    home, root, policy, _, _ = governed
    spec = write(root / "again.toml", SPEC.format(name="again", kind="pretrain", policy=policy, extra=""))
    before = len(entries(home, "check.completed/"))
    said: list[str] = []
    outcome = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=said.append)
    assert outcome.exit_code == 0
    assert any("reusing shakespeare@1+for-tiny" in line for line in said)
    assert len(entries(home, "check.completed/")) == before, "results for these bytes are fresh"


def test_finetune_and_transfer_start_from_a_recorded_checkpoint(governed, cast):
    home, root, policy, outcome, _ = governed
    digest = outcome.result.final.digest
    finetune = f'\n[finetune]\ncheckpoint = "sha256:{digest}"\n'
    spec = write(root / "ft.toml", SPEC.format(name="ft", kind="finetune", policy=policy, extra=finetune))
    tuned = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    assert tuned.exit_code == 0
    started = entries(home, "run.started/")[-1]["body"]
    assert started["kind"] == "finetune" and started["init_checkpoint_digest"] == digest
    assert started["tokenizer_digest"] == entries(home, "run.started/")[0]["body"]["tokenizer_digest"]

    transfer = f'\n[transfer]\ncheckpoint = "sha256:{digest}"\nfreeze_blocks = [0]\nadd_blocks = 1\n'
    spec = write(root / "tl.toml", SPEC.format(name="tl", kind="transfer", policy=policy, extra=transfer))
    moved = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    assert moved.exit_code == 0
    assert moved.result.info["frozen"] and all(n.startswith("transformer.h.0.") for n in moved.result.info["frozen"])
    assert moved.result.info["model_config"]["n_layer"] == 3

    wrong = "0" * 64
    spec = write(
        root / "bad-ft.toml",
        SPEC.format(name="bad", kind="finetune", policy=policy, extra=f'\n[finetune]\ncheckpoint = "sha256:{wrong}"\n'),
    )
    with pytest.raises(FileNotFoundError, match="not in this home's artifact store"):
        run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)


def test_a_run_needing_approval_does_not_train_until_a_person_approves(governed, cast):
    home, root, _, _, _ = governed
    policy = write(root / "approval.toml", POLICY.format(approval=APPROVAL))
    spec = write(root / "needs.toml", SPEC.format(name="needs", kind="pretrain", policy=policy, extra=""))
    runs_before = len(entries(home, "run.started/"))
    outcome = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    assert outcome.exit_code == 4 and outcome.run_id is None
    assert [r.finding for r in outcome.gate.decision.reasons] == ["run:needs/training.approval"]
    assert len(entries(home, "run.started/")) == runs_before

    from custody.policy.reviews import SeparationOfDuties, record_review

    # The trainer holds the approver role, so only separation of duties refuses them here.
    refusal = (
        "trainer requested run:needs and cannot approve its findings (separation of duties); another reviewer must"
    )
    size = home.ledger.size
    with pytest.raises(SeparationOfDuties) as refused:
        record_review(home, "run:needs/training.approval", "approve", "mine", cast.person(home, "trainer"))
    assert str(refused.value) == refusal
    assert home.ledger.size == size, "a refused review records nothing"
    record_review(home, "run:needs/training.approval", "approve", "reviewed the budget", cast.person(home, "lead"))
    allowed = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    assert allowed.exit_code == 0 and allowed.run_id


def test_require_allow_refuses_other_bytes_and_non_allow_decisions(governed):
    home, _, _, outcome, _ = governed
    index = outcome.gate.ledger_index
    assert require_allow(home, index, outcome.prepared)["result"]["decision"] == "allow"
    raw = DatasetRegistry(home).get("shakespeare@1")
    with pytest.raises(RunRefused, match="other datasets or bytes"):
        require_allow(home, index, [raw])
    with pytest.raises(RunRefused, match="not a policy decision"):
        require_allow(home, 0, outcome.prepared)


def test_a_denied_dataset_never_trains(tmp_path, cast):
    home = people_home(cast, tmp_path / "home")
    register_shakespeare(home, tmp_path, limit=120, shards=1)
    folder = tmp_path / "shadow"
    folder.mkdir()
    (folder / "part.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "id": f"s{i}",
                    "text": f"A page of a pirated book, number {i}.",
                    "source_url": f"https://libgen.rs/book/{i}",
                }
            )
            + "\n"
            for i in range(30)
        ),
        encoding="utf-8",
    )
    from custody.datasets.card import CARD_TEMPLATE, parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields

    DatasetRegistry(home).register([folder], DatasetRef("shadow", "1"), parse_card(CARD_TEMPLATE), Fields(id="id"))
    policy = write(tmp_path / "policy.toml", POLICY.format(approval=""))
    text = SPEC.format(name="denied", kind="pretrain", policy=policy, extra="").replace(
        'ref = "shakespeare@1"', 'ref = "shakespeare@1"\n\n[[datasets]]\nref = "shadow@1"'
    )
    spec = write(tmp_path / "denied.toml", text)
    outcome = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    assert outcome.exit_code == 3 and outcome.run_id is None
    assert any(r.rule == "provenance.denied-sources" for r in outcome.gate.decision.reasons)
    assert entries(home, "run.started/") == []
    home.close()


def test_bytes_swapped_after_approval_stop_the_run(tmp_path, cast):
    home = people_home(cast, tmp_path / "home")
    register_shakespeare(home, tmp_path, limit=200, shards=2)
    policy = write(tmp_path / "policy.toml", POLICY.format(approval=""))
    spec = write(tmp_path / "s.toml", SPEC.format(name="swap", kind="pretrain", policy=policy, extra=""))
    first = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    assert first.exit_code == 0
    prepared = first.prepared[0]
    shard = prepared.manifest.shards[-1]
    path = prepared.shard_path(shard)
    os.chmod(path, 0o644)
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x20]) + data[middle + 1 :])  # one byte, after approval
    finished = len(entries(home, "run.finished/"))
    with pytest.raises(ShardIntegrityError, match=shard.name):
        run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    assert len(entries(home, "run.finished/")) == finished, "nothing trained on the swapped bytes"
    home.close()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("steps = 12", "steps = 12\nstpes = 3"), ":{stpes}: unknown key 'training.stpes'"),
        (("steps = 12", 'steps = "many"'), ":{steps}: key 'training.steps'"),
        (('stages = ["dedup-exact", "drop-toxic"]', 'stages = ["shred"]'), "unknown stage 'shred'"),
        (('stages = ["dedup-exact", "drop-toxic"]', 'stages = ["lowercase"]'), "stage lowercase is"),
        (('kind = "pretrain"', 'kind = "finetune"'), "needs a [finetune] table"),
        (('ref = "shakespeare@1"', 'ref = "../etc@1"'), "key 'datasets.0.ref'"),
        (("warmup = 2", "warmup = 2\nlr = 1e-5"), "key 'training': min_lr (0.0001) must not exceed lr (1e-05)"),
        (('kind = "pretrain"', 'kind = "reward"'), "needs a [reward] table"),
        (('kind = "pretrain"', 'kind = "dpo"'), "needs a [dpo] table"),
    ],
)
def test_bad_specs_name_file_line_and_key(tmp_path, edit, message):
    text = SPEC.format(name="bad", kind="pretrain", policy="default", extra="").replace(*edit)
    spec = write(tmp_path / "bad.toml", text)
    lines = {row.split(" ")[0]: n for n, row in enumerate(text.splitlines(), 1) if " = " in row}
    message = message.format(**lines)
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert str(caught.value).startswith(str(spec)) and message in str(caught.value), str(caught.value)


def test_cli_exit_codes(governed, tmp_path, cast):
    home = governed[0]
    bad = write(tmp_path / "bad.toml", "schema = 1\nname = 'x'\n")
    env = {**os.environ, "CUSTODY_KEY": str(cast.key_file("trainer"))}
    done = subprocess.run(
        [sys.executable, "-m", "custody", "run", str(bad), "--home", str(home.path)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 2 and "required key 'policy' is missing" in done.stderr
    policy = write(tmp_path / "approval.toml", POLICY.format(approval=APPROVAL))
    spec = write(tmp_path / "cli.toml", SPEC.format(name="cli", kind="pretrain", policy=policy, extra=""))
    done = subprocess.run(
        [sys.executable, "-m", "custody", "run", str(spec), "--json", "--home", str(home.path)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    report = json.loads(done.stdout)
    assert report["decision"] == "needs-review" and report["run_id"] is None


def test_tokenize_takes_a_recorded_runs_tokenizer(governed):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, _, _, outcome, _ = governed
    started = entries(home, "run.started/")[0]["body"]
    args = ["tokenize", "--run", outcome.run_id, "--encode", "to be or not", "--json", "--home", str(home.path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["digest"] == started["tokenizer_digest"]
    missing = CliRunner().invoke(app, ["tokenize", "--run", "nope-1", "--encode", "x", "--home", str(home.path)])
    assert missing.exit_code == 2 and "no such run" in missing.stderr
