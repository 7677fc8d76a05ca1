"""The provenance check: every outcome, integrity failures, lineage, and what it records."""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from custody.checks.provenance import (
    DEFAULT_REQUIRED_FIELDS,
    ProvenanceCheck,
    SourceListError,
    SourceRule,
    default_deny_rules,
    load_source_rules,
)
from custody.checks.results import latest_results
from custody.checks.rows import ROW_SCHEMA
from custody.cli.main import app
from custody.datasets.card import CARD_TEMPLATE, DatasetCard, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry, IntegrityError
from custody.paths import policies_dir
from custody.pipeline.run_check import run_check

CARD = parse_card(CARD_TEMPLATE)
BIBLIOTIK_URL = "https://the-eye.eu/public/Books/Bibliotik/b/books3.tar.gz"


@pytest.fixture(scope="module")
def jigsaw(shared_data: Path) -> list[dict]:
    lines = (shared_data / "toxicity_jigsaw_sample" / "data.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def speeches(shared_data: Path) -> list[str]:
    text = (shared_data / "corpus_tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()][:200]


def card_with(**changes) -> DatasetCard:
    """The template card with dotted paths replaced (None deletes the key)."""
    data = CARD.as_json()
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return DatasetCard.model_validate(data)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def register(
    home,
    tmp_path: Path,
    rows: list[dict],
    card: DatasetCard = CARD,
    name: str = "comments",
    in_place: bool = False,
    folder: str = "data",
):
    path = write_jsonl(tmp_path / folder / "part-0.jsonl", rows)
    ds, _ = DatasetRegistry(home).register([path], DatasetRef(name, "1"), card, Fields(id="id"), in_place=in_place)
    return ds


def rows_of(home, result) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(home.store.read_bytes(result.result_digest)))


def finding_ids(home, result) -> list[str]:
    return [f["id"] for f in result.summary(home)["findings"]]


def jigsaw_rows(jigsaw: list[dict], urls: dict[int, str] | None = None) -> list[dict]:
    rows = []
    for i, row in enumerate(jigsaw):
        record = {"id": row["id"], "text": row["text"]}
        if urls and i in urls:
            record["source_url"] = urls[i]
        rows.append(record)
    return rows


def cli(*args: object, code: int = 0, env: dict | None = None):
    result = CliRunner(env=env).invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


# -- outcomes --------------------------------------------------------------------------------------


def test_complete_card_passes(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    ds = register(home, tmp_path, jigsaw_rows(jigsaw, {0: "https://en.wikipedia.org/wiki/Talk:Metallica"}))
    result = run_check(home, ds, ProvenanceCheck())
    assert result.status == "pass"
    assert result.records == len(jigsaw) == 154
    summary = result.summary(home)
    assert summary["findings"] == [] and summary["verdicts"] == {"pass": 154}
    assert summary["missing_card_fields"] == [] and summary["broken_shards"] == []
    assert summary["sources"][0]["name"] == "Example crawl 2026-01"


@pytest.mark.parametrize(
    "field",
    [
        "sources",
        "collection__process",
        "collection__time_frame",
        "license__declared",
        "use__intended",
        "use__out_of_scope",
        "governance__owner",
        "governance__steward",
    ],
)
def test_each_missing_required_field_fails(home, tmp_path: Path, jigsaw: list[dict], field: str) -> None:
    ds = register(home, tmp_path, jigsaw_rows(jigsaw[:10]), card=card_with(**{field: None}))
    result = run_check(home, ds, ProvenanceCheck())
    dotted = field.replace("__", ".")
    assert result.status == "fail"
    assert finding_ids(home, result) == [f"card.missing:{dotted}"]
    assert result.summary(home)["missing_card_fields"] == [dotted]
    assert rows_of(home, result)["verdict"].to_list() == ["pass"] * 10  # the records themselves are fine


def test_empty_values_count_as_missing(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    ds = register(home, tmp_path, jigsaw_rows(jigsaw[:3]), card=card_with(use__intended=[], governance__owner=""))
    result = run_check(home, ds, ProvenanceCheck())
    assert finding_ids(home, result) == ["card.missing:use.intended", "card.missing:governance.owner"]


def test_every_default_required_field_is_covered() -> None:
    assert set(DEFAULT_REQUIRED_FIELDS) == {
        "dataset.title",
        "sources",
        "collection.process",
        "collection.time_frame",
        "license.declared",
        "personal_data.present",
        "use.intended",
        "use.out_of_scope",
        "governance.owner",
        "governance.steward",
    }


def test_missing_personal_data_statement_fails(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    ds = register(home, tmp_path, jigsaw_rows(jigsaw[:3]), card=card_with(personal_data__present=None))
    assert "card.missing:personal_data.present" in finding_ids(home, run_check(home, ds, ProvenanceCheck()))


def test_required_fields_are_configurable(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    ds = register(home, tmp_path, jigsaw_rows(jigsaw[:3]), card=card_with(governance__steward=None))
    lenient = run_check(home, ds, ProvenanceCheck(required_fields=("dataset.title",)))
    assert lenient.status == "pass"
    strict = run_check(home, ds, ProvenanceCheck(required_fields=("dataset.title", "bias.methods")))
    assert finding_ids(home, strict) == ["card.missing:bias.methods"]
    assert strict.config_digest != lenient.config_digest


def test_undated_source_is_flagged(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    sources = [{**CARD.as_json()["sources"][0], "retrieved_at": None}]
    ds = register(home, tmp_path, jigsaw_rows(jigsaw[:3]), card=card_with(sources=sources))
    result = run_check(home, ds, ProvenanceCheck())
    assert result.status == "flag"
    assert finding_ids(home, result) == ["card.source_undated:Example crawl 2026-01"]


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ({"name": "Books3", "kind": "scraped"}, "books3"),
        ({"name": "Pile subset (books3)", "kind": "public"}, "books3"),
        ({"name": "Book mirror", "uri": BIBLIOTIK_URL, "kind": "scraped"}, "books3"),
        ({"name": "Library Genesis fiction dump", "kind": "scraped"}, "library-genesis"),
        ({"name": "Papers", "uri": "https://sci-hub.se/10.1000/xyz", "kind": "scraped"}, "sci-hub"),
        ({"name": "Ebooks", "uri": "https://z-lib.org/book/1", "kind": "scraped"}, "z-library"),
    ],
)
def test_denied_sources(home, tmp_path: Path, jigsaw: list[dict], source: dict, rule: str) -> None:
    dated = {**source, "retrieved_at": "2026-01-01"}
    ds = register(home, tmp_path, jigsaw_rows(jigsaw[:5]), card=card_with(sources=[dated]))
    result = run_check(home, ds, ProvenanceCheck())
    assert result.status == "fail"
    assert finding_ids(home, result) == [f"source.denied:{rule}"]
    message = result.summary(home)["findings"][0]["message"]
    assert source["name"] in message and "deny list" in message


def test_default_deny_list_matches_the_policy_file() -> None:
    rules = default_deny_rules()
    assert {r.id for r in rules} >= {"books3", "library-genesis", "z-library", "sci-hub", "anna-archive", "bibliotik"}
    books3 = next(r for r in rules if r.id == "books3")
    assert books3.matches_name("BOOKS3") and books3.matches_url(BIBLIOTIK_URL)
    assert not books3.matches_name("Project Gutenberg")
    assert not books3.matches_url("https://www.gutenberg.org/ebooks/100")
    assert policies_dir() == Path(__file__).resolve().parents[1] / "policies"


def test_records_from_denied_sources_fail(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    urls = {
        3: "https://libgen.rs/book/index.php?md5=abc",
        5: BIBLIOTIK_URL,
        8: "http://libgen.is/fiction/",
        9: "https://en.wikipedia.org/wiki/Talk:Hamlet",
    }
    ds = register(home, tmp_path, jigsaw_rows(jigsaw, urls))
    result = run_check(home, ds, ProvenanceCheck())
    assert result.status == "fail"
    assert result.body["verdicts"] == {"fail": 3, "pass": 151}
    assert finding_ids(home, result) == ["records.denied_source:books3", "records.denied_source:library-genesis"]
    assert result.summary(home)["denied_records"] == {"books3": 1, "library-genesis": 2}
    rows = rows_of(home, result)
    failed = rows.filter(pl.col("verdict") == "fail")
    assert failed["position"].to_list() == [4, 6, 9]  # JSONL lines of records 3, 5 and 8
    assert failed["record_id"].to_list() == [jigsaw[i]["id"] for i in (3, 5, 8)]
    assert failed["reason"].to_list() == [
        "source.denied:library-genesis",
        "source.denied:books3",
        "source.denied:library-genesis",
    ]


def test_allow_list_flags_everything_else(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    wiki = SourceRule("wikipedia", names=("wikipedia*",), urls=("https://*.wikipedia.org/*",))
    urls = {
        0: "https://en.wikipedia.org/wiki/Talk:Hamlet",
        1: "https://example.net/forum/1",
        2: "https://libgen.rs/book/1",
    }
    ds = register(home, tmp_path, jigsaw_rows(jigsaw[:6], urls))
    result = run_check(home, ds, ProvenanceCheck(allow=(wiki,)))
    # The card's source (a crawl) is not on the allow list; a denied URL stays a denial.
    assert finding_ids(home, result) == [
        "source.not_allowed:Example crawl 2026-01",
        "records.denied_source:library-genesis",
    ]
    rows = rows_of(home, result)
    assert rows["verdict"].to_list() == ["pass", "flag", "fail", "pass", "pass", "pass"]
    assert rows["reason"].to_list()[:3] == ["", "source.not_allowed", "source.denied:library-genesis"]
    # A card whose source is on the allow list gets no source finding.
    wiki_source = {
        "name": "Wikipedia talk pages",
        "uri": "https://en.wikipedia.org/wiki/Talk:",
        "kind": "public",
        "retrieved_at": "2026-01-01",
    }
    ok = register(
        home,
        tmp_path,
        jigsaw_rows(jigsaw[:6], {0: urls[0]}),
        card=card_with(sources=[wiki_source]),
        name="wiki",
        folder="wiki",
    )
    allowed = run_check(home, ok, ProvenanceCheck(allow=(wiki,)))
    assert allowed.status == "pass" and finding_ids(home, allowed) == []


# -- integrity ---------------------------------------------------------------------------------------


def _edit_store_file(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[data.index(b"Explanation")] = ord(b"e")
    path.write_bytes(bytes(data))


def test_shard_edited_in_the_store(home, engineer_key: Path, tmp_path: Path, jigsaw: list[dict]) -> None:
    folder = tmp_path / "two"
    write_jsonl(folder / "a.jsonl", jigsaw_rows(jigsaw[:77]))
    write_jsonl(folder / "b.jsonl", jigsaw_rows(jigsaw[77:]))
    ds, _ = DatasetRegistry(home).register([folder], DatasetRef("two", "1"), CARD, Fields(id="id"))
    assert run_check(home, ds, ProvenanceCheck()).status == "pass"
    shard_a = ds.manifest.shards[0]
    _edit_store_file(home.store.path_for(shard_a.digest))

    # Re-hashing catches it, independently of the ledger, which is itself intact.
    assert ds.verify_shards() == [("a.jsonl", "bytes do not match the manifest digest")]
    assert home.ledger.verify(home.verifier_key, home.witness.remembered()).ok
    with pytest.raises(IntegrityError, match=r"two@1: shard a.jsonl does not match .*changed since registration"):
        list(ds.records())
    # The check fails with a finding, and writes rows only for the intact shard.
    result = run_check(home, ds, ProvenanceCheck())
    assert result.status == "fail"
    assert finding_ids(home, result) == ["shard.integrity:a.jsonl"]
    assert result.summary(home)["broken_shards"] == ["a.jsonl"]
    rows = rows_of(home, result)
    assert set(rows["shard"].to_list()) == {"b.jsonl"} and rows.height == len(jigsaw) - 77
    assert result.records == rows.height
    # The CLI says so too, with the check's status in --json.
    out = json.loads(cli("check", "two@1", "--checks", "provenance", "--json", "--home", home.path).stdout)
    assert out[0]["status"] == "fail"
    assert [f["id"] for f in out[0]["summary"]["findings"]] == ["shard.integrity:a.jsonl"]
    # And the ledger still verifies: shard integrity is the data's, not the ledger's.
    assert "ledger intact" in cli("ledger", "verify", "--home", home.path).stdout


def test_shard_deleted_from_the_store(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    ds = register(home, tmp_path, jigsaw_rows(jigsaw[:20]))
    home.store.erase(ds.manifest.shards[0].digest)
    result = run_check(home, ds, ProvenanceCheck())
    assert finding_ids(home, result) == ["shard.integrity:part-0.jsonl"]
    assert "not in store" in result.summary(home)["findings"][0]["message"]
    assert result.records == 0


def test_in_place_shard_edited(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    ds = register(home, tmp_path, jigsaw_rows(jigsaw[:30]), in_place=True)
    path = Path(ds.body["locations"]["part-0.jsonl"])
    with open(path, "ab") as out:
        out.write(b'{"id": "smuggled", "text": "added after registration"}\n')
    result = run_check(home, ds, ProvenanceCheck())
    assert result.status == "fail" and finding_ids(home, result) == ["shard.integrity:part-0.jsonl"]
    assert result.records == 0


# -- lineage -----------------------------------------------------------------------------------------------


def _derive(home, parent, name: str = "child"):
    records = [{"id": r.id, "text": r.text.lower()} for _, r in parent.records()]
    return DatasetRegistry(home).register_derived(
        DatasetRef(name, "1"), [parent], "lowercase", {"op": "lower"}, records
    )[0]


def test_complete_lineage_passes(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    parent = register(home, tmp_path, jigsaw_rows(jigsaw[:20]))
    child = _derive(home, parent)
    grandchild = _derive(home, child, "grandchild")
    for ds in (child, grandchild):
        assert run_check(home, ds, ProvenanceCheck()).status == "pass"


def test_changed_parent(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    parent = register(home, tmp_path, jigsaw_rows(jigsaw[:20]))
    # Lineage recorded against other bytes than those registered under the parent's name.
    stale = replace(parent, body={**parent.body, "manifest_digest": "0" * 64})
    child = _derive(home, stale)
    assert child.parents == [{"dataset": "comments@1", "digest": "0" * 64}]
    result = run_check(home, child, ProvenanceCheck())
    assert result.status == "fail"
    assert finding_ids(home, result) == ["lineage.parent_changed:comments@1"]
    ancestors, _ = DatasetRegistry(home).lineage(child.ref)
    assert ancestors == [(1, {"dataset": "comments@1", "digest": "0" * 64})]


def test_missing_parent(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    parent = register(home, tmp_path, jigsaw_rows(jigsaw[:20]))
    ghost = replace(parent, ref=DatasetRef("never-registered", "3"))
    child = _derive(home, ghost)
    assert finding_ids(home, run_check(home, child, ProvenanceCheck())) == ["lineage.parent_missing:never-registered@3"]


def test_corrupt_parent(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    parent = register(home, tmp_path, jigsaw_rows(jigsaw[:20]))
    child = _derive(home, parent)
    _edit_store_file(home.store.path_for(parent.manifest.shards[0].digest))
    result = run_check(home, child, ProvenanceCheck())
    assert result.status == "fail"
    assert finding_ids(home, result) == ["lineage.parent_corrupt:comments@1"]
    assert result.records == 20  # the child's own bytes are intact


# -- what a check records --------------------------------------------------------------------------------------


def test_check_completed_entry_and_artifacts(home, tmp_path: Path, speeches: list[str]) -> None:
    rows = [{"id": f"s{i}", "text": t} for i, t in enumerate(speeches)]
    rows[7]["source_url"] = BIBLIOTIK_URL
    folder = tmp_path / "plays"
    write_jsonl(folder / "a.jsonl", rows[:120])
    pl.DataFrame(rows[120:], schema=["id", "text", "source_url"]).write_parquet(folder / "b.parquet")
    ds, _ = DatasetRegistry(home).register([folder], DatasetRef("plays", "1"), CARD, Fields(id="id"))
    check = ProvenanceCheck()
    result = run_check(home, ds, check, actor="auditor")

    (row,) = home.storage.entries(result.entry_index, 1)
    entry = json.loads(row.entry)
    assert entry["type"] == "check.completed/v2" and entry["subject"] == "dataset:plays@1"
    assert entry["actor"] == "auditor"
    body = entry["body"]
    assert body["check"] == "provenance" and body["version"] == ProvenanceCheck.version == "1.1.0"
    assert body["dataset"] == "plays@1" and body["dataset_digest"] == ds.digest
    assert body["config_digest"] == result.config_digest
    assert body["result_digest"] == result.result_digest and body["summary_digest"] == result.summary_digest
    assert body["records"] == len(rows) and body["status"] == "fail"
    assert body["verdicts"] == {"fail": 1, "pass": len(rows) - 1}
    assert body["findings"] == [{"id": "records.denied_source:books3", "severity": "fail"}]
    assert entry["refs"] == [
        f"sha256:{d}" for d in (ds.digest, result.config_digest, result.result_digest, result.summary_digest)
    ]
    # Every referenced artifact is in the store and hashes to its name.
    assert json.loads(home.store.read_bytes(result.config_digest)) == check.config()
    summary = json.loads(home.store.read_bytes(result.summary_digest))
    assert summary["dataset_digest"] == ds.digest and summary["records"] == len(rows)
    table = pq.read_table(io.BytesIO(home.store.read_bytes(result.result_digest)))
    assert table.schema.equals(ROW_SCHEMA)
    frame = pl.from_arrow(table)
    assert frame.height == len(rows) == ds.manifest.records
    assert frame["record_id"].to_list() == [r["id"] for r in rows]
    assert frame["shard"].to_list() == ["a.jsonl"] * 120 + ["b.parquet"] * (len(rows) - 120)
    assert frame["position"].to_list() == list(range(1, 121)) + list(range(1, len(rows) - 119))
    assert frame.select(["shard", "position"]).is_unique().all()
    assert set(frame["check"].to_list()) == {"provenance"} and set(frame["dataset"].to_list()) == {"plays@1"}
    assert frame.filter(pl.col("verdict") == "fail")["record_id"].to_list() == ["s7"]
    # Latest results by check, and the same inputs give the same digests.
    again = run_check(home, ds, ProvenanceCheck())
    assert latest_results(home, ds)["provenance"].entry_index == again.entry_index
    assert (again.result_digest, again.config_digest, again.summary_digest) == (
        result.result_digest,
        result.config_digest,
        result.summary_digest,
    )
    assert again.entry_index == result.entry_index + 1


def test_config_digest_follows_the_deny_list(home, tmp_path: Path, jigsaw: list[dict]) -> None:
    ds = register(home, tmp_path, jigsaw_rows(jigsaw[:10], {0: "https://forum.example.com/t/1"}))
    base = run_check(home, ds, ProvenanceCheck())
    same = run_check(home, ds, ProvenanceCheck(deny=default_deny_rules()))
    assert same.config_digest == base.config_digest
    extra = SourceRule("example-forum", urls=("https://forum.example.com/*",), reason="scraped against ToS")
    stricter = run_check(home, ds, ProvenanceCheck(deny=(*default_deny_rules(), extra)))
    assert stricter.config_digest != base.config_digest
    assert finding_ids(home, stricter) == ["records.denied_source:example-forum"]
    assert run_check(home, ds, ProvenanceCheck(deny=())).config_digest != base.config_digest


def test_policies_directory_changes_the_cli_check(home, engineer_key: Path, tmp_path: Path, jigsaw: list[dict]) -> None:
    register(home, tmp_path, jigsaw_rows(jigsaw[:10], {2: "https://forum.example.com/t/1"}))
    out = json.loads(cli("check", "comments@1", "--checks", "provenance", "--json", "--home", home.path).stdout)
    assert out[0]["status"] == "pass"
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(policies_dir() / "sources-deny.toml", policies / "sources-deny.toml")
    with open(policies / "sources-deny.toml", "a", encoding="utf-8") as deny:
        deny.write('\n[[deny]]\nid = "example-forum"\nurls = ["https://forum.example.com/*"]\n')
    out2 = json.loads(
        cli(
            "check",
            "comments@1",
            "--checks",
            "provenance",
            "--json",
            "--home",
            home.path,
            env={"CUSTODY_POLICIES": str(policies)},
        ).stdout
    )
    assert out2[0]["status"] == "fail"
    assert [f["id"] for f in out2[0]["summary"]["findings"]] == ["records.denied_source:example-forum"]
    results = latest_results(home, DatasetRegistry(home).get("comments@1"))
    assert results["provenance"].entry_index == out2[0]["ledger_index"]
    entries = [json.loads(r.entry)["body"] for r in home.storage.entries(0, 100, type_prefix="check.completed/")]
    assert len({e["config_digest"] for e in entries}) == 2


# -- the CLI ---------------------------------------------------------------------------------------------------


def test_check_and_findings_cli(home, engineer_key: Path, tmp_path: Path, jigsaw: list[dict]) -> None:
    register(home, tmp_path, jigsaw_rows(jigsaw, {4: "https://libgen.rs/x"}))
    text = cli("check", "comments@1", "--checks", "provenance", "--home", home.path).stdout
    assert "provenance 1.1.0: fail" in text and "records.denied_source:library-genesis" in text
    out = json.loads(cli("check", "comments@1", "--checks", "provenance", "--json", "--home", home.path).stdout)
    assert len(out) == 1 and out[0]["check"] == "provenance" and out[0]["records"] == 154
    assert out[0]["summary"]["verdicts"] == {"fail": 1, "pass": 153}

    lines = cli("findings", "comments@1", "--check", "provenance", "--home", home.path).stdout.splitlines()
    exported = [json.loads(line) for line in lines]
    assert len(exported) == 154 and set(exported[0]) == set(ROW_SCHEMA.names)
    assert [e["record_id"] for e in exported if e["verdict"] == "fail"] == [jigsaw[4]["id"]]

    jsonl_out = tmp_path / "rows.jsonl"
    cli("findings", "comments@1", "--check", "provenance", "--out", jsonl_out, "--home", home.path)
    assert [json.loads(line) for line in jsonl_out.read_text(encoding="utf-8").splitlines()] == exported

    parquet_out = tmp_path / "rows.parquet"
    assert (
        "wrote 154 rows"
        in cli(
            "findings",
            "comments@1",
            "--check",
            "provenance",
            "--format",
            "parquet",
            "--out",
            parquet_out,
            "--home",
            home.path,
        ).stdout
    )
    assert pq.read_schema(parquet_out).equals(ROW_SCHEMA)
    assert pl.read_parquet(parquet_out).to_dicts() == exported
    assert parquet_out.read_bytes() == home.store.read_bytes(out[0]["result_digest"])

    # Usage errors: exit 2, one line.
    for args, expected in (
        (["--format", "parquet"], "needs --out"),
        (["--format", "csv"], "jsonl or parquet"),
    ):
        result = cli("findings", "comments@1", "--check", "provenance", *args, "--home", home.path, code=2)
        assert expected in result.stderr
    result = cli("findings", "comments@1", "--check", "license", "--home", home.path, code=2)
    assert "no recorded 'license' result" in result.stderr
    result = cli("check", "comments@1", "--checks", "provenance,nope", "--home", home.path, code=2)
    assert "unknown check 'nope'" in result.stderr
    result = cli("check", "missing@1", "--checks", "provenance", "--home", home.path, code=2)
    assert "not registered" in result.stderr


def test_check_on_an_in_place_shard_that_changed_via_cli(
    home, engineer_key: Path, tmp_path: Path, jigsaw: list[dict]
) -> None:
    ds = register(home, tmp_path, jigsaw_rows(jigsaw[:10]), in_place=True)
    Path(ds.body["locations"]["part-0.jsonl"]).write_text('{"id": "1", "text": "replaced"}\n', encoding="utf-8")
    out = json.loads(cli("check", "comments@1", "--checks", "provenance", "--json", "--home", home.path).stdout)
    assert out[0]["status"] == "fail" and out[0]["records"] == 0
    # Metadata still shows; reading the records refuses them.
    assert "comments@1" in cli("dataset", "show", "comments@1", "--home", home.path).stdout
    with pytest.raises(IntegrityError):
        list(ds.records())


# -- source lists ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[[deny]\nid = 'x'\n", "not valid TOML"),
        ("version = 1\nblock = []\n", "unknown key 'block'"),
        ("[[deny]]\nnames = ['x']\n", "deny[0]: needs an 'id'"),
        ("[[deny]]\nid = 'x'\nnames = ['x']\nurl = ['y']\n", "deny[0]: needs an 'id'; unknown keys ['url']"),
        ("[[deny]]\nid = 'x'\nnames = ['ok', 3]\n", "deny[0].names must be a list of strings"),
        ("[[deny]]\nid = 'x'\nurls = [true]\n", "deny[0].urls must be a list of strings"),
    ],
)
def test_malformed_source_list(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "sources-deny.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SourceListError) as caught:
        load_source_rules(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_source_list_not_found_or_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(SourceListError, match="source list not found"):
        load_source_rules(tmp_path / "nope.toml")
    bad = tmp_path / "latin.toml"
    bad.write_bytes(b"[[deny]]\nid = '\xe9'\n")
    with pytest.raises(SourceListError, match=f"{bad}: not valid TOML"):
        load_source_rules(bad)


def test_malformed_policy_makes_the_cli_check_a_bad_input(
    home, engineer_key: Path, tmp_path: Path, jigsaw: list[dict]
) -> None:
    register(home, tmp_path, jigsaw_rows(jigsaw[:5]))
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "sources-deny.toml").write_text("[[deny]]\nreason = 'no id'\n", encoding="utf-8")
    size = home.ledger.size
    result = cli(
        "check",
        "comments@1",
        "--checks",
        "provenance",
        "--home",
        home.path,
        code=2,
        env={"CUSTODY_POLICIES": str(policies)},
    )
    assert str(policies / "sources-deny.toml") in result.stderr and "needs an 'id'" in result.stderr
    assert home.ledger.size == size


def test_source_list_names_must_be_a_list(tmp_path: Path) -> None:
    path = tmp_path / "sources-deny.toml"
    path.write_text('[[deny]]\nid = "books3"\nnames = "books3"\n', encoding="utf-8")
    with pytest.raises(SourceListError, match="must be a list of strings"):
        load_source_rules(path)


def test_source_list_entries_must_be_tables(tmp_path: Path) -> None:
    path = tmp_path / "sources-deny.toml"
    path.write_text("deny = [1]\n", encoding="utf-8")
    with pytest.raises(SourceListError):
        load_source_rules(path)
