"""`custody report NAME@VERSION --format croissant`: Croissant 1.1 JSON-LD that mlcroissant loads
(offline, with no error), each RAI property equal to what custody recorded (card fields, the
stages of the lineage with their settings and counts, the PII and toxicity summaries), and the
file's digest recorded in the ledger like every export."""

from __future__ import annotations

import copy
import hashlib
import json
import socket
from pathlib import Path

import mlcroissant as mlc
import pytest
import rdflib
from typer.testing import CliRunner

from custody.checks.catalog import build_check
from custody.checks.pii import PiiCheck
from custody.checks.results import latest_results
from custody.cli.main import app
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.ledger.query import body, entries
from custody.pipeline.run_check import run_check
from custody.pipeline.run_stage import run_stage
from custody.stages.catalog import STAGES

RAI = rdflib.Namespace("http://mlcommons.org/croissant/RAI/")
# Fields the template card leaves out, so every RAI property has something to carry.
MORE_CARD = """
[bias]
attributes_examined = ["language", "domain"]
methods = "per-domain toxicity rates"
findings = "forum pages are over-represented"
mitigations = "domain caps"

[suitability]
known_gaps = ["English only"]
noise = "some boilerplate survives"

[governance]
owner = "data-team"
maintenance = "refreshed quarterly"
update_mechanism = "a new version per crawl"
"""
EMAILS = ["ann.lee@example.com", "bo.chen@example.org", "cy.diaz@example.net"]


def _card():
    """The template card with [bias], [suitability] and [governance] filled in."""
    text = CARD_TEMPLATE
    for table in ("[bias]", "[suitability]", "[governance]"):
        start = text.index(table)
        end = text.find("\n[", start + 1)
        text = text[:start] + (text[end + 1 :] if end != -1 else "")
    return parse_card(text + MORE_CARD)


def _rows() -> list[dict]:
    rows = [{"id": f"r{i}", "text": f"Write to {e} about the garden club meeting."} for i, e in enumerate(EMAILS)]
    rows += [{"id": f"p{i}", "text": f"The river rose {i} inches after the rain on Tuesday."} for i in range(6)]
    rows += [{"id": "d0", "text": "The river rose 0 inches after the rain on Tuesday."}]  # a copy, for dedup-exact
    rows += [{"id": "t0", "text": "You are a stupid idiot and everyone hates you."}]
    rows[3]["license"] = "CC0-1.0"  # one record with its own license: the column exists, source_url does not
    return rows


def _checks(home: Home, dataset) -> None:
    run_check(home, dataset, PiiCheck(processes=1), actor="registrar")
    run_check(home, dataset, build_check("toxicity"), actor="registrar")


@pytest.fixture(scope="module")
def built(tmp_path_factory, cast):
    root = tmp_path_factory.mktemp("croissant")
    home = cast.init_home(root / "home")
    cast.enroll(home, "registrar", "engineer")
    (root / "web").mkdir()
    (root / "web" / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()), encoding="utf-8")
    registry = DatasetRegistry(home)
    web, _ = registry.register([root / "web"], DatasetRef("web", "1"), _card(), Fields(id="id"), actor="registrar")
    _checks(home, web)
    redact = STAGES.build("redact-pii", home, options={"entities": ["EMAIL_ADDRESS"]})
    redacted = run_stage(home, redact, web, DatasetRef("web", "2"), options={"entities": ["EMAIL_ADDRESS"]})
    deduped = run_stage(home, STAGES.build("dedup-exact", home), redacted.output, DatasetRef("web", "3"))
    _checks(home, deduped.output)
    runner = CliRunner(env={"CUSTODY_KEY": str(cast.key_file("registrar"))})
    files = {}
    for ref in ("web@1", "web@3"):
        out = root / f"{ref.replace('@', '-')}.croissant.json"
        result = runner.invoke(
            app, ["report", ref, "--format", "croissant", "--out", str(out), "--home", str(root / "home"), "--json"]
        )
        assert result.exit_code == 0, result.output
        files[ref] = (out, json.loads(result.output))
    yield home, root, files, runner
    home.close()


@pytest.fixture
def offline(monkeypatch):
    """Any network connection fails the test: mlcroissant must validate from the file alone."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def load(path: Path) -> mlc.Dataset:
    """mlcroissant's own validation: a ValidationError on any error, warnings kept on the context."""
    dataset = mlc.Dataset(jsonld=str(path))
    issues = dataset.metadata.ctx.issues
    assert not issues.errors, issues.report()
    assert not issues.warnings, issues.report()
    return dataset


def triples(doc: dict) -> rdflib.Graph:
    """The document as RDF, so property names are checked as the IRIs the RAI spec defines."""
    return rdflib.Graph().parse(data=json.dumps(doc), format="json-ld")


def test_mlcroissant_loads_both_versions_offline(built, offline):
    _, _, files, _ = built
    for ref, (path, _) in files.items():
        metadata = load(path).metadata
        assert metadata.name == "web" and metadata.version == ref.split("@")[1]
        assert [r.name for r in metadata.record_sets] == ["records"]
        assert [f.name for f in metadata.record_sets[0].fields] == ["text", "id", "license"]


def test_mlcroissant_reads_custodys_records_through_the_file(built, offline, tmp_path):
    """The record set is right, not only well formed: beside its shard, mlcroissant reads back
    exactly the ids, texts and licenses custody registered."""
    home, root, files, _ = built
    (tmp_path / "web.json").write_bytes(files["web@1"][0].read_bytes())
    (tmp_path / "part-0.jsonl").write_bytes((root / "web" / "part-0.jsonl").read_bytes())
    read = [
        {k.split("/")[1]: (v.decode() if isinstance(v, bytes) else v) for k, v in r.items()}
        for r in load(tmp_path / "web.json").records("records")
    ]
    custody = [r for _, r in DatasetRegistry(home).get("web@1").records()]
    assert [(r["id"], r["text"]) for r in read] == [(r.id, r.text) for r in custody]
    assert [r["license"] for r in read if isinstance(r["license"], str)] == ["CC0-1.0"]


def test_a_file_mlcroissant_rejects_fails(built, offline, tmp_path):
    _, _, files, _ = built
    doc = json.loads(files["web@1"][0].read_text())
    broken = copy.deepcopy(doc)
    del broken["distribution"][0]["sha256"]  # a FileObject must carry a checksum
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(mlc.ValidationError):
        load(tmp_path / "broken.json")


def test_distribution_names_each_shard_by_its_sha256_and_says_it_is_compressed(built):
    home, _, files, _ = built
    registry = DatasetRegistry(home)
    for ref in ("web@1", "web@3"):
        doc = json.loads(files[ref][0].read_text())
        shards = registry.get(ref).manifest.shards
        objects = {o["@id"]: o for o in doc["distribution"]}
        for shard in shards:
            assert objects[shard.name]["sha256"] == shard.digest and objects[shard.name]["contentUrl"] == shard.name
    v3 = json.loads(files["web@3"][0].read_text())
    (shard,) = registry.get("web@3").manifest.shards
    assert shard.name.endswith(".jsonl.zst")
    outer, inner = v3["distribution"]
    assert outer["encodingFormat"] == "application/zstd"
    assert inner["encodingFormat"] == "application/jsonlines" and inner["containedIn"] == {"@id": shard.name}
    assert v3["recordSet"][0]["field"][0]["source"]["fileObject"] == {"@id": inner["@id"]}
    v1 = json.loads(files["web@1"][0].read_text())
    assert [o["encodingFormat"] for o in v1["distribution"]] == ["application/jsonlines"]
    assert v1["license"] == "https://spdx.org/licenses/CC-BY-4.0.html" and "@misc{web-1," in v1["citeAs"]


def test_each_rai_field_is_what_custody_recorded(built):
    home, _, files, _ = built
    registry = DatasetRegistry(home)
    web1, web3 = registry.get("web@1"), registry.get("web@3")
    card = web1.card
    for ref, dataset in (("web@1", web1), ("web@3", web3)):
        doc = json.loads(files[ref][0].read_text())
        graph = triples(doc)
        (node,) = graph.subjects(RAI.dataCollection, None)

        def values(prop: str, node=node, graph=graph) -> list[str]:
            return sorted(str(v) for v in graph.objects(node, RAI[prop]))

        # the card: collection, its type and time frame, raw data, use cases, limitations
        assert doc["rai:dataCollection"].startswith(card.collection.process)
        assert f"Consent basis: {card.collection.consent_basis}." in doc["rai:dataCollection"]
        assert values("dataCollectionType") == ["Web Scraping"]  # the card's one source is scraped
        frame = card.collection.time_frame
        assert values("dataCollectionTimeframe") == [str(frame.start), str(frame.end)]
        (source,) = card.sources
        assert doc["rai:dataCollectionRawData"].startswith(f"{source.name} (scraped; {source.uri}")
        assert values("dataUseCases") == sorted(card.use.intended)
        assert values("dataLimitations") == sorted(
            [*card.suitability.known_gaps, f"Noise: {card.suitability.noise}"]
            + [f"Out of scope: {u}" for u in card.use.out_of_scope]
        )
        assert f"Findings: {card.bias.findings}" in values("dataBiases")
        assert values("dataReleaseMaintenancePlan") == [
            f"maintenance: {card.governance.maintenance}; updates: {card.governance.update_mechanism}"
        ]

        # the PII and toxicity checks' summaries on exactly these bytes
        results = latest_results(home, dataset)
        pii, tox = results["pii"].summary(home), results["toxicity"].summary(home)
        personal = doc["rai:personalSensitiveInformation"]
        assert personal[0] == "Card: personal data present: unknown"
        assert (
            f"{pii['records_with_pii']} of {pii['records_scanned']} records contain detected PII (rate {pii['rate']})"
            in personal[1]
        )
        assert f"ledger index {results['pii'].entry_index}" in personal[1]
        for entity, n in pii["records_by_entity"].items():
            assert f"PII check: {entity} in {n} records ({pii['entity_counts'][entity]} spans)" in personal
        biases = doc["rai:dataBiases"]
        assert (
            f"{tox['above_threshold']} of {dataset.manifest.records} records score above "
            f"{tox['threshold']} (rate {tox['rate_above_threshold']})" in " ".join(biases)
        )
        for category, v in tox["by_category"].items():
            assert any(line.startswith(f"Toxicity check: {category} above") for line in biases)
            assert any(f"in {v['above_threshold']} records (rate {v['rate_above_threshold']}" in b for b in biases)
        assert doc["custody:trace"]["rai"]["rai:personalSensitiveInformation"]["pii_check"] == (
            results["pii"].entry_index
        )

    # the stages of web@3's lineage: redact-pii rewrote records, dedup-exact dropped one
    v1 = json.loads(files["web@1"][0].read_text())
    assert v1["rai:dataPreprocessingProtocol"] == [
        "boilerplate-removal with trafilatura 1.12 (before registration in custody)"
    ]
    assert "rai:dataManipulationProtocol" not in v1
    v3 = json.loads(files["web@3"][0].read_text())
    completed = {body(r)["stage"]: (r.idx, body(r)) for r in entries(home.storage, "stage.completed/")}
    config = {
        name: json.loads(home.store.read_bytes(registry.get(out).body["stage"]["config_digest"]))
        for name, out in (("redact-pii", "web@2"), ("dedup-exact", "web@3"))
    }
    _, redact = completed["redact-pii"]
    settings = {k: v for k, v in config["redact-pii"].items() if k not in ("stage", "version")}
    manipulation = v3["rai:dataManipulationProtocol"]
    assert manipulation.startswith(f"custody stage redact-pii {config['redact-pii']['version']} (web@1 -> web@2)")
    assert f"settings {json.dumps(settings, sort_keys=True)}" in manipulation
    assert 'options given {"entities": ["EMAIL_ADDRESS"]}' in manipulation
    assert f"kept {redact['kept']}, modified {redact['modified']}, dropped {redact['dropped']}" in manipulation
    assert redact["modified"] == len(EMAILS)
    before, dedup_line = v3["rai:dataPreprocessingProtocol"]
    _, dedup = completed["dedup-exact"]
    assert before == v1["rai:dataPreprocessingProtocol"][0]
    assert dedup_line.startswith("custody stage dedup-exact") and "(web@2 -> web@3)" in dedup_line
    assert f"kept {dedup['kept']}, modified 0, dropped 1" in dedup_line
    trace = v3["custody:trace"]["rai"]
    assert trace["rai:dataManipulationProtocol"]["stages"] == [
        {
            "stage": "redact-pii",
            "output": "web@2",
            "dataset.registered": registry.get("web@2").index,
            "stage.completed": completed["redact-pii"][0],
        }
    ]
    assert trace["rai:dataPreprocessingProtocol"]["stages"][0]["stage.completed"] == completed["dedup-exact"][0]
    assert "Redacted by custody stage redact-pii in web@2" in v3["rai:personalSensitiveInformation"]


def test_the_export_digest_is_recorded_and_no_pii_value_leaves(built):
    home, _, files, _ = built
    for ref, (path, printed) in files.items():
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        assert printed["digest"] == digest and printed["format"] == "croissant"
        entry = json.loads(home.ledger.entry(printed["ledger_index"]).entry)
        assert entry["type"] == "report.exported/v1"
        assert entry["body"] == {
            "subject": f"dataset:{ref}",
            "format": "croissant",
            "digest": digest,
            "bytes": len(data),
            "covers": "file",
        }
        assert not [e for e in EMAILS if e in data.decode()]


def test_an_unknown_dataset_or_a_run_exits_2_and_records_nothing(built, tmp_path):
    home, root, _, runner = built
    size = home.storage.entry_count()
    for target, said in (
        ("web@9", "web@9"),
        ("nope@1", "nope@1"),
        ("demo-gpt-1a2b3c4d", "neither a registered dataset"),
    ):
        out = tmp_path / "x.json"
        result = runner.invoke(
            app, ["report", target, "--format", "croissant", "--out", str(out), "--home", str(root / "home")]
        )
        assert result.exit_code == 2 and said in result.output, result.output
        assert len([line for line in result.output.strip().splitlines() if line.strip()]) == 1, result.output
        assert not out.exists()
    assert home.storage.entry_count() == size


def test_custody_export_is_the_same_command(built, tmp_path):
    _, root, files, runner = built
    out = tmp_path / "web.json"
    result = runner.invoke(
        app, ["export", "web@1", "--format", "croissant", "--out", str(out), "--home", str(root / "home"), "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["digest"] == hashlib.sha256(out.read_bytes()).hexdigest() and printed["format"] == "croissant"
    assert printed["ledger_index"] > files["web@1"][1]["ledger_index"]  # recorded again, like any export


def test_the_dashboards_download_is_the_same_export_and_names_who_took_it(built):
    from custody.views.provenance import export_download

    home, root, _, _ = built
    data = export_download(root / "home", "web@3", "croissant", "registrar")
    newest = next(entries(home.storage, "report.exported/", "dataset:web@3", newest_first=True))
    assert body(newest) == {
        "subject": "dataset:web@3",
        "format": "croissant",
        "digest": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "covers": "file",
    }
    assert newest.actor == "registrar" and json.loads(data)["identifier"] == "web@3"
