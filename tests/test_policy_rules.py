"""Every rule, in both outcomes, over facts gathered from real check results.

mix@1: 80 records (PII from presidio's synthetic set, toxic comments from Jigsaw; 10 records
CC-BY-NC-4.0), all four checks. books@1: Shakespeare lines whose card names a denied source
(Books3) and lacks a steward; provenance and license checks only.
"""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.policy.evaluate import evaluate
from custody.policy.inputs import RunContext, gather
from custody.policy.schema import parse_policy
from policy_data import HEADER, NC_RECORDS, OWNER, base_home, card_text, copy_home, write_jsonl

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def base(tmp_path_factory, shared_data):
    return base_home(tmp_path_factory, shared_data)


@pytest.fixture(scope="module")
def doc(base, tmp_path_factory):
    home = copy_home(base, tmp_path_factory.mktemp("rules") / "home")
    registry = DatasetRegistry(home)
    gathered = gather(home, [registry.get("mix@1"), registry.get("books@1")], "commercial", NOW)
    home.close()
    return gathered


def decide(doc: dict, rules: str, dataset: str | None = None, purpose: str | None = None, run: dict | None = None):
    facts = copy.deepcopy(doc)
    if dataset:
        facts["datasets"] = [d for d in facts["datasets"] if d["dataset"] == dataset]
    if purpose:
        facts["purpose"] = purpose
    facts["run"] = run
    return evaluate(parse_policy(HEADER + rules), facts)


def findings(decision) -> dict[str, str]:
    return {r.finding: r.outcome for r in decision.reasons}


def only(decision):
    assert len(decision.reasons) == 1, [r.as_json() for r in decision.reasons]
    return decision.reasons[0]


# -- freshness.current -----------------------------------------------------------------------

FRESH = '[freshness.current]\nexplanation = "x"\nchecks = ["provenance", "license", "pii", "toxicity"]\n'


def test_freshness_passes_with_current_results_of_every_required_check(doc):
    assert decide(doc, FRESH, "mix@1").decision == "allow"


def test_freshness_denies_a_missing_required_check(doc):
    decision = decide(doc, FRESH, "books@1")
    assert findings(decision) == {"books@1/freshness.current:pii": "deny", "books@1/freshness.current:toxicity": "deny"}
    assert "custody check books@1 --checks pii" in decision.reasons[0].message


def test_freshness_denies_a_result_from_an_older_check_version(base, tmp_path):
    home = copy_home(base, tmp_path / "home")
    mix = DatasetRegistry(home).get("mix@1")
    current = json.loads(home.ledger.entry(max(_check_indices(home, "mix@1"))).entry)["body"]
    # A result written by an older pii check (as after an upgrade): a real ledger entry.
    old = {**current, "check": "pii", "version": "0.9.0"}
    old.pop("emissions", None)  # as an older custody recorded it: v1, before checks were measured
    home.record("check.completed/v1", mix.ref.subject, old)
    decision = evaluate(parse_policy(HEADER + FRESH), gather(home, [mix], "commercial", NOW))
    reason = only(decision)
    assert reason.finding == "mix@1/freshness.current:pii"
    assert "comes from pii 0.9.0, the current version is 1.1.0" in reason.message


def test_freshness_denies_a_result_for_other_bytes(base, tmp_path):
    home = copy_home(base, tmp_path / "home")
    registry = DatasetRegistry(home)
    mix, books = registry.get("mix@1"), registry.get("books@1")
    body = json.loads(home.ledger.entry(max(_check_indices(home, "mix@1"))).entry)["body"]
    body.pop("emissions", None)  # a v1 entry, as recorded before checks were measured
    home.record("check.completed/v1", mix.ref.subject, {**body, "dataset_digest": books.digest})
    reason = only(evaluate(parse_policy(HEADER + FRESH), gather(home, [mix], "commercial", NOW)))
    assert f"describes dataset digest {books.digest[:12]}, not the current {mix.digest[:12]}" in reason.message


def test_freshness_verify_bytes_catches_in_place_data_that_changed(base, tmp_path):
    home = copy_home(base, tmp_path / "home")
    shard = write_jsonl(tmp_path / "live.jsonl", [{"text": "one"}, {"text": "two"}])
    from custody.datasets.card import parse_card

    live, _ = DatasetRegistry(home).register(
        [shard], DatasetRef("live", "1"), parse_card(card_text()), Fields(), in_place=True
    )
    rules = '[freshness.current]\nexplanation = "x"\nverify_bytes = true\n'
    policy = parse_policy(HEADER + rules)
    assert evaluate(policy, gather(home, [live], "commercial", NOW, verify_bytes=True)).decision == "allow"
    shard.write_text('{"text": "one"}\n{"text": "changed"}\n', encoding="utf-8")
    reason = only(evaluate(policy, gather(home, [live], "commercial", NOW, verify_bytes=True)))
    assert reason.finding == "live@1/freshness.current:bytes"
    assert "live.jsonl: bytes do not match the manifest digest" in reason.message
    # Not verified at all: the rule cannot be judged, so it denies.
    assert only(evaluate(policy, gather(home, [live], "commercial", NOW))).outcome == "deny"


def _check_indices(home, ref: str) -> list[int]:
    rows = home.storage.entries(0, 1000, type_prefix="check.completed/", subject=f"dataset:{ref}")
    return [row.idx for row in rows if json.loads(row.entry)["body"]["check"] == "pii"]


# -- provenance ------------------------------------------------------------------------------

REQUIRED = '[provenance.required-fields]\nexplanation = "x"\nfields = ["dataset.title", "governance.steward"]\n'


def test_required_fields_pass_when_the_card_has_them(doc):
    assert decide(doc, REQUIRED, "mix@1").decision == "allow"


def test_required_fields_deny_naming_the_missing_field(doc):
    reason = only(decide(doc, REQUIRED, "books@1"))
    assert (reason.finding, reason.outcome) == ("books@1/provenance.required-fields", "deny")
    assert reason.message == "the dataset card lacks required fields: governance.steward"
    assert only(decide(doc, REQUIRED + 'on_fail = "review"\n', "books@1")).outcome == "review"


DENIED = '[provenance.denied-sources]\nexplanation = "x"\n'


def test_denied_sources_from_the_check_deny_list(doc):
    assert decide(doc, DENIED, "mix@1").decision == "allow"
    reason = only(decide(doc, DENIED, "books@1"))
    assert reason.finding == "books@1/provenance.denied-sources:list:books3"
    assert "Books3 mirror" in reason.message and reason.outcome == "deny"


def test_denied_sources_by_the_policys_own_patterns(doc):
    assert decide(doc, DENIED + 'check_deny_list = false\nnames = ["*wikipedia*"]\n', "books@1").decision == "allow"
    by_kind = only(decide(doc, DENIED + 'kinds = ["scraped"]\n', "mix@1"))
    assert by_kind.finding == "mix@1/provenance.denied-sources:source:Example crawl 2026-01"
    assert "this policy denies scraped sources" in by_kind.message
    by_url = only(decide(doc, DENIED + 'urls = ["https://example.org/*"]\n', "mix@1"))
    assert "URI matches 'https://example.org/*'" in by_url.message


# -- license.allowed -------------------------------------------------------------------------

LICENSE = (
    '[license.allowed]\nexplanation = "x"\n'
    '[license.allowed.commercial]\ncategories = ["public-domain", "permissive"]\n'
    '[license.allowed.research]\ncategories = ["public-domain", "permissive", "non-commercial"]\n'
)


def test_license_denies_non_commercial_records_for_commercial_use(doc):
    reason = only(decide(doc, LICENSE, "mix@1"))
    assert reason.finding == "mix@1/license.allowed:non-commercial"
    assert reason.message == (
        f"non-commercial licenses are not allowed for commercial use: {NC_RECORDS} records CC-BY-NC-4.0"
    )


def test_license_allows_them_for_research(doc):
    assert decide(doc, LICENSE, "mix@1", purpose="research").decision == "allow"
    assert decide(doc, LICENSE, "books@1").decision == "allow"  # CC-BY-4.0 declared, nothing else


def test_license_allows_a_listed_id_whatever_its_category(doc):
    rules = LICENSE.replace(
        'categories = ["public-domain", "permissive"]\n', 'categories = ["permissive"]\nids = ["cc-by-nc-4.0"]\n', 1
    )
    assert decide(doc, rules, "mix@1").decision == "allow"


def test_license_without_an_allowance_for_the_purpose_denies(doc):
    rules = '[license.allowed]\nexplanation = "x"\n[license.allowed.research]\ncategories = ["permissive"]\n'
    reason = only(decide(doc, rules, "books@1"))
    assert reason.finding == "books@1/license.allowed:purpose:commercial"


# -- pii.max-rate ----------------------------------------------------------------------------

PII = '[pii.max-rate]\nexplanation = "x"\n'


def test_pii_below_the_entity_limit_passes(doc):
    assert (
        decide(doc, PII + 'entities = { EMAIL_ADDRESS = { max = 0.2, action = "redact" } }\n', "mix@1").decision
        == "allow"
    )


def test_pii_above_the_entity_limit_names_rate_and_action(doc):
    reason = only(decide(doc, PII + 'entities = { EMAIL_ADDRESS = { max = 0.1, action = "redact" } }\n', "mix@1"))
    assert (reason.finding, reason.outcome, reason.action) == ("mix@1/pii.max-rate:EMAIL_ADDRESS", "deny", "redact")
    assert "16.25% of records contain EMAIL_ADDRESS (13 of 80), above the limit of 10.00%" in reason.message
    assert "custody prepare mix@1 --stages redact-pii" in reason.message
    review = only(
        decide(
            doc, PII + 'on_fail = "review"\nentities = { EMAIL_ADDRESS = { max = 0.1, action = "drop" } }\n', "mix@1"
        )
    )
    assert review.outcome == "review"


def test_pii_block_denies_even_when_the_rule_asks_for_review(doc):
    rules = PII + 'on_fail = "review"\nentities = { CREDIT_CARD = { max = 0.0, action = "block" } }\n'
    reason = only(decide(doc, rules, "mix@1"))
    assert (reason.outcome, reason.action) == ("deny", "block")


def test_pii_default_limit_covers_every_scanned_entity(doc):
    assert decide(doc, PII + 'default = { max = 0.35, action = "redact" }\n', "mix@1").decision == "allow"
    decision = decide(doc, PII + 'default = { max = 0.15, action = "redact" }\n', "mix@1")
    assert set(findings(decision)) == {"mix@1/pii.max-rate:PERSON", "mix@1/pii.max-rate:EMAIL_ADDRESS"}


def test_pii_limit_on_an_entity_the_check_did_not_scan_denies(doc):
    reason = only(
        decide(doc, PII + 'on_fail = "review"\nentities = { NRP = { max = 0.5, action = "redact" } }\n', "mix@1")
    )
    assert reason.outcome == "deny" and "did not look for NRP" in reason.message


def test_pii_rule_without_a_pii_result_denies(doc):
    reason = only(decide(doc, PII + 'default = { max = 1.0, action = "redact" }\n', "books@1"))
    assert reason.finding == "books@1/pii.max-rate" and "needs a pii result" in reason.message


# -- toxicity.max-rate -----------------------------------------------------------------------

TOX = '[toxicity.max-rate]\nexplanation = "x"\naction = "drop"\n'


def test_toxicity_within_the_limit_passes(doc):
    assert decide(doc, TOX + "threshold = 0.5\nmax_rate = 0.1\n", "mix@1").decision == "allow"


def test_toxicity_above_the_limit_denies_with_the_drop_remedy(doc):
    reason = only(decide(doc, TOX + "threshold = 0.5\nmax_rate = 0.05\n", "mix@1"))
    assert (reason.finding, reason.action) == ("mix@1/toxicity.max-rate", "drop")
    assert "6.25% of records score >= 0.5" in reason.message and "--stages drop-toxic" in reason.message


def test_toxicity_at_another_threshold_from_the_histogram(doc):
    # 9 of 80 records score >= 0.3 (bins 0.3-1.0 of the check's histogram).
    assert decide(doc, TOX + "threshold = 0.3\nmax_rate = 0.12\n", "mix@1").decision == "allow"
    reason = only(decide(doc, TOX + "threshold = 0.3\nmax_rate = 0.1\n", "mix@1"))
    assert "11.25% of records score >= 0.3" in reason.message


def test_toxicity_at_a_threshold_the_summary_cannot_give_denies(doc):
    reason = only(decide(doc, TOX + 'on_fail = "review"\nthreshold = 0.55\nmax_rate = 0.5\n', "mix@1"))
    assert reason.outcome == "deny" and "cannot give the rate at 0.55" in reason.message


# -- findings --------------------------------------------------------------------------------


def test_failed_findings_deny_unless_another_rule_judges_them(doc):
    decision = decide(doc, '[findings.failed]\nexplanation = "x"\n', "books@1")
    assert findings(decision) == {
        "books@1/card.missing:governance.steward": "deny",
        "books@1/source.denied:books3": "deny",
    }
    ignoring = '[findings.failed]\nexplanation = "x"\nignore = ["card.missing:*", "source.denied:*"]\n'
    assert decide(doc, ignoring, "books@1").decision == "allow"
    assert decide(doc, '[findings.failed]\nexplanation = "x"\n', "mix@1").decision == "allow"


def test_listed_findings_need_review(doc):
    decision = decide(
        doc, '[findings.review]\nexplanation = "x"\nmatch = ["pii.present", "license.mismatch:*"]\n', "mix@1"
    )
    assert decision.decision == "needs-review"
    reason = only(decision)
    assert (reason.finding, reason.rule) == ("mix@1/pii.present", "findings.review")
    assert reason.message.startswith("pii: ") and "contain PII" in reason.message
    assert (
        decide(doc, '[findings.review]\nexplanation = "x"\nmatch = ["license.mismatch:*"]\n', "mix@1").decision
        == "allow"
    )


# -- training --------------------------------------------------------------------------------

BUDGET = '[training.budget]\nexplanation = "x"\nmax_kwh = 50.0\nmax_kg_co2e = 20.0\n'


def run(**estimates) -> dict:
    return RunContext("r1", "bob", **estimates).as_json()


def test_training_budget_within_passes(doc):
    assert decide(doc, BUDGET, "mix@1", run=run(estimated_kwh=40.0, estimated_kg_co2e=5.0)).decision == "allow"
    assert decide(doc, BUDGET, "mix@1").decision == "allow"  # no run: run rules do not apply


def test_training_budget_exceeded_denies(doc):
    decision = decide(doc, BUDGET, "mix@1", run=run(estimated_kwh=60.0, estimated_kg_co2e=5.0))
    reason = only(decision)
    assert reason.finding == "run:r1/training.budget:kwh"
    assert "estimate of 60.0 kWh exceeds the budget of 50.0" in reason.message


def test_training_budget_without_an_estimate_denies(doc):
    decision = decide(doc, BUDGET + 'on_fail = "review"\n', "mix@1", run=run(estimated_kwh=10.0))
    assert findings(decision) == {"run:r1/training.budget:co2e": "deny"}


def test_training_approval_needs_a_person(doc):
    rules = '[training.approval]\nexplanation = "x"\n'
    assert decide(doc, rules, "mix@1").decision == "allow"
    reason = only(decide(doc, rules, "mix@1", run=run()))
    assert (reason.finding, reason.outcome) == ("run:r1/training.approval", "review")


# -- the decision as a whole -----------------------------------------------------------------


def test_deny_outranks_review_outranks_allow(doc):
    review = '[findings.review]\nexplanation = "x"\nmatch = ["pii.present"]\n'
    assert decide(doc, review, "mix@1").decision == "needs-review"
    assert decide(doc, review + LICENSE, "mix@1").decision == "deny"
    assert decide(doc, "", "mix@1").decision == "allow"


def test_evaluation_is_deterministic_and_reads_only_the_document(doc):
    policy = parse_policy(HEADER + FRESH + LICENSE + PII + 'default = { max = 0.1, action = "redact" }\n')
    first = evaluate(policy, copy.deepcopy(doc)).as_json()
    assert first == evaluate(policy, copy.deepcopy(doc)).as_json()
    assert [r["finding"] for r in first["reasons"]] == sorted(r["finding"] for r in first["reasons"])
    assert doc["datasets"][1]["registered_by"] == OWNER
