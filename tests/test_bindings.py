"""Policies bound by admins: the gate judges a purpose by its binding; a request's own policy can
only add reasons; an unbound purpose is denied; replay uses the binding in force at the decision."""

from __future__ import annotations

import json

import pytest

from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.policy.bindings import BindingError, bind, binding_at
from custody.policy.gate import GATE_UNBOUND, run_gate
from custody.policy.replay import replay
from custody.policy.reviews import ReviewError, record_review
from custody.policy.schema import load_policy
from custody.trust.acting import NotPermitted
from policy_data import CAST, HEADER, LENIENT, base_home, card_text, cli, copy_home, policy_from, write_jsonl

# What the issue found: a spec's own policy file with no rules, calling itself `default`.
EMPTY_DEFAULT = 'schema = 1\nname = "default"\npurpose = "commercial"\n'
# Every rule it has is waived for every dataset by its own waivers.
SELF_WAIVED = (
    HEADER
    + '[toxicity.max-rate]\nexplanation = "x"\nthreshold = 0.5\nmax_rate = 0.0\naction = "drop"\n'
    + '[[waivers]]\nrule = "toxicity.max-rate"\ndatasets = ["*"]\nreason = "r"\nexpires = 2099-01-01\n'
    + 'approved_by = "x"\n'
)


@pytest.fixture(scope="module")
def base(tmp_path_factory, shared_data):
    return base_home(tmp_path_factory, shared_data)


@pytest.fixture
def home(base, tmp_path):
    opened = copy_home(base, tmp_path / "home")
    yield opened
    opened.close()


def admin(home: Home):
    return CAST.person(home, "admin")


def test_binding_a_policy_that_allows_everything_is_refused(home, tmp_path):
    size = home.ledger.size
    for text, why in ((EMPTY_DEFAULT, "it has no rules"), (SELF_WAIVED, "its own waivers lift every rule")):
        path = tmp_path / "weak.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(BindingError, match=why):
            bind(home, "commercial", load_policy(path), admin(home))
        result = cli(home, "policy", "bind", "commercial", str(path), key="admin")
        assert result.exit_code == 2 and why in result.stderr and len(result.stderr.splitlines()) == 1
    assert home.ledger.size == size


def test_only_an_admin_binds(home, tmp_path):
    size = home.ledger.size
    path = tmp_path / "lenient.toml"
    path.write_text(LENIENT, encoding="utf-8")
    with pytest.raises(NotPermitted, match="needs role admin"):
        bind(home, "research", load_policy(path), CAST.person(home, "alice"))
    refused = cli(home, "policy", "bind", "research", str(path), key="alice")
    assert refused.exit_code == 2 and "needs role admin" in refused.stderr
    assert home.ledger.size == size


def test_a_spec_whose_own_policy_is_weaker_than_the_binding_is_denied(home, tmp_path):
    """The exploit from the issue: a requester's policy with no rules that calls itself `default`."""
    weak = policy_from(EMPTY_DEFAULT, tmp_path / "default.toml")
    mix = DatasetRegistry(home).get("mix@1")
    result = run_gate(home, [mix], weak, "commercial")
    assert result.decision.decision == "deny"
    assert "mix@1/license.allowed:non-commercial" in {r.finding for r in result.decision.reasons}
    roles = [(p.role, p.loaded.digest) for p in result.policies]
    assert roles == [("bound", binding_at(home, "commercial").digest), ("spec", weak.digest)]
    shown = cli(home, "gate", "mix@1", "--policy", str(tmp_path / "default.toml"))
    assert shown.exit_code == 3
    # Both named by digest; the spec's own is marked as not bound, whatever name it gives itself.
    bound = binding_at(home, "commercial").digest[:12]  # the shipped policies/default.toml
    assert f"policy default (sha256 {bound}, bound to commercial at ledger index" in shown.stdout
    assert f"policy default (sha256 {weak.digest[:12]}, named by the request, NOT bound" in shown.stdout
    body = json.loads(home.ledger.entry(result.ledger_index).entry)["body"]
    assert [p["role"] for p in body["policies"]] == ["bound", "spec"]


def test_a_spec_policy_stricter_than_the_binding_adds_its_reasons(home, tmp_path):
    mix = DatasetRegistry(home).get("mix@1")
    alone = run_gate(home, [mix], None, "research")
    assert alone.decision.decision == "allow"  # research is bound to the lenient policy
    strict = policy_from(LENIENT.replace("max_rate = 0.1", "max_rate = 0.01"), tmp_path / "strict.toml")
    added = run_gate(home, [mix], strict, "research")
    assert added.decision.decision == "deny"
    assert [r.finding for r in added.decision.reasons] == ["mix@1/toxicity.max-rate"]


def test_an_unbound_purpose_is_denied_with_its_own_reason(tmp_path, cast):
    home = cast.init_home(tmp_path / "home")
    cast.enroll(home, "alice", "engineer")
    cast.enroll(home, "bob", "reviewer", "approver")
    shard = write_jsonl(tmp_path / "d.jsonl", [{"id": str(i), "text": f"plain line {i}"} for i in range(5)])
    from custody.checks.catalog import build_check
    from custody.datasets.card import parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields
    from custody.pipeline.run_check import run_check

    data, _ = DatasetRegistry(home).register([shard], DatasetRef("d", "1"), parse_card(card_text()), Fields(id="id"))
    for name in ("provenance", "license"):
        run_check(home, data, build_check(name))
    # Lenient, and asks only for the two checks this tiny dataset has.
    rules = LENIENT.split("[pii.max-rate]")[0].replace(', "pii", "toxicity"', "")
    lenient = policy_from(rules, tmp_path / "lenient.toml")
    result = run_gate(home, [data], lenient, "research")  # the request's own policy would allow it
    assert result.decision.decision == "deny"
    assert [r.rule for r in result.decision.reasons if r.rule == GATE_UNBOUND] == [GATE_UNBOUND]
    unbound = next(r for r in result.decision.reasons if r.rule == GATE_UNBOUND)
    assert "custody policy bind research POLICY_FILE" in unbound.message
    with pytest.raises(ReviewError, match="cannot be approved or waived"):
        record_review(home, unbound.finding, "waive", "please", cast.person(home, "bob"), expires="2030-01-01")
    bind(home, "research", lenient, cast.person(home, "admin"))
    assert run_gate(home, [data], None, "research").decision.decision == "allow"
    home.close()


def test_replay_uses_the_binding_in_force_at_the_decision(home, tmp_path):
    mix = DatasetRegistry(home).get("mix@1")
    first = run_gate(home, [mix], None, "research")
    assert first.decision.decision == "allow"
    stricter = policy_from(LENIENT.replace("max_rate = 0.1", "max_rate = 0.01"), tmp_path / "stricter.toml")
    rebound = bind(home, "research", stricter, admin(home))
    assert run_gate(home, [mix], None, "research").decision.decision == "deny"  # the new binding governs now
    report = replay(home, first.ledger_index)
    assert report.reproduced, report.problems
    assert any(f"since ledger index {rebound}" in d for d in report.drift)
    listed = json.loads(cli(home, "policy", "bindings", "--json").stdout)
    assert listed["research"]["ledger_index"] == rebound and listed["research"]["policy"]["digest"] == stricter.digest
    history = json.loads(cli(home, "policy", "bindings", "--all", "--json").stdout)
    assert [b["purpose"] for b in history].count("research") == 2


def test_a_binding_written_around_the_library_does_not_count(home, tmp_path):
    """A non-admin's binding appended behind the admission check (an insider with the database)
    is ignored by the gate and named by `ledger verify`."""
    weak = policy_from(EMPTY_DEFAULT.replace("commercial", "research"), tmp_path / "weak.toml")
    home.store.put_bytes(weak.raw)
    body = {
        "purpose": "research",
        "policy": {"path": str(weak.path), "name": "default", "digest": {"sha256": weak.digest}, "schema": 1},
        "rules": ["none"],
    }
    alice = CAST.person(home, "alice")
    forged = home.entry("policy.bound/v1", "purpose:research", body, actor=alice)  # alice's real signature
    index = home.ledger.append_batch([forged])[0]  # no admission: she is no admin
    assert binding_at(home, "research").index != index
    verified = cli(home, "ledger", "verify", "--json")
    assert verified.exit_code == 1
    assert json.loads(verified.stdout)["first_bad_index"] == index
