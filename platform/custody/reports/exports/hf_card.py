"""A Hugging Face dataset card: README.md with YAML metadata (huggingface_hub's DatasetCardData)
and the sections of the Hub's dataset card template, filled from the custody card and checks."""

from __future__ import annotations

from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from custody.reports import ExportError
from custody.reports.exports import dataset_sections, stages

name = "hf-card"  # its key in reports/exports/catalog.py

TASKS = {"text": ["text-generation"], "image": ["image-classification"], "audio": ["automatic-speech-recognition"]}


def size_category(records: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if records < limit:
            return label
    return "1M<n<10M" if records < 10_000_000 else "n>10M"


def _license(expression: str | None) -> tuple[str, str | None]:
    """The Hub takes one lowercase SPDX id; anything else is `other` with the expression as its name."""
    if not expression:
        return "unknown", None
    if all(c.isalnum() or c in ".-" for c in expression):
        return expression.lower(), None
    return "other", expression


def _list(values: list[str]) -> str:
    return "\n".join(f"- {v}" for v in values) if values else "[More Information Needed]"


def export(content: dict[str, Any]) -> bytes:
    if content["kind"] != "dataset":
        raise ExportError("hf-card describes a dataset: give NAME@VERSION, not a run id")
    section = dataset_sections(content)[0]
    reg, checks = section["reg"], section["checks"]
    card = reg["card"]
    license_id, license_name = _license(card["license"].get("declared"))
    modality = card["dataset"]["modality"]
    data = DatasetCardData(
        pretty_name=card["dataset"]["title"],
        language=card["dataset"]["languages"] or None,
        license=license_id,
        license_name=license_name,
        size_categories=[size_category(reg["records"])],
        source_datasets=[s.get("uri") or s["name"] for s in card["sources"]] or None,
        task_categories=sorted({t for m in modality for t in TASKS.get(m, [])}) or None,
        annotations_creators=["no-annotation"] if (card["annotation"].get("who") or "none") == "none" else ["other"],
        dataset_info={
            "dataset_size": reg["bytes"],
            "splits": [{"name": "train", "num_bytes": reg["bytes"], "num_examples": reg["records"]}],
        },
        custody={
            "dataset": f"{reg['name']}@{reg['version']}",
            "manifest_sha256": reg["manifest_digest"],
            "ledger_origin": content["origin"],
            "ledger_index": reg["ledger_index"],
            "checks": {name: {"status": c["status"], "ledger_index": c["ledger_index"]} for name, c in checks.items()},
            "decisions": [
                {"ledger_index": d["ledger_index"], "decision": d["result"]["decision"]} for d in content["decisions"]
            ],
        },
    )
    text = f"---\n{data.to_yaml()}\n---\n\n{_body(content, section)}"
    DatasetCard(text)  # parse it back: a card the Hub's own parser rejects is never written
    return text.encode()


def _body(content: dict[str, Any], section: dict[str, Any]) -> str:
    reg, checks = section["reg"], section["checks"]
    card = reg["card"]
    summaries = {name: c.get("summary", {}) for name, c in checks.items()}
    pii, tox, lic = summaries.get("pii", {}), summaries.get("toxicity", {}), summaries.get("license", {})
    collection, personal, governance = card["collection"], card["personal_data"], card["governance"]
    sources = [f"{s['name']} ({s['kind']}; license {s.get('license') or 'not stated'})" for s in card["sources"]]
    steps = [p["op"] for p in card["preparation"]] + [f"custody stage `{s}`" for s in stages(section)]
    pii_line = (
        f"The PII check found entities in {pii.get('records_with_pii')} of {pii.get('records_scanned')} records "
        f"(by type: {pii.get('records_by_entity')})."
        if pii
        else "No PII check result on these bytes."
    )
    tox_line = (
        f"{tox.get('above_threshold')} records score above {tox.get('threshold')} for toxicity "
        f"(rate {tox.get('rate_above_threshold')})."
        if tox
        else "No toxicity check result on these bytes."
    )
    shards = [
        f"`{s['name']}` ({s['format']}, {s['records']:,} records, sha256 `{s['digest']}`)"
        for s in reg["manifest"]["shards"]
    ]
    anonymization = personal.get("anonymization") or "none stated"
    bias = card["bias"]
    limits = card["suitability"]["known_gaps"] + [x for x in (bias.get("findings"), bias.get("mitigations")) if x]
    return f"""# Dataset Card for {card["dataset"]["title"]}

{card["dataset"].get("description") or ""}

## Dataset Details

- **Curated by:** {governance.get("owner") or "[More Information Needed]"}
- **Language(s):** {", ".join(card["dataset"]["languages"]) or "[More Information Needed]"}
- **License:** {card["license"].get("declared") or "not stated"} (license check: {lic.get("category", "not run")})
- **Content digest:** manifest sha256 `{reg["manifest_digest"]}`, {reg["records"]:,} records, {reg["bytes"]:,} bytes

## Uses

### Direct Use

{_list(card["use"]["intended"])}

### Out-of-Scope Use

{_list(card["use"]["out_of_scope"])}

## Dataset Structure

{_list(shards)}

## Dataset Creation

### Curation Rationale

{collection.get("original_purpose") or "[More Information Needed]"}

### Source Data

{_list(sources)}

#### Data Collection and Processing

{collection.get("process") or "[More Information Needed]"}

Preparation steps:

{_list(steps)}

#### Personal and Sensitive Information

Personal data present: {personal.get("present") or "not stated"}; anonymization: {anonymization}.
{pii_line}

## Bias, Risks, and Limitations

{_list(limits)}

{tox_line}

## Provenance

Recorded in the custody ledger `{content["origin"]}`: registration at index {reg["ledger_index"]}; check results at
{", ".join(f"{n} {c['ledger_index']}" for n, c in checks.items()) or "none"}. A verifiable report:
`custody report {reg["name"]}@{reg["version"]} --format html`.
"""
