"""The dashboards' read models (custody.views) on a populated home with real check results and
real keys: who may act through the dashboard, what it records, and how decisions and reviews
say which policy (by digest) and whose key stand behind them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custody.accounts import Accounts
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.ledger.verifier import parse_verifier_key, verify_proof_bundle
from custody.policy import refs as policy_refs
from custody.policy.reviews import SeparationOfDuties, find_finding, record_review
from custody.takedown.erase import gc
from custody.takedown.proof import verify_proof
from custody.testing.people import ADMIN
from custody.trust.acting import NotPermitted
from custody.views import (
    datasets,
    decisions,
    equivalents,
    footprint,
    identity,
    ledger,
    license_mix,
    overview,
    policies,
    provenance,
    reviews,
    runs,
    takedowns,
)
from custody.views.identity import NotAllowed
from dashboard_data import (
    APPROVER,
    DASHBOARD,
    ENGINEER,
    MIX_TAKEDOWN_BY,
    OWNER,
    PII_FINDING,
    PLAY_RECORDS,
    PLAY_TAKEDOWN_BY,
    PLAYS,
    PREPARED,
    REVIEWER,
    REVOKED,
    SMALL_RUN,
    TAKEN_RECORD,
    TOXIC_FINDING,
    VIEWER,
    WEB_OWNER,
    base_home,
    copy_home,
    takedown_ids,
)

INTERMEDIATE = f"{PREPARED}+1-normalize-unicode"


@pytest.fixture(scope="module")
def populated(tmp_path_factory, shared_data: Path, cast):
    path = copy_home(base_home(tmp_path_factory, shared_data, cast), tmp_path_factory.mktemp("views") / "home")
    home = Home.open(path)
    yield home
    home.close()


@pytest.fixture
def writable(tmp_path: Path, tmp_path_factory, shared_data: Path, cast):
    home = Home.open(copy_home(base_home(tmp_path_factory, shared_data, cast), tmp_path / "home"))
    yield home
    home.close()


@pytest.fixture
def service(writable: Home, cast) -> identity.Service:
    return identity.dashboard_service(writable, cast.key_file(DASHBOARD))


def signed_in(home: Home, name: str, method: str = "password") -> identity.SignedIn:
    return identity.sign_in(Accounts(home.path).get(name), method)


def test_overview_posture(populated: Home) -> None:
    posture = overview.posture(populated)
    assert posture.datasets == 4 and posture.intermediate_hidden == 1  # the stage chain's middle step
    assert posture.by_decision == {"allow": 1, "needs-review": 1, "not gated": 2}  # in that order
    assert list(posture.by_decision) == ["allow", "needs-review", "not gated"]
    assert overview.posture(populated, include_intermediate=True).datasets == 5
    assert posture.open_findings == 2
    assert posture.health.consistent and posture.health.checkpoint and posture.health.checkpoint.signature_ok
    assert posture.health.checkpoint.since() == "1 entry came after it"  # not "1 entries since"
    assert [d["decision"] for d in posture.recent_decisions] == ["allow", "needs-review"]
    assert posture.recent_reviews == []


def test_dataset_list_and_filters(populated: Home) -> None:
    every = datasets.list_datasets(populated)
    assert [r.ref for r in every if r.intermediate] == [INTERMEDIATE]
    rows = datasets.visible(every)
    assert [r.ref for r in rows] == ["mix@1", "mix-clean@1", PLAYS, PREPARED]
    assert datasets.visible(every, include_intermediate=True) == every
    mix = rows[0]
    assert mix.decision == "needs-review" and mix.license_category == "non-commercial"
    assert "pii:flag" in mix.checks and mix.registered_by == OWNER
    assert [r.ref for r in datasets.filter_datasets(rows, text="CLEAN")] == ["mix-clean@1"]
    assert [r.ref for r in datasets.filter_datasets(rows, decisions=["not gated"])] == ["mix-clean@1", PLAYS]
    assert [r.ref for r in datasets.filter_datasets(rows, registrants=[WEB_OWNER])] == [PLAYS, PREPARED]
    assert [r.ref for r in datasets.filter_datasets(rows, categories=["non-commercial"])] == ["mix@1"]
    assert datasets.filter_datasets(rows, registrants=["nobody"]) == []


def test_dataset_detail_charts_lineage_and_report(populated: Home, cast) -> None:
    detail = datasets.dataset_detail(populated, "mix@1")
    assert detail.license_mix() == {"CC-BY-4.0": 42, "CC-BY-NC-4.0": 8}  # 42 take the card's license
    assert detail.license_categories() == {"non-commercial": 8, "permissive": 42}
    assert detail.pii_by_entity()["EMAIL_ADDRESS"] == 8
    histogram = detail.toxicity_histogram()
    assert len(histogram) == 10 and sum(b["records"] for b in histogram) == 50
    assert '"mix@1" -> "mix-clean@1" [label="drop-toxic"]' in detail.lineage_dot
    assert detail.descendants == ["mix-clean@1"] and detail.decisions[0]["for this dataset"] == "needs-review"
    service = identity.dashboard_service(populated, cast.key_file(DASHBOARD))
    taker = identity.attested(signed_in(populated, VIEWER), service)  # a viewer may take a report
    report = json.loads(provenance.provenance_json(populated, detail, taker))
    assert report["format"] == provenance.FORMAT
    assert report["dataset"]["manifest_digest"] == detail.dataset.digest
    assert set(report["checks"]) == {"license", "pii", "provenance", "toxicity"}
    sealed = populated.ledger.entry(report["seal"]["index"])
    assert (sealed.actor, populated.attribute(sealed).kind) == (VIEWER, "service")  # machine work, naming her
    child = datasets.dataset_detail(populated, "mix-clean@1")
    assert child.ancestors == ["mix@1"]


def test_the_license_mix_counts_records_that_take_the_cards_license(populated: Home) -> None:
    detail = datasets.dataset_detail(populated, PLAYS)  # no record has a license of its own
    summary = detail.summaries["license"]
    assert summary["record_licenses"] == {} and summary["records_inheriting_declared"] == PLAY_RECORDS
    assert detail.license_mix() == {"CC-BY-4.0": PLAY_RECORDS}
    assert detail.license_categories() == {"permissive": PLAY_RECORDS}


def test_the_license_mix_says_why_records_have_no_card_license() -> None:
    undeclared = {"declared": {"expression": None, "normalized": None, "category": "unknown"}}
    assert license_mix.license_mix({**undeclared, "records_inheriting_declared": 3}) == {license_mix.NO_CARD_LICENSE: 3}
    invalid = {"declared": {"expression": "MIT AND OR (", "normalized": None, "category": "unknown"}}
    summary = {**invalid, "record_licenses": {"MIT": 5}, "records_inheriting_declared": 2}
    assert license_mix.license_mix(summary) == {"MIT": 5, "MIT AND OR ( (not valid SPDX)": 2}
    assert license_mix.license_mix({}) == {}


def test_lineage_shows_intermediate_outputs_in_readable_text(populated: Home) -> None:
    detail = datasets.dataset_detail(populated, PLAYS)
    assert detail.descendants == [INTERMEDIATE, PREPARED]  # hidden from lists, never from lineage
    assert f'"{PLAYS}" -> "{INTERMEDIATE}" [label="normalize-unicode"]' in detail.lineage_dot
    assert "rankdir=TB" in detail.lineage_dot and "fontsize=14" in detail.lineage_dot


def test_a_decision_names_its_policy_by_digest_and_binding(populated: Home) -> None:
    decision = decisions.all_decisions(populated)[0]  # on mix@1
    (used,) = decision.policies
    bound = policies.bindings(populated).by_purpose["research"]
    assert used.digest == bound.digest and used.bound and used.binding_index == bound.index
    assert decision.bound
    assert (
        decision.policy
        == f"review-everything sha256:{bound.digest[:12]} — bound to research at ledger index {bound.index}"
    )
    row = decision.as_row()
    assert row["policy"] == f"review-everything sha256:{bound.digest[:12]}"
    assert row["bound"] == f"bound to research at ledger index {bound.index}"
    detail = runs.run_detail(populated, "r1")
    assert detail is not None and detail.decision is not None and bound.digest[:12] in detail.decision.policy


def test_policy_refs_of_older_and_unbound_decisions() -> None:
    digest = "ab" * 32
    ref = {"path": "p.toml", "name": "default", "digest": {"sha256": digest}, "schema": 1}
    v1 = {"purpose": "commercial", "policy": ref}
    assert policy_refs.describe(v1) == f"default sha256:{digest[:12]} — not bound (made before bindings)"
    assert policy_refs.statuses(policy_refs.policies_used(v1), "commercial") == "not bound (made before bindings)"
    spec = {"purpose": "research", "policy": ref, "policies": [{**ref, "role": "spec", "binding_index": None}]}
    assert "named by the request" in policy_refs.describe(spec)
    assert not policy_refs.policies_used(spec)[0].bound
    unbound = {"purpose": "research", "policy": None, "policies": []}
    assert policy_refs.describe(unbound).startswith("no policy bound to research")


def test_bindings_list_each_purpose_by_digest(populated: Home, cast) -> None:
    found = policies.bindings(populated)
    (row,) = found.rows()
    assert (row["purpose"], row["policy"], row["bound by"]) == ("research", "review-everything", "admin")
    assert len(row["sha256"]) == 64 and found.status_of(row["sha256"]).startswith("bound to research")
    assert found.status_of("0" * 64).startswith("not bound")


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


def test_the_dashboard_key_must_be_an_attestor_on_the_roster(writable: Home, cast, tmp_path: Path) -> None:
    good = identity.dashboard_service(writable, cast.key_file(DASHBOARD))
    assert good.can_attest and good.person is not None and good.person.name == DASHBOARD
    for path, why in (
        (None, "started without its key"),
        (cast.key_file(REVIEWER), f"belongs to {REVIEWER} (reviewer), who is not an attestor"),
        (cast.key_file("stranger"), "not on this home's roster"),
        (cast.key_file(REVOKED), "revoked"),
        (tmp_path / "missing", "cannot sign"),
    ):
        service = identity.dashboard_service(writable, path)
        assert not service.can_attest and why in (service.why_read_only or ""), (path, service)


def test_an_oidc_sign_in_is_dated_by_the_identity_provider() -> None:
    assert identity.issued_at({"email": "jane@example.org", "iat": 1_780_000_000}) == "2026-05-28T20:26:40.000000Z"
    assert identity.issued_at({"email": "jane@example.org"}) is None
    assert identity.issued_at({"iat": True}) is None


def test_roster_roles_decide_what_a_signed_in_person_may_do(writable: Home, service: identity.Service) -> None:
    size = writable.ledger.size
    item = next(i for i in reviews.queue(writable) if i.finding.finding == PII_FINDING)
    accounts = Accounts(writable.path)

    def may(name: str) -> list[str]:
        return reviews.allowed_actions(item, identity.standing(writable, accounts.get(name)))

    assert may(REVIEWER) == ["approve", "reject"]  # a reviewer may not waive: that takes an approver
    assert may(OWNER) == ["reject"]  # separation of duties, by key
    assert may(VIEWER) == [] and may(ENGINEER) == [] and may(REVOKED) == []
    with pytest.raises(NotAllowed, match="sign in"):
        reviews.act(writable, None, service, PII_FINDING, "approve", "fine")
    with pytest.raises(NotAllowed, match="viewer"):
        reviews.act(writable, signed_in(writable, VIEWER), service, PII_FINDING, "approve", "fine")
    with pytest.raises(NotAllowed, match="not an active member of this home's roster"):
        reviews.act(writable, signed_in(writable, REVOKED), service, PII_FINDING, "approve", "fine")
    with pytest.raises(NotPermitted, match=f"{ENGINEER} \\(engineer\\) may not approve"):
        reviews.act(writable, signed_in(writable, ENGINEER), service, PII_FINDING, "approve", "fine")
    with pytest.raises(SeparationOfDuties):
        reviews.act(writable, signed_in(writable, OWNER), service, PII_FINDING, "approve", "fine")
    assert writable.ledger.size == size  # nothing was recorded


def test_a_read_only_dashboard_records_nothing(writable: Home, cast) -> None:
    read_only = identity.dashboard_service(writable, cast.key_file(REVIEWER))
    with pytest.raises(NotAllowed, match="read-only: its key belongs to bob"):
        reviews.act(writable, signed_in(writable, REVIEWER), read_only, PII_FINDING, "approve", "fine")


def test_a_role_taken_away_after_sign_in_stops_acting(writable: Home, service: identity.Service) -> None:
    bob = signed_in(writable, REVIEWER)
    Accounts(writable.path).set_role(REVIEWER, "viewer")
    with pytest.raises(NotAllowed):
        reviews.act(writable, bob, service, PII_FINDING, "approve", "fine")


def test_a_dashboard_review_is_attested_and_leaves_the_queue(writable: Home, service: identity.Service) -> None:
    bob = signed_in(writable, REVIEWER, "oidc")
    index = reviews.act(writable, bob, service, PII_FINDING, "approve", "emails are synthetic", "2099-01-31")
    row = writable.ledger.entry(index)
    doc = json.loads(row.entry)
    assert (row.type, row.actor, row.subject) == ("review.recorded/v1", REVIEWER, "dataset:mix@1")
    assert doc["body"]["action"] == "approve" and doc["body"]["expires"].startswith("2099-02-01")
    assert doc["attest"] == {"via": DASHBOARD, "method": "oidc", "signed_in_at": bob.at}
    who = writable.attribute(row)
    assert (who.kind, who.via, who.key, who.problem) == ("attested", DASHBOARD, writable.key_of(REVIEWER), None)
    assert [i.finding.finding for i in reviews.queue(writable)] == [TOXIC_FINDING]


def test_review_lists_say_who_signed(writable: Home, service: identity.Service, cast) -> None:
    personal = record_review(writable, TOXIC_FINDING, "reject", "too toxic", reviewer=cast.person(writable, REVIEWER))
    attested = reviews.act(writable, signed_in(writable, REVIEWER), service, PII_FINDING, "approve", "ok")
    listed = {r["index"]: r["signed"] for r in decisions.recent_reviews(writable)}
    assert listed[personal] == f"personally (key {cast.public(REVIEWER).fingerprint})"
    assert listed[attested].startswith(f"attested by {DASHBOARD} (password sign-in at ")
    on_mix = datasets.dataset_detail(writable, "mix@1").reviews
    assert [r["index"] for r in on_mix] == [personal, attested] and on_mix[0]["signed"] == listed[personal]
    page = {r["index"]: r["signed"] for r in ledger.entry_page(writable, ledger.EntryFilter(type_prefix="review."))}
    assert page == listed
    assert ledger.entry_signature(writable, attested).kind == "attested"


def test_runs(populated: Home) -> None:
    small, row = runs.list_runs(populated)  # newest first
    assert (row.run_id, row.status, row.energy_kwh) == ("r1", "completed", 1.2)
    assert (row.as_row()["energy"], row.as_row()["CO2e"]) == ("1.2 kWh", "420 g")
    assert (small.run_id, small.as_row()["energy"], small.as_row()["CO2e"]) == (SMALL_RUN, "0.317 Wh", "0.111 g")
    detail = runs.run_detail(populated, "r1")
    assert detail.decision is not None and detail.decision.decision == "needs-review"
    assert detail.datasets[0]["dataset"] == "mix-clean@1"
    assert detail.checkpoint_count == 4 and detail.checkpoints[0]["step"] == 100
    curve = detail.loss_curve()
    assert len(curve) == 100 and curve[24]["val_loss"] is not None
    assert runs.run_detail(populated, "nope") is None


def test_a_small_runs_footprint_reads_in_units_that_fit(populated: Home) -> None:
    detail = runs.run_detail(populated, SMALL_RUN)
    shown = detail.footprint()
    assert (shown.energy, shown.co2e, shown.water, shown.duration) == ("0.317 Wh", "0.111 g", "0.571 mL", "5.0 min")
    # Only the smartphone charge is big enough to compare with; never "8.8e-06 average showers".
    assert [e.label() for e in shown.equivalents] == ["0.017 smartphone charges"]
    assert shown.comparison() == "energy: about 0.017 smartphone charges"
    tiny = footprint.footprint({"energy_kwh": 1e-7, "emissions_kg_co2e": 1e-8, "water_l": 1e-7, "duration_s": 3})
    assert tiny.equivalents == [] and tiny.comparison().startswith("too small for an everyday comparison")
    assert (tiny.energy, tiny.duration) == ("0.0001 Wh", "3 s")


def test_equivalents() -> None:
    energy, co2, shower, bottles = equivalents.equivalents(1.9, 2.485484, 65.1)
    assert round(energy.amount) == 100 and round(co2.amount) == 10
    assert round(shower.amount, 1) == 1.0 and round(bottles.amount) == 130
    assert [e.label() for e in (energy, co2, shower, bottles)] == [
        "100 smartphone charges",
        "10 km driven by an average petrol car",
        "1 average shower",
        "130 0.5 L bottles",
    ]
    small = equivalents.equivalents(0.000317, 0.000111, 0.000571)
    assert all("e-" not in e.label() for e in small)  # never scientific notation
    assert [e.everyday for e in equivalents.meaningful(small)] == ["smartphone charges"]


def test_ledger_pages_filters_and_proofs(populated: Home) -> None:
    newest = ledger.entry_page(populated, ledger.EntryFilter(), None, 3)
    assert [r["index"] for r in newest] == [populated.ledger.size - 1 - i for i in range(3)]
    runs_only = ledger.entry_page(populated, ledger.EntryFilter(type_prefix="run."), None, 50)
    assert {r["type"].split("/")[0] for r in runs_only} == {"run.started", "run.checkpoint", "run.finished"}
    assert {r["signed"] for r in runs_only} == {"by the home's service key"}
    by_subject = ledger.entry_page(populated, ledger.EntryFilter(subject="dataset:mix-clean@1"), None, 50)
    assert {r["subject"] for r in by_subject} == {"dataset:mix-clean@1"}
    older = ledger.entry_page(populated, ledger.EntryFilter(), 2, 50)
    assert [r["index"] for r in older] == [2, 1, 0]
    assert older[1]["signed"].startswith("personally (key ")  # the admin enrolled someone
    proof = ledger.inclusion_proof(populated, 3)
    verified = verify_proof_bundle(proof.as_bytes().decode(), populated.verifier_key)
    assert verified.index == 3
    assert ledger.latest_checkpoint(populated).signature_ok
    assert ledger.verify(populated).ok
    assert "dataset." in ledger.entry_types() and "review.recorded/v1" in ledger.entry_types()


def test_the_first_proof_is_of_an_entry_a_checkpoint_covers(writable: Home) -> None:
    """As after `custody user add`: the head is one entry past the last signed checkpoint."""
    checkpoint = ledger.latest_checkpoint(writable)
    assert checkpoint.signature_ok and checkpoint.entries_since == 1 and checkpoint.since() == "1 entry came after it"
    first = ledger.first_proof_index(writable)  # what the page proves first: no "sign one first"
    assert first == checkpoint.size - 1 and not checkpoint.covers(writable.ledger.size - 1)
    assert ledger.inclusion_proof(writable, first).proof is not None
    assert ledger.inclusion_proof(writable, writable.ledger.size - 1).proof is None
    writable.checkpoint()
    assert ledger.latest_checkpoint(writable).since() == "it covers every entry"


def test_policy_matrix(populated: Home) -> None:
    files = {f.name: f for f in policies.policy_files()}
    shown = [d for d in DatasetRegistry(populated).all() if str(d.ref) != INTERMEDIATE]
    matrix = policies.rule_matrix(populated, files["research"].loaded, shown)
    assert matrix.cells[("toxicity.max-rate", "mix@1")] == "review"
    assert matrix.cells[("license.allowed", "mix@1")] == "pass"  # research admits non-commercial
    assert "mix@1" in matrix.failing("pii.max-rate")
    assert matrix.rows()[0]["dataset"] == "mix-clean@1"
    assert matrix.datasets == ["mix-clean@1", "mix@1", PLAYS, PREPARED]


def test_a_dataset_never_checked_is_not_checked_never_failing(populated: Home) -> None:
    files = {f.name: f for f in policies.policy_files()}
    matrix = policies.rule_matrix(populated, files["research"].loaded, DatasetRegistry(populated).all())
    # plays@1 has a license result only; mix-clean@1 a provenance result only.
    assert matrix.cells[("provenance.denied-sources", PLAYS)] == policies.NOT_CHECKED
    assert matrix.cells[("license.allowed", PLAYS)] == "pass"
    assert matrix.cells[("license.allowed", "mix-clean@1")] == policies.NOT_CHECKED
    assert PLAYS not in matrix.failing("provenance.denied-sources")
    assert PLAYS in matrix.not_checked("provenance.denied-sources")
    assert matrix.failing("provenance.denied-sources") == []
    row = next(r for r in matrix.summary_rows() if r["dataset"] == PLAYS)
    assert "provenance.denied-sources" in row["not checked"] and "provenance" not in row["fails"]
    assert matrix.decisions[PREPARED] == "allow"  # every check ran on the prepared output


def test_table_times_read_to_the_second() -> None:
    from custody.views.common import when

    assert when("2026-12-05T17:02:22.558580Z") == "2026-12-05 17:02:22Z"
    assert when("not a time") == "not a time"


# -- takedowns ------------------------------------------------------------------------------


def test_takedown_requests_where_their_work_is_and_the_plan(populated: Home) -> None:
    size = populated.ledger.size
    ids = takedown_ids(populated)
    mix_request, play_request = takedowns.list_takedowns(populated)  # newest first
    assert (mix_request.id, play_request.id) == (ids[MIX_TAKEDOWN_BY], ids[PLAY_TAKEDOWN_BY])
    assert {mix_request.status, play_request.status} == {takedowns.OPEN}
    row = play_request.as_row()
    assert (row["status"], row["requested by"], row["reason"], row["applied at"]) == (
        "open",
        PLAY_TAKEDOWN_BY,
        "copyright",
        "",
    )
    assert row["work"].startswith("a record (text sha256 ") and row["recorded by"] == ADMIN
    where = takedowns.where(populated, play_request.id, DASHBOARD)
    assert where.live == 3 and where.live_versions() == [PLAYS, PREPARED, INTERMEDIATE]
    assert [(h["dataset"], h["state"], h["record ids"]) for h in where.holder_rows()] == [
        (PLAYS, "live", TAKEN_RECORD),
        (PREPARED, "live", TAKEN_RECORD),
        (INTERMEDIATE, "live", TAKEN_RECORD),
    ]
    speech = next(r for _, r in DatasetRegistry(populated).get(PLAYS).records() if r.id == TAKEN_RECORD)
    hits = where.hit_rows()
    assert {h["text sha256"] for h in hits} == {speech.content_hash}
    assert not any(speech.text in str(value) for h in hits for value in h.values())  # never the text
    assert [(r["run"], r["read"]) for r in where.run_rows()] == [(SMALL_RUN, PREPARED)]
    assert "tainted by" not in where.run_rows()[0]  # nothing tainted yet: no empty column
    plan = takedowns.plan_view(populated, play_request.id, DASHBOARD)
    assert plan.error is None and plan.summary() == "replace 3 dataset versions and taint 1 run"
    assert [(v["replace"], v["with"]) for v in plan.versions] == [
        (PLAYS, f"{PLAYS}-{play_request.id}"),
        (INTERMEDIATE, f"{INTERMEDIATE}-{play_request.id}"),
        (PREPARED, f"{PREPARED}-{play_request.id}"),
    ]
    assert [t["run"] for t in plan.tainted] == [SMALL_RUN] and plan.running == []
    assert plan.fingerprint() == takedowns.plan_view(populated, play_request.id).fingerprint()
    # mix-clean@1 was made by a stage that cannot be built again: the plan says so, in one line.
    refused = takedowns.plan_view(populated, mix_request.id, DASHBOARD)
    assert refused.versions == [] and "mix-clean@1: stage drop-toxic built again" in (refused.error or "")
    assert "\n" not in refused.error
    assert populated.ledger.size == size  # the indexes were built with the home: reading recorded nothing


def test_only_an_approver_applies_a_takedown(writable: Home, service: identity.Service, cast) -> None:
    size = writable.ledger.size
    taken = takedown_ids(writable)[PLAY_TAKEDOWN_BY]
    accounts = Accounts(writable.path)
    assert takedowns.may_apply(identity.standing(writable, accounts.get(APPROVER)))
    for name in (REVIEWER, OWNER, VIEWER, REVOKED):
        assert not takedowns.may_apply(identity.standing(writable, accounts.get(name))), name
    reviewer = identity.standing(writable, accounts.get(REVIEWER))
    assert takedowns.why_not_apply(signed_in(writable, REVIEWER), reviewer, service) == (
        f"{REVIEWER} (roster roles: reviewer) may not apply a takedown: that takes an approver or admin."
    )
    with pytest.raises(NotAllowed, match="sign in as an approver or admin"):
        takedowns.act(writable, None, service, taken)
    with pytest.raises(NotAllowed, match="may not apply a takedown; needs role approver or admin"):
        takedowns.act(writable, signed_in(writable, REVIEWER), service, taken)
    with pytest.raises(NotAllowed, match="viewer"):
        takedowns.act(writable, signed_in(writable, VIEWER), service, taken)
    read_only = identity.dashboard_service(writable, cast.key_file(REVIEWER))
    with pytest.raises(NotAllowed, match="read-only"):
        takedowns.act(writable, signed_in(writable, APPROVER), read_only, taken)
    ann = signed_in(writable, APPROVER)
    Accounts(writable.path).set_role(APPROVER, "viewer")  # the account as it is now decides
    with pytest.raises(NotAllowed, match="viewer"):
        takedowns.act(writable, ann, service, taken)
    assert writable.ledger.size == size  # nothing was recorded


def test_a_dashboard_takedown_is_attested_and_marks_runs_and_datasets(
    writable: Home, service: identity.Service, cast
) -> None:
    taken = takedown_ids(writable)[PLAY_TAKEDOWN_BY]
    ann = signed_in(writable, APPROVER)
    said: list[str] = []
    done = takedowns.act(writable, ann, service, taken, say=said.append)
    assert said[0].startswith(f"applying {taken}")
    row = writable.ledger.entry(done.ledger_index)
    assert (row.type, row.actor, row.subject) == ("takedown.applied/v1", APPROVER, f"takedown:{taken}")
    assert json.loads(row.entry)["attest"] == {"via": DASHBOARD, "method": "password", "signed_in_at": ann.at}
    assert writable.attribute(row).kind == "attested"
    # The request is applied, and says how and by whom.
    applied = next(r for r in takedowns.list_takedowns(writable) if r.id == taken)
    assert applied.status == takedowns.APPLIED and applied.as_row()["applied at"] == str(done.ledger_index)
    (application,) = applied.applications
    assert application.signed.startswith(f"attested by {DASHBOARD} (password sign-in at ")
    assert [(v["replaced"], v["by"], v["how"]) for v in application.version_rows()] == [
        (PLAYS, f"{PLAYS}-{taken}", "removed"),
        (INTERMEDIATE, f"{INTERMEDIATE}-{taken}", "re-derived"),
        (PREPARED, f"{PREPARED}-{taken}", "re-derived"),
    ]
    assert [(r["run"], r["why"]) for r in application.run_rows()] == [(SMALL_RUN, f"read {PREPARED}")]
    where = takedowns.where(writable, taken, APPROVER)
    assert where.live == 0
    assert where.state(PLAYS) == f"taken down by {taken} → {PLAYS}-{taken}"
    assert f"{PLAYS}-{taken} (a replacement)" in where.derived()
    assert where.run_rows()[0]["tainted by"] == taken
    assert takedowns.plan_view(writable, taken).error.startswith(f"request {taken} was already applied")
    # The Runs page marks the run, and says why.
    by_id = {r.run_id: r for r in runs.list_runs(writable)}
    assert (by_id[SMALL_RUN].tainted_by, by_id["r1"].tainted_by) == ((taken,), ())
    assert [r["tainted by"] for r in runs.table_rows(list(by_id.values()))] == [taken, ""]
    (taint,) = runs.run_detail(writable, SMALL_RUN).tainted
    assert (taint.takedown, taint.why()) == (taken, f"it read {PREPARED}, which the takedown replaced")
    # The Datasets page marks the versions taken down, with what replaced them.
    rows = {r.ref: r for r in datasets.list_datasets(writable)}
    assert rows[PLAYS].taken_down.short() == f"{taken} → {PLAYS}-{taken}"
    assert rows["mix@1"].taken_down is None and rows[f"{PLAYS}-{taken}"].taken_down is None
    listed = {r["dataset"]: r["taken down"] for r in datasets.table_rows(list(rows.values()))}
    assert (listed[PREPARED], listed["mix@1"]) == (f"{taken} → {PREPARED}-{taken}", "")
    detail = datasets.dataset_detail(writable, PLAYS)
    assert detail.taken_down is not None and not detail.erased
    assert detail.taken_down.sentence().startswith(f"Taken down by {taken} (ledger index ")
    assert f"replaced by {PLAYS}-{taken}. The gate denies this version" in detail.taken_down.sentence()
    # The proof of removal verifies offline with the ledger's key alone.
    proved = verify_proof(takedowns.proof_bytes(writable, taken), parse_verifier_key(writable.config.verifier_key))
    assert proved.request == taken and proved.requested_by == PLAY_TAKEDOWN_BY
    assert ledger.verify(writable).ok
    # Erased by an admin: the replaced version's page still opens, and says its bytes are gone.
    gc(writable, cast.person(writable, ADMIN), taken)
    assert datasets.dataset_detail(writable, PLAYS).erased


def test_marker_columns_show_only_once_something_is_marked(populated: Home) -> None:
    assert "taken down" not in datasets.table_rows(datasets.list_datasets(populated))[0]
    assert "tainted by" not in runs.table_rows(runs.list_runs(populated))[0]
    assert takedowns.describe_work({"kind": "domain", "domain": "example.org", "sha256": "0" * 64}) == (
        "every record from example.org or a host below it"
    )
    text = {"kind": "text", "sha256": "ab" * 32, "words": 1}
    assert takedowns.describe_work(text) == "a passage of 1 word (sha256 abababababab)"
    assert takedowns.one_line(ValueError("two\n  lines")) == "two lines"
