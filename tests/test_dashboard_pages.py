"""Every dashboard page under streamlit.testing's AppTest, on an empty and a populated home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from custody.home import Home
from dashboard_data import (
    OWNER,
    PASSWORDS,
    PII_FINDING,
    REVIEWER,
    TOXIC_FINDING,
    VIEWER,
    base_home,
    copy_home,
    empty_home,
)

APP = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
PAGES = ["overview", "datasets", "review", "runs", "ledger", "policies"]


@pytest.fixture(scope="module")
def populated_path(tmp_path_factory, shared_data: Path) -> Path:
    return copy_home(base_home(tmp_path_factory, shared_data), tmp_path_factory.mktemp("pages") / "home")


@pytest.fixture(scope="module")
def empty_path(tmp_path_factory) -> Path:
    return empty_home(tmp_path_factory.mktemp("pages-empty") / "home")


@pytest.fixture
def writable_path(tmp_path: Path, tmp_path_factory, shared_data: Path) -> Path:
    return copy_home(base_home(tmp_path_factory, shared_data), tmp_path / "home")


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
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_home(page: str, empty_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(empty_path, monkeypatch, page)
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_populated_home(
    page: str, populated_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(populated_path, monkeypatch, page)
    assert at.title[0].value
    assert len(at.dataframe) >= 1


def test_overview_shows_posture(populated_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Datasets"] == "2" and metrics["Findings awaiting review"] == "2"
    assert "consistent" in texts(at)
    at.button(key="overview_verify").click().run()
    assert "Verified:" in texts(at)


def test_dataset_filters_and_detail(populated_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "datasets")
    assert "2 of 2 datasets" in texts(at)
    at.text_input(key="ds_text").set_value("clean").run()
    assert "1 of 2 datasets" in texts(at)
    assert at.selectbox(key="ds_selected").options == ["mix-clean@1"]
    at.text_input(key="ds_text").set_value("").run()
    at.multiselect(key="ds_decision").set_value(["needs-review"]).run()
    assert at.selectbox(key="ds_selected").value == "mix@1"
    assert at.get("graphviz_chart") and at.get("download_button")
    assert "mix@1 — Example web text" in [h.value for h in at.header]


def test_wrong_password_is_refused(populated_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    sign_in(at, REVIEWER, "not-the-password")
    assert "wrong user name or password" in texts(at)
    assert "custody_account" not in at.session_state
    assert not [b for b in at.button if b.label == "Record review"]


def test_viewer_sees_no_action(populated_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    sign_in(at, VIEWER, PASSWORDS[VIEWER])
    assert "Signed in as **vera** (viewer)" in texts(at)
    assert "viewers can read but not act" in texts(at)
    assert not [b for b in at.button if b.label == "Record review"]


def test_registrant_may_only_reject(populated_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    sign_in(at, OWNER, PASSWORDS[OWNER])
    assert at.radio(key="rq_action").options == ["reject"]
    assert "separation of duties" in texts(at)


def test_toxic_text_stays_hidden_until_revealed(populated_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    at.selectbox(key="rq_finding").set_value(TOXIC_FINDING).run()
    assert not at.code and "Text hidden" in texts(at)
    at.toggle(key=f"rq_reveal_{TOXIC_FINDING}").set_value(True).run()
    assert len(at.code) >= 1


def test_pii_evidence_is_masked(populated_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "review")
    at.selectbox(key="rq_finding").set_value(PII_FINDING).run()
    shown = [c.value for c in at.code]
    assert shown and all("[EMAIL_ADDRESS]" in text and "@" not in text for text in shown)


def test_reviewer_approves_and_the_ledger_records_it(writable_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(writable_path, monkeypatch, "review")
    sign_in(at, REVIEWER, PASSWORDS[REVIEWER])
    at.selectbox(key="rq_finding").set_value(PII_FINDING).run()
    at.radio(key="rq_action").set_value("approve")
    at.text_area(key="rq_reason").set_value("synthetic emails, checked by hand")
    next(b for b in at.button if b.label == "Record review").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert f"recorded: approve {PII_FINDING} by {REVIEWER}" in texts(at)
    assert at.selectbox(key="rq_finding").options == [TOXIC_FINDING]
    home = Home.open(writable_path)
    try:
        row = home.ledger.entry(home.ledger.size - 1)
    finally:
        home.close()
    body = json.loads(row.entry)["body"]
    assert (row.type, row.actor, row.subject) == ("review.recorded/v1", REVIEWER, "dataset:mix@1")
    assert (body["finding"], body["action"], body["reason"]) == (
        PII_FINDING,
        "approve",
        "synthetic emails, checked by hand",
    )


def test_runs_page(populated_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "runs")
    assert at.selectbox(key="runs_selected").value == "r1"
    assert "smartphone charges" in texts(at) and "showers" in texts(at)
    assert {m.label for m in at.metric} >= {"Energy", "CO2e", "Water"}
    at.multiselect(key="runs_status").set_value(["completed"]).run()
    assert at.selectbox(key="runs_selected").options == ["r1"]


def test_ledger_filters_and_proof(populated_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "ledger")
    at.selectbox(key="lg_type").set_value("run.").run()
    table = at.dataframe[0].value
    assert set(table["type"].str.split("/").str[0]) == {"run.started", "run.checkpoint", "run.finished"}
    at.number_input(key="lg_index").set_value(3).run()
    labels = [b.label for b in at.get("download_button")]
    assert "Download inclusion proof (JSON)" in labels and "Download checkpoint" in labels
    at.button(key="lg_verify").click().run()
    assert "Verified:" in texts(at)


def test_policies_page(populated_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(populated_path, monkeypatch, "policies")
    at.selectbox(key="pol_selected").set_value("research").run()
    matrix = at.dataframe[0].value
    mix = matrix[matrix["dataset"] == "mix@1"].iloc[0]
    assert mix["toxicity.max-rate"] == "review" and mix["license.allowed"] == "pass"
