"""The dashboards' read models (custody.views) on a populated home with real check results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custody.accounts import Accounts
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.ledger.verifier import verify_proof_bundle
from custody.policy.reviews import SeparationOfDuties, find_finding
from custody.views import datasets, equivalents, ledger, overview, policies, provenance, reviews, runs
from dashboard_data import OWNER, PII_FINDING, REVIEWER, TOXIC_FINDING, VIEWER, base_home, copy_home


@pytest.fixture(scope="module")
def populated(tmp_path_factory, shared_data: Path):
    path = copy_home(base_home(tmp_path_factory, shared_data), tmp_path_factory.mktemp("views") / "home")
    home = Home.open(path)
    yield home
    home.close()


@pytest.fixture
def writable(tmp_path: Path, tmp_path_factory, shared_data: Path):
    home = Home.open(copy_home(base_home(tmp_path_factory, shared_data), tmp_path / "home"))
    yield home
    home.close()


def test_overview_posture(populated: Home) -> None:
    posture = overview.posture(populated)
    assert posture.datasets == 2
    assert posture.by_decision == {"needs-review": 1, "none": 1}
    assert posture.open_findings == 2
    assert posture.health.consistent and posture.health.checkpoint and posture.health.checkpoint.signature_ok
    assert posture.recent_decisions[0]["decision"] == "needs-review"
    assert posture.recent_reviews == []


def test_dataset_list_and_filters(populated: Home) -> None:
    rows = datasets.list_datasets(populated)
    assert [r.ref for r in rows] == ["mix@1", "mix-clean@1"]
    mix = rows[0]
    assert mix.decision == "needs-review" and mix.license_category == "non-commercial"
    assert "pii:flag" in mix.checks and mix.registered_by == OWNER
    assert [r.ref for r in datasets.filter_datasets(rows, text="CLEAN")] == ["mix-clean@1"]
    assert [r.ref for r in datasets.filter_datasets(rows, decisions=["none"])] == ["mix-clean@1"]
    assert [r.ref for r in datasets.filter_datasets(rows, categories=["non-commercial"])] == ["mix@1"]
    assert datasets.filter_datasets(rows, registrants=["nobody"]) == []


def test_dataset_detail_charts_lineage_and_report(populated: Home) -> None:
    detail = datasets.dataset_detail(populated, "mix@1")
    assert detail.license_mix() == {"CC-BY-NC-4.0": 8}
    assert detail.pii_by_entity()["EMAIL_ADDRESS"] == 8
    histogram = detail.toxicity_histogram()
    assert len(histogram) == 10 and sum(b["records"] for b in histogram) == 50
    assert '"mix@1" -> "mix-clean@1" [label="drop-toxic"]' in detail.lineage_dot
    assert detail.descendants == ["mix-clean@1"] and detail.decisions[0]["for this dataset"] == "needs-review"
    report = json.loads(provenance.provenance_json(populated, detail))
    assert report["format"] == provenance.FORMAT
    assert report["dataset"]["manifest_digest"] == detail.dataset.digest
    assert set(report["checks"]) == {"license", "pii", "provenance", "toxicity"}
    child = datasets.dataset_detail(populated, "mix-clean@1")
    assert child.ancestors == ["mix@1"]


def test_mask_merges_overlapping_spans() -> None:
    text = "mail jane@example.org or call 555-0100 now"
    spans = [
        {"type": "EMAIL_ADDRESS", "start": 5, "end": 21},
        {"type": "URL", "start": 10, "end": 21},
        {"type": "PHONE_NUMBER", "start": 30, "end": 38},
    ]
    assert reviews.mask(text, spans) == "mail [EMAIL_ADDRESS] or call [PHONE_NUMBER] now"


def test_pii_evidence_never_shows_the_detected_values(populated: Home, shared_data: Path) -> None:
    evidence = reviews.evidence(populated, find_finding(populated, PII_FINDING))
    assert evidence.kind == "pii" and not evidence.sensitive and evidence.samples
    values = [
        span["value"]
        for line in (shared_data / "pii_presidio_synth" / "data.jsonl").read_text().splitlines()
        for span in json.loads(line)["spans"]
        if span["entity_type"] == "EMAIL_ADDRESS"
    ]
    for sample in evidence.samples:
        assert "[EMAIL_ADDRESS]" in sample.text
        assert not any(value in sample.text for value in values)


def test_toxic_evidence_is_marked_sensitive(populated: Home) -> None:
    evidence = reviews.evidence(populated, find_finding(populated, TOXIC_FINDING))
    assert evidence.kind == "toxicity" and evidence.sensitive
    scores = [s.score for s in evidence.samples]
    assert scores == sorted(scores, reverse=True) and scores[0] >= 0.5


def test_only_signed_in_reviewers_act(writable: Home) -> None:
    accounts = Accounts(writable.path)
    size = writable.ledger.size
    with pytest.raises(reviews.NotAllowed, match="sign in"):
        reviews.act(writable, None, PII_FINDING, "approve", "fine")
    with pytest.raises(reviews.NotAllowed, match="viewer"):
        reviews.act(writable, accounts.get(VIEWER), PII_FINDING, "approve", "fine")
    with pytest.raises(SeparationOfDuties):
        reviews.act(writable, accounts.get(OWNER), PII_FINDING, "approve", "fine")
    assert writable.ledger.size == size  # nothing was recorded
    item = next(i for i in reviews.queue(writable) if i.finding.finding == PII_FINDING)
    assert reviews.allowed_actions(item, accounts.get(VIEWER)) == []
    assert reviews.allowed_actions(item, accounts.get(OWNER)) == ["reject"]
    assert reviews.allowed_actions(item, accounts.get(REVIEWER)) == ["approve", "waive", "reject"]


def test_a_role_taken_away_after_sign_in_stops_acting(writable: Home) -> None:
    accounts = Accounts(writable.path)
    signed_in = accounts.get(REVIEWER)
    accounts.set_role(REVIEWER, "viewer")
    with pytest.raises(reviews.NotAllowed):
        reviews.act(writable, signed_in, PII_FINDING, "approve", "fine")


def test_review_is_recorded_with_the_reviewer_and_leaves_the_queue(writable: Home) -> None:
    bob = Accounts(writable.path).get(REVIEWER)
    index = reviews.act(writable, bob, PII_FINDING, "approve", "emails are synthetic", "2099-01-31")
    row = writable.ledger.entry(index)
    body = json.loads(row.entry)["body"]
    assert (row.type, row.actor, row.subject) == ("review.recorded/v1", REVIEWER, "dataset:mix@1")
    assert body["action"] == "approve" and body["expires"].startswith("2099-02-01")
    assert [i.finding.finding for i in reviews.queue(writable)] == [TOXIC_FINDING]


def test_runs(populated: Home) -> None:
    (row,) = runs.list_runs(populated)
    assert (row.run_id, row.status, row.energy_kwh) == ("r1", "completed", 1.2)
    detail = runs.run_detail(populated, "r1")
    assert detail.decision is not None and detail.decision.decision == "needs-review"
    assert detail.datasets[0]["dataset"] == "mix-clean@1"
    assert detail.checkpoint_count == 4 and detail.checkpoints[0]["step"] == 100
    curve = detail.loss_curve()
    assert len(curve) == 100 and curve[24]["val_loss"] is not None
    assert runs.run_detail(populated, "nope") is None


def test_equivalents() -> None:
    energy, co2, shower, bottles = equivalents.equivalents(1.9, 2.485484, 65.1)
    assert round(energy.amount) == 100 and round(co2.amount) == 10
    assert round(shower.amount, 1) == 1.0 and round(bottles.amount) == 130


def test_ledger_pages_filters_and_proofs(populated: Home) -> None:
    newest = ledger.entry_page(populated, ledger.EntryFilter(), None, 3)
    assert [r["index"] for r in newest] == [populated.ledger.size - 1 - i for i in range(3)]
    runs_only = ledger.entry_page(populated, ledger.EntryFilter(type_prefix="run."), None, 50)
    assert {r["type"].split("/")[0] for r in runs_only} == {"run.started", "run.checkpoint", "run.finished"}
    by_subject = ledger.entry_page(populated, ledger.EntryFilter(subject="dataset:mix-clean@1"), None, 50)
    assert {r["subject"] for r in by_subject} == {"dataset:mix-clean@1"}
    older = ledger.entry_page(populated, ledger.EntryFilter(), 2, 50)
    assert [r["index"] for r in older] == [2, 1, 0]
    proof = ledger.inclusion_proof(populated, 3)
    verified = verify_proof_bundle(proof.as_bytes().decode(), populated.verifier_key)
    assert verified.index == 3
    assert ledger.latest_checkpoint(populated).signature_ok
    assert ledger.verify(populated).ok
    assert "dataset." in ledger.entry_types() and "review.recorded/v1" in ledger.entry_types()


def test_policy_matrix(populated: Home) -> None:
    files = {f.name: f for f in policies.policy_files()}
    assert {"default", "research", "strict"} <= set(files)
    matrix = policies.rule_matrix(populated, files["research"].loaded, DatasetRegistry(populated).all())
    assert matrix.cells[("toxicity.max-rate", "mix@1")] == "review"
    assert matrix.cells[("license.allowed", "mix@1")] == "pass"  # research admits non-commercial
    assert "mix@1" in matrix.failing("pii.max-rate")
    assert matrix.rows()[0]["dataset"] == "mix-clean@1"
