"""Opt-outs end to end: snapshots kept at registration, the provenance check's findings, registry
imports and what they affect, signatures and roles, and the gate's rule `provenance.reserved`.

A crawl of three sites (speeches of Tiny Shakespeare as page text): news.example publishes a
robots.txt that keeps AI crawlers out and a tdmrep.json; blog.example pages carry their own
response headers and HTML meta; writers.example is on an opt-out registry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from custody.checks.provenance import ProvenanceCheck
from custody.cli.main import app
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import DatasetInputError, Fields, content_hash
from custody.datasets.registry import DatasetRegistry
from custody.ledger import query
from custody.optout.lists import OptOutFileError, parse
from custody.optout.registry import RegistryError, current, import_file
from custody.pipeline.run_check import run_check
from custody.policy.bindings import bind
from custody.policy.gate import run_gate
from custody.policy.schema import load_policy
from train_support import speeches

CARD = parse_card(CARD_TEMPLATE)
ROBOTS = "User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
TDMREP = json.dumps([{"location": "/free/", "tdm-reservation": 0}, {"location": "/", "tdm-reservation": 1}])
TEXTS = speeches(12)
LISTED_TEXT = TEXTS[9]
RECORDS = [
    {"url": "https://news.example/2025/a.html"},  # robots.txt (GPTBot, CCBot) and tdmrep.json
    {"url": "https://news.example/free/b.html"},  # robots.txt only: tdmrep.json says 0 under /free/
    {"url": "https://blog.example/c", "headers": {"Content-Usage": "train-ai=n"}},
    {"url": "https://blog.example/d", "html_meta": {"tdm-reservation": "1"}},
    {"url": "https://blog.example/e", "headers": "Content-Signal: search=yes, ai-train=no"},
    {"url": "https://blog.example/f", "headers": {"Content-Usage": "train-ai=y"}},
    {"url": "https://writers.example/g", "author": "Ada Byron"},
    {"url": "https://blog.example/h", "author": ["  ada   BYRON "]},
    {"url": "https://blog.example/i"},
    {"url": "https://blog.example/j"},  # its text is listed by hash
    {"url": "https://blog.example/k", "headers": 42},  # a field custody cannot read
    {},  # no source URL at all
]
OPT_OUTS = """kind,value,source,date
domain,writers.example,Spawning Do Not Train,2025-03-01
author,Ada Byron,letter of 2025-02-11,2025-02-11
record-hash,{hash},takedown desk,2025-04-02
url-prefix,https://elsewhere.example/private/,site owner's form,2025-01-20
"""


def write_crawl(folder: Path, robots: str = ROBOTS) -> Path:
    rows = []
    for i, (text, extra) in enumerate(zip(TEXTS, RECORDS, strict=True)):
        row = {"id": f"page-{i:02d}", "text": text}
        if "url" in extra:
            row["source_url"] = extra["url"]
        row.update({k: v for k, v in extra.items() if k != "url"})
        rows.append(row)
    (folder / "reservations" / "news.example").mkdir(parents=True, exist_ok=True)
    (folder / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "reservations" / "news.example" / "robots.txt").write_text(robots, encoding="utf-8")
    (folder / "reservations" / "news.example" / "tdmrep.json").write_text(TDMREP, encoding="utf-8")
    return folder


def opt_out_file(folder: Path, text: str = OPT_OUTS, name: str = "optouts.csv") -> Path:
    path = folder / name
    path.write_text(text.replace("{hash}", content_hash(LISTED_TEXT)), encoding="utf-8")
    return path


@pytest.fixture
def crawl(tmp_path, cast):
    """A fresh home with people and the crawl registered as web@1 (by alice, an engineer)."""
    home = cast.init_home(tmp_path / "home")
    cast.enroll(home, "alice", "engineer")
    cast.enroll(home, "bob", "reviewer", "approver")
    folder = write_crawl(tmp_path / "web")
    dataset, _ = DatasetRegistry(home).register([folder], DatasetRef("web", "1"), CARD, Fields(id="id"))
    yield home, dataset
    home.close()


def cli(*args: object, code: int = 0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def rows_of(home, result) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(home.store.read_bytes(result.result_digest)))


# -- registration -------------------------------------------------------------------------------


def test_snapshots_are_documents_whose_digests_the_registration_entry_names(crawl):
    home, web = crawl
    docs = {d.name: d.digest for d in web.manifest.documents}
    robots_digest = hashlib.sha256(ROBOTS.encode()).hexdigest()
    assert docs == {
        "reservations/news.example/robots.txt": robots_digest,
        "reservations/news.example/tdmrep.json": hashlib.sha256(TDMREP.encode()).hexdigest(),
    }
    assert [s.name for s in web.manifest.shards] == ["part-0.jsonl"]  # robots.txt is not a .txt record
    envelope = query.envelope(query.at(home.storage, web.index))
    assert {f"sha256:{d}" for d in docs.values()} <= set(envelope["refs"])
    assert home.store.read_bytes(robots_digest) == ROBOTS.encode()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "reservations/a.example/tdmrep.json",
            '[{"location": "/"},\n  {"location": ]',
            "tdmrep.json:2: malformed JSON",
        ),
        ("reservations/a.example/tdmrep.json", '{"location": "/"}', "a tdmrep.json is a JSON array of rules"),
        ("reservations/a.example/tdmrep.json", '[{"tdm-reservation": 1}]', "field '[0].location': is missing"),
        ("reservations/a.example/robots.txt", b"User-agent: *\n\xff\n", "invalid UTF-8 at byte 14"),
        ("reservations/a.example/sitemap.xml", "<urlset/>", "holds only robots.txt and tdmrep.json"),
    ],
)
def test_malformed_snapshots_are_refused_at_registration(tmp_path, cast, name, content, message):
    home = cast.init_home(tmp_path / "home")
    folder = tmp_path / "data"
    (folder / name).parent.mkdir(parents=True)
    (folder / "part-0.jsonl").write_text('{"text": "a page"}\n', encoding="utf-8")
    target = folder / name
    target.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = home.storage.head()[0]
    with pytest.raises(DatasetInputError) as caught:
        DatasetRegistry(home).register([folder], DatasetRef("bad", "1"), CARD)
    assert message in str(caught.value) and str(target) in str(caught.value)
    assert home.storage.head()[0] == before
    home.close()


def test_other_files_under_reservations_are_data_as_before(tmp_path, cast):
    home = cast.init_home(tmp_path / "home")
    folder = tmp_path / "bookings"
    (folder / "reservations" / "q1").mkdir(parents=True)
    (folder / "reservations" / "2024.jsonl").write_text('{"text": "table for two"}\n', encoding="utf-8")
    (folder / "reservations" / "q1" / "notes.txt").write_text("a booking note", encoding="utf-8")
    dataset, _ = DatasetRegistry(home).register([folder], DatasetRef("bookings", "1"), CARD)
    assert sorted(s.name for s in dataset.manifest.shards) == ["reservations/2024.jsonl", "reservations/q1/notes.txt"]
    home.close()


# -- the provenance check --------------------------------------------------------------------------


def test_check_flags_reserved_records_by_signal_and_snapshot(crawl):
    home, web = crawl
    result = run_check(home, web, ProvenanceCheck())
    summary = result.summary(home)
    robots_digest = hashlib.sha256(ROBOTS.encode()).hexdigest()
    reservations = summary["reservations"]
    assert reservations["by_signal"] == {"content-signal": 1, "content-usage": 1, "robots.txt": 2, "tdmrep": 2}
    assert reservations["records"] == 5
    assert reservations["by_source"] == {
        "records' own HTML meta": 1,
        "records' own headers": 2,
        "reservations/news.example/robots.txt": 2,
        "reservations/news.example/tdmrep.json": 1,
    }
    assert reservations["unreadable_fields"] == 1
    assert {s["name"]: s["digest"] for s in reservations["snapshots"]}["reservations/news.example/robots.txt"] == (
        robots_digest
    )
    ids = {f["id"]: f for f in summary["findings"]}
    assert ids["records.reserved:robots.txt"]["severity"] == "fail"
    assert ids["records.reserved:robots.txt"]["message"] == (
        "2 records are reserved from AI training by robots.txt rules for AI crawlers, read from "
        f"reservations/news.example/robots.txt (sha256 {robots_digest[:12]})"
    )
    assert ids["records.reservation_fields_unreadable"]["severity"] == "flag"
    assert summary["opt_out"]["digest"] is None and summary["opt_out"]["records"] == 0

    rows = rows_of(home, result)
    by_id = {r["record_id"]: r for r in rows.iter_rows(named=True)}
    assert by_id["page-00"]["verdict"] == "fail" and by_id["page-00"]["reason"] == "reserved:robots.txt"
    details = json.loads(by_id["page-00"]["details"])
    assert {(r["signal"], r["snapshot"], r["digest"]) for r in details["reserved"]} == {
        ("robots.txt", "reservations/news.example/robots.txt", robots_digest),
        ("tdmrep", "reservations/news.example/tdmrep.json", hashlib.sha256(TDMREP.encode()).hexdigest()),
    }
    assert json.loads(by_id["page-02"]["details"])["reserved"][0]["digest"] == web.manifest.shards[0].digest
    assert by_id["page-05"]["verdict"] == "pass"  # Content-Usage: train-ai=y
    assert all(TEXTS[0] not in (r["details"] or "") for r in by_id.values())  # counts and rules, never text
    config = json.loads(home.store.read_bytes(result.config_digest))
    assert config["reservations"]["snapshots"][0]["digest"] == robots_digest


def test_a_derived_dataset_reads_its_parents_snapshots(crawl):
    home, web = crawl
    records = [{"id": r.id, "text": r.text, "source_url": r.source_url} for _, r in web.records() if r.source_url]
    derived, _ = DatasetRegistry(home).register_derived(DatasetRef("web", "2"), [web], "copy", {"kept": "all"}, records)
    assert derived.manifest.documents == ()
    summary = run_check(home, derived, ProvenanceCheck()).summary(home)
    assert {s["dataset"] for s in summary["reservations"]["snapshots"]} == {"web@1"}
    # the site's robots.txt and tdmrep.json still apply; the records' own headers did not travel
    assert summary["reservations"]["by_signal"] == {"robots.txt": 2, "tdmrep": 1}


# -- registry files -------------------------------------------------------------------------------

TODAY = dt.date(2025, 6, 1)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("o.csv", "kind,value,source\n", "o.csv:1: field 'date': column is missing from the header row"),
        ("o.csv", "kind,value,source,date,note\n", "o.csv:1: field 'note': unknown column"),
        (
            "o.csv",
            "kind,value,source,date\ndomain,a.example,x,2025-01-01\nemail,a@b.example,x,2025-01-01\n",
            "o.csv:3: field 'kind': 'email' is not one of domain, url-prefix, author, record-hash",
        ),
        ("o.csv", "kind,value,source,date\ndomain,localhost,x,2025-01-01\n", "o.csv:2: field 'value': 'localhost'"),
        ("o.csv", "kind,value,source,date\nurl-prefix,ftp://a.example/,x,2025-01-01\n", "o.csv:2: field 'value'"),
        ("o.csv", "kind,value,source,date\nrecord-hash,abc,x,2025-01-01\n", "o.csv:2: field 'value': 'abc' is not"),
        ("o.csv", "kind,value,source,date\nauthor,A. N. Other, ,2025-01-01\n", "o.csv:2: field 'source': is empty"),
        ("o.csv", "kind,value,source,date\nauthor,Ann,x,01/02/2025\n", "o.csv:2: field 'date': '01/02/2025'"),
        ("o.csv", "kind,value,source,date\nauthor,Ann,x,2025-06-30\n", "o.csv:2: field 'date': 2025-06-30 is in the"),
        ("o.csv", 'kind,value,source,date\nauthor,"Ann\n,x,2025-01-01\n', "o.csv:2: not valid CSV"),
        ("o.csv", "kind,value,source,date\nauthor,Ann,x\n", "o.csv:2: has 3 cells, the header has 4"),
        ("o.csv", "kind,value,source,date\n\n", "o.csv: no opt-out entries"),
        (
            "o.jsonl",
            '{"kind": "domain", "value": "a.example", "source": "x", "date": "2025-01-01", "why": 1}\n',
            "o.jsonl:1: field 'why': unknown key",
        ),
        (
            "o.jsonl",
            '\n{"kind": "domain", "value": 7, "source": "x", "date": "2025-01-01"}\n',
            "o.jsonl:2: field 'value': must be a string, not int",
        ),
        ("o.jsonl", '{"kind": "domain"\n', "o.jsonl:1: malformed JSON"),
        ("o.jsonl", '["domain"]\n', "o.jsonl:1: each line must be a JSON object"),
        ("o.txt", "domain a.example\n", "o.txt: an opt-out file is .csv or .jsonl"),
    ],
)
def test_every_line_is_checked_and_the_first_problem_named(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OptOutFileError) as caught:
        parse(path, path.read_bytes(), today=TODAY)
    assert str(caught.value).startswith(f"{tmp_path}/") and message in str(caught.value)


def test_entries_are_normalised(tmp_path):
    path = tmp_path / "o.jsonl"
    lines = [
        {"kind": "domain", "value": "Writers.Example.", "source": "s", "date": "2025-01-01"},
        {"kind": "domain", "value": "bücher.example", "source": "s", "date": "2025-01-01"},
        {"kind": "url-prefix", "value": "HTTPS://Blog.Example/Private/", "source": "s", "date": "2025-01-01"},
        {"kind": "record-hash", "value": "sha256:" + "AB" * 32, "source": "s", "date": "2025-01-01"},
        {"kind": "author", "value": "  Ada   Byron ", "source": "  a   form ", "date": "2025-01-01"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    entries = parse(path, path.read_bytes(), today=TODAY)
    assert [e.value for e in entries] == [
        "writers.example",
        "xn--bcher-kva.example",
        "https://blog.example/Private/",
        "ab" * 32,
        "Ada Byron",
    ]
    assert entries[4].source == "a form" and entries[4].key == ("author", "ada byron") and entries[4].line == 5


# -- imports ----------------------------------------------------------------------------------------


def test_import_records_a_signed_entry_and_shows_what_it_affects(crawl, cast, tmp_path):
    home, web = crawl
    path = opt_out_file(tmp_path)
    out = cli("optout", "import", path, "--json", "--home", home.path, "--key", cast.key_file("alice"))
    shown = json.loads(out.stdout)
    assert shown["registry"] == "default" and shown["entries"] == 4 and shown["imported_by"] == "alice"
    assert shown["kinds"] == {"author": 1, "domain": 1, "record-hash": 1, "url-prefix": 1}
    assert shown["file_digest"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert home.store.read_bytes(shown["file_digest"]) == path.read_bytes()
    assert shown["affected"] == [
        {
            "dataset": "web@1",
            "digest": web.digest,
            "records": 3,
            "new": 3,
            "kinds": {"author": 2, "domain": 1, "record-hash": 1},
        }
    ]
    assert (shown["replaces"], shown["added"], shown["withdrawn"]) == (None, 4, 0)
    row = query.at(home.storage, shown["ledger_index"])
    assert row.actor == "alice" and home.attribute(row).kind == "person"
    assert f"sha256:{shown['file_digest']}" in query.envelope(row)["refs"]

    text = cli("optout", "list", "--entries", "--home", home.path).stdout
    assert f"default  ledger index {shown['ledger_index']}" in text and "by alice  4 entries" in text
    assert "  domain      writers.example  (source: Spawning Do Not Train, 2025-03-01, line 2)" in text
    listed = json.loads(cli("optout", "list", "--json", "--home", home.path).stdout)
    assert listed["digest"] == current(home).digest and len(listed["registries"][0]["listed"]) == 4

    # the check now counts the opted-out records, by registry and kind
    summary = run_check(home, web, ProvenanceCheck()).summary(home)
    assert summary["opt_out"]["records"] == 3 and summary["opt_out"]["by_registry"] == {"default": 3}
    assert summary["opt_out"]["by_kind"] == {"author": 2, "domain": 1, "record-hash": 1}
    finding = next(f for f in summary["findings"] if f["id"] == "records.opted_out:default")
    assert finding["message"] == (
        f"3 records are on the opt-out registry 'default' (imported at ledger index {shown['ledger_index']})"
    )
    assert "Ada" not in json.dumps(summary)  # an author's name is not repeated in findings


def test_a_newer_import_shows_what_it_now_affects_and_withdrawing_needs_an_approver(crawl, cast, tmp_path):
    home, _ = crawl
    first = import_file(home, opt_out_file(tmp_path), actor=cast.person(home, "alice"), today=TODAY)
    newer = OPT_OUTS + "url-prefix,https://blog.example/i,site owner's form,2025-05-05\n"
    out = cli("optout", "import", opt_out_file(tmp_path, newer), "--home", home.path, "--key", cast.key_file("alice"))
    assert f"replaces ledger index {first.ledger_index}: 1 added, 0 withdrawn" in out.stdout
    assert "web@1: 4 records (1 not opted out before; author 2, domain 1, record-hash 1, url-prefix 1)" in out.stdout

    withdrawn = "kind,value,source,date\ndomain,writers.example,Spawning Do Not Train,2025-03-01\n"
    before = home.storage.head()[0]
    refused = cli(
        "optout",
        "import",
        opt_out_file(tmp_path, withdrawn),
        "--home",
        home.path,
        "--key",
        cast.key_file("alice"),
        code=2,
    )
    assert "may not cause optout.imported/v1" in refused.stderr and home.storage.head()[0] == before
    by_bob = import_file(home, opt_out_file(tmp_path, withdrawn), actor=cast.person(home, "bob"), today=TODAY)
    assert (by_bob.body["added"], by_bob.body["withdrawn"]) == (0, 4)
    assert by_bob.body["affected"][0]["records"] == 1  # writers.example's page alone
    # several registries are in force together; each one's newest import counts
    other = import_file(home, opt_out_file(tmp_path, withdrawn), "publishers", cast.person(home, "alice"), today=TODAY)
    assert [i.ledger_index for i in current(home).imports] == [by_bob.ledger_index, other.ledger_index]


def test_bad_input_is_one_line_exit_2_and_records_nothing(crawl, cast, tmp_path):
    home, _ = crawl
    before = home.storage.head()[0]
    bad = opt_out_file(tmp_path, "kind,value,source,date\ndomain,not a domain,x,2025-01-01\n")
    out = cli("optout", "import", bad, "--home", home.path, "--key", cast.key_file("alice"), code=2)
    assert out.stderr.strip() == (
        f"error: {bad}:2: field 'value': 'not a domain' is not a domain name with a dot in it (e.g. example.org)"
    )
    cli("optout", "import", tmp_path / "missing.csv", "--home", home.path, "--key", cast.key_file("alice"), code=2)
    cli("optout", "import", bad, "--registry", "Bad Name", "--home", home.path, "--key", cast.key_file("alice"), code=2)
    with pytest.raises(RegistryError):
        import_file(home, bad, "Bad Name")
    assert home.storage.head()[0] == before
    assert "no opt-out registries" in cli("optout", "list", "--home", home.path).stdout


# -- the gate ---------------------------------------------------------------------------------------

RESERVED_POLICY = 'schema = 1\nname = "reserved"\npurpose = "commercial"\n[provenance.reserved]\nexplanation = "x"\n'


def gate(home, dataset, tmp_path, cast, policy: str = RESERVED_POLICY):
    """The decision for `dataset` under `policy`, bound to the commercial purpose by the admin."""
    path = tmp_path / f"policy-{hashlib.sha256(policy.encode()).hexdigest()[:8]}.toml"
    path.write_text(policy, encoding="utf-8")
    bind(home, "commercial", load_policy(path), cast.person(home, "admin"))
    return run_gate(home, [dataset], None, purpose="commercial").decision


def test_the_gate_denies_reserved_and_opted_out_records_and_a_stale_registry(crawl, cast, tmp_path):
    home, web = crawl
    before_check = gate(home, web, tmp_path, cast)
    assert before_check.decision == "deny" and "needs a provenance result" in before_check.reasons[0].message
    run_check(home, web, ProvenanceCheck())
    decision = gate(home, web, tmp_path, cast)
    assert decision.decision == "deny"
    assert {r.finding for r in decision.reasons} == {
        f"web@1/provenance.reserved:reserved:{signal}"
        for signal in ("robots.txt", "content-usage", "tdmrep", "content-signal")
    }
    robots = next(r for r in decision.reasons if r.finding.endswith("robots.txt"))
    assert robots.message.startswith("2 records are reserved from AI training by robots.txt; required action:")

    # a new registry: results computed before it are stale until the check runs again
    import_file(home, opt_out_file(tmp_path), actor=cast.person(home, "alice"), today=TODAY)
    stale = gate(home, web, tmp_path, cast)
    assert "web@1/provenance.reserved:opt-out:registry" in {r.finding for r in stale.reasons}
    run_check(home, web, ProvenanceCheck())
    fresh = {r.finding: r for r in gate(home, web, tmp_path, cast).reasons}
    assert "web@1/provenance.reserved:opt-out:registry" not in fresh
    assert fresh["web@1/provenance.reserved:opted-out:default"].outcome == "deny"

    # a policy may name the signals it enforces, leave opt-outs to another rule, or ask a reviewer
    only = gate(home, web, tmp_path, cast, RESERVED_POLICY + 'signals = ["tdmrep"]\nopt_outs = false\n')
    assert [r.finding for r in only.reasons] == ["web@1/provenance.reserved:reserved:tdmrep"]
    review = gate(home, web, tmp_path, cast, RESERVED_POLICY + 'on_fail = "review"\n')
    assert review.decision == "needs-review" and {r.outcome for r in review.reasons} == {"review"}


def test_shipped_policies_judge_reserved_records_with_this_rule_not_findings_failed():
    for name, outcome in (("default", "deny"), ("strict", "deny"), ("research", "review")):
        policy = load_policy(name).policy
        assert policy.provenance.reserved is not None and policy.provenance.reserved.on_fail == outcome
        assert {"records.reserved:*", "records.opted_out:*"} <= set(policy.findings.failed.ignore)
    # a policy without the rule denies them through findings.failed
    assert "records.reserved:*" not in load_policy("toxicity-model").policy.findings.failed.ignore
