"""Reports of preference data and preference runs: a reward or DPO run's report has a Preferences
section (its measures from the cited run.finished, the reviewers, the models it rests on with the
runs that wrote them, the preference datasets); a dataset `custody prefs export` made names the
weights its pairs came from and how many judgements it rests on, citing its prefs.exported entry.
Every report still verifies offline, and an edited measure fails."""

from __future__ import annotations

import json

import pytest

from custody.home import Home
from custody.ledger import query
from custody.reports import ExportError
from custody.reports.build import build
from custody.reports.layout import parse
from custody.reports.verify import verify_report
from prefs_data import EXPORTED, JUDGE, REVIEWER, SAMPLED, TRAINER, base_home, copy_home


@pytest.fixture(scope="module")
def world(tmp_path_factory, cast):
    made = copy_home(base_home(tmp_path_factory, cast), tmp_path_factory.mktemp("prefs-reports") / "home")
    home = Home.open(made.path)
    yield made, home
    home.close()


def report(world, cast, target: str, fmt: str):
    _, home = world
    built = build(home, target, fmt, cast.person(home, TRAINER))
    result = verify_report(built.data, home.verifier_key)
    assert result.ok, result.problems
    return built.data


def finished(home: Home, run_id: str) -> dict:
    return query.body(query.latest(home.storage, "run.finished/", f"run:{run_id}"))


def anchored(data: bytes) -> set[int]:
    return {e["index"] for e in parse(data).doc["anchors"]["entries"]}


def test_a_reward_runs_report_shows_its_held_out_ranking_accuracy(world, cast):
    made, home = world
    measured = finished(home, made.reward_run)["preference"]
    text = report(world, cast, made.reward_run, "md").decode()
    section = text.split("## Preferences", 1)[1].split("\n## ", 1)[0]
    accuracy = measured["held_out_accuracy"]
    assert f"held-out ranking accuracy (chosen scored above rejected) | {accuracy:.2%}" in section
    assert f"reviewers (roster names) | {', '.join(measured['reviewers'])}" in section
    assert set(measured["reviewers"]) == {REVIEWER, JUDGE}
    assert f"started from | {made.base_digest} | {made.base_run}" in section
    assert "likes@1: registered directly, not exported from judgements" in section


def test_a_dpo_runs_report_shows_reward_before_and_after_and_the_kl_bound(world, cast):
    made, home = world
    measured = finished(home, made.dpo_run)["preference"]
    data = report(world, cast, made.dpo_run, "json")
    doc = parse(data).doc
    models = {m["role"]: m for m in doc["preferences"]["models"]}
    assert models["reference"]["digest"] == made.base_digest == measured["reference_digest"]
    assert models["reward model"]["written_by"]["run_id"] == made.reward_run
    reward_finished = models["reward model"]["written_by"]["ledger_index"]
    assert reward_finished in anchored(data)  # the reward model's own run.finished is proved too
    text = report(world, cast, made.dpo_run, "md").decode()
    section = text.split("## Preferences", 1)[1].split("\n## ", 1)[0]

    def num(value: float) -> str:
        return f"{value:.4g}"

    assert f"mean reward before → after | {num(measured['reward_before'])} → {num(measured['reward_after'])}" in section
    assert f"KL to the reference (nats per completion), bound | {num(measured['kl'])}, 10" in section
    assert f"reward model | {made.reward_digest} | {made.reward_run} | {reward_finished}" in section
    assert "held-out ranking accuracy" not in section
    html = report(world, cast, made.dpo_run, "html").decode()
    assert "Preferences" in html and "mean reward before → after" in html


def test_an_edited_measure_fails_verification(world, cast):
    made, home = world
    data = report(world, cast, made.dpo_run, "json")
    doc = parse(data).doc
    before = doc["run"]["finished"]["preference"]["reward_after"]
    edited = data.replace(f'"reward_after": {json.dumps(before)}'.encode(), b'"reward_after": 99.5', 1)
    assert edited != data
    result = verify_report(edited, home.verifier_key)
    assert not result.ok
    assert any(f"claim on ledger entry {doc['run']['finished']['ledger_index']}" in p for p in result.problems), (
        result.problems
    )


def test_an_exported_preference_dataset_names_its_model_and_judgements(world, cast):
    made, home = world
    exported = query.body(query.at(home.storage, made.export_index))
    data = report(world, cast, EXPORTED, "json")
    (claim,) = parse(data).doc["preferences"]
    assert claim["ledger_index"] == made.export_index and made.export_index in anchored(data)
    assert claim["model_digest"] == made.base_digest and len(claim["judgements"]) == SAMPLED
    text = report(world, cast, EXPORTED, "md").decode()
    section = text.split("## Preferences", 1)[1].split("\n## ", 1)[0]
    row = f"| {made.base_digest} | {made.base_run} | prompts@1 (sha256 {exported['prompts_digest'][:16]}…) |"
    assert row in section
    assert f"| {exported['pairs']} | {SAMPLED} | {JUDGE} | none | {made.export_index} |" in section
    # A dataset that was not exported from judgements has no such section.
    assert "## Preferences" not in report(world, cast, "prompts@1", "md").decode()


@pytest.mark.parametrize("fmt", ["spdx", "cyclonedx", "hf-card", "ai-act-summary", "openlineage"])
def test_exports_of_preference_data_and_runs_still_build(world, cast, fmt: str):
    made, home = world
    assert build(home, EXPORTED, fmt, cast.person(home, TRAINER)).data
    try:
        assert build(home, made.dpo_run, fmt, cast.person(home, TRAINER)).data
    except ExportError as exc:
        assert "describes a dataset" in str(exc)
