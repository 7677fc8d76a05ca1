"""Every dashboard page under streamlit.testing's AppTest, on an empty and a populated home.

The app runs as `custody dashboard` starts it: $CUSTODY_HOME names the home and
$CUSTODY_DASHBOARD_KEY the path of the dashboard's own roster key (role attestor)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.home import Home
from custody.policy.bindings import current_bindings
from custody.policy.reviews import record_review
from custody.takedown.erase import gc
from custody.testing.people import ADMIN
from custody.views.identity import DASHBOARD_KEY_ENV
from dashboard_data import (
    APPROVER,
    DASHBOARD,
    ENGINEER,
    MIX_TAKEDOWN_BY,
    OWNER,
    PASSWORDS,
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
    empty_home,
    takedown_ids,
)

APP = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
PAGES = ["overview", "datasets", "review", "runs", "takedowns", "ledger", "policies"]


@pytest.fixture(scope="module")
def populated_path(tmp_path_factory, shared_data: Path, cast) -> Path:
    return copy_home(base_home(tmp_path_factory, shared_data, cast), tmp_path_factory.mktemp("pages") / "home")


@pytest.fixture(scope="module")
def empty_path(tmp_path_factory, cast) -> Path:
    return empty_home(tmp_path_factory.mktemp("pages-empty") / "home", cast)


@pytest.fixture
def writable_path(tmp_path: Path, tmp_path_factory, shared_data: Path, cast) -> Path:
    return copy_home(base_home(tmp_path_factory, shared_data, cast), tmp_path / "home")


@pytest.fixture
def dashboard_key(cast, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dashboard's key, as `custody dashboard --key` hands it over: by path."""
    path = cast.key_file(DASHBOARD)
    monkeypatch.setenv(DASHBOARD_KEY_ENV, str(path))
    return path


def open_app(home: Path, monkeypatch: pytest.MonkeyPatch, page: str = "overview") -> AppTest:
    monkeypatch.setenv("CUSTODY_HOME", str(home))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="sign_in_name").set_value(name)
    at.text_input(key="sign_in_password").set_value(password)
    next(b for b in at.button if b.label == "Sign in").click()
    return at.run()


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    parts += [s.value for s in at.success] + [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [t.value for t in at.text] + [m.label for m in at.metric] + [str(m.value) for m in at.metric]
    parts += [e.label for e in at.expander]
    return "\n".join(str(p) for p in parts)


def table(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page with this column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def record(at: AppTest, finding: str, action: str, reason: str) -> AppTest:
    at.selectbox(key="rq_finding").set_value(finding).run()
    at.radio(key="rq_action").set_value(action)
    at.text_area(key="rq_reason").set_value(reason)
    next(b for b in at.button if b.label == "Record review").click()
    return at.run()


def has_form(at: AppTest) -> bool:
    return any(b.label == "Record review" for b in at.button)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_home(
    page: str, empty_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(empty_path, monkeypatch, page)
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_populated_home(
    page: str, populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, page)
    assert at.title[0].value
    assert len(at.dataframe) >= 1


def test_overview_shows_posture(populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Datasets"] == "4" and metrics["Findings awaiting review"] == "2"
    assert "consistent" in texts(at)
    assert "1 intermediate stage output hidden" in texts(at)
    assert "1 entry came after it" in texts(at)
    decisions = table(at, "bound")
    assert decisions["bound"].str.startswith("bound to research at ledger index").all()
    assert decisions["policy"].str.match(r"review-everything sha256:[0-9a-f]{12}$").all()
    at.button(key="overview_verify").click().run()
    assert "Verified:" in texts(at)


def test_dataset_filters_and_detail(populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "datasets")
    assert "4 of 4 datasets · 1 intermediate stage output hidden" in texts(at)
    at.text_input(key="ds_text").set_value("clean").run()
    assert "1 of 4 datasets" in texts(at)
    assert at.selectbox(key="ds_selected").options == ["mix-clean@1"]
    at.text_input(key="ds_text").set_value("").run()
    at.multiselect(key="ds_decision").set_value(["needs-review"]).run()
    assert at.selectbox(key="ds_selected").value == "mix@1"
    assert at.get("graphviz_chart") and at.get("download_button")
    assert "Download Croissant 1.1 JSON-LD, with the Responsible-AI fields" in [
        b.label for b in at.get("download_button")
    ]
    assert "mix@1 — Example web text" in [h.value for h in at.header]
    assert table(at, "bound")["bound"].str.startswith("bound to research").all()
    assert "Sign in to download" in texts(at)  # a report leaving the building names who took it
    sign_in(at, VIEWER, PASSWORDS[VIEWER])
    assert f"Recorded in the ledger as taken by {VIEWER}" in texts(at)


def test_wrong_password_is_refused(populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    sign_in(at, REVIEWER, "not-the-password")
    assert "wrong user name or password" in texts(at)
    assert "custody_signed_in" not in at.session_state
    assert not has_form(at)


def test_viewer_sees_no_action(populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    sign_in(at, VIEWER, PASSWORDS[VIEWER])
    assert "Signed in as **vera** (viewer)" in texts(at)
    assert "viewers can read but not act" in texts(at)
    assert not has_form(at)


def test_roster_roles_not_the_account_decide(
    populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    sign_in(at, ENGINEER, PASSWORDS[ENGINEER])  # a reviewer account; the roster says engineer
    assert f"Signed in as **{ENGINEER}** (reviewer)" in texts(at)
    assert f"{ENGINEER} (roster roles: engineer) may not act on this finding" in texts(at)
    assert not has_form(at)


def test_an_account_off_the_roster_cannot_act(
    populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    sign_in(at, REVOKED, PASSWORDS[REVOKED])
    assert f"{REVOKED} is not an active member of this home's roster" in texts(at)
    assert not has_form(at)


def test_registrant_may_only_reject(populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    sign_in(at, OWNER, PASSWORDS[OWNER])
    assert at.radio(key="rq_action").options == ["reject"]
    assert "separation of duties" in texts(at)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (REVIEWER, f"its key belongs to {REVIEWER} (reviewer), who is not an attestor"),
        (None, "it was started without its key"),
    ],
)
def test_without_an_attestor_key_the_dashboard_is_read_only(
    key: str | None, why: str, populated_path: Path, cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    if key is None:
        monkeypatch.delenv(DASHBOARD_KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(DASHBOARD_KEY_ENV, str(cast.key_file(key)))
    at = open_app(populated_path, monkeypatch, "review")
    sign_in(at, REVIEWER, PASSWORDS[REVIEWER])
    assert f"The dashboard is read-only: {why}" in texts(at)
    assert f"Read-only: {why}" in texts(at)  # the sidebar says it on every page
    assert not has_form(at)


def test_toxic_text_stays_hidden_until_revealed(
    populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    at.selectbox(key="rq_finding").set_value(TOXIC_FINDING).run()
    assert not at.code and "Text hidden" in texts(at)
    at.toggle(key=f"rq_reveal_{TOXIC_FINDING}").set_value(True).run()
    assert len(at.code) >= 1


def test_pii_evidence_is_masked(populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    at.selectbox(key="rq_finding").set_value(PII_FINDING).run()
    shown = [c.value for c in at.code]
    assert shown and all("[EMAIL_ADDRESS]" in text and "@" not in text for text in shown)


def test_a_dashboard_approval_is_an_attested_entry_the_ledger_verifies(
    writable_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(writable_path, monkeypatch, "review")
    sign_in(at, REVIEWER, PASSWORDS[REVIEWER])
    signed_in_at = at.session_state["custody_signed_in"].at
    record(at, PII_FINDING, "approve", "synthetic emails, checked by hand")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert f"recorded: approve {PII_FINDING} by {REVIEWER}" in texts(at)
    assert f"attested by {DASHBOARD} (password sign-in)" in texts(at)
    assert at.selectbox(key="rq_finding").options == [TOXIC_FINDING]
    home = Home.open(writable_path)
    try:
        row = home.ledger.entry(home.ledger.size - 1)
        who = home.attribute(row)
    finally:
        home.close()
    doc = json.loads(row.entry)
    assert (row.type, row.actor, row.subject) == ("review.recorded/v1", REVIEWER, "dataset:mix@1")
    assert (doc["body"]["finding"], doc["body"]["action"], doc["body"]["reason"]) == (
        PII_FINDING,
        "approve",
        "synthetic emails, checked by hand",
    )
    assert doc["attest"] == {"via": DASHBOARD, "method": "password", "signed_in_at": signed_in_at}
    assert (who.kind, who.via, who.problem) == ("attested", DASHBOARD, None)
    verified = CliRunner().invoke(app, ["ledger", "verify", "--home", str(writable_path)])
    assert verified.exit_code == 0, verified.output


def test_the_review_page_tells_personal_from_attested_reviews(
    writable_path: Path, dashboard_key: Path, cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Home.open(writable_path)
    try:
        record_review(home, TOXIC_FINDING, "reject", "too toxic to keep", reviewer=cast.person(home, REVIEWER))
    finally:
        home.close()
    at = open_app(writable_path, monkeypatch, "review")
    sign_in(at, REVIEWER, PASSWORDS[REVIEWER])
    record(at, PII_FINDING, "approve", "synthetic emails")
    recorded = table(at, "signed").set_index("action")["signed"]
    assert recorded["reject"] == f"personally (key {cast.public(REVIEWER).fingerprint})"
    assert recorded["approve"].startswith(f"attested by {DASHBOARD} (password sign-in at ")


def test_runs_page(populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "runs")
    assert at.selectbox(key="runs_selected").value == SMALL_RUN  # the newest
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Energy"], metrics["CO2e"], metrics["Water"]) == ("0.317 Wh", "0.111 g", "0.571 mL")
    assert "about 0.017 smartphone charges" in texts(at) and "showers" not in texts(at)  # too small to compare
    assert table(at, "energy").set_index("run")["energy"].to_dict() == {SMALL_RUN: "0.317 Wh", "r1": "1.2 kWh"}
    at.selectbox(key="runs_selected").set_value("r1").run()
    assert "smartphone charges" in texts(at) and "showers" in texts(at)
    assert {m.label: m.value for m in at.metric}["Energy"] == "1.2 kWh"
    home = Home.open(populated_path)
    try:
        bound = current_bindings(home)["research"]
    finally:
        home.close()
    assert f"review-everything sha256:{bound.digest[:12]} — bound to research at ledger index {bound.index}" in texts(
        at
    )
    at.multiselect(key="runs_status").set_value(["completed"]).run()
    assert at.selectbox(key="runs_selected").options == [SMALL_RUN, "r1"]


def test_ledger_filters_signers_and_proof(
    populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, "ledger")
    at.selectbox(key="lg_type").set_value("run.").run()
    runs = at.dataframe[0].value
    assert set(runs["type"].str.split("/").str[0]) == {"run.started", "run.checkpoint", "run.finished"}
    assert set(runs["signed"]) == {"by the home's service key"}
    at.selectbox(key="lg_type").set_value("people.").run()
    assert at.dataframe[0].value["signed"].str.startswith("personally (key SHA256:").all()
    at.number_input(key="lg_index").set_value(3).run()
    assert "entry 3 signed: personally (key SHA256:" in texts(at)
    labels = [b.label for b in at.get("download_button")]
    assert "Download inclusion proof (JSON)" in labels and "Download checkpoint" in labels
    at.button(key="lg_verify").click().run()
    assert "Verified:" in texts(at)


def test_policies_page(populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "policies")
    (binding,) = table(at, "purpose").to_dict("records")
    assert (binding["purpose"], binding["policy"], binding["bound by"]) == ("research", "review-everything", "admin")
    assert len(binding["sha256"]) == 64
    at.selectbox(key="pol_selected").set_value("research").run()
    assert "not bound to any purpose" in texts(at)  # the shipped file of that name is not what governs research
    matrix = table(at, "fails").set_index("dataset")
    assert "toxicity.max-rate (review)" in matrix.loc["mix@1", "fails"]
    assert "license.allowed" not in matrix.loc["mix@1", "fails"]  # research admits non-commercial


def test_policies_say_not_checked_never_failing(
    populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, "policies")
    at.selectbox(key="pol_selected").set_value("research").run()
    matrix = table(at, "not checked").set_index("dataset")
    assert "provenance.denied-sources" in matrix.loc[PLAYS, "not checked"]  # never checked for provenance
    assert "provenance.denied-sources" not in matrix.loc[PLAYS, "fails"]
    assert f"{PREPARED}+1-normalize-unicode" not in matrix.index  # intermediate: hidden unless asked for
    labels = [e.label for e in at.expander]
    assert "provenance.denied-sources — 0 of 4 datasets fail · 1 not checked" in labels
    at.toggle(key="pol_intermediate").set_value(True).run()
    assert f"{PREPARED}+1-normalize-unicode" in table(at, "not checked")["dataset"].tolist()


def test_the_overview_hides_intermediate_outputs_unless_asked(
    populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch)
    assert {m.label: m.value for m in at.metric}["Datasets"] == "4"
    at.toggle(key="ov_intermediate").set_value(True).run()
    assert {m.label: m.value for m in at.metric}["Datasets"] == "5"
    assert "intermediate stage output hidden" not in texts(at)


def test_a_card_licensed_dataset_shows_its_license_mix(
    populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, "datasets")
    at.selectbox(key="ds_selected").set_value(PLAYS).run()
    assert f"CC-BY-4.0: {PLAY_RECORDS} records" in texts(at)
    assert "no license check result" not in texts(at)
    assert at.get("vega_lite_chart")  # the chart is drawn
    # "Registered by" is plain text (a metric would make the address a huge, cut-off mailto link).
    assert "Registered by" not in [m.label for m in at.metric]
    assert WEB_OWNER in [t.value for t in at.text]


def test_intermediate_outputs_are_listed_only_when_asked(
    populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, "datasets")
    intermediate = f"{PREPARED}+1-normalize-unicode"
    assert intermediate not in at.selectbox(key="ds_selected").options
    at.toggle(key="ds_intermediate").set_value(True).run()
    assert intermediate in at.selectbox(key="ds_selected").options
    assert "5 of 5 datasets" in texts(at)


def test_the_ledger_opens_on_a_proof_not_a_warning(
    writable_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(writable_path, monkeypatch, "ledger")  # the head is one entry past the checkpoint
    assert not at.warning, [w.value for w in at.warning]
    assert "sign one first" not in texts(at) and "1 entry came after it" in texts(at)
    assert "Download inclusion proof (JSON)" in [b.label for b in at.get("download_button")]
    home = Home.open(writable_path)
    newest = home.ledger.size - 1
    home.close()
    at.number_input(key="lg_index").set_value(newest).run()
    assert f"Entry {newest} came after the latest signed checkpoint" in texts(at)
    at.button(key="lg_sign_checkpoint").click().run()
    assert "it covers every entry" in texts(at)
    assert "Download inclusion proof (JSON)" in [b.label for b in at.get("download_button")]


def request_ids(path: Path) -> dict[str, str]:
    home = Home.open(path)
    try:
        return takedown_ids(home)
    finally:
        home.close()


def open_request(at: AppTest, request_id: str) -> AppTest:
    return at.selectbox(key="td_selected").set_value(request_id).run()


def has_apply(at: AppTest) -> bool:
    return any(b.label == "Apply takedown" for b in at.button)


def test_the_takedowns_page_lists_requests_and_where_each_work_is(
    populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, "takedowns")
    assert "2 requests: 2 open, 0 applied" in texts(at)
    listed = table(at, "request").set_index("requested by")
    assert set(listed["status"]) == {"open"} and listed.loc[PLAY_TAKEDOWN_BY, "reason"] == "copyright"
    taken = request_ids(populated_path)[PLAY_TAKEDOWN_BY]
    open_request(at, taken)
    assert taken in [h.value for h in at.header]
    holders = table(at, "state").set_index("dataset")
    assert set(holders.index) == {PLAYS, PREPARED, f"{PREPARED}+1-normalize-unicode"}
    assert set(holders["state"]) == {"live"} and set(holders["record ids"]) == {TAKEN_RECORD}
    hits = table(at, "offsets")
    assert list(hits.columns) == ["dataset", "record", "position", "offsets", "text sha256"]  # never the text
    assert table(at, "model sha256")["run"].tolist() == [SMALL_RUN]
    assert "Sign in (sidebar) as an approver or admin to apply a takedown." in texts(at)
    assert not has_apply(at) and not at.get("download_button")  # open: no proof yet
    at.multiselect(key="td_status").set_value(["applied"]).run()  # none is applied yet
    assert [s.key for s in at.selectbox] == [] and not at.exception


def test_a_reviewer_gets_no_apply_button(
    populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, "takedowns")
    sign_in(at, REVIEWER, PASSWORDS[REVIEWER])
    open_request(at, request_ids(populated_path)[PLAY_TAKEDOWN_BY])
    assert f"{REVIEWER} (roster roles: reviewer) may not apply a takedown: that takes an approver or admin." in texts(
        at
    )
    assert not has_apply(at) and "I have read the plan" not in texts(at)


def test_a_read_only_dashboard_offers_no_apply(populated_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DASHBOARD_KEY_ENV, raising=False)
    at = open_app(populated_path, monkeypatch, "takedowns")
    sign_in(at, APPROVER, PASSWORDS[APPROVER])
    open_request(at, request_ids(populated_path)[PLAY_TAKEDOWN_BY])
    assert "The dashboard is read-only: it was started without its key" in texts(at)
    assert not has_apply(at)


def test_a_takedown_that_cannot_be_applied_says_why_in_one_line(
    populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, "takedowns")
    sign_in(at, APPROVER, PASSWORDS[APPROVER])
    taken = request_ids(populated_path)[MIX_TAKEDOWN_BY]
    open_request(at, taken)
    (error,) = [e.value for e in at.error]
    assert error.startswith(f"Cannot apply {taken}: mix-clean@1: stage drop-toxic built again") and "\n" not in error
    assert not has_apply(at)


def test_an_approver_applies_a_takedown_after_reading_the_plan(
    writable_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch, cast
) -> None:
    at = open_app(writable_path, monkeypatch, "takedowns")
    sign_in(at, APPROVER, PASSWORDS[APPROVER])
    taken = request_ids(writable_path)[PLAY_TAKEDOWN_BY]
    open_request(at, taken)
    plan = table(at, "replace").set_index("replace")
    assert plan.loc[PLAYS, "with"] == f"{PLAYS}-{taken}" and plan.loc[PLAYS, "how"] == "records removed"
    assert plan.loc[PREPARED, "how"] == f"derived again from {PREPARED}+1-normalize-unicode's new version"
    assert table(at, "why").set_index("run").loc[SMALL_RUN, "why"] == f"read {PREPARED}"
    assert at.button(key="td_apply").disabled  # not before the plan is confirmed
    (confirm,) = [c for c in at.checkbox if c.label.startswith("I have read the plan")]
    assert confirm.label == "I have read the plan: replace 3 dataset versions and taint 1 run"
    confirm.check().run()
    at.button(key="td_apply").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert f"applied {taken} at ledger index " in texts(at)
    assert f"by {APPROVER}, attested by {DASHBOARD} (password sign-in): 3 dataset versions replaced, 1 run tainted" in (
        texts(at)
    )
    assert "No live dataset version holds the work: the takedown is complete." in texts(at)
    assert table(at, "request").set_index("request").loc[taken, "status"] == "applied"
    assert table(at, "state").set_index("dataset").loc[PLAYS, "state"] == f"taken down by {taken} → {PLAYS}-{taken}"
    assert "Download proof of removal (JSON)" in [b.label for b in at.get("download_button")]
    assert any(f"custody takedown verify-proof takedown-{taken}.proof.json --key" in c.value for c in at.code)
    home = Home.open(writable_path)
    try:
        applied = next(iter(home.storage.entries(0, home.ledger.size, type_prefix="takedown.applied/")))
        who = home.attribute(applied)
    finally:
        home.close()
    assert (applied.actor, who.kind, who.via) == (APPROVER, "attested", DASHBOARD)
    # Where people look: the run is tainted, the versions taken down.
    at.switch_page("app_pages/runs.py").run()
    assert table(at, "tainted by").set_index("run").loc[SMALL_RUN, "tainted by"] == taken
    at.selectbox(key="runs_selected").set_value(SMALL_RUN).run()
    assert f"Tainted by takedown {taken} (ledger index " in texts(at)
    assert f"it read {PREPARED}, which the takedown replaced" in texts(at)
    at.switch_page("app_pages/datasets.py").run()
    assert table(at, "taken down").set_index("dataset").loc[PLAYS, "taken down"] == f"{taken} → {PLAYS}-{taken}"
    at.selectbox(key="ds_selected").set_value(PLAYS).run()
    assert f"Taken down by {taken} (ledger index " in texts(at)
    # An admin erases the replaced shards: the version's page still opens, and says so.
    home = Home.open(writable_path)
    try:
        gc(home, cast.person(home, ADMIN), taken)
    finally:
        home.close()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Its shards were erased from the store" in texts(at)
    verified = CliRunner().invoke(app, ["ledger", "verify", "--home", str(writable_path)])
    assert verified.exit_code == 0, verified.output


def test_tables_fit_the_page_and_keep_the_columns_rows_are_found_by() -> None:
    sys.path.insert(0, str(APP.parent))  # where custody_dash lives, as app.py arranges
    from custody_dash import tables

    rows = [{"dataset": f"{PREPARED}+1-normalize-unicode", "time": "2026-12-05 17:18:54Z"}]
    rows[0].update({f"rule {i}": "a long explanation " * 3 for i in range(6)})
    widths = tables.column_widths(rows, keep=("dataset",))
    assert sum(widths.values()) <= tables.BUDGET_PX
    assert widths["dataset"] == tables._natural("dataset", rows) and widths["time"] == tables._natural("time", rows)
    assert tables.column_widths([{"a": 1}]) == {"a": tables._natural("a", [{"a": 1}])}  # a table that fits is kept
    pages = sorted((APP.parent / "app_pages").glob("*.py"))
    assert pages and not [p.name for p in pages if "st.dataframe(" in p.read_text()]  # every table is fitted


ROUGH_WORDING = re.compile(r"\(s\)|\b1 (entries|datasets|records|checkpoints|steps|problems)\b|\d\.?\d*e-\d")


@pytest.mark.parametrize("page", PAGES)
def test_pages_speak_in_words(
    page: str, populated_path: Path, dashboard_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No "dataset(s)", "1 entries" or "8.8e-06" on any page."""
    at = open_app(populated_path, monkeypatch, page)
    found = ROUGH_WORDING.findall(texts(at))
    assert not found, found
