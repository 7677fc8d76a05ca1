"""The license check on registered datasets: declared, per-record and shipped-text licenses."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from custody.checks.license import LicenseCheck
from custody.datasets.card import CARD_TEMPLATE, DatasetCard, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.pipeline.run_check import run_check

CARD = parse_card(CARD_TEMPLATE)


def card(declared: str | None, source_license: str | None = "CC-BY-4.0") -> DatasetCard:
    data = CARD.as_json()
    data["license"]["declared"] = declared
    data["sources"][0]["license"] = source_license
    return DatasetCard.model_validate(data)


@pytest.fixture(scope="module")
def passages(shared_data: Path) -> list[str]:
    text = (shared_data / "corpus_tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()][:60]


def register(
    home,
    tmp_path: Path,
    passages: list[str],
    declared: str | None,
    licenses=None,
    documents=None,
    source_license: str | None = "CC-BY-4.0",
    name: str = "plays",
):
    folder = tmp_path / name
    folder.mkdir()
    with open(folder / "part-0.jsonl", "w", encoding="utf-8") as out:
        for i, text in enumerate(passages):
            row = {"id": f"p{i}", "text": text}
            if licenses:
                row["license"] = licenses[i % len(licenses)]
            out.write(json.dumps(row) + "\n")
    for doc_name, text in (documents or {}).items():
        (folder / doc_name).write_text(text, encoding="utf-8")
    dataset, _ = DatasetRegistry(home).register(
        [folder], DatasetRef(name, "1"), card(declared, source_license), Fields(id="id")
    )
    return dataset


def run(home, dataset):
    result = run_check(home, dataset, LicenseCheck())
    summary = result.summary(home)
    rows = pl.read_parquet(home.store.path_for(result.result_digest))
    return result, summary, rows


def test_declared_permissive_passes(home, tmp_path, passages):
    result, summary, rows = run(home, register(home, tmp_path, passages, "mit OR Apache-2.0"))
    assert result.status == "pass"
    assert summary["declared"]["normalized"] == "MIT OR Apache-2.0"
    assert summary["declared"]["category"] == "permissive"
    assert summary["category"] == "permissive"
    assert rows.height == len(passages)
    assert set(rows["verdict"]) == {"pass"}
    assert set(rows["reason"]) == {"inherits declared license"}


def test_unparseable_declared_license_is_a_finding_not_a_crash(home, tmp_path, passages):
    result, summary, rows = run(home, register(home, tmp_path, passages, "MIT AND OR"))
    assert result.status == "fail"
    assert [f["id"] for f in summary["findings"]] == ["license.unparseable"]
    assert summary["declared"]["error"]
    assert set(rows["verdict"]) == {"flag"}


def test_missing_declared_license_is_flagged(home, tmp_path, passages):
    result, summary, _ = run(home, register(home, tmp_path, passages, None, source_license=None))
    assert result.status == "flag"
    assert "license.undeclared" in [f["id"] for f in summary["findings"]]
    assert summary["category"] == "unknown"


def test_record_licenses_aggregate_and_the_most_restrictive_category_wins(home, tmp_path, passages):
    licenses = ["CC-BY-4.0", "cc-by-nc-4.0", "MIT", "not a license ((", "CC-BY-SA-4.0"]
    _result, summary, rows = run(home, register(home, tmp_path, passages, "CC-BY-4.0", licenses=licenses))
    assert summary["record_licenses"] == {"CC-BY-4.0": 12, "CC-BY-NC-4.0": 12, "MIT": 12, "CC-BY-SA-4.0": 12}
    assert summary["record_categories"] == {"non-commercial": 12, "permissive": 24, "unknown": 12, "weak-copyleft": 12}
    # unknown (an unparseable record license) is more restrictive than non-commercial
    assert summary["category"] == "unknown"
    assert "license.records_unparseable" in [f["id"] for f in summary["findings"]]
    flagged = rows.filter(pl.col("verdict") == "flag")
    assert flagged.height == 12
    assert set(flagged["reason"]) == {"license.unparseable"}
    details = [json.loads(d) for d in rows.filter(pl.col("verdict") == "pass")["details"]]
    assert {"license": "CC-BY-NC-4.0", "category": "non-commercial"} in details


def test_non_commercial_records_make_the_dataset_non_commercial(home, tmp_path, passages):
    _, summary, _ = run(home, register(home, tmp_path, passages, "CC-BY-4.0", licenses=["CC-BY-NC-SA-4.0", "MIT"]))
    assert summary["category"] == "non-commercial"


def test_shipped_license_text_that_contradicts_the_card_is_a_mismatch(home, tmp_path, passages, shared_data):
    gpl = (shared_data / "license_texts_spdx" / "text" / "GPL-3.0-only.txt").read_text(encoding="utf-8")
    result, summary, _ = run(home, register(home, tmp_path, passages, "MIT", documents={"LICENSE": gpl}))
    assert summary["detected"][0]["document"] == "LICENSE"
    assert summary["detected"][0]["license"].startswith("GPL-3.0")
    assert "license.mismatch:LICENSE" in [f["id"] for f in summary["findings"]]
    assert result.status == "flag"


def test_shipped_license_text_that_agrees_is_not_a_mismatch(home, tmp_path, passages, shared_data):
    mit = (shared_data / "license_texts_spdx" / "text" / "MIT.txt").read_text(encoding="utf-8")
    mit = mit.replace("<year> <copyright holders>", "2026 The Plays Project")
    _, summary, _ = run(home, register(home, tmp_path, passages, "MIT", documents={"LICENSE.txt": mit}))
    assert summary["detected"][0]["license"] == "MIT"
    assert not [f for f in summary["findings"] if f["id"].startswith("license.mismatch")]


def test_source_license_counts_toward_the_dataset_category(home, tmp_path, passages):
    _, summary, _ = run(home, register(home, tmp_path, passages, "MIT", source_license="CC-BY-ND-4.0"))
    assert summary["sources"][0]["category"] == "no-derivatives"
    assert summary["category"] == "no-derivatives"


def test_license_check_records_config_and_reference_digests(home, tmp_path, passages):
    dataset = register(home, tmp_path, passages, "MIT")
    result, _, _ = run(home, dataset)
    entry = json.loads(home.ledger.entry(result.entry_index).entry)
    assert entry["type"] == "check.completed/v2"  # v1 and the check's measured emissions
    assert entry["body"]["dataset_digest"] == dataset.digest
    assert entry["body"]["model_digest"] == LicenseCheck().detector.digest()
    config = json.loads(home.store.read_bytes(entry["body"]["config_digest"]))
    assert config["min_detection_score"] == LicenseCheck().min_detection_score
