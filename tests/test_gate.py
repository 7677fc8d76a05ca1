"""The gate: decisions recorded before they are returned, exit codes, and failing closed."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.policy.gate import run_gate
from custody.policy.schema import load_policy
from policy_data import CAST, LENIENT, REVIEW, base_home, cli, copy_home, policy_from, read_jsonl


@pytest.fixture(scope="module")
def base(tmp_path_factory, shared_data):
    return base_home(tmp_path_factory, shared_data)


@pytest.fixture
def home(base, tmp_path):
    opened = copy_home(base, tmp_path / "home")
    yield opened
    opened.close()


def decisions(home: Home) -> list:
    return home.storage.entries(0, 1000, type_prefix="policy.decision/")


def test_the_decision_is_in_the_ledger_when_the_gate_returns(home, tmp_path):
    loaded = policy_from(LENIENT, tmp_path / "lenient.toml")
    mix = DatasetRegistry(home).get("mix@1")
    result = run_gate(home, [mix], loaded)
    assert (result.decision.decision, result.recorded) == ("allow", True)
    row = home.ledger.entry(result.ledger_index)
    entry = json.loads(row.entry)
    assert entry["type"] == "policy.decision/v2" and entry["subject"] == "dataset:mix@1"
    body = entry["body"]
    assert body["result"] == result.decision.as_json()
    assert body["subjects"] == [{"name": "dataset:mix@1", "digest": {"sha256": mix.digest}}]
    # The same bytes as the policy the admin bound to research: judged by the binding alone.
    digest = hashlib.sha256((tmp_path / "lenient.toml").read_bytes()).hexdigest()
    from custody.policy.bindings import binding_at

    bound = binding_at(home, "research")
    assert bound.digest == digest
    assert body["policy"] == {
        "path": str(bound.loaded.path),
        "name": "lenient",
        "digest": {"sha256": digest},
        "schema": 1,
    }
    assert body["policies"] == [{**body["policy"], "role": "bound", "binding_index": bound.index}]
    assert f"ledger:{bound.index}" in entry["refs"]
    assert home.store.read_bytes(body["policy"]["digest"]["sha256"]) == loaded.raw
    stored = home.store.read_bytes(body["input"]["digest"]["sha256"])
    assert body["input"]["artifact"] == f"sha256:{hashlib.sha256(stored).hexdigest()}"
    document = json.loads(stored)
    assert document["evaluated_at"] == body["evaluated_at"] and document["purpose"] == body["purpose"] == "research"
    from custody.checks.results import latest_results

    latest = latest_results(home, mix)
    assert {(c["name"], c["result_digest"]["sha256"], c["ledger_index"]) for c in body["checks"]} == {
        (name, r.result_digest, r.entry_index) for name, r in latest.items()
    }
    assert {f"ledger:{r.entry_index}" for r in latest.values()} <= set(entry["refs"])
    assert body["requested_by"] == entry["actor"] == "tester"
    assert home.attribute(row).kind == "service"  # the service signs decisions, naming who asked


def test_exit_codes_allow_deny_needs_review(home, tmp_path):
    lenient, review = tmp_path / "lenient.toml", tmp_path / "review.toml"
    lenient.write_text(LENIENT, encoding="utf-8")
    review.write_text(REVIEW, encoding="utf-8")
    allowed = cli(home, "gate", "mix@1", "--policy", str(lenient))
    assert allowed.exit_code == 0, allowed.output
    assert allowed.stdout.startswith("allow: 0 reasons — purpose research, policy lenient (sha256 ")
    assert ", bound to research at ledger index " in allowed.stdout
    denied = cli(home, "gate", "mix@1", "--policy", str(lenient), "--purpose", "commercial")
    assert denied.exit_code == 3, denied.output
    assert "mix@1/license.allowed:purpose:commercial" in denied.stdout
    needs = cli(home, "gate", "mix@1", "--policy", str(review), "--json")
    assert needs.exit_code == 4, needs.output
    doc = json.loads(needs.stdout)
    assert doc["decision"] == "needs-review" and doc["recorded"] is True
    assert [r["finding"] for r in doc["reasons"]] == ["mix@1/pii.present"]
    assert json.loads(home.ledger.entry(doc["ledger_index"]).entry)["body"]["decision_id"] == doc["decision_id"]
    assert len(decisions(home)) == 3


def test_the_shipped_default_policy_denies_with_every_reason(home):
    result = cli(home, "gate", "mix@1", "--policy", "default", "--json")
    assert result.exit_code == 3, result.output
    reasons = {r["finding"]: r for r in json.loads(result.stdout)["reasons"]}
    assert reasons["mix@1/license.allowed:non-commercial"]["outcome"] == "deny"
    assert reasons["mix@1/pii.max-rate:EMAIL_ADDRESS"]["action"] == "redact"
    assert reasons["mix@1/pii.max-rate:CREDIT_CARD"]["action"] == "block"
    assert reasons["mix@1/toxicity.max-rate"]["action"] == "drop"


def _refuse_decisions(home: Home) -> None:
    """A real storage failure: the database refuses decision rows (as a full disk or a revoked
    grant would), behind the library's back."""
    conn = sqlite3.connect(home.path / "ledger.sqlite")
    conn.execute(
        "CREATE TRIGGER refuse_decisions BEFORE INSERT ON entries WHEN NEW.type LIKE 'policy.decision/%' "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    conn.commit()
    conn.close()


def test_a_decision_the_ledger_refuses_is_a_deny(home, tmp_path):
    loaded = policy_from(LENIENT, tmp_path / "lenient.toml")
    mix = DatasetRegistry(home).get("mix@1")
    _refuse_decisions(home)
    size = home.ledger.size
    result = run_gate(home, [mix], loaded)
    assert result.decision.decision == "deny" and result.recorded is False and result.ledger_index is None
    assert [r.rule for r in result.decision.reasons] == ["gate.recorded"]
    assert "the decision (allow) could not be recorded" in result.decision.reasons[0].message
    assert "database or disk is full" in result.error
    assert home.ledger.size == size and not decisions(home)


def test_the_cli_exits_deny_when_the_decision_is_not_recorded(home, tmp_path):
    (tmp_path / "lenient.toml").write_text(LENIENT, encoding="utf-8")
    _refuse_decisions(home)
    result = cli(home, "gate", "mix@1", "--policy", str(tmp_path / "lenient.toml"))
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith("deny:") and "NOT RECORDED" in result.stdout
    assert "error: the decision could not be recorded, so it is a deny" in result.stderr
    assert not decisions(home)


def test_bad_input_records_nothing(home, tmp_path):
    size = home.ledger.size
    bad = tmp_path / "bad.toml"
    bad.write_text(LENIENT + "surprise = 1\n", encoding="utf-8")
    result = cli(home, "gate", "mix@1", "--policy", str(bad))
    assert result.exit_code == 2
    line = len(LENIENT.splitlines()) + 1
    assert result.stderr.strip() == f"error: {bad}:{line}: unknown key 'toxicity.max-rate.surprise'"
    assert cli(home, "gate", "nope@1", "--policy", "default").exit_code == 2
    assert cli(home, "gate", "mix@1", "--policy", "default", "--purpose", "fun").exit_code == 2
    assert cli(home, "gate", "mix@1", "--policy", "default", "--estimated-kwh", "3").exit_code == 2
    assert home.ledger.size == size


def test_several_datasets_in_one_decision(home):
    result = cli(home, "gate", "mix@1", "books@1", "--policy", "default", "--json")
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert {r["subject"] for r in doc["reasons"]} == {"mix@1", "books@1"}
    assert "books@1/provenance.denied-sources:list:books3" in {r["finding"] for r in doc["reasons"]}
    entry = json.loads(home.ledger.entry(doc["ledger_index"]).entry)
    assert entry["subject"] == "datasets:books@1,mix@1"
    assert [s["name"] for s in entry["body"]["subjects"]] == ["dataset:books@1", "dataset:mix@1"]


def test_a_training_run_needs_approval_and_a_budget(home, tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        LENIENT + '[training.budget]\nexplanation = "x"\nmax_kwh = 50.0\n' + '[training.approval]\nexplanation = "x"\n',
        encoding="utf-8",
    )
    within = cli(home, "gate", "mix@1", "--policy", str(path), "--run", "r1", "--estimated-kwh", "40", "--json")
    assert within.exit_code == 4, within.output
    doc = json.loads(within.stdout)
    assert [r["finding"] for r in doc["reasons"]] == ["run:r1/training.approval"]
    assert json.loads(home.ledger.entry(doc["ledger_index"]).entry)["subject"] == "run:r1"
    over = cli(home, "gate", "mix@1", "--policy", str(path), "--run", "r1", "--estimated-kwh", "80")
    assert over.exit_code == 3 and "run:r1/training.budget:kwh" in over.stdout


def test_no_personal_data_reaches_the_ledger(home, shared_data):
    emails = [
        s["value"]
        for d in read_jsonl(shared_data / "pii_presidio_synth" / "data.jsonl")[:200]
        for s in d["spans"]
        if s["entity_type"] == "EMAIL_ADDRESS"
    ]
    assert emails
    assert cli(home, "gate", "mix@1", "--policy", "default").exit_code == 3
    ledger = b"".join(row.entry for row in home.storage.iter_entries())
    assert b"policy.decision/v2" in ledger
    assert not [e for e in emails if e.encode() in ledger]


def test_shipped_policies_gate_without_error(home):
    for name in ("default", "research", "strict"):
        loaded = load_policy(name)
        result = run_gate(home, [DatasetRegistry(home).get("books@1")], loaded)
        assert result.recorded and result.decision.decision == "deny"


@pytest.mark.postgres
def test_gate_and_replay_on_postgresql(tmp_path, postgres_url):
    from custody.checks.catalog import build_check
    from custody.datasets.card import parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields
    from custody.pipeline.run_check import run_check
    from custody.policy.replay import replay
    from policy_data import bind_lenient, card_text, enroll_people, write_jsonl

    home = CAST.init_home(tmp_path / "home", database=postgres_url)
    try:
        enroll_people(home)
        bind_lenient(home, tmp_path)
        shard = write_jsonl(tmp_path / "d.jsonl", [{"id": str(i), "text": f"line {i}"} for i in range(5)])
        dataset, _ = DatasetRegistry(home).register(
            [shard], DatasetRef("pg", "1"), parse_card(card_text()), Fields(id="id"), actor="alice"
        )
        for name in ("provenance", "license"):
            run_check(home, dataset, build_check(name))
        rules = LENIENT.split("[pii.max-rate]")[0].replace(', "pii", "toxicity"', "")
        from custody.policy.bindings import bind

        bind(home, "research", policy_from(rules, tmp_path / "pg.toml"), CAST.person(home, "admin"))
        result = run_gate(home, [dataset], None, "research")
        assert (result.decision.decision, result.recorded) == ("allow", True)
        assert replay(home, result.ledger_index).reproduced
    finally:
        home.close()
