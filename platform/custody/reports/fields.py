"""The provenance fields of docs/provenance.md, as known for one dataset, in plain words.

Input is a dataset section of a report (a registration claim with its card and manifest, checks,
lineage, decisions). Only known fields are listed; renderers and exports share this one reading.
"""

from __future__ import annotations

from typing import Any

from custody.policy.refs import describe

# (number, field, SPDX 3.0.1, CycloneDX 1.6, HF card / Croissant, EU AI Act): the fields of docs/provenance.md
MAPPING = [
    (
        1,
        "identity, digest, size",
        "name, packageVersion, verifiedUsing, datasetSize",
        "name, version, hashes",
        "pretty_name, dataset_info",
        "Annex IV 2(d)",
    ),
    (2, "modality", "datasetType", "componentData.type", "task_categories", "Art. 53 summary §1"),
    (
        3,
        "sources",
        "originatedBy, downloadLocation, hasDeclaredLicense",
        "externalReferences, licenses",
        "source_datasets, license",
        "Art. 10(2)(b), Art. 53 §2",
    ),
    (4, "collection", "dataCollectionProcess", "componentData.description", "rai:dataCollection", "Art. 10(2)(b)"),
    (5, "crawl", "—", "properties", "—", "Art. 53 §2–3"),
    (6, "preparation", "dataPreprocessing", "formulation", "rai:dataPreprocessingProtocol", "Art. 10(2)(c)"),
    (7, "annotation", "—", "properties", "annotations_creators", "Annex IV 2(d)"),
    (8, "suitability, known gaps", "datasetNoise", "properties", "rai:dataLimitations", "Art. 10(2)(e),(h)"),
    (9, "bias", "knownBias", "properties", "rai:dataBiases", "Art. 10(2)(f),(g)"),
    (
        10,
        "personal data",
        "hasSensitivePersonalInformation, anonymizationMethodUsed",
        "componentData.sensitiveData",
        "rai:personalSensitiveInformation",
        "Art. 10(5)",
    ),
    (
        11,
        "confidentiality, availability",
        "confidentialityLevel, datasetAvailability",
        "componentData.classification",
        "—",
        "—",
    ),
    (12, "intended use", "intendedUse", "properties", "Uses", "Annex IV"),
    (13, "splits", "—", "properties", "splits", "Art. 10(1)"),
    (
        14,
        "governance",
        "datasetUpdateMechanism, suppliedBy",
        "componentData.governance",
        "rai:dataReleaseMaintenancePlan",
        "—",
    ),
    (15, "lineage", "Build profile", "formulation", "—", "Art. 12"),
    (16, "policy decisions", "hasEvidence", "properties", "—", "Art. 12, 19"),
    (17, "ledger anchor", "verifiedUsing", "properties", "—", "—"),
]


def _join(values: Any) -> str:
    if isinstance(values, list):
        return ", ".join(str(v) for v in values if v not in (None, ""))
    return "" if values in (None, "") else str(values)


def _pairs(section: dict[str, Any], keys: list[str]) -> str:
    return "; ".join(f"{k.replace('_', ' ')}: {_join(section.get(k))}" for k in keys if _join(section.get(k)))


def provenance_fields(
    reg: dict[str, Any], lineage: dict[str, Any], decisions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Rows {number, field, value, spdx, cyclonedx, hf, ai_act} for every field with a known value."""
    card = reg.get("card", {})
    values: dict[int, str] = {}
    values[1] = (
        f"{reg['name']}@{reg['version']} — {card.get('dataset', {}).get('title', '')}; manifest sha256 "
        f"{reg['manifest_digest']}; {reg['records']:,} records, {reg['bytes']:,} bytes in {reg['shards']} shards"
    )
    values[2] = _pairs(card.get("dataset", {}), ["modality", "languages"])
    values[3] = "; ".join(
        f"{s['name']} ({s['kind']}, {s.get('license') or 'no license stated'}"
        + (f", {s['uri']}" if s.get("uri") else "")
        + (f", retrieved {s['retrieved_at']}" if s.get("retrieved_at") else "")
        + ")"
        for s in card.get("sources", [])
    )
    collection = dict(card.get("collection", {}))
    frame = collection.pop("time_frame", None)
    values[4] = _pairs(collection, ["process", "original_purpose", "consent_basis"]) + (
        f"; time frame {frame['start']} to {frame['end']}" if frame else ""
    )
    values[5] = _pairs(
        card.get("crawl", {}), ["crawler", "robots_txt_respected", "tdm_opt_outs_respected", "top_domains"]
    )
    steps = [f"{p['op']}" + (f" ({p['tool']})" if p.get("tool") else "") for p in card.get("preparation", [])]
    if reg.get("stage"):
        steps.append(f"custody stage {reg['stage']['name']} (config sha256 {reg['stage']['config_digest'][:16]}…)")
    values[6] = "; ".join(steps)
    values[7] = _pairs(card.get("annotation", {}), ["who", "how", "guidelines", "agreement"])
    values[8] = _pairs(card.get("suitability", {}), ["known_gaps", "noise"])
    values[9] = _pairs(card.get("bias", {}), ["attributes_examined", "methods", "findings", "mitigations"])
    values[10] = _pairs(card.get("personal_data", {}), ["present", "categories", "anonymization"])
    values[11] = _pairs(card.get("access", {}), ["confidentiality", "availability"])
    values[12] = _pairs(card.get("use", {}), ["intended", "out_of_scope"])
    values[13] = "; ".join(f"{s['name']} ({s['role']})" for s in card.get("splits", []))
    values[14] = _pairs(card.get("governance", {}), ["owner", "steward", "maintenance", "update_mechanism"])
    parents = [f"{p['dataset']} (sha256 {p['digest'][:16]}…)" for p in reg.get("parents", [])]
    descendants = [f"{d['dataset']['name']}@{d['dataset']['version']}" for d in lineage.get("descendants", [])]
    values[15] = "; ".join(
        x
        for x in (
            f"parents: {', '.join(parents)}" if parents else "",
            f"derived: {', '.join(descendants)}" if descendants else "",
        )
        if x
    )
    values[16] = "; ".join(
        f"{d['result']['decision']} under {describe(d)} (ledger index {d['ledger_index']})" for d in decisions
    )
    values[17] = f"dataset.registered at ledger index {reg['ledger_index']}, proved in this report's anchors"
    rows = []
    for number, name, spdx, cdx, hf, act in MAPPING:
        if values.get(number):
            rows.append(
                {
                    "number": number,
                    "field": name,
                    "value": values[number],
                    "spdx": spdx,
                    "cyclonedx": cdx,
                    "hf": hf,
                    "ai_act": act,
                }
            )
    return rows
