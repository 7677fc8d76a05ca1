"""Reviews: list, approve, reject, waive; expiry; separation of duties; waivers in the policy."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from custody.datasets.registry import DatasetRegistry
from custody.home import Home, HomeError
from custody.policy.gate import run_gate
from custody.policy.reviews import ReviewError, record_review
from custody.policy.schema import load_policy
from custody.trust.acting import NotPermitted
from policy_data import CAST, LENIENT, OWNER, REVIEW, base_home, cli, copy_home

# Toxicity at 6.25% of mix@1 is above this 5% limit: a deny reason a waiver can lift.
TOXIC = LENIENT.replace("max_rate = 0.1", "max_rate = 0.05")
WAIVER = (
    '[[waivers]]\nrule = "toxicity.max-rate"\ndatasets = ["{pattern}"]\n'
    'reason = "toxic examples are the point (GOV-118)"\nexpires = 2030-06-30\napproved_by = "legal@example.org"\n'
)


@pytest.fixture(scope="module")
def base(tmp_path_factory, shared_data):
    return base_home(tmp_path_factory, shared_data)


@pytest.fixture
def home(base, tmp_path):
    opened = copy_home(base, tmp_path / "home")
    yield opened
    opened.close()


def policy_file(tmp_path, text: str, name: str = "p.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# `custody gate` exits with its decision (custody.cli.policy_cmds): anything else is a failure.
GATE_EXIT = {"allow": 0, "deny": 3, "needs-review": 4}


def gate(home: Home, policy: str, *extra: str) -> dict:
    result = cli(home, "gate", "mix@1", "--policy", policy, "--json", *extra)
    assert result.exit_code in GATE_EXIT.values(), result.output
    decided = json.loads(result.stdout)
    assert result.exit_code == GATE_EXIT[decided["decision"]], (decided["decision"], result.exit_code)
    return decided


def test_list_approve_then_the_gate_allows(home, tmp_path):
    policy = policy_file(tmp_path, REVIEW)
    first = gate(home, policy)
    assert first["decision"] == "needs-review"
    listed = json.loads(cli(home, "review", "list", "--json").stdout)
    assert [(f["finding"], f["outcome"], f["decision_index"]) for f in listed] == [
        ("mix@1/pii.present", "review", first["ledger_index"])
    ]
    approved = cli(home, "review", "approve", "mix@1/pii.present", "--reason", "names in synthetic data", "--as", "bob")
    assert approved.exit_code == 0, approved.output
    index = int(approved.stdout.rsplit("ledger index ", 1)[1].rstrip(")\n"))
    entry = json.loads(home.ledger.entry(index).entry)
    assert (entry["type"], entry["actor"], entry["subject"]) == ("review.recorded/v1", "bob", "dataset:mix@1")
    assert entry["body"] == {
        "finding": "mix@1/pii.present",
        "rule": "findings.review",
        "action": "approve",
        "reason": "names in synthetic data",
        "decision_index": first["ledger_index"],
    }
    assert cli(home, "review", "list").stdout.strip() == "no open findings"
    second = gate(home, policy)
    assert second["decision"] == "allow" and second["reasons"] == []
    assert second["approved"] == [
        {
            "finding": "mix@1/pii.present",
            "rule": "findings.review",
            "outcome": "review",
            "by": f"ledger:{index}",
            "reviewer": "bob",
        }
    ]
    body = json.loads(home.ledger.entry(second["ledger_index"]).entry)["body"]
    assert {"ledger_index": index} in body["reviews"]


def test_the_registrant_cannot_approve_or_waive_but_can_reject(home, tmp_path):
    gate(home, policy_file(tmp_path, REVIEW))
    size = home.ledger.size
    for action, extra in (("approve", ()), ("waive", ("--expires", "2030-01-01"))):
        refused = cli(home, "review", action, "mix@1/pii.present", "--reason", "mine", "--as", OWNER, *extra)
        assert refused.exit_code == 2, refused.output
        assert "separation of duties" in refused.stderr and f"{OWNER} registered mix@1" in refused.stderr
    assert home.ledger.size == size
    rejected = cli(home, "review", "reject", "mix@1/pii.present", "--reason", "not clean enough", "--as", OWNER)
    assert rejected.exit_code == 0, rejected.output
    decision = gate(home, policy_file(tmp_path, REVIEW))
    assert decision["decision"] == "deny"
    assert decision["reasons"][0]["message"].endswith(
        f"rejected by {OWNER} (ledger:{home.ledger.size - 2}): not clean enough"
    )


def test_a_self_approval_written_around_the_cli_does_not_count(home, tmp_path):
    first = gate(home, policy_file(tmp_path, REVIEW))
    index = home.record(
        "review.recorded/v1",
        "dataset:mix@1",
        {
            "finding": "mix@1/pii.present",
            "rule": "findings.review",
            "action": "approve",
            "reason": "looks fine to me",
            "decision_index": first["ledger_index"],
        },
        actor=CAST.person(home, OWNER),  # her own valid signature: only the duty rule keeps it out
    )
    listed = json.loads(cli(home, "review", "list", "--json").stdout)
    assert [f["finding"] for f in listed] == ["mix@1/pii.present"]  # still open: that approval does not count
    second = gate(home, policy_file(tmp_path, REVIEW))
    assert second["decision"] == "needs-review"
    assert second["not_applied"] == [
        {
            "finding": "mix@1/pii.present",
            "by": f"ledger:{index}",
            "why": f"separation of duties: {OWNER} registered or requested mix@1",
        }
    ]


def test_the_latest_review_decides(home, tmp_path):
    policy = policy_file(tmp_path, REVIEW)
    gate(home, policy)
    assert cli(home, "review", "approve", "mix@1/pii.present", "--reason", "ok", "--as", "bob").exit_code == 0
    assert gate(home, policy)["decision"] == "allow"
    assert (
        cli(home, "review", "reject", "mix@1/pii.present", "--reason", "on second thought", "--as", "carol").exit_code
        == 0
    )
    denied = gate(home, policy)
    assert denied["decision"] == "deny" and "rejected by carol" in denied["reasons"][0]["message"]


def test_a_waiver_counts_until_it_expires(home, tmp_path):
    policy = policy_file(tmp_path, TOXIC)
    first = gate(home, policy)
    assert [r["finding"] for r in first["reasons"]] == ["mix@1/toxicity.max-rate"]
    listed = json.loads(cli(home, "review", "list", "--all", "--json").stdout)
    assert [f["finding"] for f in listed] == ["mix@1/toxicity.max-rate"]
    assert json.loads(cli(home, "review", "list", "--json").stdout) == []  # a deny needs fixing, not a person
    waived = cli(
        home,
        "review",
        "waive",
        "mix@1/toxicity.max-rate",
        "--reason",
        "moderation data",
        "--expires",
        "2030-01-01",
        "--as",
        "bob",
    )
    assert waived.exit_code == 0, waived.output
    assert "until 2030-01-02T00:00:00.000000Z" in waived.stdout
    loaded = load_policy(policy)
    mix = [DatasetRegistry(home).get("mix@1")]
    last_moment = run_gate(home, mix, loaded, now=dt.datetime(2030, 1, 1, 23, 59, 59, tzinfo=dt.UTC))
    assert last_moment.decision.decision == "allow"
    assert last_moment.decision.waived[0]["expires"] == "2030-01-02T00:00:00.000000Z"
    expired = run_gate(home, mix, loaded, now=dt.datetime(2030, 1, 2, tzinfo=dt.UTC))
    assert expired.decision.decision == "deny"
    assert expired.decision.not_applied[0]["why"] == "expired at 2030-01-02T00:00:00.000000Z"


def test_refused_reviews(home, tmp_path):
    gate(home, policy_file(tmp_path, TOXIC))
    default = gate(home, "default")
    assert "mix@1/pii.max-rate:CREDIT_CARD" in {r["finding"] for r in default["reasons"]}

    def refused(*args: str) -> str:
        result = cli(home, "review", *args)
        assert result.exit_code == 2, result.output
        return result.stderr

    assert "needs --expires" in refused("waive", "mix@1/toxicity.max-rate", "--reason", "r", "--as", "bob")
    assert "not in the future" in refused(
        "waive", "mix@1/toxicity.max-rate", "--reason", "r", "--expires", "2020-01-01", "--as", "bob"
    )
    assert "not a date" in refused(
        "waive", "mix@1/toxicity.max-rate", "--reason", "r", "--expires", "soon", "--as", "bob"
    )
    assert "an approval cannot lift it" in refused("approve", "mix@1/toxicity.max-rate", "--reason", "r", "--as", "bob")
    assert "cannot be approved or waived (block)" in refused(
        "waive", "mix@1/pii.max-rate:CREDIT_CARD", "--reason", "r", "--expires", "2030-01-01", "--as", "bob"
    )
    assert "no gate decision reported finding 'mix@1/nothing'" in refused(
        "approve", "mix@1/nothing", "--reason", "r", "--as", "bob"
    )
    assert "does not expire" in refused(
        "reject", "mix@1/toxicity.max-rate", "--reason", "r", "--expires", "2030-01-01", "--as", "bob"
    )
    assert "--reason must say why" in refused("reject", "mix@1/toxicity.max-rate", "--reason", " ", "--as", "bob")
    # The CLI's default key here is an engineer's: no role to review, whatever name is given.
    assert "may not approve findings; needs role approver or reviewer" in refused(
        "approve", "mix@1/toxicity.max-rate", "--reason", "r"
    )
    assert "may not waive findings; needs role approver" in refused(
        "waive", "mix@1/toxicity.max-rate", "--reason", "r", "--expires", "2030-01-01", "--as", "rita"
    )


def test_waivers_written_in_the_policy(home, tmp_path):
    mix = [DatasetRegistry(home).get("mix@1")]
    in_force = dt.datetime(2030, 6, 30, 12, tzinfo=dt.UTC)
    covered = load_policy(policy_file(tmp_path, TOXIC + WAIVER.format(pattern="mix@*"), "covered.toml"))
    result = run_gate(home, mix, covered, now=in_force)
    assert result.decision.decision == "allow"
    assert result.decision.waived == (
        {
            "finding": "mix@1/toxicity.max-rate",
            "rule": "toxicity.max-rate",
            "outcome": "deny",
            "by": "policy:waivers[0]",
            "reviewer": "legal@example.org",
            "expires": "2030-07-01T00:00:00.000000Z",
        },
    )
    after = run_gate(home, mix, covered, now=dt.datetime(2030, 7, 1, 0, 0, 1, tzinfo=dt.UTC))
    assert after.decision.decision == "deny"
    assert after.decision.not_applied[0] == {
        "finding": "mix@1/toxicity.max-rate",
        "by": "policy:waivers[0]",
        "why": "expired after 2030-06-30",
    }
    other = load_policy(policy_file(tmp_path, TOXIC + WAIVER.format(pattern="other@1"), "other.toml"))
    assert run_gate(home, mix, other, now=in_force).decision.decision == "deny"


def test_a_run_is_approved_by_someone_other_than_its_requester(home, tmp_path):
    policy = policy_file(tmp_path, LENIENT + '[training.approval]\nexplanation = "x"\n')
    first = gate(home, policy, "--run", "r1", "--as", "carol")
    assert [r["finding"] for r in first["reasons"]] == ["run:r1/training.approval"]
    refused = cli(home, "review", "approve", "run:r1/training.approval", "--reason", "mine", "--as", "carol")
    assert refused.exit_code == 2 and "carol requested run:r1" in refused.stderr
    assert (
        cli(home, "review", "approve", "run:r1/training.approval", "--reason", "budget ok", "--as", "bob").exit_code
        == 0
    )
    assert gate(home, policy, "--run", "r1", "--as", "carol")["decision"] == "allow"
    assert gate(home, policy, "--run", "r2", "--as", "carol")["decision"] == "needs-review"  # approvals are per run


def test_record_review_needs_the_reviewers_key_not_a_name(home, tmp_path):
    gate(home, policy_file(tmp_path, REVIEW))
    size = home.ledger.size
    with pytest.raises(NotPermitted, match="needs the acting person's key"):
        record_review(home, "mix@1/pii.present", "approve", "ok", "bob")
    with pytest.raises(HomeError) as named:  # a name no entry could carry is refused before anything else
        record_review(home, "mix@1/pii.present", "approve", "ok", "bob smith")
    assert str(named.value) == "actor name 'bob smith' must be non-empty, without spaces, at most 200 characters"
    stranger = cli(home, "review", "approve", "mix@1/pii.present", "--reason", "ok", "--as", "bob smith")
    assert stranger.exit_code == 2 and "is not on this home's roster" in stranger.stderr
    assert home.ledger.size == size
    with pytest.raises(ReviewError, match="no gate decision"):
        record_review(home, "books@1/pii.present", "approve", "ok", CAST.person(home, "bob"))
