"""Preparation stages of issue 6: normalize-unicode, dedup-exact, dedup-near, quality-filter, and the
classic cleaning steps (off by default for pretraining); their settings; lineage and decisions."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.pipeline.run_stage import run_stage
from custody.stages.base import StageError
from custody.stages.catalog import (
    available_stages,
    build_stage,
    check_pretraining_plan,
    off_by_default,
    pretraining_stages,
    stage_options,
)
from custody.stages.dedup import DedupExact
from custody.stages.near_dedup import DedupNear, shingles
from custody.stages.normalize import NormalizeUnicode
from custody.stages.quality import QualityFilter
from custody.stages.quality_rules import gopher_quality, gopher_repetition

CARD = parse_card(CARD_TEMPLATE)
PROSE = (
    "The history of the town is a long one, and the people who live there have kept many of its old "
    "customs. Every spring the market fills with farmers who bring their vegetables, cheese and bread "
    "from the villages in the hills. Children run between the stalls while their parents talk about "
    "the weather, the price of grain and the news from the capital. In the evening the square grows "
    "quiet again, and only the bells of the church can be heard across the valley."
)


@pytest.fixture(scope="module")
def shakespeare(shared_data: Path) -> str:
    return (shared_data / "corpus_tinyshakespeare" / "input.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def speeches(shakespeare: str) -> list[str]:
    """One record per speech (the corpus separates speeches by a blank line)."""
    return [p.strip() for p in shakespeare.split("\n\n") if p.strip()]


def register(home, tmp_path: Path, name: str, texts: list[str], ids: list[str] | None = None):
    path = tmp_path / f"{name}.jsonl"
    ids = ids or [f"{name}-{i}" for i in range(len(texts))]
    with open(path, "w", encoding="utf-8") as out:
        for rid, text in zip(ids, texts, strict=True):
            out.write(json.dumps({"id": rid, "text": text}) + "\n")
    dataset, _ = DatasetRegistry(home).register([path], DatasetRef(name, "1"), CARD, Fields(id="id"))
    return dataset


def decisions_of(home, dataset) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(home.store.read_bytes(dataset.body["stage"]["decisions_digest"])))


def by_id(rows: pl.DataFrame) -> dict[str, dict]:
    return {row["record_id"]: row for row in rows.iter_rows(named=True)}


def texts_of(dataset) -> dict[str, str]:
    return {record.id: record.text for _, record in dataset.records()}


def mojibake(text: str) -> str:
    """UTF-8 bytes read as Windows-1252: the classic damage ("é" -> "Ã©")."""
    return text.encode("utf-8").decode("cp1252")


# --- normalize-unicode ---------------------------------------------------------------------------


def test_normalize_repairs_mojibake_and_records_the_fixer_config(home, tmp_path, speeches):
    real = [s for s in speeches if "'" in s][:40]
    curly = [s.replace("'", "’") for s in real]  # typographic apostrophes, as published text has them
    broken = [mojibake(t) for t in curly[:10]] + curly[10:]
    assert all("â€™" in t for t in broken[:10])
    constructed = ["Le cafÃ© est prÃ¨s de la gare.", "ﬁne ligatures and “curly quotes” stay"]
    source = register(home, tmp_path, "uni", broken + constructed)
    result = run_stage(home, NormalizeUnicode(home), source, DatasetRef("uni", "2"))

    rows = by_id(decisions_of(home, result.output))
    out = texts_of(result.output)
    for i in range(10):
        assert rows[f"uni-{i}"]["action"] == "modify" and rows[f"uni-{i}"]["reason"] == "unicode:fixed"
        assert out[f"uni-{i}"] == curly[i], "ftfy did not restore the original text exactly"
        fixes = json.loads(rows[f"uni-{i}"]["details"])["fixes"]
        assert fixes[:2] == ["encode:sloppy-windows-1252", "decode:utf-8"]
    for i in range(10, 40):
        assert rows[f"uni-{i}"]["action"] == "keep"  # correct text is left alone, curly quotes included
    assert out["uni-40"] == "Le café est près de la gare." and rows["uni-40"]["action"] == "modify"
    assert rows["uni-41"]["action"] == "keep"  # restyling fixes (uncurl, ligatures) are off by default
    assert result.counts == {"keep": 31, "modify": 11, "drop": 0}

    config = json.loads(home.store.read_bytes(result.output.body["stage"]["config_digest"]))
    fixer = config["text_fixer_config"]
    assert fixer["normalization"] == "NFC" and fixer["uncurl_quotes"] is False and fixer["fix_encoding"] is True


def test_normalize_nfkc_is_a_setting(home):
    stage = build_stage("normalize-unicode", home, {"normalization": "NFKC"})
    assert stage.fix("ﬁne x²")[0] == "fine x2"
    assert build_stage("normalize-unicode", home).fix("ﬁne x²")[0] == "ﬁne x²"


# --- dedup-exact ---------------------------------------------------------------------------------


def test_dedup_exact_keeps_the_first_copy_on_real_speeches(home, tmp_path, speeches):
    extra = ["  " + speeches[5].replace("\n", "\n  ") + "\n", speeches[5].upper()]  # spacing / case variants
    texts = speeches + extra
    source = register(home, tmp_path, "speech", texts)
    result = run_stage(home, DedupExact(home), source, DatasetRef("speech", "2"))
    rows = decisions_of(home, result.output)

    stage = DedupExact(home)
    first: dict[bytes, int] = {}
    for i, text in enumerate(texts):
        first.setdefault(stage.key(text), i)
    expected_drops = {i: first[stage.key(t)] for i, t in enumerate(texts) if first[stage.key(t)] != i}
    assert len(expected_drops) >= 70  # tiny shakespeare repeats short speeches ("GLOUCESTER:", "Nurse:", ...)
    dropped = rows.filter(pl.col("action") == "drop")
    assert dropped.height == len(expected_drops)
    for row in dropped.iter_rows(named=True):
        i = int(row["record_id"].rsplit("-", 1)[1])
        assert json.loads(row["details"]) == {"duplicate_of": f"speech-{expected_drops[i]}"}
        assert row["reason"] == "duplicate:exact"
        assert texts[expected_drops[i]].split() == texts[i].split()
    assert f"speech-{len(speeches)}" in set(dropped["record_id"])  # whitespace variant dropped
    assert f"speech-{len(speeches) + 1}" not in set(dropped["record_id"])  # case differs: kept
    assert len(texts_of(result.output)) == len(texts) - len(expected_drops)

    folded = build_stage("dedup-exact", home, {"casefold": True})
    decisions = list(folded.process(r for _, r in source.records()))
    assert decisions[-1].action == "drop" and json.loads(decisions[-1].details) == {"duplicate_of": "speech-5"}


# --- dedup-near ----------------------------------------------------------------------------------


def windows(shakespeare: str, count: int, size: int = 200) -> list[str]:
    words = shakespeare.split()
    step = len(words) // count
    return [" ".join(words[i * step : i * step + size]) for i in range(count)]


def test_dedup_near_catches_a_lightly_edited_copy_and_nothing_else(home, tmp_path, shakespeare):
    texts = windows(shakespeare, 30)
    words = texts[3].split()
    words[100] = "zebra" if words[100] != "zebra" else "giraffe"
    edited = " ".join(words)
    texts.insert(17, edited)  # after its original, among unrelated passages
    source = register(home, tmp_path, "win", texts)
    result = run_stage(home, DedupNear(home), source, DatasetRef("win", "2"))
    rows = decisions_of(home, result.output)
    dropped = rows.filter(pl.col("action") == "drop")
    assert dropped["record_id"].to_list() == ["win-17"]
    details = json.loads(dropped["details"][0])
    assert details["duplicate_of"] == "win-3" and dropped["reason"][0] == "duplicate:near"
    true_jaccard = len(shingles(texts[3], "word", 5) & shingles(edited, "word", 5)) / len(
        shingles(texts[3], "word", 5) | shingles(edited, "word", 5)
    )
    assert true_jaccard > 0.9
    assert abs(details["jaccard"] - true_jaccard) < 0.1 and details["jaccard"] >= 0.8

    config = json.loads(home.store.read_bytes(result.output.body["stage"]["config_digest"]))
    assert config["threshold"] == 0.8 and config["num_perm"] == 128 and config["seed"] == 1
    assert config["lsh_bands"] * config["lsh_rows"] <= 128

    # A heavy rewrite (every 4th word replaced) is no longer a near-duplicate at 0.8.
    rewritten = [("other" if i % 4 == 0 else w) for i, w in enumerate(texts[3].split())]
    stage = DedupNear(home)
    decisions = list(
        stage.process(r for _, r in register(home, tmp_path, "rw", [texts[3], " ".join(rewritten)]).records())
    )
    assert [d.action for d in decisions] == ["keep", "keep"]


def test_dedup_near_is_deterministic_and_exact_on_real_speeches(home, tmp_path, speeches):
    texts = [s for s in speeches if len(s.split()) >= 20]
    originals = [i for i, t in enumerate(texts) if len(t.split()) >= 150][::5]
    assert len(originals) >= 25
    for n, i in enumerate(originals):  # lightly edited copies: one word changed, or re-cased and re-spaced
        words = texts[i].split()
        words[len(words) // 2] = "forsooth"
        texts.append(" ".join(words) if n % 2 else texts[i].upper().replace("\n", "  \n"))
    source = register(home, tmp_path, "long", texts)
    first = run_stage(home, build_stage("dedup-near", home), source, DatasetRef("long", "2"))
    second = run_stage(home, build_stage("dedup-near", home), source, DatasetRef("long", "3"))
    a, b = decisions_of(home, first.output), decisions_of(home, second.output)
    columns = ["record_id", "action", "reason", "score", "details"]
    assert a.select(columns).equals(b.select(columns)), "two runs decided differently"
    dropped = {
        row["record_id"]: json.loads(row["details"]) for row in a.iter_rows(named=True) if row["action"] == "drop"
    }
    base = len(texts) - len(originals)
    # exactly the edited copies are dropped, each naming its original; no real speech is merged
    assert {rid: d["duplicate_of"] for rid, d in dropped.items()} == {
        f"long-{base + n}": f"long-{i}" for n, i in enumerate(originals)
    }
    assert all(d["jaccard"] >= 0.8 for d in dropped.values())


def near_records(texts: list[str], prefix: str):
    from custody.datasets.readers import Record, content_hash

    return [Record(i + 1, f"{prefix}{i}", t, content_hash(t)) for i, t in enumerate(texts)]


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a, "word", 5), shingles(b, "word", 5)
    return len(x & y) / len(x | y)


def test_dedup_near_verifies_lsh_candidates(home, speeches):
    """Copies at Jaccard ~0.7 sometimes collide in a band; the estimate must still keep them."""
    texts = []
    for speech in (s for s in speeches if len(s.split()) >= 150):
        words = speech.split()
        texts += [speech, " ".join(f"edit{i}" if i % 30 == 15 else w for i, w in enumerate(words))]
    decisions = list(DedupNear(home).process(near_records(texts, "v")))
    assert all(0.6 < jaccard(texts[i], texts[i + 1]) < 0.78 for i in range(0, len(texts), 2))
    close = [json.loads(d.details) for d in decisions if d.action == "keep" and d.details]
    assert close, "no LSH candidate below the threshold: the test no longer exercises verification"
    assert all(c["jaccard"] < 0.8 and "closest" in c for c in close)
    # A drop needs an estimate at the threshold (128 permutations err by ~0.04, so a few 0.75s pass).
    drops = {d.record.id: json.loads(d.details) for d in decisions if d.action == "drop"}
    assert len(drops) <= len(texts) // 20
    for rid, details in drops.items():
        assert details["jaccard"] >= 0.8 and details["duplicate_of"] == f"v{int(rid[1:]) - 1}"


def test_dedup_near_names_the_earliest_kept_record(home, shakespeare):
    base = windows(shakespeare, 3, 300)[1].split()
    a = " ".join(f"alpha{i}" if i % 50 == 10 else w for i, w in enumerate(base))
    c = " ".join(f"omega{i}" if i % 50 == 35 else w for i, w in enumerate(base))
    b = " ".join(base)
    assert jaccard(a, b) > 0.8 and jaccard(c, b) > 0.8 and jaccard(a, c) < 0.7
    stage = build_stage("dedup-near", home, {"threshold": 0.75, "num_perm": 512})
    first, second, third = stage.process(near_records([a, c, b], "e"))
    assert (first.action, second.action, third.action) == ("keep", "keep", "drop")
    assert json.loads(third.details)["duplicate_of"] == "e0"  # both kept ones qualify; the first wins


def test_dedup_near_char_shingles(home):
    stage = build_stage("dedup-near", home, {"shingle": "char", "ngram": 7, "threshold": 0.7, "num_perm": 256})
    assert stage.config()["shingle"] == "char" and stage.config()["num_perm"] == 256
    from custody.datasets.readers import Record, content_hash

    texts = [PROSE, PROSE.replace("vegetables", "vegetabels"), "Something else entirely, about boats and rivers."]
    decisions = list(stage.process(Record(i + 1, f"c{i}", t, content_hash(t)) for i, t in enumerate(texts)))
    assert [d.action for d in decisions] == ["keep", "drop", "keep"]


# --- quality-filter ------------------------------------------------------------------------------


def test_quality_filter_rules_on_constructed_documents(home, tmp_path, shakespeare):
    spam = PROSE + "\n" + "\n".join(["Buy cheap watches now at the best price!"] * 15)
    hashtags = PROSE + "\n" + " ".join(f"#{w.strip('.,').lower()}" for w in PROSE.split()[:30])
    short = "The quick brown foxes jumped over the sleeping dogs."
    code = "\n".join(f"x{i} = [{i}, {i + 1}] ; y{i} = x{i} * 2 ; z = {{}} ; # {i}" for i in range(20))
    ellipses = "\n".join(f"{line} ..." for line in PROSE.split(". "))
    texts = [PROSE, spam, hashtags, short, code, ellipses, windows(shakespeare, 5, 400)[2]]
    source = register(home, tmp_path, "q", texts)
    result = run_stage(home, QualityFilter(home), source, DatasetRef("q", "2"))
    rows = by_id(decisions_of(home, result.output))

    assert rows["q-0"]["action"] == "keep"
    assert rows["q-1"]["reason"] == "gopher:max_dup_line_fraction"
    assert rows["q-1"]["score"] == pytest.approx(14 / 16)  # 14 repeats among 16 lines
    assert rows["q-2"]["reason"] == "gopher:max_hash_ratio" and rows["q-2"]["score"] > 0.1
    assert rows["q-3"]["reason"] == "gopher:min_words" and rows["q-3"]["score"] == 9
    assert rows["q-4"]["action"] == "drop"
    assert rows["q-5"]["reason"] == "gopher:max_ellipsis_line_fraction" and rows["q-5"]["score"] == 1.0
    assert rows["q-6"]["action"] == "keep"  # 400 words of real Shakespeare
    for row in rows.values():
        details = json.loads(row["details"])
        assert {"words", "dup_line_fraction", "top_2gram_char_fraction", "stop_words"} <= set(details)
        if row["action"] == "drop":
            assert details["rule"] == row["reason"] and details["limit"] is not None
    assert result.summary["reasons"]["gopher:min_words"] == 1

    records = {r.id: r for _, r in source.records()}
    relaxed = build_stage("quality-filter", home, {"min_words": 5, "min_stop_words": 1})
    assert next(relaxed.process([records["q-3"]])).action == "keep"
    skipping = build_stage("quality-filter", home, {"skip_rules": ["gopher:max_dup_line_fraction"]})
    assert next(skipping.process([records["q-1"]])).reason == "gopher:max_dup_line_char_fraction"


def test_quality_filter_on_real_dialogue_is_consistent(home, tmp_path, speeches):
    chunks = ["\n\n".join(speeches[i : i + 20]) for i in range(0, len(speeches), 20)]
    source = register(home, tmp_path, "scenes", chunks)
    stage = QualityFilter(home)
    result = run_stage(home, stage, source, DatasetRef("scenes", "2"))
    rows = decisions_of(home, result.output)
    assert rows.height == len(chunks)
    assert result.counts["keep"] >= 0.9 * len(chunks)
    limits = {rule["id"]: rule["limit"] for rule in stage.config()["rules"]}
    for row in rows.iter_rows(named=True):
        i = int(row["record_id"].rsplit("-", 1)[1])
        metrics = {
            **gopher_repetition(chunks[i], [2, 3, 4], list(range(5, 11))),
            **gopher_quality(chunks[i], stage.stop_words),
        }
        if row["action"] == "drop":
            rule = row["reason"]
            metric = next(r.metric for r in stage.rules if r.id == rule)
            assert row["score"] == pytest.approx(metrics[metric])
            assert (metrics[metric] < limits[rule]) if ":min_" in rule else (metrics[metric] > limits[rule])
        else:
            for r in stage.rules:
                assert not r.fails(metrics[r.metric], r.limit), (row["record_id"], r.id)


def test_c4_rules_modify_lines_and_drop_pages(home):
    from custody.datasets.readers import Record, content_hash

    page = "\n".join(
        [
            PROSE,
            "Please enable Javascript in your browser to see this page.",
            "By using this site you agree to our terms of use and privacy policy.",
            "Home | About | Contact",
            "This line has a citation at its end, as Wikipedia does.[1]",
        ]
    )
    lorem = PROSE + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor."
    stage = build_stage("quality-filter", home, {"c4": True})
    records = [Record(i + 1, f"p{i}", t, content_hash(t)) for i, t in enumerate([page, lorem, PROSE + " {x}"])]
    cleaned, lorem_d, curly = list(stage.process(records))
    assert cleaned.action == "modify" and cleaned.reason == "c4:lines_removed"
    details = json.loads(cleaned.details)
    assert details["c4_lines_removed"] == {"javascript": 1, "no_terminal_punctuation": 1, "policy": 1}
    assert details["c4_citations_removed"] == 1
    assert "Javascript" not in cleaned.text and "[1]" not in cleaned.text and PROSE in cleaned.text
    assert lorem_d.action == "drop" and lorem_d.reason == "c4:lorem_ipsum"
    assert curly.action == "drop" and curly.reason == "c4:curly_bracket"
    assert next(iter(QualityFilter(home).process(records[:1]))).action == "keep"  # C4 is off by default


# --- classic cleaning steps ----------------------------------------------------------------------


def test_classic_stages_work_when_asked_for(home, tmp_path, speeches):
    texts = [
        "The Cat sat on the Mat. It was NOT happy.",
        "Teh speling of thsi sentense is bad, but Haskell is a name.",
        "all lower case already and no stop",
    ]
    source = register(home, tmp_path, "classic", texts)
    lowered = run_stage(home, build_stage("lowercase", home), source, DatasetRef("classic", "2"))
    out = texts_of(lowered.output)
    assert out["classic-0"] == "the cat sat on the mat. it was not happy."
    assert lowered.counts == {"keep": 1, "modify": 2, "drop": 0}

    stop = run_stage(home, build_stage("remove-stopwords", home), source, DatasetRef("classic", "3"))
    out = texts_of(stop.output)
    assert out["classic-0"] == "Cat sat Mat. happy."  # "not" is gone: the meaning flipped
    row = by_id(decisions_of(home, stop.output))["classic-0"]
    assert row["reason"] == "stopwords:removed" and json.loads(row["details"]) == {"removed": 6}

    spell = run_stage(home, build_stage("spell-correct", home), source, DatasetRef("classic", "4"))
    out = texts_of(spell.output)
    assert "spelling" in out["classic-1"] and "sentence" in out["classic-1"] and "this" in out["classic-1"]
    assert "Haskell" in out["classic-1"] and out["classic-1"].startswith("Teh")  # capitalized words untouched
    row = by_id(decisions_of(home, spell.output))["classic-1"]
    assert json.loads(row["details"]) == {"words": 12, "corrected": 3}  # counts only, never words

    limited = build_stage("spell-correct", home, {"max_words_per_record": 5})
    decision = next(iter(limited.process(r for _, r in source.records() if r.id == "classic-1")))
    assert decision.action == "keep" and decision.reason == "spell:skipped_too_long"


# --- catalog and settings ------------------------------------------------------------------------


def test_stage_settings_are_validated_by_name(home):
    with pytest.raises(StageError, match=r"stage dedup-near: option 'treshold': unknown option \(known: .*threshold"):
        build_stage("dedup-near", home, {"treshold": 0.9})
    with pytest.raises(StageError, match=r"stage dedup-near: option 'threshold': .*valid number.*str"):
        build_stage("dedup-near", home, {"threshold": "0.9"})
    with pytest.raises(StageError, match=r"stage dedup-near: option 'num_perm': .*integer"):
        build_stage("dedup-near", home, {"num_perm": 128.0})
    with pytest.raises(StageError, match=r"stage dedup-near: option 'threshold' must be in \(0, 1\]"):
        build_stage("dedup-near", home, {"threshold": 1.5})
    with pytest.raises(StageError, match=r"stage dedup-exact: option 'casefold': .*boolean"):
        build_stage("dedup-exact", home, {"casefold": 1})
    with pytest.raises(StageError, match=r"stage normalize-unicode: option 'normalization'"):
        build_stage("normalize-unicode", home, {"normalization": "NFX"})
    with pytest.raises(StageError, match=r"stage quality-filter: option 'skip_rules': unknown rule 'gopher:nope'"):
        build_stage("quality-filter", home, {"skip_rules": ["gopher:nope"]})
    with pytest.raises(StageError, match=r"stage quality-filter: option 'max_top_ngram_char_fraction'"):
        build_stage("quality-filter", home, {"max_top_ngram_char_fraction": {"two": 0.2}})
    with pytest.raises(StageError, match=r"stage drop-toxic: option 'threshold': unknown option \(known: none"):
        build_stage("drop-toxic", home, {"threshold": 0.3})
    with pytest.raises(StageError, match="unknown stage 'shred'"):
        build_stage("shred", home)
    assert build_stage("drop-toxic", home).name == "drop-toxic"  # stages without settings build as before
    near = build_stage("dedup-near", home, {"threshold": 0.9, "ngram": 3})
    assert near.config()["threshold"] == 0.9 and near.config()["ngram"] == 3
    assert stage_options("dedup-near") == {"threshold": 0.8, "num_perm": 128, "seed": 1, "shingle": "word", "ngram": 5}


def test_catalog_separates_pretraining_defaults_from_classic_steps():
    defaults = pretraining_stages()
    assert defaults[:4] == ["normalize-unicode", "quality-filter", "dedup-exact", "dedup-near"]
    assert {"redact-pii", "drop-toxic"} <= set(defaults)
    off = off_by_default()
    assert set(off) == {"lowercase", "remove-stopwords", "spell-correct"}
    assert all("off by default for language-model pretraining" in why for why in off.values())
    assert set(defaults) | set(off) == set(available_stages())
    check_pretraining_plan(["normalize-unicode", "dedup-exact", "quality-filter"])
    with pytest.raises(StageError, match="stage lowercase is off by default for language-model pretraining"):
        check_pretraining_plan(["normalize-unicode", "lowercase"])
    check_pretraining_plan(["lowercase"], allow=["lowercase"])
    with pytest.raises(StageError, match="unknown stage"):
        check_pretraining_plan(["dedup"])


# --- end to end through the CLI ------------------------------------------------------------------


def test_prepare_cli_runs_the_four_stages_with_lineage_and_decisions(home, engineer_key, tmp_path, speeches):
    docs = ["\n\n".join(speeches[i : i + 6]) for i in range(0, 600, 6)]
    base = len(docs)
    near = docs[10].split(" ")
    near[20] = "zounds"
    docs += [
        docs[7],  # exact copy
        " ".join(near),  # near copy: one word changed
        mojibake("Le café près de la gare est fermé. " * 3),  # broken Unicode
        "Too short to keep.",  # fails Gopher's minimum word count
    ]
    ids = [f"doc-{i}" for i in range(len(docs))]
    register(home, tmp_path, "plays", docs, ids)
    runner = CliRunner()
    args = ["--home", str(home.path)]
    stages = "normalize-unicode,dedup-exact,dedup-near,quality-filter"
    result = runner.invoke(app, ["prepare", "plays@1", "--stages", stages, "--output", "plays@2", "--json", *args])
    assert result.exit_code == 0, result.output
    summaries = json.loads(result.stdout)
    assert [s["stage"] for s in summaries] == stages.split(",")

    lineage = runner.invoke(app, ["dataset", "lineage", "plays@2", "--json", *args])
    assert lineage.exit_code == 0, lineage.output
    ancestors = json.loads(lineage.stdout)["ancestors"]
    assert [(a["dataset"], a["stage"]) for a in ancestors] == [
        ("plays@2+3-dedup-near", "dedup-near"),
        ("plays@2+2-dedup-exact", "dedup-exact"),
        ("plays@2+1-normalize-unicode", "normalize-unicode"),
        ("plays@1", None),
    ]

    registry = DatasetRegistry(home)
    steps = ["plays@2+1-normalize-unicode", "plays@2+2-dedup-exact", "plays@2+3-dedup-near", "plays@2"]
    rows = {}
    for ref in steps:
        name, _, version = ref.partition("@")
        rows[ref] = by_id(decisions_of(home, registry.get(DatasetRef(name, version))))
    assert rows[steps[0]][f"doc-{base + 2}"]["action"] == "modify"
    assert rows[steps[1]][f"doc-{base}"]["action"] == "drop"
    assert json.loads(rows[steps[1]][f"doc-{base}"]["details"]) == {"duplicate_of": "doc-7"}
    assert json.loads(rows[steps[2]][f"doc-{base + 1}"]["details"])["duplicate_of"] == "doc-10"
    assert rows[steps[3]][f"doc-{base + 3}"]["reason"] == "gopher:min_words"
    # each stage decides about exactly the records its input had
    assert len(rows[steps[0]]) == len(docs) and len(rows[steps[1]]) == len(docs)
    assert len(rows[steps[2]]) == len(docs) - 1 and len(rows[steps[3]]) == len(docs) - 2

    # decisions hold ids, rule names and numbers: never a record's text
    def strings(value) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return []

    for table in rows.values():
        for row in table.values():
            for text in strings(json.loads(row["details"]) if row["details"] else None):
                assert text in ids or text.startswith(("gopher:", "c4:", "encode:", "decode:", "normalize:")), text

    entries = [json.loads(r.entry) for r in home.storage.iter_entries()]
    completed = [e["body"] for e in entries if e["type"] == "stage.completed/v2"]
    assert [c["stage"] for c in completed] == stages.split(",")
    assert Counter(c["dropped"] for c in completed)[0] == 1  # only normalize-unicode drops nothing
