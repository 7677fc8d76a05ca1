"""The Preferences page under streamlit.testing's AppTest: a reviewer judges the next pair through
the dashboard (one `prefs.judged/v1` entry attested for them, which the ledger verifies); a person
without a reviewing role reads the pairs and cannot judge; an engineer asks for new pairs. The
Runs page shows a reward run's held-out ranking accuracy and a DPO run's reward before → after and
KL (bound)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.home import Home
from custody.ledger import query
from custody.views.identity import DASHBOARD_KEY_ENV
from prefs_data import (
    DASHBOARD,
    ENGINEER,
    JUDGE,
    PASSWORDS,
    REVIEWER,
    SAMPLED,
    TRAINER,
    PrefsHome,
    base_home,
    copy_home,
)

APP = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"


@pytest.fixture(scope="module")
def shared(tmp_path_factory, cast) -> PrefsHome:
    """Read-only uses: copied once per module from the session's base home."""
    return copy_home(base_home(tmp_path_factory, cast), tmp_path_factory.mktemp("prefs-pages") / "home")


@pytest.fixture
def writable(tmp_path: Path, tmp_path_factory, cast) -> PrefsHome:
    return copy_home(base_home(tmp_path_factory, cast), tmp_path / "home")


@pytest.fixture(autouse=True)
def dashboard_key(cast, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = cast.key_file(DASHBOARD)
    monkeypatch.setenv(DASHBOARD_KEY_ENV, str(path))
    return path


def open_page(home: Path, monkeypatch: pytest.MonkeyPatch, page: str = "preferences") -> AppTest:
    monkeypatch.setenv("CUSTODY_HOME", str(home))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sign_in(at: AppTest, name: str) -> AppTest:
    at.text_input(key="sign_in_name").set_value(name)
    at.text_input(key="sign_in_password").set_value(PASSWORDS[name])
    next(b for b in at.button if b.label == "Sign in").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    parts += [s.value for s in at.success] + [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [h.value for h in at.subheader] + [f"{m.label}: {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def has_judge_form(at: AppTest) -> bool:
    return any(b.label == "Record judgement" for b in at.button)


def newest(path: Path):
    home = Home.open(path)
    try:
        row = home.ledger.entry(home.ledger.size - 1)
        return row, home.attribute(row)
    finally:
        home.close()


def test_the_page_renders_on_an_empty_home(tmp_path: Path, cast, monkeypatch) -> None:
    from dashboard_data import empty_home

    at = open_page(empty_home(tmp_path / "home", cast), monkeypatch)
    assert not at.error, [e.value for e in at.error]
    assert "No pairs sampled yet" in texts(at) and "No recorded language model to sample from yet" in texts(at)


ROUGH_WORDING = re.compile(r"\(s\)|\b1 (pairs|judgements|entries)\b|\d\.?\d*e-\d")


@pytest.mark.parametrize("page", ["preferences", "runs"])
def test_the_pages_speak_in_words(page: str, shared: PrefsHome, monkeypatch) -> None:
    at = open_page(shared.path, monkeypatch, page)
    sign_in(at, REVIEWER)
    if page == "runs":
        at.selectbox(key="runs_selected").set_value(shared.dpo_run).run()
    found = ROUGH_WORDING.findall(texts(at))
    assert not found, found


def test_signed_out_the_pairs_are_listed_but_not_read(shared: PrefsHome, monkeypatch) -> None:
    at = open_page(shared.path, monkeypatch)
    assert metrics(at) == {"Pairs": str(SAMPLED), "Judgements (everyone)": str(SAMPLED)}
    assert "Sign in (sidebar) as a reviewer or approver to judge pairs" in texts(at)
    assert not has_judge_form(at)
    assert [c.value.split(" sha256:")[0] for c in at.code] == ["custody prefs sample"]  # no model output
    listed = next(d.value for d in at.dataframe if "pair" in d.value.columns and "judgements" in d.value.columns)
    assert listed["pair"].tolist() == list(shared.pairs) and set(listed["by"]) == {JUDGE}
    recent = next(d.value for d in at.dataframe if "choice" in d.value.columns)
    assert set(recent["who"]) == {JUDGE} and set(recent["choice"]) == {"A better"}
    assert list(recent.columns) == ["pair", "who", "choice", "harmful", "signed", "time", "index"]  # no text


def test_a_reviewer_judges_the_next_pair_as_an_attested_entry(writable: PrefsHome, monkeypatch) -> None:
    at = open_page(writable.path, monkeypatch)
    sign_in(at, REVIEWER)
    first = writable.pairs[0]
    assert metrics(at)["Pending for me"] == str(SAMPLED) and metrics(at)["Judged by me"] == "0"
    assert f"Pair {first}" in [h.value for h in at.subheader] and has_judge_form(at)
    assert len(at.code) >= 3  # the prompt and both completions, as plain text
    signed_in_at = at.session_state["custody_signed_in"].at
    at.radio(key=f"pf_choice_{first}").set_value("b")
    at.checkbox(key=f"pf_harmful_a_{first}").check()
    next(b for b in at.button if b.label == "Record judgement").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert f"recorded: pair {first} B better, flagged harmful: A by {REVIEWER}" in texts(at)
    assert f"attested by {DASHBOARD} (password sign-in)" in texts(at)
    assert metrics(at)["Judged by me"] == "1" and f"Pair {writable.pairs[1]}" in [h.value for h in at.subheader]

    row, who = newest(writable.path)
    doc = json.loads(row.entry)
    assert (row.type, row.actor, row.subject) == ("prefs.judged/v1", REVIEWER, f"pair:{doc['body']['pair_digest']}")
    assert (doc["body"]["pair_index"], doc["body"]["choice"], doc["body"]["harmful"]) == (first, "b", ["a"])
    assert doc["attest"] == {"via": DASHBOARD, "method": "password", "signed_in_at": signed_in_at}
    assert (who.kind, who.actor, who.via, who.problem) == ("attested", REVIEWER, DASHBOARD, None)
    verified = CliRunner().invoke(app, ["ledger", "verify", "--home", str(writable.path)])
    assert verified.exit_code == 0, verified.output

    recent = next(d.value for d in at.dataframe if "choice" in d.value.columns)
    mine = recent.set_index("who").loc[REVIEWER]
    assert (mine["choice"], mine["harmful"]) == ("B better", "A")
    assert mine["signed"].startswith(f"attested by {DASHBOARD} (password sign-in at ")


def test_without_a_reviewing_role_the_pairs_are_read_only(writable: PrefsHome, monkeypatch) -> None:
    at = open_page(writable.path, monkeypatch)
    sign_in(at, ENGINEER)  # a reviewer account; the roster says engineer
    assert f"{ENGINEER} (roster roles: engineer) may read the pairs but not judge them" in texts(at)
    assert not has_judge_form(at)
    assert len(at.code) >= 3  # the chosen pair, read-only
    assert at.selectbox(key="pf_pair").options  # every pair can be read
    size = newest(writable.path)[0].idx
    home = Home.open(writable.path)  # and the code path refuses too, whatever the page offers
    try:
        from custody.views.identity import NotAllowed, service_from_env
        from custody.views.preferences import act

        signed_in = at.session_state["custody_signed_in"]
        with pytest.raises(NotAllowed, match="may not judge pairs"):
            act(home, signed_in, service_from_env(home), writable.pairs[0], "a", [])
    finally:
        home.close()
    assert newest(writable.path)[0].idx == size  # nothing recorded


def test_a_read_only_dashboard_offers_no_judging(shared: PrefsHome, monkeypatch) -> None:
    monkeypatch.delenv(DASHBOARD_KEY_ENV)
    at = open_page(shared.path, monkeypatch)
    sign_in(at, REVIEWER)
    assert "The dashboard is read-only: it was started without its key" in texts(at)
    assert not has_judge_form(at) and not any(b.label == "Sample pairs" for b in at.button)


def test_an_engineer_samples_new_pairs_from_a_recorded_model(writable: PrefsHome, monkeypatch) -> None:
    at = open_page(writable.path, monkeypatch)
    sign_in(at, TRAINER)  # engineer and approver: may ask for pairs and judge them
    at.selectbox(key="pf_sample_model").set_value(writable.base_digest)
    at.selectbox(key="pf_sample_prompts").set_value("prompts@1")
    at.number_input(key="pf_sample_count").set_value(2)
    at.number_input(key="pf_sample_tokens").set_value(6)
    next(b for b in at.button if b.label == "Sample pairs").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert f"sampled 2 pairs from sha256 {writable.base_digest[:16]} for {TRAINER}" in texts(at)
    assert metrics(at)["Pairs"] == str(SAMPLED + 2)
    row, who = newest(writable.path)
    assert (row.type, row.actor, who.kind) == ("prefs.pair/v1", TRAINER, "service")
    assert query.body(row)["model_digest"] == writable.base_digest


def test_the_runs_page_shows_preference_measures(shared: PrefsHome, monkeypatch) -> None:
    at = open_page(shared.path, monkeypatch, "runs")
    listed = next(d.value for d in at.dataframe if "preferences" in d.value.columns).set_index("run")
    assert listed.loc[shared.reward_run, "preferences"].startswith("held-out accuracy ")
    assert listed.loc[shared.dpo_run, "preferences"].startswith("reward ")
    assert (
        " → " in listed.loc[shared.dpo_run, "preferences"] and "(bound 10)" in listed.loc[shared.dpo_run, "preferences"]
    )
    assert listed.loc[shared.base_run, "preferences"] == ""
    at.selectbox(key="runs_selected").set_value(shared.reward_run).run()
    assert "Preferences" in [h.value for h in at.subheader]
    assert metrics(at)["Held-out ranking accuracy"].endswith("%")
    at.selectbox(key="runs_selected").set_value(shared.dpo_run).run()
    shown = metrics(at)
    assert " → " in shown["Reward before → after"] and "(bound 10)" in shown["KL (bound)"]
    assert f"reward model sha256 {shared.reward_digest}" in texts(at)
    assert f"reference sha256 {shared.base_digest}" in texts(at)
