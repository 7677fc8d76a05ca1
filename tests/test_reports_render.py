"""Markdown, HTML and JSON reports carry every known provenance field, the checks with their
summaries, decisions (each policy by digest, and whether it was the one bound to the purpose),
reviews (each signed personally or attested by the dashboard), lineage and runs; a run's report
carries its datasets with digests, the decision, tokenizer and model digests, metrics, energy,
CO2e and water. HTML draws its charts as inline SVG and loads nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from custody.home import Home
from custody.policy.bindings import binding_at
from custody.reports.build import build_report
from custody.reports.fields import MAPPING
from custody.reports.layout import parse
from report_data import DASHBOARD, PII_FINDING, REVIEWER, SIGNED_IN, TOXIC_FINDING, report_home


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, shared_data: Path, cast):
    built = report_home(tmp_path_factory, shared_data, cast)
    home = Home.open(built.path)
    out = {
        (target, fmt): build_report(home, target, fmt).data.decode()
        for target in ("mix@1", "shakespeare@1", built.run_id)
        for fmt in ("md", "html", "json")
    }
    yield built, out
    home.close()


# fields the test card (CARD_TEMPLATE) and the home give mix@1; 15 (lineage) it has none of
KNOWN = [n for n, *_ in MAPPING if n != 15]


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_dataset_report_has_every_known_field_and_the_evidence(rendered, fmt: str):
    _, out = rendered
    text = out[("mix@1", fmt)]
    for number, name, *_ in MAPPING:
        row = f"| {number} | {name} |" if fmt == "md" else f"<td>{number}</td><td>{name}</td>"
        assert (row in text) == (number in KNOWN), (number, name)
    for expected in (
        "example.org",
        "CC-BY-NC-4.0",
        "EMAIL_ADDRESS",
        "needs-review",
        "review-everything",
        PII_FINDING,
        REVIEWER,
        "addresses are synthetic test data",
        "Ledger anchors",
        "verify-report",
    ):
        assert expected in text, expected
    assert re.search(r"pii \| 1\.1\.0 \| flag|<td>pii</td><td>1\.1\.0</td><td>flag</td>", text)


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_reviews_say_whether_signed_personally_or_attested_by_the_dashboard(rendered, cast, fmt: str):
    _, out = rendered
    doc = parse(out[("mix@1", "json")].encode()).doc
    personal, attested = doc["reviews"]
    assert (personal["finding"], personal["signed_with"]) == (PII_FINDING, cast.public(REVIEWER).fingerprint)
    assert "attest" not in personal
    assert (attested["finding"], attested["actor"]) == (TOXIC_FINDING, SIGNED_IN)
    assert attested["attest"]["via"] == DASHBOARD and attested["attest"]["method"] == "password"
    assert attested["signed_with"] == cast.public(DASHBOARD).fingerprint
    text = out[("mix@1", fmt)]
    assert f"personally, with key {cast.public(REVIEWER).fingerprint}" in text
    assert f"attested by {DASHBOARD} (password sign-in at {attested['attest']['signed_in_at']}" in text


def test_decisions_name_each_policy_by_digest_and_binding(rendered):
    built, out = rendered
    home = Home.open(built.path)
    try:
        mix_policy = binding_at(home, "research", built.decision_index)
        run_decision = parse(out[(built.run_id, "json")].encode()).doc["decision"]
        run_policy = binding_at(home, "research", run_decision["ledger_index"])
    finally:
        home.close()
    assert mix_policy is not None and run_policy is not None and mix_policy.digest != run_policy.digest
    for target, binding in (("mix@1", mix_policy), (built.run_id, run_policy)):
        name = binding.loaded.policy.name
        expected = f"{name} sha256:{binding.digest} — bound to research at ledger index {binding.index}"
        assert expected in out[(target, "md")] and expected in out[(target, "html")], target


def test_html_is_self_contained_with_svg_charts(rendered):
    built, out = rendered
    html = out[("mix@1", "html")]
    # license mix, PII per entity, PII per risk level and per risk category, toxicity histogram
    assert html.count("<svg") == 5
    assert "<script src" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    run_html = out[(built.run_id, "html")]
    assert "<polyline" in run_html and "Loss per step" in run_html


def test_run_report_has_datasets_decision_digests_metrics_and_emissions(rendered):
    built, out = rendered
    doc = parse(out[(built.run_id, "json")].encode()).doc
    started, finished = doc["run"]["started"], doc["run"]["finished"]
    assert doc["decision"]["ledger_index"] == started["decision_index"]
    assert doc["decision"]["result"]["decision"] == "allow"
    assert len(finished["metrics"]["steps"]) == 12 and finished["emissions"]["water_l"] > 0
    (read,) = doc["datasets"]
    assert read["read"]["manifest_digest"] == started["datasets"][0]["digest"]
    assert set(read["checks"]) == {"license", "pii", "provenance", "toxicity"}
    assert [a["dataset"]["name"] for a in read["ancestors"]] == ["shakespeare", "shakespeare"]
    md = out[(built.run_id, "md")]
    for value in (
        started["tokenizer_digest"],
        finished["model_digest"],
        started["datasets"][0]["digest"],
        started["datasets"][0]["source_digest"],
        "kg CO2e",
        "water (L)",
        "| training |",
        "| preparation |",
    ):
        assert value in md, value


def test_a_source_dataset_report_lists_the_runs_that_used_it(rendered):
    built, out = rendered
    doc = parse(out[("shakespeare@1", "json")].encode()).doc
    assert [r["started"]["run_id"] for r in doc["runs"]] == [built.run_id]
    assert [d["dataset"]["stage"]["name"] for d in doc["lineage"]["descendants"]] == ["dedup-exact", "drop-toxic"]
    assert built.run_id in out[("shakespeare@1", "md")]


def test_markdown_embeds_the_report_in_a_fenced_block(rendered):
    _, out = rendered
    md = out[("mix@1", "md")]
    assert md.startswith("# Provenance report: mix@1") and "```json custody-report\n" in md
    assert md.rstrip().endswith("</details>")
