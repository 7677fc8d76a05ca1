"""CycloneDX 1.6 JSON, built with cyclonedx-python-lib: the dataset as a `data` component.

The library has no model of `componentData` or `modelCard` yet, so those two blocks are added to
its JSON output (validated against the 1.6 schema in the tests); everything else without a
CycloneDX field travels as `custody:*` properties.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import LicenseExpression
from cyclonedx.output.json import JsonV1Dot6

from custody.reports.exports import dataset_sections, root_registrations, stages

name = "cyclonedx"  # its key in reports/exports/catalog.py


def _props(pairs: dict[str, Any]) -> list[Property]:
    return [
        Property(name=f"custody:{k}", value=v if isinstance(v, str) else json.dumps(v, sort_keys=True))
        for k, v in pairs.items()
        if v not in (None, "", [], {})
    ]


def _component(reg: dict[str, Any], checks: dict[str, Any], section: dict[str, Any]) -> Component:
    card = reg["card"]
    ref = f"{reg['name']}@{reg['version']}"
    summaries = {name: c.get("summary", {}) for name, c in checks.items()}
    props = {
        "ledger:dataset.registered": str(reg["ledger_index"]),
        "records": str(reg["records"]),
        "bytes": str(reg["bytes"]),
        "crawl": card["crawl"],
        "annotation": card["annotation"],
        "suitability": card["suitability"],
        "bias": card["bias"],
        "use": card["use"],
        "splits": card["splits"],
        "collection": card["collection"],
        "preparation:stages": stages(section) if reg is section["reg"] else [],
        "parents": reg.get("parents", []),
        "license:category": summaries.get("license", {}).get("category"),
        "pii:records_by_entity": summaries.get("pii", {}).get("records_by_entity"),
        "pii:rate": summaries.get("pii", {}).get("rate"),
        "toxicity:rate_above_threshold": summaries.get("toxicity", {}).get("rate_above_threshold"),
    }
    props.update({f"ledger:check.completed:{name}": str(c["ledger_index"]) for name, c in checks.items()})
    declared = card["license"].get("declared")
    references = [
        ExternalReference(
            type=ExternalReferenceType.DISTRIBUTION, url=XsUri(s["uri"]), comment=f"source {s['name']} ({s['kind']})"
        )
        for s in card["sources"]
        if s.get("uri")
    ]
    return Component(
        name=reg["name"],
        version=reg["version"],
        type=ComponentType.DATA,
        bom_ref=f"dataset:{ref}",
        description=card["dataset"].get("description") or card["dataset"]["title"],
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=reg["manifest_digest"])],
        licenses=[LicenseExpression(declared)] if declared else [],
        external_references=references,
        properties=_props(props),
    )


def _component_data(reg: dict[str, Any]) -> dict[str, Any]:
    card = reg["card"]
    data: dict[str, Any] = {"type": "dataset", "name": f"{reg['name']}@{reg['version']}"}
    process = card["collection"].get("process")
    if process:
        data["description"] = process
    if card["access"].get("confidentiality"):
        data["classification"] = card["access"]["confidentiality"]
    personal = card["personal_data"]
    if personal.get("categories") or personal.get("present") == "yes":
        data["sensitiveData"] = personal.get("categories") or ["personal data"]
    governance = {
        role: [{"organization": {"name": card["governance"][key]}}]
        for role, key in (("owners", "owner"), ("stewards", "steward"))
        if card["governance"].get(key)
    }
    if governance:
        data["governance"] = governance
    return data


def export(content: dict[str, Any]) -> bytes:
    components: dict[str, tuple[Component, dict[str, Any]]] = {}
    for section in dataset_sections(content):
        for reg in root_registrations(section):
            ref = f"{reg['name']}@{reg['version']}"
            if ref not in components:
                checks = section["checks"] if reg is section["reg"] else {}
                components[ref] = (_component(reg, checks, section), reg)
    generated = dt.datetime.fromisoformat(content["generated_at"].replace("Z", "+00:00"))
    bom = Bom()
    bom.metadata.timestamp = generated
    bom.metadata.properties.update(
        _props({"origin": content["origin"], "generator": content["generator"], "subject": content["subject"]})
    )
    model = None
    if content["kind"] == "dataset":
        bom.metadata.component = components[content["target"]][0]
        others = [c for ref, (c, _) in components.items() if ref != content["target"]]
        decisions = {str(d["ledger_index"]): d["result"]["decision"] for d in content["decisions"]}
        bom.metadata.component.properties.update(_props({"decisions": decisions}))
    else:
        model = _model(content)
        bom.metadata.component = model
        others = [c for c, _ in components.values()]
    for component in others:
        bom.components.add(component)
    if model is not None:
        bom.register_dependency(model, others)
    doc = json.loads(JsonV1Dot6(bom).output_as_string())
    by_ref = {ref: reg for ref, (_, reg) in components.items()}
    for component in [doc["metadata"]["component"], *doc.get("components", [])]:
        if component["type"] == "data":
            component["data"] = [_component_data(by_ref[component["bom-ref"].removeprefix("dataset:")])]
    if model is not None:
        refs = [{"ref": c.bom_ref.value} for c in others]
        doc["metadata"]["component"]["modelCard"] = {"modelParameters": {"datasets": refs}}
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _model(content: dict[str, Any]) -> Component:
    started, finished = content["run"]["started"], content["run"]["finished"] or {}
    emissions = finished.get("emissions") or {}
    props = {
        "run:kind": started["kind"],
        "ledger:run.started": str(started["ledger_index"]),
        "ledger:run.finished": str(finished.get("ledger_index", "")),
        "ledger:policy.decision": str(content["decision"]["ledger_index"]),
        "decision": content["decision"]["result"]["decision"],
        "tokenizer:sha256": started["tokenizer_digest"],
        "spec:sha256": started["spec_digest"],
        "parameters": str(started["parameters"]),
        "steps": str(finished.get("steps", "")),
        "final_val_loss": finished.get("final_val_loss"),
        "energy_kwh": emissions.get("energy_kwh"),
        "emissions_kg_co2e": emissions.get("emissions_kg_co2e"),
        "water_l": emissions.get("water_l"),
        "tracker": emissions.get("tracker"),
    }
    return Component(
        name=content["target"],
        version=(finished.get("model_digest") or "unfinished")[:12],
        type=ComponentType.MACHINE_LEARNING_MODEL,
        bom_ref=f"run:{content['target']}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=finished["model_digest"])]
        if finished.get("model_digest")
        else [],
        properties=_props(props),
    )
