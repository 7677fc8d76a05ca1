"""Each export validates with its format's own tooling, names the right digests, and is recorded
in the ledger by digest; no report or export carries a raw PII value."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
import spdx_python_model
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from huggingface_hub import DatasetCard
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import dataset_version_dataset
from openlineage.client.serde import Serde
from spdx_python_model import v3_0_1 as spdx
from typer.testing import CliRunner

from custody.cli.main import app
from custody.home import Home
from custody.policy.bindings import binding_at
from custody.reports import ExportError
from custody.reports.build import build, build_export
from custody.reports.exports import openlineage
from custody.reports.gather import gather
from report_data import OWNER, report_home


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_data: Path, cast):
    built = report_home(tmp_path_factory, shared_data, cast)
    home = Home.open(built.path)
    files = {}
    for target in ("mix@1", built.run_id):
        for fmt in ("spdx", "cyclonedx", "ai-act-summary", "openlineage"):
            files[(target, fmt)] = build_export(home, target, fmt)
    files[("mix@1", "hf-card")] = build_export(home, "mix@1", "hf-card")
    yield built, home, files
    home.close()


def objects_of(objset, cls) -> list:
    return [o for o in objset.objects if isinstance(o, cls)]


def test_spdx_deserializes_links_and_reserializes_with_the_spdx_bindings(exported):
    built, home, files = exported
    for target in ("mix@1", built.run_id):
        doc = json.loads(files[(target, "spdx")].data)
        assert doc["@context"] == "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
        model, objset = spdx_python_model.load_data(doc)  # type-checks every property as it decodes
        assert model is spdx and objset.link() == set(), "every referenced element is in the document"
        spdx.JSONLDSerializer().write(objset, __import__("io").BytesIO())  # refuses missing required properties
        (document,) = objects_of(objset, spdx.SpdxDocument)
        assert spdx.ProfileIdentifierType.dataset in document.profileConformance
    _, objset = spdx_python_model.load_data(json.loads(files[("mix@1", "spdx")].data))
    mix = next(p for p in objects_of(objset, spdx.dataset_DatasetPackage) if p.name == "mix")
    digest = gather(home, "mix@1")["dataset"]["manifest_digest"]
    assert [h.hashValue for h in mix.verifiedUsing] == [digest]
    assert mix.dataset_datasetType == [spdx.dataset_DatasetType.text] and mix.dataset_datasetSize > 0
    assert mix.dataset_confidentialityLevel == spdx.dataset_ConfidentialityLevelType.green
    (evidence,) = [f for f in objects_of(objset, spdx.software_File) if f.name.startswith("policy.decision")]
    bound = binding_at(home, "research", built.decision_index)
    assert f"review-everything sha256:{bound.digest} — bound to research at ledger index {bound.index}" in (
        evidence.comment
    )
    _, objset = spdx_python_model.load_data(json.loads(files[(built.run_id, "spdx")].data))
    (model,) = objects_of(objset, spdx.ai_AIPackage)
    trained = [
        r for r in objects_of(objset, spdx.Relationship) if r.relationshipType == spdx.RelationshipType.trainedOn
    ]
    assert trained and trained[0].from_ is model and trained[0].to[0].name.startswith("shakespeare")
    assert model.ai_energyConsumption.ai_trainingEnergyConsumption[0].ai_energyQuantity > 0


def test_the_spdx_check_can_fail():
    doc = {
        "@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld",
        "@graph": [{"type": "dataset_DatasetPackage", "spdxId": "https://x/y", "dataset_datasetSize": "big"}],
    }
    with pytest.raises((TypeError, ValueError)):
        spdx_python_model.load_data(doc)


def test_the_openlineage_producer_is_the_projects_url_else_the_homes_origin(monkeypatch):
    """The producer comes from the custody distribution's metadata ([project.urls], else Home-page);
    without a URL, or without the distribution, it is the home's origin, as SPDX's namespace is."""
    from email.message import Message
    from importlib import metadata

    def installed(*headers: tuple[str, str]):
        meta = Message()
        for name, value in headers:
            meta[name] = value

        def lookup(name: str):
            assert name == "custody"
            return meta

        return lookup

    def missing(name: str):
        raise metadata.PackageNotFoundError(name)

    content = {"origin": "custody.local/0123abcd"}
    docs = ("Project-URL", "Documentation, https://docs.example.org/custody")
    cases = [
        (
            installed(docs, ("Project-URL", "Source Code, https://git.example.org/custody")),
            "https://git.example.org/custody",
        ),
        (installed(docs, ("Home-page", "https://example.org/custody")), "https://docs.example.org/custody"),
        (installed(("Home-page", "https://example.org/custody")), "https://example.org/custody"),
        (installed(("Name", "custody")), "https://custody.local/0123abcd"),
        (missing, "https://custody.local/0123abcd"),
    ]
    try:
        for lookup, expected in cases:
            openlineage.project_url.cache_clear()
            monkeypatch.setattr(openlineage.metadata, "metadata", lookup)
            assert openlineage.producer(content) == expected
    finally:
        openlineage.project_url.cache_clear()  # the next caller reads the real metadata again


def test_cyclonedx_validates_against_the_1_6_schema(exported):
    built, _, files = exported
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    for target in ("mix@1", built.run_id):
        text = files[(target, "cyclonedx")].data.decode()
        assert validator.validate_str(text) is None, validator.validate_str(text)
    doc = json.loads(files[("mix@1", "cyclonedx")].data)
    component = doc["metadata"]["component"]
    assert doc["specVersion"] == "1.6" and component["type"] == "data"
    assert component["data"][0]["type"] == "dataset" and component["licenses"][0]["expression"] == "CC-BY-4.0"
    names = {p["name"] for p in component["properties"]}
    assert {"custody:crawl", "custody:pii:records_by_entity", "custody:decisions"} <= names
    run = json.loads(files[(built.run_id, "cyclonedx")].data)
    assert run["metadata"]["component"]["type"] == "machine-learning-model"
    assert run["metadata"]["component"]["modelCard"]["modelParameters"]["datasets"]
    broken = dict(doc, metadata=dict(doc["metadata"], component=dict(component, data=[{"type": "bogus"}])))
    assert validator.validate_str(json.dumps(broken)) is not None, "the validator rejects a bad componentData"


def test_hf_card_parses_with_huggingface_hub(exported):
    built, home, files = exported
    card = DatasetCard(files[("mix@1", "hf-card")].data.decode())
    data = card.data.to_dict()
    assert data["pretty_name"] == "Example web text" and data["license"] == "cc-by-4.0"
    assert data["size_categories"] == ["n<1K"] and data["language"] == ["en"]
    assert data["custody"]["manifest_sha256"] == gather(home, "mix@1")["dataset"]["manifest_digest"]
    assert data["dataset_info"]["splits"][0]["num_examples"] == 50
    for heading in ("## Uses", "## Dataset Structure", "#### Personal and Sensitive Information", "## Provenance"):
        assert heading in card.text
    with pytest.raises(ExportError):
        build(home, built.run_id, "hf-card")


def test_ai_act_summary_follows_the_commission_template(exported):
    built, home, files = exported
    text = files[(built.run_id, "ai-act-summary")].data.decode()
    for heading in (
        "## 1. General information",
        "## 2. List of data sources",
        "### 2.1 Publicly available datasets",
        "### 2.3 Data crawled and scraped from online sources",
        "### 2.5 Synthetic data",
        "## 3. Data processing aspects",
        "### 3.1 Respect of reservation of rights from text and data mining",
        "### 3.2 Removal of illegal content, personal data and toxic content",
    ):
        assert heading in text
    assert "top domains: example.org" in text and "TDM opt-outs respected: yes" in text
    assert "drop-toxic" in text and f"gate decision at ledger index {built.decision_index}" not in text
    decision = gather(home, built.run_id)["decision"]
    bound = binding_at(home, "research", decision["ledger_index"])
    assert f"sha256:{bound.digest} — bound to research at ledger index {bound.index}" in text
    mix = files[("mix@1", "ai-act-summary")].data.decode()
    assert "EMAIL_ADDRESS 8" in mix and "no redaction stage applied" in mix


def producers(value) -> set[str]:
    """Every producer URI in OpenLineage JSON: the events' `producer`, the facets' `_producer`."""
    if isinstance(value, list):
        return set().union(*map(producers, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = {v for k, v in value.items() if k in ("producer", "_producer")}
    return found.union(*(producers(v) for v in value.values()))


def test_openlineage_events_rebuild_with_the_client_classes(exported):
    built, home, files = exported
    lines = files[(built.run_id, "openlineage")].data.decode().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for event in events:
        uuid.UUID(event["run"]["runId"])

        def dataset(cls, d):
            version = d["facets"]["version"]["datasetVersion"]
            facet = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version)
            return cls(namespace=d["namespace"], name=d["name"], facets={"version": facet})

        rebuilt = RunEvent(
            eventType=RunState(event["eventType"]),
            eventTime=event["eventTime"],
            run=Run(runId=event["run"]["runId"]),
            job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"]),
            producer=event["producer"],
            inputs=[dataset(InputDataset, d) for d in event["inputs"]],
            outputs=[dataset(OutputDataset, d) for d in event["outputs"]],
        )
        again = Serde.to_dict(rebuilt)
        assert again["schemaURL"] == event["schemaURL"]
        assert [d["name"] for d in again["inputs"]] == [d["name"] for d in event["inputs"]]
    content = gather(home, built.run_id)
    read = content["run"]["started"]["datasets"][0]
    assert events[0]["inputs"][0]["facets"]["version"]["datasetVersion"] == f"sha256:{read['digest']}"
    model = content["run"]["finished"]["model_digest"]
    assert events[1]["outputs"][0]["facets"]["version"]["datasetVersion"] == f"sha256:{model}"
    # Every event and facet names one producer: the project's URL if its metadata has one, else the home.
    expected = openlineage.project_url() or f"https://{content['origin']}"
    for target in ("mix@1", built.run_id):
        lineage = [json.loads(line) for line in files[(target, "openlineage")].data.decode().splitlines()]
        assert producers(lineage) == {expected}
    with pytest.raises(ValueError):
        job = Job(namespace="custody://x", name="j")
        RunEvent(eventType=RunState.START, eventTime="yesterday", run=Run(runId=str(uuid.uuid4())), job=job)


def test_every_export_digest_is_in_the_ledger(exported):
    _, home, files = exported
    recorded = {
        json.loads(row.entry)["body"]["digest"]: json.loads(row.entry)["body"]
        for row in home.storage.entries(0, 100_000, type_prefix="report.exported/")
    }
    for (_, fmt), built in files.items():
        body = recorded[hashlib.sha256(built.data).hexdigest()]
        assert body["format"] == fmt and body["bytes"] == len(built.data) and body["covers"] == "file"
        assert body["subject"] == built.subject


def test_cli_exports_and_refuses_an_hf_card_for_a_run(exported, tmp_path: Path, cast, monkeypatch):
    built, _, _ = exported
    monkeypatch.setenv("CUSTODY_KEY", str(cast.key_file(OWNER)))
    runner = CliRunner()
    out = tmp_path / "bom.json"
    result = runner.invoke(
        app, ["report", "mix@1", "--format", "cyclonedx", "--out", str(out), "--home", str(built.path)]
    )
    assert result.exit_code == 0 and "report.exported at ledger index" in result.output
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out.read_text()) is None
    result = runner.invoke(
        app, ["report", built.run_id, "--format", "hf-card", "--out", str(out), "--home", str(built.path)]
    )
    assert result.exit_code == 2 and "hf-card describes a dataset" in result.output


def test_no_report_or_export_carries_a_raw_pii_value(exported, shared_data: Path):
    _, home, files = exported
    values = set()
    for line in (shared_data / "pii_presidio_synth" / "data.jsonl").read_text().splitlines():
        for span in json.loads(line)["spans"]:
            if span["entity_type"] in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE"):
                values.add(span["value"])
    outputs = [b.data for b in files.values()]
    outputs += [build(home, "mix@1", fmt).data for fmt in ("md", "html", "json")]
    for data in outputs:
        text = data.decode()
        leaked = [v for v in values if v in text]
        assert not leaked, leaked[:3]
