"""`custody find`: every holder of a passage or record, no false hit, and what was made from them.

A corpus of three datasets (pages of Tiny Shakespeare; an anthology quoting some of them with
other whitespace, case and surrounding text; unrelated pages) and two levels of derivation of the
first (dedup-exact, then normalize-unicode), with a recorded run reading the second.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields, content_hash
from custody.datasets.registry import DatasetRegistry
from custody.pipeline.run_stage import run_stage
from custody.stages.catalog import STAGES
from custody.takedown.find import FindError, find_record_hash, find_text
from custody.takedown.fingerprints import MIN_WORDS, words
from custody.testing.runs import record_run
from train_support import speeches, write_jsonl

PAGE_WORDS = 120
PASSAGE_WORDS = 50


def pages(count: int) -> list[str]:
    """Consecutive speeches joined into pages of about PAGE_WORDS words."""
    out, page = [], []
    for speech in speeches(None):
        page.append(speech)
        if sum(len(s.split()) for s in page) >= PAGE_WORDS:
            out.append("\n".join(page))
            page = []
            if len(out) == count:
                break
    return out


def record_id(position: int) -> str:
    return f"tinyshakespeare-{position:05d}"  # as train_support.write_jsonl numbers them


def passage_of(page: str, start: int = 10) -> str:
    return " ".join(page.split()[start : start + PASSAGE_WORDS])


def garble(passage: str, rng: random.Random) -> str:
    """The same words, other whitespace and case."""
    return "".join(w.upper() + rng.choice(["  ", "\n", " \t "]) for w in passage.split())


def register(home, folder: Path, name: str, texts: list[str], shards: int = 1):
    per = -(-len(texts) // shards)
    for s in range(shards):  # ids run on across shards: a hit's ordinal maps to the right shard
        write_jsonl(folder / name / f"part-{s}.jsonl", texts[s * per : (s + 1) * per], s * per)
    dataset, _ = DatasetRegistry(home).register(
        [folder / name], DatasetRef(name, "1"), parse_card(CARD_TEMPLATE), Fields(id="id")
    )
    return dataset


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, cast):
    root = tmp_path_factory.mktemp("takedown")
    home = cast.init_home(root / "home")
    everything = pages(200)
    books, unrelated, filler = everything[:40], everything[100:140], everything[160:200]
    rng = random.Random(7)
    quoted = list(range(0, 40, 4))  # pages the anthology quotes
    anthology = [
        f"{filler[i][:300]}\n\n{garble(passage_of(books[q]), rng)}\n\n{filler[i][-200:]}" for i, q in enumerate(quoted)
    ]
    datasets = {
        "books": register(home, root, "books", books, shards=3),
        "anthology": register(home, root, "anthology", anthology + filler[20:30]),
        "other": register(home, root, "other", unrelated),
    }
    first = run_stage(home, STAGES.build("dedup-exact", home), datasets["books"], DatasetRef("books", "1+dedup"))
    second = run_stage(home, STAGES.build("normalize-unicode", home), first.output, DatasetRef("books", "1+norm"))
    run_index = record_run(home, "tiny-run-0001abcd", 0, [second.output], steps=20, checkpoint_every=10)
    yield home, root, books, unrelated, quoted, datasets, run_index
    home.close()


def test_every_planted_passage_is_found_in_every_holder(corpus):
    home, _, books, _, quoted, _, _ = corpus
    for q in quoted:
        found = find_text(home, passage_of(books[q]))
        holders = {h.dataset for h in found.hits}
        assert holders == {"books@1", "books@1+dedup", "books@1+norm", "anthology@1"}, (q, holders)
        assert {h.record_id for h in found.hits if h.dataset == "books@1"} == {record_id(q)}
        for hit in found.hits:  # each hit is confirmed: its span holds the passage's words
            record = next(r for _, r in DatasetRegistry(home).get(hit.dataset).records() if r.id == hit.record_id)
            start, end = hit.spans[0]
            assert words(record.text[start:end]).words == words(passage_of(books[q])).words


def test_a_passage_from_an_unquoted_page_is_not_in_the_anthology(corpus):
    home, _, books, _, quoted, _, _ = corpus
    page = next(i for i in range(40) if i not in quoted)
    found = find_text(home, passage_of(books[page]))
    assert {h.dataset for h in found.hits} == {"books@1", "books@1+dedup", "books@1+norm"}


def test_no_false_hit_for_the_same_words_in_another_order(corpus):
    home, _, books, _, _, _, _ = corpus
    shuffled = passage_of(books[3]).split()
    random.Random(1).shuffle(shuffled)
    assert find_text(home, " ".join(shuffled)).hits == []


def test_downstream_runs_and_checkpoints(corpus):
    home, _, books, _, _, _, run_index = corpus
    found = find_text(home, passage_of(books[5]))
    [run] = found.runs
    assert run["run_id"] == "tiny-run-0001abcd" and run["read"] == ["books@1+norm"]
    assert run["started_index"] == run_index and len(run["checkpoints"]) == 2 and run["model_digest"]


def test_find_by_record_hash(corpus):
    home, _, _, unrelated, _, _, _ = corpus
    found = find_record_hash(home, "sha256:" + content_hash(unrelated[2]))
    assert [(h.dataset, h.record_id) for h in found.hits] == [("other@1", record_id(2))]
    assert found.derived == [] and found.runs == []
    assert find_record_hash(home, content_hash("not in any dataset")).hits == []
    with pytest.raises(FindError, match="not a SHA-256"):
        find_record_hash(home, "abc")


def test_indexes_are_recorded_once_per_dataset_version(corpus):
    home, _, books, _, _, datasets, _ = corpus
    assert find_text(home, passage_of(books[7])).indexed_now == []  # built by the first query
    rows = list(home.storage.entries(0, 100_000, type_prefix="dataset.indexed/"))
    bodies = [json.loads(r.entry)["body"] for r in rows]
    assert sorted(b["dataset"] for b in bodies) == sorted(
        ["books@1", "books@1+dedup", "books@1+norm", "anthology@1", "other@1"]
    )
    books_index = next(b for b in bodies if b["dataset"] == "books@1")
    assert books_index["dataset_digest"] == datasets["books"].digest and home.store.verify(books_index["index_digest"])
    raw = b"".join(r.entry for r in home.storage.iter_entries())
    assert passage_of(books[7]).encode() not in raw


def test_too_short_a_passage_says_how_long_one_must_be(corpus, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, root, books, _, _, _, _ = corpus
    with pytest.raises(FindError, match=f"has 10 words; at least {MIN_WORDS} are needed"):
        find_text(home, " ".join(books[0].split()[:10]))
    short = root / "short.txt"
    short.write_text("to be or not to be", encoding="utf-8")
    env = {"CUSTODY_KEY": str(cast.key_file("admin"))}
    done = CliRunner().invoke(app, ["find", "--text-file", str(short), "--home", str(home.path)], env=env)
    assert done.exit_code == 2
    [line] = done.stderr.strip().splitlines()
    assert str(short) in line and f"at least {MIN_WORDS}" in line

    page = root / "page.txt"
    page.write_text(passage_of(books[9]), encoding="utf-8")
    done = CliRunner().invoke(app, ["find", "--text-file", str(page), "--json", "--home", str(home.path)], env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["datasets"] == ["books@1", "books@1+dedup", "books@1+norm"]
    nowhere = root / "nowhere.txt"
    nowhere.write_text(" ".join(f"word{i}" for i in range(60)), encoding="utf-8")
    done = CliRunner().invoke(app, ["find", "--text-file", str(nowhere), "--home", str(home.path)], env=env)
    assert done.exit_code == 1 and "found in no registered dataset version" in done.stdout


def test_a_takedown_request_keeps_no_passage_and_finds_the_work_again(corpus, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app
    from custody.takedown.requests import RequestError, affected, all_requests, get, request

    home, root, books, _, _, _, _ = corpus
    passage = garble(passage_of(books[12]), random.Random(3))
    taken = request(home, "Estate of W. Shakespeare", "copyright", passage=passage, actor=cast.person(home, "admin"))
    assert taken.id.startswith("td-") and get(home, taken.id).body == taken.body
    assert taken.body["query"]["words"] == len(words(passage).words) >= PASSAGE_WORDS
    found = affected(home, taken)
    assert {h.dataset for h in found.hits} == {"books@1", "books@1+dedup", "books@1+norm", "anthology@1"}
    # The request kept no copy of what was submitted: not in the ledger, the store or anywhere under
    # the home (the datasets still hold the work itself until it is removed); nor its words, normalised.
    submitted, normalised = passage.encode(), " ".join(words(passage).words).encode()
    files = [p.read_bytes() for p in Path(home.path).rglob("*") if p.is_file()]
    assert not [f for f in files if submitted in f or normalised in f]
    assert [r.id for r in all_requests(home)][-1] == taken.id

    by_hash = request(
        home, "a person", "personal data", record_hash=content_hash(books[20]), actor=cast.person(home, "admin")
    )
    assert [(h.dataset, h.record_id) for h in affected(home, by_hash).hits if h.dataset == "books@1"] == [
        ("books@1", record_id(20))
    ]
    for bad, message in (
        (dict(requested_by=" ", reason="x", record_hash=content_hash("x")), "--by"),
        (dict(requested_by="a", reason="", record_hash=content_hash("x")), "--reason"),
        (dict(requested_by="a", reason="x"), "one of"),
        (dict(requested_by="a", reason="x", record_hash="zz"), "not a SHA-256"),
    ):
        with pytest.raises(RequestError, match=message):
            request(home, **bad)
    with pytest.raises(RequestError, match="no takedown request td-00000000"):
        get(home, "td-00000000")

    env = {"CUSTODY_KEY": str(cast.key_file("admin"))}
    page = root / "request.txt"
    page.write_text(passage_of(books[16]), encoding="utf-8")
    args = ["takedown", "request", "--by", "an author", "--reason", "opt-out", "--text-file", str(page)]
    done = CliRunner().invoke(app, [*args, "--json", "--home", str(home.path)], env=env)
    assert done.exit_code == 0, done.output
    shown = json.loads(done.stdout)
    assert shown["affected"]["datasets"] == ["anthology@1", "books@1", "books@1+dedup", "books@1+norm"]
    done = CliRunner().invoke(app, ["takedown", "show", shown["id"], "--home", str(home.path)], env=env)
    assert done.exit_code == 0 and "requested by an author" in done.stdout and "books@1: 1 record(s)" in done.stdout
    done = CliRunner().invoke(app, ["takedown", "list", "--home", str(home.path)], env=env)
    assert shown["id"] in done.stdout
    done = CliRunner().invoke(app, ["takedown", "show", "td-nothere", "--home", str(home.path)], env=env)
    assert done.exit_code == 2 and "not a takedown request id" in done.stderr


def test_records_at_reads_the_same_records_as_the_reader(tmp_path, cast):
    from custody.datasets.registry import IntegrityError

    home = cast.init_home(tmp_path / "home")  # its own: a shard is changed below
    folder = tmp_path / "blanks"
    folder.mkdir()
    lines = [json.dumps({"id": f"x{i}", "text": f"text number {i}"}) for i in range(30)]
    (folder / "part-0.jsonl").write_text("\n\n".join(lines[:15]) + "\n\n   \n" + "\n".join(lines[15:]) + "\n")
    (folder / "part-1.csv").write_text("id,text\ny0,first\ny1,second\n")
    dataset, _ = DatasetRegistry(home).register(
        [folder], DatasetRef("blanks", "1"), parse_card(CARD_TEMPLATE), Fields(id="id"), in_place=True
    )
    for shard in dataset.manifest.shards:
        every = dict(enumerate(dataset.shard_records(shard)))
        assert dataset.records_at(shard, {0, 3, 16, 29, 99}) == {k: v for k, v in every.items() if k in {0, 3, 16, 29}}
    (folder / "part-0.jsonl").write_text("changed\n")
    with pytest.raises(IntegrityError, match=r"part-0\.jsonl does not match its manifest digest"):
        dataset.records_at(dataset.manifest.shards[0], {0})
    home.close()


def test_find_by_source_url_prefix_and_domain(tmp_path, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app
    from custody.takedown.find import find_source

    home = cast.init_home(tmp_path / "home")
    urls = [
        "https://a.example.org/x/1",
        "https://www.example.org/y",
        "https://notexample.org/z",
        "http://EXAMPLE.org/",
        None,
    ]
    folder = tmp_path / "web"
    folder.mkdir()
    with open(folder / "part-0.jsonl", "w", encoding="utf-8") as out:
        for i, url in enumerate(urls):
            out.write(json.dumps({"id": f"p{i}", "text": f"page {i}", **({"source_url": url} if url else {})}) + "\n")
    DatasetRegistry(home).register([folder], DatasetRef("web", "1"), parse_card(CARD_TEMPLATE), Fields(id="id"))
    assert [h.record_id for h in find_source(home, url_prefix="https://a.example.org/x/").hits] == ["p0"]
    assert [h.record_id for h in find_source(home, domain="Example.org").hits] == ["p0", "p1", "p3"]
    assert find_source(home, domain="nowhere.example").hits == []
    for bad in (dict(domain="exa mple"), dict(url_prefix=" "), dict()):
        with pytest.raises(FindError):
            find_source(home, **bad)
    env = {"CUSTODY_KEY": str(cast.key_file("admin"))}
    done = CliRunner().invoke(app, ["find", "--domain", "example.org", "--json", "--home", str(home.path)], env=env)
    assert done.exit_code == 0 and json.loads(done.stdout)["query"] == {"kind": "domain", "domain": "example.org"}
    both = ["find", "--domain", "example.org", "--record-hash", "0" * 64, "--home", str(home.path)]
    assert CliRunner().invoke(app, both, env=env).exit_code == 2
    home.close()
