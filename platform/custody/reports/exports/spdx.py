"""SPDX 3.0.1 JSON-LD with the Dataset and AI profiles, built with spdx-python-model's bindings
(which type-check every property as it is set and refuse a document missing required ones)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from spdx_python_model import v3_0_1 as spdx

from custody.policy.refs import describe
from custody.reports.exports import dataset_sections, root_registrations

name = "spdx"  # its key in reports/exports/catalog.py

CONFIDENTIALITY = {"public": "clear", "internal": "green", "confidential": "amber", "restricted": "red"}
PRESENCE = {"yes": "yes", "no": "no", "unknown": "noAssertion"}
MODALITY = set(spdx.dataset_DatasetType.NAMED_INDIVIDUALS)


class _Doc:
    def __init__(self, content: dict[str, Any]) -> None:
        self.base = f"https://{content['origin']}/spdx/{content['kind']}/{content['target']}"
        self.objects = spdx.SHACLObjectSet()
        created = dt.datetime.fromisoformat(content["generated_at"].replace("Z", "+00:00")).replace(microsecond=0)
        self.info = spdx.CreationInfo(specVersion="3.0.1", created=created)
        self.info.createdBy.append(self.add(spdx.SoftwareAgent, "agent", name=content["generator"]))
        self.info.createdBy[0].creationInfo = self.info
        self.count = 0

    def add(self, cls: type, local: str, **props: Any) -> Any:
        obj = cls(spdxId=f"{self.base}#{local}", **props)
        if hasattr(self, "info"):
            obj.creationInfo = self.info
        self.objects.add(obj)
        return obj

    def relate(self, source: Any, kind: str, targets: list[Any]) -> None:
        if not targets:
            return
        self.count += 1
        self.add(
            spdx.Relationship,
            f"rel-{self.count}",
            from_=source,
            to=targets,
            relationshipType=getattr(spdx.RelationshipType, kind),
        )


def _sha256(value: str) -> Any:
    return spdx.Hash(algorithm=spdx.HashAlgorithm.sha256, hashValue=value)


def _dataset(doc: _Doc, reg: dict[str, Any], checks: dict[str, Any]) -> Any:
    card = reg["card"]
    ref = f"{reg['name']}@{reg['version']}"
    package = doc.add(
        spdx.dataset_DatasetPackage,
        f"dataset-{ref}",
        name=reg["name"],
        software_packageVersion=reg["version"],
        software_primaryPurpose=spdx.software_SoftwarePurpose.data,
        dataset_datasetSize=reg["bytes"],
        releaseTime=dt.datetime.fromisoformat(reg["ts"].replace("Z", "+00:00")).replace(microsecond=0),
        summary=card["dataset"]["title"],
    )
    package.verifiedUsing.append(_sha256(reg["manifest_digest"]))
    if card["dataset"].get("description"):
        package.description = card["dataset"]["description"]
    types = [getattr(spdx.dataset_DatasetType, m) for m in card["dataset"]["modality"] if m in MODALITY]
    package.dataset_datasetType.extend(types or [spdx.dataset_DatasetType.noAssertion])
    if card["dataset"].get("homepage"):
        package.software_homePage = card["dataset"]["homepage"]
    collection = card["collection"]
    if collection.get("process"):
        package.dataset_dataCollectionProcess = collection["process"]
    package.dataset_dataPreprocessing.extend(p["op"] for p in card["preparation"])
    if reg.get("stage"):
        package.dataset_dataPreprocessing.append(f"custody stage {reg['stage']['name']}")
    if card["suitability"].get("noise"):
        package.dataset_datasetNoise = card["suitability"]["noise"]
    bias = card["bias"]
    package.dataset_knownBias.extend(x for x in (bias.get("findings"), bias.get("mitigations")) if x)
    personal = card["personal_data"]
    if personal.get("present"):
        presence = PRESENCE[personal["present"]]
        package.dataset_hasSensitivePersonalInformation = getattr(spdx.PresenceType, presence)
    if personal.get("anonymization"):
        package.dataset_anonymizationMethodUsed.append(personal["anonymization"])
    if card["access"].get("confidentiality"):
        level = CONFIDENTIALITY[card["access"]["confidentiality"]]
        package.dataset_confidentialityLevel = getattr(spdx.dataset_ConfidentialityLevelType, level)
    if card["use"]["intended"]:
        package.dataset_intendedUse = "; ".join(card["use"]["intended"])
    if card["governance"].get("update_mechanism"):
        package.dataset_datasetUpdateMechanism = card["governance"]["update_mechanism"]
    if card["governance"].get("owner"):
        package.suppliedBy = doc.add(spdx.Organization, f"owner-{ref}", name=card["governance"]["owner"])
    declared = card["license"].get("declared")
    if declared:
        doc.relate(package, "hasDeclaredLicense", [_license(doc, f"license-{ref}", declared)])
    concluded = checks.get("license", {}).get("summary", {}).get("declared", {}).get("normalized")
    if concluded:
        doc.relate(package, "hasConcludedLicense", [_license(doc, f"concluded-{ref}", concluded)])
    for i, source in enumerate(card["sources"]):
        item = doc.add(
            spdx.dataset_DatasetPackage,
            f"source-{ref}-{i}",
            name=source["name"],
            software_primaryPurpose=spdx.software_SoftwarePurpose.data,
            comment=f"source kind: {source['kind']}",
        )
        item.dataset_datasetType.append(spdx.dataset_DatasetType.noAssertion)
        if source.get("uri"):
            item.software_downloadLocation = source["uri"]
        if source.get("digest"):
            item.verifiedUsing.append(_sha256(source["digest"].removeprefix("sha256:")))
        if source.get("license"):
            doc.relate(item, "hasDeclaredLicense", [_license(doc, f"license-{ref}-{i}", source["license"])])
        doc.relate(package, "descendantOf", [item])
    return package


def _license(doc: _Doc, local: str, expression: str) -> Any:
    return doc.add(spdx.simplelicensing_LicenseExpression, local, simplelicensing_licenseExpression=expression)


def _evidence(doc: _Doc, package: Any, decisions: list[dict[str, Any]]) -> None:
    for d in decisions:
        evidence = doc.add(
            spdx.software_File,
            f"decision-{d['ledger_index']}",
            name=f"policy.decision ledger entry {d['ledger_index']}: {d['result']['decision']}",
            software_primaryPurpose=spdx.software_SoftwarePurpose.evidence,
            comment=f"policies: {describe(d, full=True)}; input document digest below",
        )
        evidence.verifiedUsing.append(_sha256(d["input"]["digest"]["sha256"]))
        doc.relate(package, "hasEvidence", [evidence])


def export(content: dict[str, Any]) -> bytes:
    doc = _Doc(content)
    packages = {}
    for section in dataset_sections(content):
        for reg in root_registrations(section):
            ref = f"{reg['name']}@{reg['version']}"
            if ref not in packages:
                packages[ref] = _dataset(doc, reg, section["checks"] if reg is section["reg"] else {})
        for reg in root_registrations(section):
            parents = [packages[p["dataset"]] for p in reg.get("parents", []) if p["dataset"] in packages]
            doc.relate(packages[f"{reg['name']}@{reg['version']}"], "descendantOf", parents)
    if content["kind"] == "dataset":
        root = packages[content["target"]]
        _evidence(doc, root, content["decisions"])
    else:
        root = _model(doc, content, [packages[d["ref"]] for d in content["datasets"] if d["ref"] in packages])
    document = doc.add(spdx.SpdxDocument, "document", name=f"custody {content['kind']} report {content['target']}")
    document.rootElement.append(root)
    document.element.extend(o for o in doc.objects.objects if o is not document and isinstance(o, spdx.Element))
    for profile in ("core", "software", "dataset", "ai", "simpleLicensing"):
        document.profileConformance.append(getattr(spdx.ProfileIdentifierType, profile))
    out = io.BytesIO()
    spdx.JSONLDSerializer().write(doc.objects, out, indent=2)
    return out.getvalue()


def _model(doc: _Doc, content: dict[str, Any], datasets: list[Any]) -> Any:
    started = content["run"]["started"]
    finished = content["run"]["finished"] or {}
    model = doc.add(
        spdx.ai_AIPackage,
        "model",
        name=content["target"],
        software_packageVersion=finished.get("model_digest", "unfinished")[:12],
        software_primaryPurpose=spdx.software_SoftwarePurpose.model,
        ai_typeOfModel=["GPT (decoder-only transformer)"],
        comment=f"{started['kind']} run {started['name']}; tokenizer sha256 {started['tokenizer_digest']}",
    )
    if finished.get("model_digest"):
        model.verifiedUsing.append(_sha256(finished["model_digest"]))
    emissions = finished.get("emissions")
    if emissions:
        energy = spdx.ai_EnergyConsumption()
        energy.ai_trainingEnergyConsumption.append(
            spdx.ai_EnergyConsumptionDescription(
                ai_energyQuantity=float(emissions["energy_kwh"]), ai_energyUnit=spdx.ai_EnergyUnitType.kilowattHour
            )
        )
        model.ai_energyConsumption = energy
        model.ai_metric.append(
            spdx.DictionaryEntry(key="emissions_kg_co2e", value=repr(float(emissions["emissions_kg_co2e"])))
        )
        model.ai_metric.append(spdx.DictionaryEntry(key="water_l", value=repr(float(emissions["water_l"]))))
    if finished.get("final_val_loss") is not None:
        model.ai_metric.append(spdx.DictionaryEntry(key="val_loss", value=repr(finished["final_val_loss"])))
    doc.relate(model, "trainedOn", datasets)
    return model
