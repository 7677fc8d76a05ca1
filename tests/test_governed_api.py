"""`custody.governed_run`: any loop gets the same gate and entries as `custody run`. Allowed, it hands
over only the approved bytes (records, files, a torch Dataset, a Hugging Face Dataset) and records
start, checkpoints, metrics and the outcome with energy; denied, nothing starts and the exception
names the reasons; an exception inside the block is recorded as a failed run with the energy
measured up to it."""

from __future__ import annotations

import json

import pytest

import custody
from custody.datasets.names import parse_ref
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.ledger import query
from custody.runs.api import EXTERNAL_FINISHED, EXTERNAL_STARTED
from custody.runs.spec import SpecError
from custody.train.data import ShardIntegrityError
from run_data import research_home


@pytest.fixture(scope="module")
def api_home(tmp_path_factory, cast):
    """A home whose research policy lets Tiny Shakespeare through, and the trainer's key."""
    with research_home(cast, tmp_path_factory.mktemp("api")) as made:
        yield made


def entries(home: Home, prefix: str, subject: str | None = None) -> list[dict]:
    rows = [json.loads(row.entry) for row in home.storage.entries(0, 1_000_000, type_prefix=prefix)]
    return [r for r in rows if subject is None or r["subject"] == subject]


def test_an_allowed_run_yields_verified_data_and_records_start_checkpoints_and_end(api_home, tmp_path):
    home, _, key = api_home
    with custody.governed_run("research", ["shakespeare@1"], home=home, name="my-loop", key=key) as run:
        texts = list(run.texts())
        records = list(run.records())
        files = run.files()
        torch_rows = list(run.torch_dataset())
        hf = run.hf_dataset()
        for step in range(1, 4):
            run.log(step, loss=3.0 / step, lr=1e-3)
        weights = tmp_path / "weights.bin"
        weights.write_bytes(b"trained weights")
        digest = run.checkpoint(weights, step=3)
    subject = run.subject
    assert len(texts) == len(records) == len(torch_rows) == hf.num_rows > 0
    assert hf[0]["text"] == records[0]["text"] and records[0]["dataset"] == "shakespeare@1"
    assert {p.name for p in files} == {"part-0.jsonl", "part-1.jsonl"}
    started = entries(home, "run.started/", subject)
    finished = entries(home, "run.finished/", subject)
    assert [e["type"] for e in started] == [EXTERNAL_STARTED] and [e["type"] for e in finished] == [EXTERNAL_FINISHED]
    body = started[0]["body"]
    assert body["kind"] == "external" and body["decision_index"] == run.decision_index
    decision = entries(home, "policy.decision/")[-1]
    assert decision["body"]["result"]["decision"] == "allow"
    assert body["datasets"][0]["digest"] == DatasetRegistry(home).get(parse_ref("shakespeare@1")).digest
    # who asked is the key's holder (signed by it), not a typed name; the machine work names them
    asked = home.attribute(query.at(home.storage, run.entries["run.requested"]))
    assert (asked.kind, asked.actor, asked.problem) == ("person", "trainer", None)
    assert home.attribute(query.at(home.storage, run.entries["run.started"])).actor == "trainer"
    checkpoint = entries(home, "run.checkpoint/", subject)[0]["body"]
    assert checkpoint["checkpoint_digest"] == digest and checkpoint["train_loss"] == pytest.approx(1.0)
    assert home.store.read_bytes(digest) == b"trained weights"
    done = finished[0]["body"]
    assert done["status"] == "completed" and done["model_digest"] == digest and done["steps"] == 3
    assert done["emissions"]["energy_kwh"] > 0 and "codecarbon" in done["emissions"]["tracker"]
    metrics = json.loads(home.store.read_bytes(done["metrics_digest"]))
    assert [m["step"] for m in metrics["steps"]] == [1, 2, 3]
    assert not home.ledger.verify().problems


def test_a_denied_run_starts_nothing_and_names_the_reasons(api_home, tmp_path):
    home, _root, key = api_home
    before = len(entries(home, "run.started/"))
    # commercial has no bound policy in this home: the gate denies, naming why
    with (
        pytest.raises(custody.RunDenied) as denied,
        custody.governed_run("commercial", ["shakespeare@1"], home=home, name="denied", key=key),
    ):
        pytest.fail("the block must not run without an allow")
    assert denied.value.decision == "deny" and denied.value.reasons
    assert "deny" in str(denied.value)
    assert len(entries(home, "run.started/")) == before


def test_an_exception_inside_the_block_is_a_failed_run_with_energy(api_home):
    home, _, key = api_home
    with (
        pytest.raises(RuntimeError, match="loss went NaN"),
        custody.governed_run("research", ["shakespeare@1"], home=home, name="crash", key=key) as run,
    ):
        sum(len(t) for t in run.texts())
        run.log(1, loss=2.5)
        raise RuntimeError("loss went NaN")
    done = entries(home, "run.finished/", run.subject)[-1]["body"]
    assert done["status"] == "failed" and "loss went NaN" in done["error"]
    assert done["steps"] == 1, "the steps logged before the failure"
    assert json.loads(home.store.read_bytes(done["metrics_digest"]))["steps"] == [{"step": 1, "loss": 2.5}]
    assert done["emissions"]["energy_kwh"] > 0 and "up to the failure" in done["emissions"]["tracker"]


def test_bad_input_is_refused_before_anything_is_recorded(api_home):
    home, _, key = api_home
    before = len(entries(home, ""))
    with (
        pytest.raises(SpecError, match="purpose must be one of"),
        custody.governed_run("training", ["shakespeare@1"], home=home, key=key),
    ):
        pass
    with (
        pytest.raises(Exception, match="nosuch@1"),
        custody.governed_run("research", ["nosuch@1"], home=home, name="missing", key=key),
    ):
        pass
    assert len(entries(home, "")) == before, "nothing recorded for a bad purpose or an unknown dataset"


def test_bytes_changed_after_the_decision_stop_the_reader(api_home, tmp_path):
    home, _root, key = api_home
    with (
        pytest.raises(ShardIntegrityError),
        custody.governed_run("research", ["shakespeare@1"], home=home, name="swap", key=key) as run,
    ):
        dataset = run.datasets[0]
        path = dataset.shard_path(dataset.manifest.shards[0])
        original = path.read_bytes()
        path.chmod(0o644)
        path.write_bytes(original + b"\n")
        try:
            list(run.records())
        finally:
            path.write_bytes(original)
    assert entries(home, "run.finished/", run.subject)[-1]["body"]["status"] == "failed"
