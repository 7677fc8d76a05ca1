"""Replay: a recorded decision is evaluated again from its digests and must come out the same;
whatever changed since is named."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from custody.checks.catalog import build_check
from custody.checks.results import latest_results
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.pipeline.run_check import run_check
from custody.policy.gate import run_gate
from custody.policy.replay import replay
from custody.policy.schema import load_policy
from policy_data import LENIENT, REVIEW, base_home, cli, copy_home

TOXIC = LENIENT.replace("max_rate = 0.1", "max_rate = 0.05")


@pytest.fixture(scope="module")
def base(tmp_path_factory, shared_data):
    return base_home(tmp_path_factory, shared_data)


@pytest.fixture
def home(base, tmp_path):
    opened = copy_home(base, tmp_path / "home")
    yield opened
    opened.close()


def gated(home: Home, tmp_path, text: str, now: dt.datetime | None = None):
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path, run_gate(home, [DatasetRegistry(home).get("mix@1")], load_policy(path), now=now)


def test_replay_reproduces_decision_and_reasons(home, tmp_path):
    _, result = gated(home, tmp_path, TOXIC)
    assert result.decision.decision == "deny"
    report = replay(home, result.ledger_index)
    assert report.reproduced, report.problems
    assert report.replayed == report.recorded == result.decision.as_json()
    assert report.drift == []
    shown = cli(home, "gate", "replay", str(result.ledger_index))
    assert shown.exit_code == 0, shown.output
    assert "is deny again, with the same 1 reason" in shown.stdout
    assert "nothing it depended on has changed since" in shown.stdout


def test_replay_reproduces_reviews_and_waivers_at_the_recorded_time(home, tmp_path):
    _, first = gated(home, tmp_path, REVIEW)
    assert cli(home, "review", "approve", "mix@1/pii.present", "--reason", "ok", "--as", "bob").exit_code == 0
    now = dt.datetime.now(dt.UTC)
    _, second = gated(home, tmp_path, REVIEW)
    assert second.decision.decision == "allow" and second.decision.approved
    assert (
        cli(
            home,
            "review",
            "waive",
            "mix@1/pii.present",
            "--reason",
            "r",
            "--expires",
            (now + dt.timedelta(days=2)).date().isoformat(),
            "--as",
            "bob",
        ).exit_code
        == 0
    )
    # Three days later the waiver has expired; replaying the earlier decision still judges at its own time.
    _, third = gated(home, tmp_path, REVIEW, now=now + dt.timedelta(days=3))
    assert third.decision.decision == "needs-review"
    for result in (first, second, third):
        assert replay(home, result.ledger_index).reproduced


def test_replay_names_a_policy_edited_after_the_decision(home, tmp_path):
    path, result = gated(home, tmp_path, TOXIC)
    before = load_policy(path).digest
    path.write_text(TOXIC.replace("max_rate = 0.05", "max_rate = 0.5"), encoding="utf-8")
    after = load_policy(path).digest
    report = replay(home, result.ledger_index)
    assert report.reproduced  # from the policy bytes recorded at the decision, not the edited file
    assert report.replayed["decision"] == "deny"
    assert report.drift == [
        f"policy file {path} changed since the decision: sha256 {before[:12]} then, {after[:12]} now"
    ]
    shown = cli(home, "gate", "replay", str(result.ledger_index), "--json")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["drift"] == report.drift


def test_replay_names_new_results_reviews_and_a_deleted_policy(home, tmp_path):
    path, result = gated(home, tmp_path, REVIEW)
    mix = DatasetRegistry(home).get("mix@1")
    used = latest_results(home, mix)["toxicity"].entry_index
    rerun = run_check(home, mix, build_check("toxicity"))
    assert cli(home, "review", "reject", "mix@1/pii.present", "--reason", "no", "--as", "bob").exit_code == 0
    path.unlink()
    report = replay(home, result.ledger_index)
    assert report.reproduced
    assert report.drift == [
        f"policy file {path} no longer exists",
        f"mix@1: toxicity has a newer result at ledger index {rerun.entry_index} (same rows); "
        f"the decision used ledger index {used}",
        f"review at ledger index {home.ledger.size - 1} since the decision: reject mix@1/pii.present by bob",
    ]


def test_a_decision_whose_inputs_are_gone_cannot_be_reproduced(home, tmp_path):
    path, result = gated(home, tmp_path, TOXIC)
    body = json.loads(home.ledger.entry(result.ledger_index).entry)["body"]
    [own] = [p for p in body["policies"] if p["role"] == "spec"]  # the test's policy, beside the bound one
    home.store.erase(own["digest"]["sha256"])
    assert replay(home, result.ledger_index).reproduced  # the unchanged file stands in for the erased copy
    path.write_text(TOXIC + "\n# edited\n", encoding="utf-8")
    report = replay(home, result.ledger_index)
    assert not report.reproduced and "the recorded policy" in report.problems[0]
    shown = cli(home, "gate", "replay", str(result.ledger_index))
    assert shown.exit_code == 1 and "NOT reproduced" in shown.stdout


def test_a_tampered_input_document_is_detected(home, tmp_path):
    _, result = gated(home, tmp_path, TOXIC)
    body = json.loads(home.ledger.entry(result.ledger_index).entry)["body"]
    stored = home.store.path_for(body["input"]["digest"]["sha256"])
    document = json.loads(stored.read_bytes())
    document["datasets"][0]["checks"]["toxicity"]["summary"]["rate_above_threshold"] = 0.0
    os.chmod(stored, 0o644)
    stored.write_bytes(json.dumps(document).encode())
    report = replay(home, result.ledger_index)
    assert not report.reproduced
    assert "corrupted" in report.problems[0]


def test_a_forged_result_does_not_replay(home, tmp_path):
    _, result = gated(home, tmp_path, TOXIC)
    entry = json.loads(home.ledger.entry(result.ledger_index).entry)
    forged = {**entry["body"], "result": {"decision": "allow", "reasons": []}}
    index = home.record("policy.decision/v2", entry["subject"], forged)
    report = replay(home, index)
    assert not report.reproduced
    assert report.problems == [
        "decision: recorded allow, replayed deny",
        "reasons: mix@1/toxicity.max-rate is reproduced but was not recorded",
    ]
    assert cli(home, "gate", "replay", str(index)).exit_code == 1


def test_replay_of_something_else_is_bad_input(home):
    result = cli(home, "gate", "replay", "0")
    assert result.exit_code == 2 and "holds a home.initialized/v2 entry, not a policy decision" in result.stderr
    assert cli(home, "gate", "replay", "99999").exit_code == 2
