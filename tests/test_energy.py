"""Energy everywhere it is spent (issue 21 item 4): each check and stage measured by one tracker
and recorded in its entry (`check.completed/v2`, `stage.completed/v2`), old versions still read,
a failed run records what was measured up to the failure, and the totals add up."""

from __future__ import annotations

import json
import time

import pytest

from custody.checks.provenance import ProvenanceCheck
from custody.checks.results import latest_results
from custody.datasets.names import DatasetRef
from custody.home import Home
from custody.pipeline.run_check import run_check
from custody.pipeline.run_stage import run_stage
from custody.reports.energy import Total, dataset_energy, run_energy
from custody.runs import entry_types as _run_types  # noqa: F401  registers run.*
from custody.runs.outcome import RunOutcome, record_failed
from custody.runs.spec import load_spec
from custody.stages.catalog import STAGES
from custody.train.carbon import CarbonConfig, UnitMeter, measured_before, track_emissions
from custody.train.loop import Hooks, TrainConfig, train
from custody.views.footprint import dataset_totals, run_totals
from run_data import POLICY, SPEC, people_home, write
from train_support import register_shakespeare, tiny_gpt, token_data, torch_threads

FAST = CarbonConfig(measure_power_secs=1)
DIGEST = "ab" * 32


@pytest.fixture
def plain(tmp_path):
    home = Home.init(tmp_path / "home")
    yield home
    home.close()


def entry(home: Home, index: int) -> dict:
    return json.loads(home.ledger.entry(index).entry)


def test_a_check_records_one_measurement_in_its_entry(plain, tmp_path) -> None:
    dataset = register_shakespeare(plain, tmp_path, limit=60, shards=3)
    result = run_check(plain, dataset, ProvenanceCheck(), carbon=FAST)
    recorded = entry(plain, result.entry_index)
    assert recorded["type"] == "check.completed/v2"
    e = recorded["body"]["emissions"]
    assert e["energy_kwh"] >= 0 and e["emissions_kg_co2e"] >= 0 and e["water_l"] >= 0
    assert e["duration_s"] > 0
    assert e["tracker"].startswith("codecarbon OfflineEmissionsTracker (codecarbon ")
    assert e["water_l"] == pytest.approx(e["energy_kwh"] * e["wue_l_per_kwh"])
    # Measuring off: the entry is v1, exactly as before.
    off = run_check(plain, dataset, ProvenanceCheck(), carbon=None)
    assert entry(plain, off.entry_index)["type"] == "check.completed/v1"
    assert "emissions" not in off.body
    assert plain.ledger.verify(plain.verifier_key).ok


def test_a_stage_records_one_measurement_in_its_entry(plain, tmp_path) -> None:
    source = register_shakespeare(plain, tmp_path, limit=60, shards=3)
    stage = STAGES.build("normalize-unicode", plain)
    result = run_stage(plain, stage, source, DatasetRef("shakespeare", "1+clean"), carbon=FAST)
    recorded = entry(plain, result.entry_index)
    assert recorded["type"] == "stage.completed/v2"
    e = recorded["body"]["emissions"]
    assert e["energy_kwh"] >= 0 and e["duration_s"] > 0 and "codecarbon" in e["tracker"]
    # The dataset's total: the stage that produced it and the checks run on it.
    check = run_check(plain, result.output, ProvenanceCheck(), carbon=FAST)
    totals = dataset_energy(plain, result.output)
    c = check.body["emissions"]
    assert totals["checks"]["energy_kwh"] == pytest.approx(c["energy_kwh"])
    assert totals["stages"]["energy_kwh"] == pytest.approx(e["energy_kwh"])
    assert totals["total"]["energy_kwh"] == pytest.approx(c["energy_kwh"] + e["energy_kwh"])
    assert totals["total"]["water_l"] == pytest.approx(c["water_l"] + e["water_l"])
    assert (totals["total"]["measured"], totals["total"]["unmeasured"]) == (2, 0)
    shown = dataset_totals(plain, result.output)
    assert [row.part for row in shown][-1] == "total" and shown[-1].water.endswith("L")


def test_old_version_entries_still_read_and_verify(plain, tmp_path) -> None:
    dataset = register_shakespeare(plain, tmp_path, limit=30, shards=1)
    v2 = run_check(plain, dataset, ProvenanceCheck(), carbon=FAST)
    old = {k: v for k, v in v2.body.items() if k != "emissions"}
    index = plain.record("check.completed/v1", dataset.ref.subject, old)  # as an older custody wrote it
    found = latest_results(plain, dataset)["provenance"]
    assert found.entry_index == index and found.body.get("emissions") is None
    totals = dataset_energy(plain, dataset)
    assert (totals["checks"]["measured"], totals["checks"]["unmeasured"]) == (1, 1)
    with pytest.raises(ValueError):  # v2 without its measurement is refused
        plain.record("check.completed/v2", dataset.ref.subject, old)
    assert plain.ledger.verify(plain.verifier_key).ok


def test_the_tracker_never_fails_the_work_and_marks_a_failure(monkeypatch) -> None:
    with pytest.raises(KeyError) as raised, track_emissions(FAST, label="test"):
        time.sleep(0.2)
        raise KeyError("boom")
    partial = measured_before(raised.value)
    assert partial is not None and partial.duration_s >= 0.2
    import custody.train.carbon as carbon

    def broken(*args, **kwargs):
        raise OSError("no sensors")

    monkeypatch.setattr(carbon, "EmissionsMeter", broken)
    with UnitMeter(FAST, "test") as meter:
        pass
    body = meter.body()
    assert body["energy_kwh"] == 0 and body["tracker"].startswith("not measured: CodeCarbon did not start")


class _FailAt(Hooks):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step: int, metrics: dict) -> None:
        if step >= self.step:
            raise RuntimeError(f"injected failure at step {step}")


def test_a_run_that_fails_mid_training_records_what_it_measured(plain, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = token_data(plain, tmp_path / "data", limit=300)
    config = TrainConfig(steps=40, batch_size=4, warmup=2, eval_interval=0, eval_steps=1, log_interval=2)
    with torch_threads(1), pytest.raises(RuntimeError) as raised:
        train(tiny_gpt(), data, config, tmp_path / "run", hooks=_FailAt(6), carbon=FAST)
    measured = measured_before(raised.value)
    assert measured is not None and measured.duration_s > 0 and measured.energy_kwh > 0
    policy = write(tmp_path / "policy.toml", POLICY.format(approval=""))
    spec = load_spec(write(tmp_path / "spec.toml", SPEC.format(name="fails", kind="pretrain", policy=policy, extra="")))
    outcome = RunOutcome(spec, [], gate=None, run_id="fails-0123abcd")
    record_failed(plain, outcome, raised.value, "tester")
    body = entry(plain, outcome.entries["run.finished"])["body"]
    assert body["status"] == "failed" and "injected failure" in body["error"]
    e = body["emissions"]
    assert e["duration_s"] > 0 and e["energy_kwh"] == pytest.approx(measured.energy_kwh)
    assert not e["tracker"].startswith("not measured") and "up to the failure" in e["tracker"]
    # Nothing measured (the run failed before its meter started): "not measured", as before.
    record_failed(plain, RunOutcome(spec, [], gate=None, run_id="fails-4567cdef"), RuntimeError("early"), "tester")
    early = [json.loads(r.entry)["body"] for r in plain.storage.entries(0, 1000, type_prefix="run.finished/")][-1]
    assert early["emissions"]["energy_kwh"] == 0 and early["emissions"]["tracker"].startswith("not measured")


def _emissions(kwh: float, seconds: float = 10.0) -> dict:
    return {
        "duration_s": seconds,
        "energy_kwh": kwh,
        "emissions_kg_co2e": kwh * 0.4,
        "water_l": kwh * 1.8,
        "country_iso_code": "USA",
        "pue": 1.0,
        "wue_l_per_kwh": 1.8,
        "tracker": "codecarbon OfflineEmissionsTracker (codecarbon test)",
    }


def test_a_runs_total_is_preparation_plus_checks_plus_training(cast, tmp_path) -> None:
    plain = people_home(cast, tmp_path / "home")
    ref, subject = "web@1+for-t", "dataset:web@1+for-t"
    request = {"run": "t", "spec_digest": DIGEST, "purpose": "p", "datasets": [ref]}
    plain.record("run.requested/v1", "run:t", request, actor=cast.person(plain, "trainer"))
    check = {
        "check": "pii", "version": "1", "dataset": ref, "dataset_digest": DIGEST, "config_digest": DIGEST,
        "result_digest": DIGEST, "summary_digest": DIGEST, "records": 3, "verdicts": {"pass": 3}, "status": "pass",
    }  # fmt: skip
    plain.record("check.completed/v2", subject, {**check, "emissions": _emissions(0.002, 4)})
    plain.record("check.completed/v2", subject, {**check, "check": "toxicity", "emissions": _emissions(0.001, 2)})
    plain.record("check.completed/v2", "dataset:other@1", {**check, "emissions": _emissions(5.0)})  # not this run's
    started = {
        "run_id": "t-0123abcd", "name": "t", "kind": "pretrain", "spec_path": "t.toml", "spec_digest": DIGEST,
        "decision_index": 0, "datasets": [{"ref": ref, "digest": DIGEST}], "tokenizer_digest": DIGEST,
        "model_config_digest": DIGEST, "train_config_digest": DIGEST, "code_version": "test", "device": "cpu",
        "world_size": 1, "seed": 0, "parameters": 1, "preparation_emissions": _emissions(0.010, 30),
    }  # fmt: skip
    started_index = plain.record("run.started/v2", "run:t-0123abcd", started)
    finished = {
        "run_id": "t-0123abcd", "status": "failed", "error": "RuntimeError: x", "steps": 0, "tokens": 0,
        "tokens_per_s": 0.0, "metrics_digest": DIGEST, "emissions": _emissions(0.100, 60),
    }  # fmt: skip
    plain.record("run.finished/v2", "run:t-0123abcd", finished)
    plain.record("check.completed/v2", subject, {**check, "emissions": _emissions(7.0)})  # after the run started
    parts = run_energy(plain, plain.ledger.entry(started_index), finished)
    assert parts["checks"]["energy_kwh"] == pytest.approx(0.003) and parts["checks"]["measured"] == 2
    assert parts["preparation"]["energy_kwh"] == pytest.approx(0.007)  # the meter around both, less the checks
    assert parts["training"]["energy_kwh"] == pytest.approx(0.100)
    for field in ("energy_kwh", "emissions_kg_co2e", "water_l", "duration_s"):
        total = parts["preparation"][field] + parts["checks"][field] + parts["training"][field]
        assert parts["total"][field] == pytest.approx(total)
    assert parts["total"]["energy_kwh"] == pytest.approx(0.110)  # preparation's meter + training
    rows = run_totals(plain, "t-0123abcd")
    assert [r.part.split(" ")[0] for r in rows] == ["preparation", "checks", "training", "total"]
    assert rows[-1].energy_kwh == pytest.approx(0.110)
    plain.close()


def test_totals_never_go_below_zero_and_count_the_unmeasured() -> None:
    t = Total().add(_emissions(0.001)).add(None).add({**_emissions(0), "tracker": "not measured: the run failed"})
    assert (t.measured, t.unmeasured, t.energy_kwh) == (1, 2, 0.001)
    assert Total().add(_emissions(0.001)).less(Total().add(_emissions(0.002))).energy_kwh == 0.0
