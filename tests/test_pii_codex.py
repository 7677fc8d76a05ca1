"""pii-codex risk ratings: the entity table, the pii check's summary on real data, `pii.max-risk`.

The summary runs the real pii check (spaCy, presidio) over the first records of presidio's
synthetic set (../shared/data/pii_presidio_synth) once per module; the rule is judged over the
gate's input document gathered from that home.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from custody.checks.pii import PiiCheck, redaction
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.pii import risk
from custody.pii.engine import DEFAULT_ENTITIES
from custody.pii.recall import RECALL_ENTITIES
from custody.pipeline.run_check import run_check
from custody.policy.evaluate import evaluate
from custody.policy.inputs import gather
from custody.policy.schema import PolicyError, parse_policy

SAMPLE = 60
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
HEADER = 'schema = 1\nname = "t"\n'


# -- the table ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "codex_type", "level", "category"),
    [
        ("EMAIL_ADDRESS", "EMAIL_ADDRESS", 3, "Personal Preferences"),
        ("US_SSN", "US_SOCIAL_SECURITY_NUMBER", 3, "Secure Identifiers"),
        ("CREDIT_CARD", "CREDIT_CARD_NUMBER", 3, "Financial Information"),
        ("PERSON", "PERSON", 3, "Financial Information"),  # pii-codex's own filing
        ("PHONE_NUMBER", "PHONE_NUMBER", 3, "Contact Information"),
        ("IP_ADDRESS", "IP_ADDRESS", 3, "Contact Information"),
        ("IBAN_CODE", "INTERNATIONAL_BANKING_ACCOUNT_NUMBER", 3, "Financial Information"),
        ("LOCATION", "ADDRESS", 2, "Contact Information"),
        ("STREET_ADDRESS", "ADDRESS", 2, "Contact Information"),  # the opt-in recognizer's entity
        ("URL", "URL", 2, "Community Interaction"),
        ("DATE_TIME", "DATE", 2, "Basic Demographics"),
        ("API_KEY", "SECURITY_ACCESS_CODES", 2, "Secure Identifiers"),
        ("URL_CREDENTIALS", "PASSWORD", 2, "Secure Identifiers"),
    ],
)
def test_known_entities_have_their_pii_codex_rating(entity, codex_type, level, category):
    rating = risk.rate(entity)
    assert rating is not None
    assert (rating.codex_type, rating.level, rating.category) == (codex_type, level, category)
    assert rating.level_name == risk.LEVELS[level]


def test_table_follows_pii_codex():
    from pii_codex.models.common import RiskLevel, RiskLevelDefinition
    from pii_codex.models.microsoft_presidio_pii import MSFTPresidioPIIType
    from pii_codex.services.pii_type_mappings import PII_TYPE_MAPPINGS
    from pii_codex.utils.pii_mapping_util import PIIMapper

    # the level names are pii-codex's
    assert {level.value: RiskLevelDefinition[level.name].value.lower() for level in RiskLevel} == risk.LEVELS
    # every default entity is rated, and every target is a type pii-codex maps
    assert set(DEFAULT_ENTITIES) <= set(risk.CODEX_TYPES)
    assert set(RECALL_ENTITIES) <= set(risk.CODEX_TYPES), "the opt-in entities are rated too"
    assert set(risk.CODEX_TYPES.values()) <= set(PII_TYPE_MAPPINGS)
    # presidio names convert as pii-codex's own presidio adapter converts them
    presidio_names = {t.value for t in MSFTPresidioPIIType}
    for entity, codex_type in risk.CODEX_TYPES.items():
        if entity in presidio_names:
            assert PIIMapper.convert_msft_presidio_pii_to_common_pii_type(entity).name == codex_type, entity
    assert risk.rate("SOMETHING_ELSE") is None
    assert risk.source().startswith("pii-codex/")


def test_record_score_is_pii_codex_mean():
    assert risk.record_score([]) == 1.0
    assert risk.record_score(["EMAIL_ADDRESS", "LOCATION"]) == pytest.approx(2.5)
    assert risk.record_score(["PERSON", "PERSON", "LOCATION"]) == pytest.approx(8 / 3)
    assert risk.record_score(["UNRATED"]) == 1.0  # unrated types are left out


# -- the summary on real data ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def checked(tmp_path_factory, shared_data: Path):
    from custody.testing.people import Cast

    root = tmp_path_factory.mktemp("codex")
    home = Cast(root / "keys").init_home(root / "home")
    with open(shared_data / "pii_presidio_synth" / "data.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh][:SAMPLE]
    folder = root / "synth"
    folder.mkdir()
    with open(folder / "part-0.jsonl", "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({"id": f"synth-{row['id']}", "text": row["text"]}) + "\n")
    registry = DatasetRegistry(home)
    dataset, _ = registry.register([folder], DatasetRef("synth", "1"), parse_card(CARD_TEMPLATE), Fields(id="id"))
    result = run_check(home, dataset, PiiCheck(processes=1))
    yield home, dataset, result, rows
    home.close()


def test_summary_carries_pii_codex_ratings(checked):
    from pii_codex.models.analysis import AnalysisResult, AnalysisResultItem, DetectionResultItem, RiskAssessment
    from pii_codex.services.analysis_service import PIIAnalysisService

    home, _, result, rows = checked
    assert result.version == "1.1.0"
    summary = result.summary(home)
    ratings = summary["risk"]
    assert ratings["source"] == risk.source()
    assert summary["redaction"] is None  # registered from files

    # per-entity levels for every scanned type, as pii-codex rates them
    assert set(ratings["entities"]) >= set(DEFAULT_ENTITIES)
    for entity, rating in ratings["entities"].items():
        assert rating == risk.rate(entity).as_json()

    # distributions add up to the findings the summary counts
    counts = summary["entity_counts"]
    assert sum(counts.values()) > SAMPLE // 2  # the synthetic set is dense with PII
    assert sum(ratings["findings_by_level"].values()) == sum(counts.values()) - sum(ratings["unrated"].values())
    assert sum(ratings["findings_by_category"].values()) == sum(ratings["findings_by_level"].values())
    assert sum(ratings["records_by_level"].values()) == summary["records_with_pii"]
    expected_levels: dict[str, int] = {}
    for entity, n in counts.items():
        level = str(risk.rate(entity).level)
        expected_levels[level] = expected_levels.get(level, 0) + n
    assert {k: v for k, v in ratings["findings_by_level"].items() if v} == expected_levels
    assert ratings["max_level"] == max(int(k) for k in expected_levels)

    # rows: each detection carries its level; the score is pii-codex's collection mean
    table = pq.read_table(home.store.path_for(result.result_digest)).to_pylist()
    analyses = []
    for i, row in enumerate(table):
        details = json.loads(row["details"]) if row["details"] else []
        for d in details:
            assert set(d) == {"type", "start", "end", "score", "risk"}
            assert d["risk"] == risk.rate(d["type"]).level
        items = [
            AnalysisResultItem(
                detection=DetectionResultItem(entity_type=risk.CODEX_TYPES[d["type"]]),
                risk_assessment=risk._assessment(risk.CODEX_TYPES[d["type"]]),
            )
            for d in details
        ] or [AnalysisResultItem(detection=None, risk_assessment=RiskAssessment())]
        analyses.append(PIIAnalysisService.summarize_analysis_result_items(items, index=i))
    collection = PIIAnalysisService(analysis_provider="AWS")._build_analysis_result_set(analyses)
    assert isinstance(analyses[0], AnalysisResult)
    assert ratings["score_mean"] == pytest.approx(collection.risk_score_mean, abs=1e-6)

    # no raw value in the summary
    text = json.dumps(summary, ensure_ascii=False)
    for row in rows:
        for span in row["spans"]:
            if len(span["value"]) >= 6:
                assert span["value"] not in text


def test_redaction_follows_stage_lineage(checked):
    home, dataset, _, _ = checked
    registry = DatasetRegistry(home)
    records = [{"id": "a", "text": "Reach me at <EMAIL_ADDRESS:abcdabcdabcdabcd>."}]
    redacted, _ = registry.register_derived(DatasetRef("synth", "2"), [dataset], "redact-pii", {}, records)
    deduped, _ = registry.register_derived(DatasetRef("synth", "3"), [redacted], "dedup", {}, records)
    mixed, _ = registry.register_derived(DatasetRef("synth", "4"), [redacted, dataset], "dedup", {}, records)
    assert redaction(dataset) is None
    assert redaction(redacted) == {"stage": "redact-pii", "dataset": "synth@2"}
    assert redaction(deduped) == {"stage": "redact-pii", "dataset": "synth@2"}
    assert redaction(mixed) is None  # one input was never redacted


# -- the policy rule ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc(checked):
    home, dataset, _, _ = checked
    return gather(home, [dataset], "commercial", NOW)


def decide(doc: dict, rule: str):
    return evaluate(parse_policy(HEADER + '[pii.max-risk]\nexplanation = "no identifiable PII"\n' + rule), doc)


def test_max_risk_denies_identifiable_findings(doc):
    decision = decide(doc, 'at_or_above = "identifiable"\n')
    assert decision.decision == "deny"
    flagged = {r.finding.rsplit(":", 1)[1] for r in decision.reasons}
    summary = doc["datasets"][0]["checks"]["pii"]["summary"]
    assert flagged == {e for e, n in summary["entity_counts"].items() if n and risk.rate(e).level == 3}
    assert "PERSON" in flagged and "LOCATION" not in flagged
    reason = next(r for r in decision.reasons if r.finding.endswith(":PERSON"))
    assert reason.action == "redact" and "identifiable" in reason.message and "redact-pii" in reason.message


def test_max_risk_allows_below_the_level_and_ignored_types(doc):
    summary = doc["datasets"][0]["checks"]["pii"]["summary"]
    identifiable = sorted(e for e, n in summary["entity_counts"].items() if n and risk.rate(e).level == 3)
    ignored = "ignore = [" + ", ".join(f'"{e}"' for e in identifiable) + "]\n"
    assert decide(doc, 'at_or_above = "identifiable"\n' + ignored).decision == "allow"
    # semi-identifiable catches LOCATION (level 2) too
    semi = decide(doc, 'at_or_above = "semi-identifiable"\n' + ignored)
    assert semi.decision == "deny" and {r.finding.rsplit(":", 1)[1] for r in semi.reasons} == {"LOCATION"}
    review = decide(doc, 'at_or_above = "identifiable"\non_fail = "review"\n')
    assert review.decision == "needs-review"


def test_max_risk_redacted_and_stale_results(doc):
    redacted = copy.deepcopy(doc)
    redacted["datasets"][0]["checks"]["pii"]["summary"]["redaction"] = {"stage": "redact-pii", "dataset": "synth@2"}
    assert decide(redacted, 'at_or_above = "non-identifiable"\n').decision == "allow"

    old = copy.deepcopy(doc)
    del old["datasets"][0]["checks"]["pii"]["summary"]["risk"]
    decision = decide(old, 'at_or_above = "identifiable"\non_fail = "review"\n')
    assert decision.decision == "deny"  # cannot be judged: fails closed whatever on_fail says
    assert "no risk ratings" in decision.reasons[0].message

    unrated = copy.deepcopy(doc)
    summary = unrated["datasets"][0]["checks"]["pii"]["summary"]
    summary["entity_counts"]["CUSTOM_ID"] = 2
    summary["risk"]["entities"]["CUSTOM_ID"] = None
    decision = decide(unrated, 'at_or_above = "identifiable"\nignore = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER"]\n')
    assert any(r.finding.endswith(":CUSTOM_ID") and r.outcome == "deny" for r in decision.reasons)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('at_or_above = "very-identifiable"\n', "pii.max-risk.at_or_above"),
        ("at_or_above = 3\n", "pii.max-risk.at_or_above"),
        ("", "pii.max-risk.at_or_above"),
        ('at_or_above = "identifiable"\nlevel = "identifiable"\n', "pii.max-risk.level"),
        ('at_or_above = "identifiable"\nignore = ["person"]\n', "pii.max-risk.ignore.0"),
    ],
)
def test_bad_max_risk_config_is_refused(body, key):
    text = HEADER + '[pii.max-risk]\nexplanation = "no identifiable PII"\n' + body
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "mine.toml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("mine.toml:") and f"'{key}'" in message


# -- where it shows -------------------------------------------------------------------------------


def test_dataset_page_and_report_show_risk(checked):
    from custody.reports.outline import check_blocks
    from custody.views.datasets import pii_risk

    home, _, result, _ = checked
    summary = result.summary(home)
    ratings = summary["risk"]

    view = pii_risk(ratings, summary)
    assert view.score == ratings["score_mean"] and view.redacted_by is None
    assert view.highest == "3 identifiable"
    assert view.by_level == {f"{n} {name}": ratings["findings_by_level"][str(n)] for n, name in risk.LEVELS.items()}
    assert {row["entity"] for row in view.entities} == set(summary["entity_counts"])
    person = next(row for row in view.entities if row["entity"] == "PERSON")
    assert person["level"] == "3 identifiable" and person["findings"] == summary["entity_counts"]["PERSON"]

    checks = {"pii": {"check": "pii", "version": "1.1.0", "status": "flag", "records": SAMPLE, "verdicts": {},
                      "ledger_index": 1, "result_digest": "0" * 64, "summary": summary}}  # fmt: skip
    blocks = check_blocks(checks)
    text = json.dumps(blocks, ensure_ascii=False)
    assert f"PII risk ({risk.source()}): score {ratings['score_mean']:.4g}" in text
    bars = {b[1]: b[2] for b in blocks if b[0] == "bars"}
    assert bars["PII: findings per risk level"] == view.by_level
    assert bars["PII: findings per risk category"] == ratings["findings_by_category"]
    table = next(b for b in blocks if b[0] == "table" and b[1][0] == "entity")
    assert ["PERSON", f"{summary['entity_counts']['PERSON']:,}", "3 identifiable", "Financial Information"] in table[2]

    # a pii result from before the ratings shows no risk section
    old = {k: v for k, v in summary.items() if k not in ("risk", "redaction")}
    assert "PII risk" not in json.dumps(check_blocks({"pii": {**checks["pii"], "summary": old}}))


def test_the_check_command_says_the_risk_in_one_line(checked):
    from custody.cli.check_cmds import describe_risk

    home, _, result, _ = checked
    ratings = result.summary(home)["risk"]
    names = ratings["levels"]
    line = describe_risk(ratings)
    assert line.startswith(f"risk (pii-codex): highest {names[str(ratings['max_level'])]}; mean score ")
    shown = [f"{n:,} {names[level]}" for level, n in sorted(ratings["findings_by_level"].items(), reverse=True) if n]
    assert line.endswith("; findings by level: " + ", ".join(shown)) and "{" not in line
