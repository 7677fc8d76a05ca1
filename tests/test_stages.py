"""Preparation stages: redact-pii and drop-toxic produce derived datasets with lineage and decisions."""

from __future__ import annotations

import io
import json
import os
import re
import stat
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields, Record
from custody.datasets.registry import DatasetRegistry
from custody.pii.engine import PiiSpan
from custody.pipeline.run_stage import run_stage
from custody.stages.base import StageError
from custody.stages.redact import RedactPii
from custody.stages.toxic import DropToxic

CARD = parse_card(CARD_TEMPLATE)


@pytest.fixture(scope="module")
def pii_docs(shared_data: Path) -> list[dict]:
    lines = (shared_data / "pii_presidio_synth" / "data.jsonl").read_text(encoding="utf-8").splitlines()
    docs = [json.loads(line) for line in lines if line.strip()]
    with_email = [d for d in docs if any(s["entity_type"] == "EMAIL_ADDRESS" for s in d["spans"])][:15]
    others = [d for d in docs if d not in with_email][:25]
    return with_email + others


@pytest.fixture(scope="module")
def jigsaw(shared_data: Path) -> list[dict]:
    lines = (shared_data / "toxicity_jigsaw_sample" / "data.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def register(home, tmp_path: Path, rows: list[dict], name: str):
    path = tmp_path / f"{name}.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for i, row in enumerate(rows):
            out.write(json.dumps({"id": f"{name}-{i}", "text": row["text"]}) + "\n")
    dataset, _ = DatasetRegistry(home).register([path], DatasetRef(name, "1"), CARD, Fields(id="id"))
    return dataset


def decisions(home, result) -> pl.DataFrame:
    digest = result.output.body["stage"]["decisions_digest"]
    return pl.read_parquet(io.BytesIO(home.store.read_bytes(digest)))


def test_redact_pii_replaces_values_and_records_lineage(home, tmp_path, pii_docs):
    source = register(home, tmp_path, pii_docs, "synth")
    result = run_stage(home, RedactPii(home), source, DatasetRef("synth", "2"))
    output = result.output
    assert output.parents == [{"dataset": "synth@1", "digest": source.digest}]
    assert output.body["stage"]["name"] == "redact-pii"
    config = json.loads(home.store.read_bytes(output.body["stage"]["config_digest"]))
    assert config["stage"] == "redact-pii" and config["operators"]["EMAIL_ADDRESS"] == "hash"

    texts = [record.text for _, record in output.records()]
    assert len(texts) == len(pii_docs)
    emails = [s["value"] for d in pii_docs for s in d["spans"] if s["entity_type"] == "EMAIL_ADDRESS"]
    assert emails
    assert not [e for e in emails if any(e in t for t in texts)], "an email address survived redaction"

    rows = decisions(home, result)
    assert rows.height == len(pii_docs)
    modified = rows.filter(pl.col("action") == "modify")
    assert modified.height >= 15
    for details in modified["details"]:
        for span in json.loads(details):
            assert set(span) == {"type", "start", "end", "score", "operator"}
    raw = home.store.read_bytes(output.body["stage"]["decisions_digest"])
    assert not [e for e in emails if e.encode() in raw]

    # The rescan runs the same scanner over the output: every span it found is now a tag or stars,
    # and the stage's own tags are not PII, so it finds nothing at all.
    assert result.summary["residual_pii"] == {
        "records": 40,
        "records_with_pii": 0,
        "rate": 0.0,
        "records_per_entity": {},
    }
    # That is the scanner's view, not the labels': every labelled card number is gone (as every
    # email address), but labelled values the scanner never found, such as street addresses, which
    # it does not look for, or names its NER model does not read as names, are still there.
    survived = {
        span["entity_type"]
        for doc, text in zip(pii_docs, texts, strict=True)
        for span in doc["spans"]
        if span["value"] in text
    }
    assert survived and not survived & {"EMAIL_ADDRESS", "CREDIT_CARD"}, survived

    entry = json.loads(home.ledger.entry(result.entry_index).entry)
    assert entry["type"] == "stage.completed/v2"  # v1 and the stage's measured emissions
    assert entry["body"]["modified"] == modified.height
    assert entry["body"]["output_digest"] == output.digest
    ledger_bytes = b"".join(r.entry for r in home.storage.iter_entries())
    assert not [e for e in emails if e.encode() in ledger_bytes]


def test_redact_pii_takes_the_opt_in_recall_entities(home, tmp_path, pii_docs):
    """With STREET_ADDRESS and PERSON_NAME asked for, street addresses the default leaves (see
    above) are redacted too; the entities are part of the stage's recorded config."""
    from custody.pii.engine import DEFAULT_ENTITIES
    from custody.pii.recall import RECALL_ENTITIES
    from custody.stages.catalog import STAGES

    with_address = [d for d in pii_docs if any(s["entity_type"] == "STREET_ADDRESS" for s in d["spans"])]
    source = register(home, tmp_path, with_address, "addresses")
    entities = list(DEFAULT_ENTITIES + RECALL_ENTITIES)
    stage = STAGES.build("redact-pii", home, options={"entities": entities})
    result = run_stage(home, stage, source, DatasetRef("addresses", "2"))
    config = json.loads(home.store.read_bytes(result.output.body["stage"]["config_digest"]))
    assert config["scanner"]["entities"] == entities
    texts = [record.text for _, record in result.output.records()]
    addresses = [s["value"] for d in with_address for s in d["spans"] if s["entity_type"] == "STREET_ADDRESS"]
    kept = [a for a in addresses if any(a in t for t in texts)]
    assert len(addresses) >= 3 and len(kept) < len(addresses) / 2, kept
    assert any("<STREET_ADDRESS>" in t for t in texts)

    with pytest.raises(StageError, match="no recognizer for entities"):
        STAGES.build("redact-pii", home, options={"entities": ["SHOE_SIZE"]})


def test_redaction_salt_stays_in_the_home(home, tmp_path, pii_docs):
    source = register(home, tmp_path, pii_docs[:5], "salted")
    run_stage(home, RedactPii(home), source, DatasetRef("salted", "2"))
    salt_path = Path(home.path) / "keys" / "redaction.salt"
    assert stat.S_IMODE(os.stat(salt_path).st_mode) == 0o600
    salt = salt_path.read_bytes()
    ledger_bytes = b"".join(r.entry for r in home.storage.iter_entries())
    assert salt not in ledger_bytes and salt.hex().encode() not in ledger_bytes


def test_unknown_redaction_operator_is_refused(home):
    with pytest.raises(ValueError, match="operator for PERSON"):
        RedactPii(home, operators={"PERSON": "shred"})


def test_drop_toxic_writes_exclusion_records(home, tmp_path, jigsaw):
    from profanity_check import predict_prob

    source = register(home, tmp_path, jigsaw, "comments")
    result = run_stage(home, DropToxic(home), source, DatasetRef("comments", "2"))
    rows = decisions(home, result)
    dropped = rows.filter(pl.col("action") == "drop")
    # The sample's labels: 15 of its 154 comments are toxic. profanity-check scores 12 of them at or
    # above the 0.5 threshold, the three below are these, and none of the 139 others reaches it.
    toxic = {i for i, comment in enumerate(jigsaw) if comment["toxic"]}
    below = {7: 0.4842, 71: 0.2897, 143: 0.3651}
    assert (len(jigsaw), len(toxic)) == (154, 15) and set(below) <= toxic
    scores = predict_prob([comment["text"] for comment in jigsaw])  # the scorer itself, not the stage
    assert {i for i, p in enumerate(scores) if p >= 0.5} == toxic - set(below)
    assert {i: round(float(scores[i]), 4) for i in below} == below
    assert sorted(dropped["record_id"]) == sorted(f"comments-{i}" for i in toxic - set(below))
    assert dropped.height == 12
    assert result.counts["drop"] == dropped.height
    assert result.counts["keep"] == len(jigsaw) - dropped.height
    assert (dropped["score"] >= 0.5).all()
    assert all(reason.startswith("toxicity:") for reason in dropped["reason"])
    kept_ids = {record.id for _, record in result.output.records()}
    assert kept_ids.isdisjoint(set(dropped["record_id"]))
    assert "profanity-check" in result.summary["scorer"]
    # the exclusion records carry scores, not the dropped text
    raw = home.store.read_bytes(result.output.body["stage"]["decisions_digest"])
    dropped_texts = [jigsaw[int(rid.rsplit("-", 1)[1])]["text"] for rid in dropped["record_id"]]
    assert not [t for t in dropped_texts if len(t) > 20 and t.encode() in raw]


def test_existing_output_name_is_refused(home, tmp_path, jigsaw):
    source = register(home, tmp_path, jigsaw[:10], "small")
    with pytest.raises(StageError, match="already registered"):
        run_stage(home, DropToxic(home), source, DatasetRef("small", "1"))


def test_prepare_cli_chains_stages_with_lineage(home, engineer_key, tmp_path, pii_docs, jigsaw):
    register(home, tmp_path, pii_docs[:10] + jigsaw[:20], "mixed")
    runner = CliRunner()
    args = ["--home", str(home.path)]
    result = runner.invoke(
        app, ["prepare", "mixed@1", "--stages", "redact-pii,drop-toxic", "--output", "mixed@2", *args]
    )
    assert result.exit_code == 0, result.output
    lineage = runner.invoke(app, ["dataset", "lineage", "mixed@2", "--json", *args])
    ancestors = json.loads(lineage.stdout)["ancestors"]
    assert [a["dataset"] for a in ancestors] == ["mixed@2+1-redact-pii", "mixed@1"]

    again = runner.invoke(app, ["prepare", "mixed@1", "--stages", "drop-toxic", "--output", "mixed@2", *args])
    assert again.exit_code == 2
    unknown = runner.invoke(app, ["prepare", "mixed@1", "--stages", "shred", "--output", "mixed@3", *args])
    assert unknown.exit_code == 2 and "unknown stage" in unknown.output


def test_prepare_names_its_output_by_default_and_still_takes_the_old_spelling(home, engineer_key, tmp_path, jigsaw):
    """A gate remedy prints `custody prepare X@1 --stages drop-toxic`: it must run as printed."""
    register(home, tmp_path, jigsaw[:20], "plain")
    runner = CliRunner()
    args = ["--home", str(home.path)]
    first = runner.invoke(app, ["prepare", "plain@1", "--stages", "drop-toxic", *args])
    assert first.exit_code == 0, first.output
    assert "drop-toxic: plain@2 " in first.stdout  # the next version, as a person would name it
    old = runner.invoke(app, ["prepare", "plain@1", "--stages", "drop-toxic", "--as", "plain@7", *args])
    assert old.exit_code == 0, old.output
    assert "use --output plain@7" in old.stderr and "drop-toxic: plain@7 " in old.stdout
    third = runner.invoke(app, ["prepare", "plain@1", "--stages", "drop-toxic", *args])
    assert "drop-toxic: plain@8 " in third.stdout


def test_operators_per_entity_come_from_the_home(home):
    (Path(home.path) / "redaction.toml").write_text('[operators]\nPERSON = "hash"\nDEFAULT = "mask"\n')
    stage = RedactPii(home)
    assert stage.operators["PERSON"] == "hash" and stage.operators["DEFAULT"] == "mask"
    assert stage.operators["EMAIL_ADDRESS"] == "hash"  # untouched defaults stay
    (Path(home.path) / "redaction.toml").write_text('[operators]\nPERSON = "burn"\n')
    with pytest.raises(ValueError, match="operator for PERSON"):
        RedactPii(home)
    (Path(home.path) / "redaction.toml").write_text('[operatorz]\nPERSON = "hash"\n')
    with pytest.raises(ValueError, match="unknown key 'operatorz'"):
        RedactPii(home)


def test_prepare_cli_passes_stage_options_and_refuses_bad_ones(home, engineer_key, tmp_path, jigsaw):
    register(home, tmp_path, jigsaw[:30], "opts")
    runner = CliRunner()
    args = ["--home", str(home.path)]
    size = home.ledger.size
    for bad, message in [
        (["--option", "dedup-near.treshold=0.9"], "option 'treshold': unknown option"),
        (["--option", "dedup-near.threshold=high"], "threshold"),
        (["--option", "nonsense"], "expected STAGE.KEY=VALUE"),
        (["--option", "dedup-exact.casefold=true"], "not in the chain"),
    ]:
        refused = runner.invoke(app, ["prepare", "opts@1", "--stages", "dedup-near", "--output", "opts@2", *bad, *args])
        assert refused.exit_code == 2 and message in refused.output, refused.output
    assert home.ledger.size == size, "a refused chain records nothing"

    ok = runner.invoke(
        app,
        [
            "prepare",
            "opts@1",
            "--stages",
            "dedup-near",
            "--as",
            "opts@2",
            "--option",
            "dedup-near.threshold=0.95",
            *args,
        ],
    )
    assert ok.exit_code == 0, ok.output
    derived = DatasetRegistry(home).get(DatasetRef("opts", "2"))
    config = json.loads(home.store.read_bytes(derived.body["stage"]["config_digest"]))
    assert config["threshold"] == 0.95


def test_a_pseudonym_that_reads_like_a_name_is_not_residual_pii(home, tmp_path):
    """With this salt, spaCy reads the pseudonym `jhcdiehlcbmofhgl` as a PERSON: a tag the stage
    wrote itself must not count as PII left behind (CI found it with a random salt)."""
    salt = bytes.fromhex("62748a10bf6136594aa9a27724af9bed9a4521ce6aca9f777dac956a26fb973d")
    (home.path / "keys" / "redaction.salt").write_bytes(salt)
    rows = [{"id": f"r{i}", "text": f"Mail maria.gutierrez{i % 3}@example.com about the invoice."} for i in range(6)]
    source = register(home, tmp_path, rows, "mails")
    result = run_stage(home, RedactPii(home), source, DatasetRef("mails", "2"))
    assert "<EMAIL_ADDRESS:jhcdiehlcbmofhgl>" in {r.text.split(" ")[1] for _, r in result.output.records()}
    assert result.summary["residual_pii"]["rate"] == 0


class TagReadingScanner:
    """A stand-in for the PII scanner: it finds email addresses and the name Maria, and it reads
    what redaction writes as PII too (a pseudonym's letters as a PERSON, a tag's name as an
    ORGANIZATION), as a NER model may. Nothing about it depends on a model or a salt."""

    FINDS = (
        ("EMAIL_ADDRESS", r"[\w.]+@[\w.]+\w"),
        ("PERSON", r"\bMaria\b|\b[a-p]{16}\b"),
        ("ORGANIZATION", r"\b[A-Z][A-Z_]+\b"),
    )

    def __init__(self, config) -> None:
        self.config = config

    def scan_batch(self, texts: list[str]) -> list[list[PiiSpan]]:
        return [
            [
                PiiSpan(entity, m.start(), m.end(), 0.9)
                for entity, pattern in self.FINDS
                for m in re.finditer(pattern, t)
            ]
            for t in texts
        ]


def test_the_stages_own_tags_never_count_as_residual_pii(home, tmp_path):
    """Whatever the scanner makes of `<PERSON>` and `<EMAIL_ADDRESS:pseudonym>`, the residual rate
    counts only what lies outside the tags the stage wrote; PII beside a tag still counts."""
    stage = RedactPii(home, operators={"PERSON": "replace"})
    stage.scanner = TagReadingScanner(stage.scanner.config)
    rows = [{"text": f"Maria wrote to maria{i}@example.com today."} for i in range(4)]
    result = run_stage(home, stage, register(home, tmp_path, rows, "tags"), DatasetRef("tags", "2"))
    texts = [record.text for _, record in result.output.records()]
    assert all(re.fullmatch(r"<PERSON> wrote to <EMAIL_ADDRESS:[a-p]{16}> today\.", t) for t in texts), texts
    # Counted, every record would hold a PERSON and an ORGANIZATION: rate 1.0.
    assert result.summary["residual_pii"] == {
        "records": 4,
        "records_with_pii": 0,
        "rate": 0.0,
        "records_per_entity": {},
    }

    def output(*lines: str):
        records = [Record(n, f"r{n}", text, "-") for n, text in enumerate(lines, 1)]
        return SimpleNamespace(records=lambda: ((None, record) for record in records))

    mixed = output(
        "<PERSON> wrote to <EMAIL_ADDRESS:abcdefghijklmnop>.",
        "Maria wrote to <EMAIL_ADDRESS:abcdefghijklmnop>.",  # a name left beside a tag
        "<PERSON>",
    )
    assert stage.summarize(mixed)["residual_pii"] == {
        "records": 3,
        "records_with_pii": 1,
        "rate": 0.333333,
        "records_per_entity": {"PERSON": 1},
    }


def test_hash_pseudonyms_are_stable_letters_that_rescan_clean(home, tmp_path):
    """A hex digest's digit runs can pass the Luhn check and come back as CREDIT_CARD; pseudonyms
    are letters only, equal for equal values, and leave nothing for the residual scan."""
    rows = [{"id": f"r{i}", "text": f"Mail maria.gutierrez{i % 3}@example.com about the invoice."} for i in range(40)]
    source = register(home, tmp_path, rows, "mails")
    result = run_stage(home, RedactPii(home), source, DatasetRef("mails", "2"))
    texts = [record.text for _, record in result.output.records()]
    pseudonyms = [re.search(r"<EMAIL_ADDRESS:([a-z]+)>", t).group(1) for t in texts]
    assert all(re.fullmatch(r"[a-p]{16}", p) for p in pseudonyms)
    assert len(set(pseudonyms)) == 3, "equal addresses join, different ones do not"
    assert result.summary["residual_pii"]["rate"] == 0
