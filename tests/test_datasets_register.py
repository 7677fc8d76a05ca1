"""Dataset registration on real files: every format, record ids, per-record fields, store copy vs
--in-place, idempotence and conflicts, list/show/lineage (library and CLI), derived datasets, and
memory that stays flat as the input grows."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
import zstandard
from typer.testing import CliRunner

from custody.cli.main import app
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry, IntegrityError, RegistrationConflict
from custody.store import sha256_file

CARD = parse_card(CARD_TEMPLATE)
LICENSES = ["CC-BY-4.0", "CC0-1.0", None, "MIT"]
ENGINEER = "tester"  # put on the roster by the engineer_key fixture (conftest.py)


# -- real data from shared/ ----------------------------------------------------------------


@pytest.fixture(scope="module")
def passages(shared_data: Path) -> list[str]:
    """Tiny Shakespeare split into speeches (blank-line separated): 7,000+ real records."""
    text = (shared_data / "corpus_tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


@pytest.fixture(scope="module")
def jigsaw(shared_data: Path) -> list[dict]:
    lines = (shared_data / "toxicity_jigsaw_sample" / "data.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def rows_of(passages: list[str], n: int = 300) -> list[dict]:
    """Records with an id, a text and, on some, a license and a source URL."""
    rows = []
    for i, text in enumerate(passages[:n]):
        row = {"id": f"tinyshakespeare-{i:05d}", "text": text}
        if LICENSES[i % 4]:
            row["license"] = LICENSES[i % 4]
        if i % 3 == 0:
            row["source_url"] = f"https://example.org/shakespeare/{i}"
        rows.append(row)
    return rows


def jsonl_bytes(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in rows)


def write_format(directory: Path, fmt: str, rows: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        path = directory / "part-0.jsonl"
        path.write_bytes(jsonl_bytes(rows))
    elif fmt == "jsonl.gz":
        path = directory / "part-0.jsonl.gz"
        with gzip.open(path, "wb") as out:
            out.write(jsonl_bytes(rows))
    elif fmt == "jsonl.zst":
        path = directory / "part-0.jsonl.zst"
        with open(path, "wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as out:
            out.write(jsonl_bytes(rows))
    elif fmt == "parquet":
        path = directory / "part-0.parquet"
        pl.DataFrame(rows, schema=["id", "text", "license", "source_url"]).write_parquet(path)
    elif fmt == "csv":
        path = directory / "part-0.csv"
        pl.DataFrame(rows, schema=["id", "text", "license", "source_url"]).write_csv(path)
    elif fmt == "txt":
        path = directory / "speeches"
        path.mkdir()
        for row in rows:
            (path / f"{row['id']}.txt").write_text(row["text"], encoding="utf-8")
    else:  # pragma: no cover
        raise AssertionError(fmt)
    return path


def ledger_size(home) -> int:
    return home.ledger.size


def store_files(home) -> list[str]:
    root = home.path / "artifacts" / "sha256"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def cli(*args: object, code: int = 0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture
def card_file(tmp_path: Path) -> Path:
    path = tmp_path / "card.toml"
    path.write_text(CARD_TEMPLATE, encoding="utf-8")
    return path


# -- every format --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "jsonl.zst", "parquet", "csv", "txt"])
def test_every_format_counts_hashes_and_reads_back(home, tmp_path: Path, passages: list[str], fmt: str) -> None:
    rows = rows_of(passages)
    if fmt == "txt":
        rows = rows[:40]
    path = write_format(tmp_path / "in", fmt, rows)
    registry = DatasetRegistry(home)
    ds, created = registry.register([path], DatasetRef("shakespeare", "1"), CARD, Fields(id="id"))
    assert created
    assert ds.manifest.records == len(rows) == ds.body["records"]
    if fmt == "txt":
        assert len(ds.manifest.shards) == len(rows)
        assert {s.format for s in ds.manifest.shards} == {"txt"}
        files = sorted(path.iterdir())
        assert [s.digest for s in ds.manifest.shards] == [sha256_file(f) for f in files]
        assert all(s.records == 1 for s in ds.manifest.shards)
    else:
        (shard,) = ds.manifest.shards
        assert shard.format == fmt
        assert shard.digest == sha256_file(path)
        assert shard.bytes == path.stat().st_size == ds.manifest.bytes
        assert shard.records == len(rows)
    read = [record for _, record in ds.records()]
    assert [r.text for r in read] == [r["text"] for r in rows]
    if fmt != "txt":  # .txt ids: see test_txt_ids_are_file_stems
        assert [r.id for r in read] == [r["id"] for r in rows]
    assert all(r.content_hash == hashlib.sha256(r.text.encode()).hexdigest() for r in read)
    if fmt != "txt":  # .txt files carry no per-record license or URL
        assert [r.license for r in read] == [r.get("license") for r in rows]
        assert [r.source_url for r in read] == [r.get("source_url") for r in rows]
        # JSONL counts positions as lines, Parquet as rows (CSV as lines, header first: multi-line
        # quoted texts make those physical lines differ from rows, so no claim is made here).
        if fmt != "csv":
            assert [r.position for r in read] == list(range(1, len(rows) + 1))


@pytest.mark.parametrize(
    "in_place",
    [
        True,
        False,
    ],
)
def test_txt_ids_are_file_stems(home, tmp_path: Path, passages: list[str], in_place: bool) -> None:
    rows = rows_of(passages, 5)
    folder = write_format(tmp_path / "in", "txt", rows)
    ds, _ = DatasetRegistry(home).register(
        [folder], DatasetRef("speeches", "1"), CARD, Fields(id="id"), in_place=in_place
    )
    assert [r.id for _, r in ds.records()] == [row["id"] for row in rows]


def test_real_jsonl_with_id_field_and_content_hash_ids(
    home, tmp_path: Path, shared_data: Path, jigsaw: list[dict]
) -> None:
    source = shared_data / "toxicity_jigsaw_sample" / "data.jsonl"
    registry = DatasetRegistry(home)
    by_id, _ = registry.register([source], DatasetRef("jigsaw", "1"), CARD, Fields(id="id"), in_place=True)
    by_hash, _ = registry.register([source], DatasetRef("jigsaw", "2"), CARD, in_place=True)
    assert by_id.manifest.records == by_hash.manifest.records == len(jigsaw) == 154
    assert [r.id for _, r in by_id.records()] == [row["id"] for row in jigsaw]
    hashed = [r for _, r in by_hash.records()]
    assert [r.id for r in hashed] == [hashlib.sha256(row["text"].encode()).hexdigest() for row in jigsaw]
    assert all(r.id == r.content_hash for r in hashed)
    # The id field is part of what was registered: different fields, different manifest.
    assert by_id.digest != by_hash.digest
    assert by_id.manifest.fields["id"] == "id" and by_hash.manifest.fields["id"] is None


def test_content_hash_ids_are_stable_across_formats(home, tmp_path: Path, passages: list[str]) -> None:
    rows = [{"text": r["text"]} for r in rows_of(passages, 50)]
    registry = DatasetRegistry(home)
    ids = []
    for i, fmt in enumerate(["jsonl", "jsonl.zst", "parquet"]):
        path = tmp_path / fmt / f"x.{fmt}"
        path.parent.mkdir()
        if fmt == "parquet":
            pl.DataFrame(rows).write_parquet(path)
        elif fmt == "jsonl.zst":
            path.write_bytes(zstandard.ZstdCompressor().compress(jsonl_bytes(rows)))
        else:
            path.write_bytes(jsonl_bytes(rows))
        ds, _ = registry.register([path], DatasetRef("stable", str(i + 1)), CARD)
        ids.append([r.id for _, r in ds.records()])
    assert ids[0] == ids[1] == ids[2]
    assert len(set(ids[0])) == len(rows)


def test_integer_ids_become_strings(home, tmp_path: Path, passages: list[str]) -> None:
    path = tmp_path / "ints.jsonl"
    path.write_bytes(jsonl_bytes([{"n": i, "text": t} for i, t in enumerate(passages[:20])]))
    ds, _ = DatasetRegistry(home).register([path], DatasetRef("ints", "1"), CARD, Fields(id="n"))
    assert [r.id for _, r in ds.records()] == [str(i) for i in range(20)]


def test_custom_text_field(home, tmp_path: Path, passages: list[str]) -> None:
    path = tmp_path / "custom.jsonl"
    path.write_bytes(jsonl_bytes([{"content": t, "license": "CC0-1.0"} for t in passages[:10]]))
    ds, _ = DatasetRegistry(home).register([path], DatasetRef("custom", "1"), CARD, Fields(text="content"))
    assert [r.text for _, r in ds.records()] == passages[:10]
    assert {r.license for _, r in ds.records()} == {"CC0-1.0"}


def test_mixed_folder_with_license_document(home, tmp_path: Path, passages: list[str], jigsaw: list[dict]) -> None:
    folder = tmp_path / "mixed"
    rows = rows_of(passages, 120)
    write_format(folder / "a", "jsonl.gz", rows[:30])
    write_format(folder / "b", "parquet", rows[30:60])
    write_format(folder / "c", "csv", rows[60:90])
    write_format(folder / "d", "jsonl", [{"id": j["id"], "text": j["text"]} for j in jigsaw])
    (folder / "e").mkdir()
    for row in rows[90:95]:
        (folder / "e" / f"{row['id']}.txt").write_text(row["text"], encoding="utf-8")
    (folder / "LICENSE").write_text("Creative Commons Attribution 4.0 International\n", encoding="utf-8")
    (folder / "README.md").write_text("# Mixed sample\n", encoding="utf-8")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "ignored.bin").write_bytes(b"\0\1")  # dot-folders are not data
    ds, created = DatasetRegistry(home).register([folder], DatasetRef("mixed", "1"), CARD, Fields(id="id"))
    assert created
    assert [s.name for s in ds.manifest.shards] == [
        "a/part-0.jsonl.gz",
        "b/part-0.parquet",
        "c/part-0.csv",
        "d/part-0.jsonl",
        *[f"e/{row['id']}.txt" for row in rows[90:95]],
    ]
    assert [s.format for s in ds.manifest.shards][:4] == ["jsonl.gz", "parquet", "csv", "jsonl"]
    assert ds.manifest.records == 30 + 30 + 30 + len(jigsaw) + 5
    docs = {d.name: d for d in ds.manifest.documents}
    assert set(docs) == {"LICENSE", "README.md"}
    assert home.store.read_bytes(docs["LICENSE"].digest).startswith(b"Creative Commons")
    assert docs["LICENSE"].digest == sha256_file(folder / "LICENSE")
    assert sum(1 for _ in ds.records()) == ds.manifest.records


# -- store copy and --in-place ---------------------------------------------------------------


def test_store_copy_survives_the_original(home, tmp_path: Path, passages: list[str]) -> None:
    path = write_format(tmp_path / "in", "jsonl.zst", rows_of(passages))
    ds, _ = DatasetRegistry(home).register([path], DatasetRef("copied", "1"), CARD, Fields(id="id"))
    (shard,) = ds.manifest.shards
    stored = home.store.path_for(shard.digest)
    assert ds.shard_path(shard) == stored and stored.exists()
    assert stored.stat().st_mode & 0o222 == 0, "store files are read-only"
    assert not ds.body["in_place"] and ds.body["locations"] == {}
    assert home.store.read_bytes(ds.digest)  # the manifest is an artifact
    assert home.store.exists(ds.body["card_digest"])
    path.unlink()
    assert ds.verify_shards() == []
    assert sum(1 for _ in ds.records()) == ds.manifest.records
    assert not list((home.path / "artifacts" / "tmp").iterdir()), "no staged files left behind"


def test_in_place_keeps_paths_and_catches_edits(home, tmp_path: Path, passages: list[str]) -> None:
    path = write_format(tmp_path / "in", "jsonl", rows_of(passages))
    ds, _ = DatasetRegistry(home).register([path], DatasetRef("inplace", "1"), CARD, Fields(id="id"), in_place=True)
    (shard,) = ds.manifest.shards
    assert ds.body["in_place"] is True
    assert ds.body["locations"] == {shard.name: str(path.resolve())}
    assert ds.shard_path(shard) == path.resolve()
    assert not home.store.exists(shard.digest), "--in-place must not copy the data"
    assert ds.verify_shards() == []
    assert sum(1 for _ in ds.records()) == 300
    # Edit one byte in the external file after registration.
    data = bytearray(path.read_bytes())
    data[data.index(b"First")] = ord(b"f")
    path.write_bytes(bytes(data))
    assert ds.verify_shards() == [(shard.name, "bytes do not match the manifest digest")]
    with pytest.raises(IntegrityError, match="changed since registration"):
        next(ds.records())
    # Reloading from the ledger gives the same verdict: the digest is the registered one.
    reloaded = DatasetRegistry(home).get("inplace@1")
    with pytest.raises(IntegrityError):
        list(reloaded.records())
    path.unlink()
    problems = reloaded.verify_shards()
    assert problems and problems[0][0] == shard.name and problems[0][1].startswith("missing")
    with pytest.raises(IntegrityError, match="missing"):
        next(reloaded.records())


def test_in_place_cli(home, engineer_key: Path, tmp_path: Path, card_file: Path, passages: list[str]) -> None:
    path = write_format(tmp_path / "in", "parquet", rows_of(passages))
    out = cli(
        "dataset",
        "register",
        path,
        "--name",
        "inplace-cli",
        "--version",
        "1",
        "--card",
        card_file,
        "--id-field",
        "id",
        "--in-place",
        "--json",
        "--home",
        home.path,
    )
    info = json.loads(out.stdout)
    assert info["created"] is True and info["in_place"] is True
    assert info["records"] == 300
    assert not home.store.exists(info["shards"][0]["digest"])
    # The service signed the registration, naming the engineer whose key the CLI held.
    assert json.loads(home.ledger.entry(info["ledger_index"]).entry)["actor"] == ENGINEER


# -- idempotence and conflicts -------------------------------------------------------------------


def test_identical_registration_is_a_no_op(
    home, engineer_key: Path, tmp_path: Path, passages: list[str], card_file: Path
) -> None:
    path = write_format(tmp_path / "in", "jsonl.gz", rows_of(passages))
    registry = DatasetRegistry(home)
    first, created = registry.register([path], DatasetRef("same", "1"), CARD, Fields(id="id"))
    assert created
    size, files = ledger_size(home), store_files(home)
    again, created = registry.register([path], DatasetRef("same", "1"), CARD, Fields(id="id"))
    assert created is False
    assert again.index == first.index and again.digest == first.digest
    assert ledger_size(home) == size and store_files(home) == files
    out = cli(
        "dataset",
        "register",
        path,
        "--name",
        "same",
        "--version",
        "1",
        "--card",
        card_file,
        "--id-field",
        "id",
        "--home",
        home.path,
    )
    assert "already registered with identical content" in out.stdout
    assert "nothing to do" in out.stdout
    out = cli(
        "dataset",
        "register",
        path,
        "--name",
        "same",
        "--version",
        "1",
        "--card",
        card_file,
        "--id-field",
        "id",
        "--json",
        "--home",
        home.path,
    )
    assert json.loads(out.stdout)["created"] is False
    assert ledger_size(home) == size and store_files(home) == files
    assert not list((home.path / "artifacts" / "tmp").iterdir())


def test_different_content_or_card_is_refused(
    home, engineer_key: Path, tmp_path: Path, passages: list[str], card_file: Path
) -> None:
    path = write_format(tmp_path / "in", "jsonl", rows_of(passages))
    registry = DatasetRegistry(home)
    registry.register([path], DatasetRef("fixed", "1"), CARD, Fields(id="id"))
    size, files = ledger_size(home), store_files(home)

    other = write_format(tmp_path / "other", "jsonl", rows_of(passages, 299))
    with pytest.raises(RegistrationConflict, match=r"fixed@1 is already registered .* different content"):
        registry.register([other], DatasetRef("fixed", "1"), CARD, Fields(id="id"))
    changed_card = CARD.model_copy(update={"dataset": CARD.dataset.model_copy(update={"title": "Renamed"})})
    with pytest.raises(RegistrationConflict, match="different card"):
        registry.register([path], DatasetRef("fixed", "1"), changed_card, Fields(id="id"))
    with pytest.raises(RegistrationConflict, match="different content"):  # other fields: other manifest
        registry.register([path], DatasetRef("fixed", "1"), CARD)
    with pytest.raises(RegistrationConflict):
        registry.register([other], DatasetRef("fixed", "1"), CARD, Fields(id="id"), in_place=True)
    assert ledger_size(home) == size and store_files(home) == files
    assert not list((home.path / "artifacts" / "tmp").iterdir())

    result = cli(
        "dataset",
        "register",
        other,
        "--name",
        "fixed",
        "--version",
        "1",
        "--card",
        card_file,
        "--id-field",
        "id",
        "--home",
        home.path,
        code=2,
    )
    assert "already registered" in result.stderr and "register a new version" in result.stderr
    assert ledger_size(home) == size and store_files(home) == files
    # A new version of the same name is fine.
    ds, created = registry.register([other], DatasetRef("fixed", "2"), CARD, Fields(id="id"))
    assert created and ds.manifest.records == 299


# -- list, show, lineage ---------------------------------------------------------------------------


def test_list_and_show(home, tmp_path: Path, passages: list[str], card_file: Path, shared_data: Path) -> None:
    registry = DatasetRegistry(home)
    a, _ = registry.register(
        [write_format(tmp_path / "a", "jsonl", rows_of(passages))],
        DatasetRef("shake", "1"),
        CARD,
        Fields(id="id"),
        actor="alice",
    )
    b, _ = registry.register(
        [shared_data / "toxicity_jigsaw_sample" / "data.jsonl"],
        DatasetRef("jigsaw", "2026.1"),
        CARD,
        in_place=True,
        actor="bob",
    )
    assert [str(d.ref) for d in registry.all()] == ["shake@1", "jigsaw@2026.1"]
    assert registry.by_digest(a.digest)[0].ref == a.ref
    assert registry.find("missing@1") is None

    listed = json.loads(cli("dataset", "list", "--json", "--home", home.path).stdout)
    assert [d["dataset"] for d in listed] == ["shake@1", "jigsaw@2026.1"]
    assert listed[0]["records"] == 300 and listed[0]["registered_by"] == "alice"
    assert listed[1]["records"] == 154 and listed[1]["in_place"] is True and listed[1]["registered_by"] == "bob"
    assert listed[0]["digest"] == a.digest and listed[1]["digest"] == b.digest
    table = cli("dataset", "list", "--home", home.path).stdout
    assert "shake@1" in table and "jigsaw@2026.1" in table

    shown = json.loads(cli("dataset", "show", "shake@1", "--json", "--home", home.path).stdout)
    assert shown["digest"] == a.digest and shown["ledger_index"] == a.index
    assert shown["card"]["dataset"]["title"] == "Example web text"
    assert shown["card"] == CARD.as_json()
    assert shown["declared_license"] == "CC-BY-4.0"
    assert shown["shards"][0]["records"] == 300 and shown["shards"][0]["format"] == "jsonl"
    text = cli("dataset", "show", "jigsaw@2026.1", "--home", home.path).stdout
    assert b.digest in text and "data.jsonl" in text

    missing = cli("dataset", "show", "nope@1", "--home", home.path, code=2)
    assert "not registered" in missing.stderr


def test_derived_datasets_and_lineage(
    home, tmp_path: Path, passages: list[str], jigsaw: list[dict], shared_data: Path
) -> None:
    registry = DatasetRegistry(home)
    base, _ = registry.register(
        [write_format(tmp_path / "base", "jsonl", rows_of(passages, 400))],
        DatasetRef("shakespeare", "1"),
        CARD,
        Fields(id="id"),
    )
    tox, _ = registry.register(
        [shared_data / "toxicity_jigsaw_sample" / "data.jsonl"],
        DatasetRef("jigsaw", "1"),
        CARD,
        Fields(id="id"),
        in_place=True,
    )
    # Level 1: deduplicate the base (exact text), keeping the first occurrence.
    seen: set[str] = set()
    kept = []
    for _, record in base.records():
        if record.content_hash not in seen:
            seen.add(record.content_hash)
            kept.append({"id": record.id, "text": record.text})
    dedup, created = registry.register_derived(
        DatasetRef("shakespeare-dedup", "1"), [base], "dedup", {"method": "exact", "field": "text"}, kept
    )
    assert created and dedup.manifest.records == len(kept)
    assert dedup.card.dataset.title == "Example web text (dedup)"
    assert dedup.parents == [{"dataset": "shakespeare@1", "digest": base.digest}]
    stage = dedup.body["stage"]
    assert stage["name"] == "dedup"
    assert json.loads(home.store.read_bytes(stage["config_digest"])) == {"field": "text", "method": "exact"}
    # Level 2: a mix of the deduplicated base and the toxicity sample.
    mixed = kept[:100] + [{"id": row["id"], "text": row["text"]} for row in jigsaw]
    mix, _ = registry.register_derived(
        DatasetRef("mix", "1"), [dedup, tox], "mix", {"ratio": [100, 154]}, mixed, decisions_digest="ab" * 32
    )
    assert mix.body["stage"]["decisions_digest"] == "ab" * 32
    assert [r.id for _, r in mix.records()] == [m["id"] for m in mixed]
    # A derived registration with identical output is a no-op too.
    again, created = registry.register_derived(
        DatasetRef("mix", "1"), [dedup, tox], "mix", {"ratio": [100, 154]}, mixed, decisions_digest="ab" * 32
    )
    assert not created and again.index == mix.index

    ancestors, descendants = registry.lineage("mix@1")
    assert descendants == []
    assert [(d, str(x.ref)) for d, x in ancestors] == [
        (1, "shakespeare-dedup@1"),
        (2, "shakespeare@1"),
        (1, "jigsaw@1"),
    ]
    ancestors, descendants = registry.lineage("shakespeare@1")
    assert ancestors == []
    assert [(d, str(x.ref)) for d, x in descendants] == [(1, "shakespeare-dedup@1"), (2, "mix@1")]

    out = json.loads(cli("dataset", "lineage", "shakespeare@1", "--json", "--home", home.path).stdout)
    assert out["ancestors"] == []
    assert [(d["depth"], d["dataset"], d["stage"]) for d in out["descendants"]] == [
        (1, "shakespeare-dedup@1", "dedup"),
        (2, "mix@1", "mix"),
    ]
    out = json.loads(cli("dataset", "lineage", "mix@1", "--json", "--home", home.path).stdout)
    assert [(d["depth"], d["dataset"], d["registered"]) for d in out["ancestors"]] == [
        (1, "shakespeare-dedup@1", True),
        (2, "shakespeare@1", True),
        (1, "jigsaw@1", True),
    ]
    assert out["ancestors"][1]["digest"] == base.digest
    text = cli("dataset", "lineage", "shakespeare-dedup@1", "--home", home.path).stdout
    assert "↑ shakespeare@1" in text and "↓ mix@1" in text
    listed = json.loads(cli("dataset", "list", "--json", "--home", home.path).stdout)
    assert {d["dataset"]: [p["dataset"] for p in d["parents"]] for d in listed}["mix@1"] == [
        "shakespeare-dedup@1",
        "jigsaw@1",
    ]


def test_lineage_shows_an_unregistered_parent(home, tmp_path: Path, passages: list[str]) -> None:
    from dataclasses import replace

    registry = DatasetRegistry(home)
    base, _ = registry.register(
        [write_format(tmp_path / "b", "jsonl", rows_of(passages, 20))], DatasetRef("base", "1"), CARD, Fields(id="id")
    )
    ghost = replace(base, ref=DatasetRef("ghost", "1"))  # never registered in this home
    child, _ = registry.register_derived(
        DatasetRef("child", "1"), [ghost], "copy", {}, [{"id": "1", "text": "Now is the winter of our discontent"}]
    )
    ancestors, _ = registry.lineage(child.ref)
    assert ancestors == [(1, {"dataset": "ghost@1", "digest": base.digest})]
    out = json.loads(cli("dataset", "lineage", "child@1", "--json", "--home", home.path).stdout)
    assert out["ancestors"] == [{"depth": 1, "dataset": "ghost@1", "digest": base.digest, "registered": False}]


# -- streaming: memory does not grow with the input ---------------------------------------------------

_MEASURE = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from custody.datasets.card import CARD_TEMPLATE, parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.registry import DatasetRegistry
    from custody.home import Home

    def status(key):
        with open("/proc/self/status") as lines:
            return next(int(line.split()[1]) for line in lines if line.startswith(key + ":"))

    home = Home.init(Path(sys.argv[1]))
    card = parse_card(CARD_TEMPLATE)
    # ru_maxrss keeps the high-water mark of the image before exec (here: pytest's, forked) and of
    # the imports; reset this process's own mark (clear_refs 5) and read it back as VmHWM.
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        before, peak = status("VmRSS"), lambda: status("VmHWM")
    except OSError:
        before, peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, lambda: (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    ds, _ = DatasetRegistry(home).register([Path(sys.argv[2])], DatasetRef("big", "1"), card)
    print(json.dumps({"before_kib": before, "after_kib": peak(), "records": ds.manifest.records}))
""")


def _generate_jsonl(path: Path, megabytes: int, passages: list[str]) -> int:
    """Streams realistic records (4 to 40 speeches each) until the file reaches `megabytes`."""
    target, written, i = megabytes << 20, 0, 0
    with open(path, "wb") as out:
        while written < target:
            n = 4 + (i * 7) % 37
            text = "\n\n".join(passages[(i + k) % len(passages)] for k in range(n))
            line = json.dumps({"text": f"[{i}] {text}", "source_url": f"https://example.org/{i}"}).encode() + b"\n"
            out.write(line)
            written += len(line)
            i += 1
    return i


def _peak_growth(tmp_path: Path, megabytes: int, passages: list[str]) -> tuple[int, int]:
    data = tmp_path / f"big-{megabytes}.jsonl"
    count = _generate_jsonl(data, megabytes, passages)
    env = {**os.environ, "CUSTODY_ACTOR": "tester"}
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(tmp_path / f"home-{megabytes}"), str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["records"] == count
    data.unlink()
    return report["before_kib"], report["after_kib"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS/VmHWM from Linux /proc")
def test_registration_memory_stays_flat(tmp_path: Path, passages: list[str]) -> None:
    small_before, small_after = _peak_growth(tmp_path, 20, passages)
    large_before, large_after = _peak_growth(tmp_path, 60, passages)
    small_growth, large_growth = small_after - small_before, large_after - large_before
    # Registration buffers a 1 MiB chunk and one record at a time: peak RSS grows by a few MiB,
    # and tripling the input (40 MiB more) must not move it by more than a tenth of that.
    assert small_growth < 16 * 1024, f"registering 20 MiB grew peak RSS by {small_growth} KiB"
    assert large_growth < 16 * 1024, f"registering 60 MiB grew peak RSS by {large_growth} KiB"
    assert large_growth - small_growth < 4 * 1024, (small_growth, large_growth)
