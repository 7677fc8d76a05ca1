"""`custody takedown apply`: new versions without the work, derivations redone, runs tainted, the gate
denying what was taken down, erasure, and proofs of removal.

The corpus of test_takedown_find (pages of Tiny Shakespeare in three shards; an anthology quoting
some with changed whitespace, case and surrounding text; unrelated pages), two levels of derivation
(dedup-exact built without recorded options, then normalize-unicode through a chain that records
them), a run reading the second level and a fine-tune of that run's model.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest
import zstandard

from custody.datasets.names import DatasetRef
from custody.datasets.registry import DatasetRegistry
from custody.pipeline.chain import run_chain
from custody.pipeline.run_stage import run_stage
from custody.stages.catalog import STAGES
from custody.takedown.apply import ApplyError, apply, plan, removed_versions
from custody.takedown.find import find_text
from custody.takedown.requests import request
from custody.testing.runs import record_run, run_entries
from test_takedown_find import garble, pages, passage_of, register

APPROVER = "ada"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, cast):
    root = tmp_path_factory.mktemp("takedown-apply")
    home = cast.init_home(root / "home")
    cast.enroll(home, APPROVER, "approver")
    cast.enroll(home, "eve", "engineer")
    everything = pages(160)
    books, unrelated, filler = everything[:30], everything[60:90], everything[120:160]
    rng = random.Random(11)
    quoted = [3, 8, 15]
    anthology = [
        f"{filler[i][:300]}\n\n{garble(passage_of(books[q]), rng)}\n\n{filler[i][-200:]}" for i, q in enumerate(quoted)
    ]
    datasets = {
        "books": register(home, root, "books", books, shards=3),
        "anthology": register(home, root, "anthology", anthology + filler[10:20]),
        "other": register(home, root, "other", unrelated),
    }
    dedup = run_stage(home, STAGES.build("dedup-exact", home), datasets["books"], DatasetRef("books", "1+dedup"))
    [norm] = run_chain(
        home, dedup.output, ["normalize-unicode"], DatasetRef("books", "1+norm"), {"normalize-unicode": {}}
    )
    from custody.policy.gate import run_gate
    from custody.policy.schema import load_policy

    gate = run_gate(home, [norm.output], load_policy("default"), purpose="commercial", actor="eve")
    run_index = record_run(home, "tiny-run-0001abcd", gate.ledger_index, [norm.output], steps=20, checkpoint_every=10)
    finished = home.storage.entries(run_index, 100_000, type_prefix="run.finished/")
    model = json.loads(next(iter(finished)).entry)["body"]["model_digest"]
    finetune = run_entries(
        home, "tiny-tune-0002abcd", gate.ledger_index, [datasets["other"]], steps=10, checkpoint_every=5
    )
    started = finetune[0]
    finetune[0] = home.entry(
        "run.started/v1", started.subject, {**started.body, "kind": "finetune", "init_checkpoint_digest": model}
    )
    home.append(finetune)
    yield home, root, books, quoted, datasets
    home.close()


def _request(home, cast, text: str):
    return request(home, "Estate of W. Shakespeare", "copyright", passage=text, actor=cast.person(home, "eve"))


def test_apply_replaces_every_holder_and_rederives_the_lineage(corpus, cast):
    home, _, books, _, _ = corpus
    taken = _request(home, cast, garble(passage_of(books[8]), random.Random(2)))
    with pytest.raises(Exception, match="may not apply a takedown"):
        apply(home, taken.id, cast.person(home, "eve"), say=lambda _: None)
    done = apply(home, taken.id, cast.person(home, APPROVER), say=lambda _: None)
    changes = {v["old"]: v for v in done.body["versions"]}
    new = f"-{taken.id}"
    assert {old: (v["new"], v["how"]) for old, v in changes.items()} == {
        "books@1": ("books@1" + new, "removed"),
        "anthology@1": ("anthology@1" + new, "removed"),
        "books@1+dedup": ("books@1+dedup" + new, "re-derived"),
        "books@1+norm": ("books@1+norm" + new, "re-derived"),
    }
    registry = DatasetRegistry(home)
    assert registry.get("books@1" + new).manifest.records == 29
    assert registry.get("anthology@1" + new).manifest.records == 12
    # The new versions do not hold it; the old ones do, and are marked as taken down.
    found = find_text(home, passage_of(books[8]))
    assert {h.dataset for h in found.hits} == {"books@1", "books@1+dedup", "books@1+norm", "anthology@1"}
    assert set(removed_versions(home)) == set(changes)
    # Other quoted pages are still where they were, in the new versions too.
    assert "anthology@1" + new in {h.dataset for h in find_text(home, passage_of(books[3])).hits}
    # The runs that read an affected version, and the fine-tune of its model, are tainted.
    tainted = {r["run_id"]: r for r in done.body["tainted_runs"]}
    assert tainted["tiny-run-0001abcd"]["read"] == ["books@1+norm"]
    assert tainted["tiny-tune-0002abcd"]["inherits_from"] == "tiny-run-0001abcd"
    rows = list(home.storage.entries(0, 100_000, type_prefix="run.tainted/"))
    assert sorted(r.subject for r in rows) == ["run:tiny-run-0001abcd", "run:tiny-tune-0002abcd"]
    # Applying again finds nothing live to remove.
    with pytest.raises(ApplyError, match="already applied"):
        apply(home, taken.id, cast.person(home, APPROVER), say=lambda _: None)


def test_rederived_outputs_are_what_deriving_from_scratch_gives(corpus, cast):
    home, root, books, _, _ = corpus
    taken = _request(home, cast, passage_of(books[20]))
    apply(home, taken.id, cast.person(home, APPROVER), say=lambda _: None)
    registry = DatasetRegistry(home)
    # books without pages 8 and 20, registered afresh with the same record ids, through the same stages
    kept = [(i, t) for i, t in enumerate(books) if i not in (8, 20)]
    folder = root / "scratch"
    folder.mkdir()
    with open(folder / "part.jsonl", "w", encoding="utf-8") as out:
        for i, text in kept:
            out.write(json.dumps({"id": f"tinyshakespeare-{i:05d}", "text": text}) + "\n")
    from custody.datasets.card import CARD_TEMPLATE, parse_card
    from custody.datasets.readers import Fields

    scratch, _ = registry.register([folder], DatasetRef("scratch", "1"), parse_card(CARD_TEMPLATE), Fields(id="id"))
    dedup = run_stage(home, STAGES.build("dedup-exact", home), scratch, DatasetRef("scratch", "1+dedup"))
    norm = run_stage(home, STAGES.build("normalize-unicode", home), dedup.output, DatasetRef("scratch", "1+norm"))
    twice = registry.get(f"books@1+norm-{_first_request(home)}-{taken.id}")
    assert [s.digest for s in twice.manifest.shards] == [s.digest for s in norm.output.manifest.shards]


def _first_request(home) -> str:
    rows = list(home.storage.entries(0, 100_000, type_prefix="takedown.applied/"))
    return json.loads(rows[0].entry)["body"]["id"]


def test_a_run_in_progress_on_affected_data_stops_the_apply(corpus, cast):
    home, _, _, _, datasets = corpus
    entries = run_entries(home, "tiny-live-0003abcd", 0, [datasets["other"]], steps=4, checkpoint_every=2)
    home.append(entries[:1])  # started, never finished
    page = DatasetRegistry(home).get("other@1")
    text = next(r.text for _, r in page.records())
    taken = _request(home, cast, text)
    with pytest.raises(ApplyError, match="tiny-live-0003abcd"):
        apply(home, taken.id, cast.person(home, APPROVER), say=lambda _: None)
    assert "other@1" not in removed_versions(home)  # nothing was taken down
    assert plan(home, taken.id).running


def test_the_gate_denies_taken_down_versions_unless_waived(corpus, cast):
    from custody.policy.gate import run_gate
    from custody.policy.reviews import record_review
    from custody.policy.schema import load_policy

    home, _, _, _, _ = corpus
    registry = DatasetRegistry(home)
    policy, eve = load_policy("default"), cast.person(home, "eve")
    taken_down = [v for v in removed_versions(home) if v == "books@1+norm"]
    assert taken_down, "the first test took books@1+norm down"
    result = run_gate(home, [registry.get("books@1+norm")], policy, purpose="commercial", actor=eve)
    reasons = [r for r in result.decision.reasons if r.rule == "takedown.applied"]
    assert result.decision.decision == "deny" and reasons and reasons[0].outcome == "deny"
    assert "train on books@1+norm-td-" in reasons[0].message
    replacement = "books@1+norm"
    while replacement in removed_versions(home):  # a later takedown may have replaced the replacement
        replacement = removed_versions(home)[replacement]["replaced_by"]
    fresh = run_gate(home, [registry.get(replacement)], policy, purpose="commercial", actor=eve)
    assert not [r for r in fresh.decision.reasons if r.rule == "takedown.applied"]
    # Like any rule's finding, an approver's waiver lifts it.
    record_review(
        home, reasons[0].finding, "waive", "licensed since", cast.person(home, APPROVER), expires="2099-01-01"
    )
    again = run_gate(home, [registry.get("books@1+norm")], policy, purpose="commercial", actor=eve)
    assert not [r for r in again.decision.reasons if r.rule == "takedown.applied"]
    assert any(w["rule"] == "takedown.applied" for w in again.decision.waived)


def _texts_under(folder: Path) -> list[tuple[Path, str]]:
    """Every file under `folder` as text: compressed shards decompressed, Parquet tables dumped."""
    import pyarrow.parquet as pq

    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if data[:4] == b"\x28\xb5\x2f\xfd":
            data = zstandard.ZstdDecompressor().stream_reader(data).read()
        elif data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        elif data[:4] == b"PAR1":
            data = json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
        text = data.decode("utf-8", errors="ignore")
        out.append((path, text + "\n" + _json_strings(text)))
    return out


def _json_strings(text: str) -> str:
    """The string values of any JSON documents or lines in `text` (escaped newlines would split words)."""
    found: list[str] = []

    def walk(value) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict | list):
            for item in value.values() if isinstance(value, dict) else value:
                walk(item)

    for chunk in [text, *text.splitlines()]:
        try:
            walk(json.loads(chunk))
        except ValueError:
            continue
    return "\n".join(found)


def test_erase_leaves_no_raw_text_under_the_home_and_the_ledger_verifies(corpus, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app
    from custody.takedown.fingerprints import words

    home, _, books, _, _ = corpus
    erased_pages = [passage_of(books[8]), passage_of(books[20])]
    kept_page = passage_of(books[3])
    wanted = [" ".join(words(p).words) for p in [*erased_pages, kept_page]]

    def holding(phrase: str) -> list[Path]:
        return [path for path, text in _texts_under(Path(home.path)) if phrase in " ".join(words(text).words)]

    assert holding(wanted[0]) and holding(wanted[1])  # before: the old versions' shards hold them
    env = {"CUSTODY_KEY": str(cast.key_file(APPROVER))}
    done = CliRunner().invoke(app, ["store", "gc", "--home", str(home.path)], env=env)
    assert done.exit_code != 0 and "may not" in done.output  # an approver is not an admin
    env = {"CUSTODY_KEY": str(cast.key_file("admin"))}
    done = CliRunner().invoke(app, ["store", "gc", "--dry-run", "--json", "--home", str(home.path)], env=env)
    planned = json.loads(done.stdout)["erased"]
    assert planned and holding(wanted[0])  # a dry run erases nothing
    done = CliRunner().invoke(app, ["store", "gc", "--json", "--home", str(home.path)], env=env)
    assert done.exit_code == 0, done.output
    assert [e["digest"] for e in json.loads(done.stdout)["erased"]] == [e["digest"] for e in planned]
    assert holding(wanted[0]) == [] and holding(wanted[1]) == []
    assert holding(wanted[2])  # what no takedown named is still there
    erasures = list(home.storage.entries(0, 100_000, type_prefix="artifact.erased/"))
    assert len(erasures) == len(planned)
    done = CliRunner().invoke(app, ["ledger", "verify", "--home", str(home.path)], env=env)
    assert done.exit_code == 0, done.output
    # find now knows the erased versions only by name; the live ones do not hold the page
    found = find_text(home, erased_pages[0])
    assert found.hits == [] and found.removed["books@1"]["erased"] is True
    again = CliRunner().invoke(app, ["store", "gc", "--json", "--home", str(home.path)], env=env)
    assert json.loads(again.stdout)["erased"] == []


def test_the_proof_of_removal_verifies_offline_and_fails_when_tampered(corpus, cast, tmp_path):
    from typer.testing import CliRunner

    from custody.cli.main import app
    from custody.ledger.verifier import ProofError, parse_verifier_key
    from custody.takedown.proof import build_proof, verify_proof

    home, _, _, _, _ = corpus
    first = _first_request(home)
    env = {"CUSTODY_KEY": str(cast.key_file("admin"))}
    out = tmp_path / "proof.json"
    done = CliRunner().invoke(app, ["takedown", "proof", first, "--out", str(out), "--home", str(home.path)], env=env)
    assert done.exit_code == 0, done.output
    pubkey = CliRunner().invoke(app, ["ledger", "pubkey", "--home", str(home.path)], env=env).stdout.strip()
    vkey = tmp_path / "ledger.vkey"
    vkey.write_text(pubkey + "\n", encoding="utf-8")
    done = CliRunner().invoke(app, ["takedown", "verify-proof", str(out), "--key", str(vkey), "--json"])
    assert done.exit_code == 0, done.output
    verified = json.loads(done.stdout)
    assert verified["request"] == first and verified["requested_by"] == "Estate of W. Shakespeare"
    [application] = verified["applications"]
    assert application["applied_by"] == APPROVER
    assert {v["old"]: v["absent"] for v in application["versions"]} == {
        "books@1": 1,
        "anthology@1": 1,
        "books@1+dedup": 1,
        "books@1+norm": 1,
    }

    key = parse_verifier_key(pubkey)
    doc = build_proof(home, first)  # built after the data's erasure: from the stored digest lists
    verify_proof(json.dumps(doc).encode(), key)
    for tamper, why in (
        (lambda d: d["removals"][0]["absences"][0].update(digest="0" * 64), "not proved absent|not strictly"),
        (lambda d: d["removals"][0]["absences"].pop(), "not proved absent"),
        (lambda d: d["removals"][0]["absences"][0]["left"]["proof"].reverse(), "inclusion proof|not proved|neighbour"),
        (lambda d: d["entries"].pop(), "no signed application"),
        (
            lambda d: d["entries"][1].update(entry=d["entries"][1]["entry"].replace('"removed":1', '"removed":2')),
            "leaf hash",
        ),
        (lambda d: d.update(checkpoint=d["checkpoint"].replace("\n", "\n ", 1)), ""),
    ):
        changed = json.loads(json.dumps(doc))
        tamper(changed)
        with pytest.raises(ProofError if why else Exception, match=why or None):
            verify_proof(json.dumps(changed).encode(), key)
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    done = CliRunner().invoke(app, ["takedown", "verify-proof", str(tmp_path / "bad.json"), "--key", str(vkey)])
    assert done.exit_code == 2 and "not a custody-takedown-proof/1 file" in done.stderr


def test_an_apply_interrupted_midway_takes_nothing_down_and_resumes(corpus, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, _, books, _, _ = corpus
    taken = _request(home, cast, passage_of(books[25]))
    lines: list[str] = []

    def crash_after_the_first_version(line: str) -> None:
        lines.append(line)
        if "->" in line:
            raise KeyboardInterrupt  # as if the process were killed here

    with pytest.raises(KeyboardInterrupt):
        apply(home, taken.id, cast.person(home, APPROVER), say=crash_after_the_first_version)
    first_new = lines[-1].split("->")[1].split()[0]
    assert DatasetRegistry(home).find(first_new) is not None  # one new version was derived ...
    assert not [v for v in removed_versions(home).values() if v["takedown"] == taken.id]  # ... none taken down
    env = {"CUSTODY_KEY": str(cast.key_file(APPROVER))}
    done = CliRunner().invoke(app, ["takedown", "apply", taken.id, "--home", str(home.path)], env=env)
    assert done.exit_code == 0, done.output
    assert f"-> {first_new} (already derived: resumed)" in done.stdout
    assert f"takedown {taken.id} applied at ledger index" in done.stdout
    assert [v for v in removed_versions(home).values() if v["takedown"] == taken.id]
    again = CliRunner().invoke(app, ["takedown", "apply", taken.id, "--home", str(home.path)], env=env)
    assert again.exit_code == 2 and "already applied" in again.stderr
    shown = CliRunner().invoke(app, ["takedown", "show", taken.id, "--json", "--home", str(home.path)], env=env)
    assert json.loads(shown.stdout)["applied"][0]["id"] == taken.id


def test_reports_show_the_takedown_and_verify(corpus, cast, tmp_path):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, _, _, _, _ = corpus
    env = {"CUSTODY_KEY": str(cast.key_file("admin"))}
    pubkey = CliRunner().invoke(app, ["ledger", "pubkey", "--home", str(home.path)], env=env).stdout.strip()
    for target, says in (
        ("books@1", "taken down; replaced by books@1-td-"),
        ("tiny-run-0001abcd", "tainted: read books@1+norm"),
        ("tiny-tune-0002abcd", "tainted: started from run tiny-run-0001abcd"),
        (f"books@1-{_first_request(home)}", "this version replaces books@1 without 1 record(s) (removed)"),
    ):
        out = tmp_path / f"{target}.md"
        done = CliRunner().invoke(app, ["report", target, "--out", str(out), "--home", str(home.path)], env=env)
        assert done.exit_code == 0, done.output
        text = out.read_text(encoding="utf-8")
        assert "## Takedowns" in text and says in text and "Estate of W. Shakespeare: copyright" in text, target
        done = CliRunner().invoke(app, ["verify-report", str(out), "--key", pubkey])
        assert done.exit_code == 0, done.output


def test_a_field_request_keeps_only_the_values_digest_and_removes_every_record_with_it(corpus, cast, tmp_path):
    from typer.testing import CliRunner

    from custody.cli.main import app
    from custody.datasets.card import CARD_TEMPLATE, parse_card
    from custody.datasets.readers import Fields

    home, _, books, _, _ = corpus
    folder = tmp_path / "essays"
    folder.mkdir()
    authors = ["Jane Q. Doe", "Someone Else", "jane  q. DOE", "Another Writer"]
    with open(folder / "part.jsonl", "w", encoding="utf-8") as out:
        for i, author in enumerate(authors):
            out.write(json.dumps({"id": f"essay-{i}", "text": books[i], "author": author}) + "\n")
    DatasetRegistry(home).register([folder], DatasetRef("essays", "1"), parse_card(CARD_TEMPLATE), Fields(id="id"))
    env = {"CUSTODY_KEY": str(cast.key_file("eve"))}
    h = ["--home", str(home.path)]
    done = CliRunner().invoke(app, ["find", "--field", "author=Jane Q. Doe", "--json", *h], env=env)
    assert done.exit_code == 0, done.output
    assert [(x["dataset"], x["record_id"]) for x in json.loads(done.stdout)["hits"]] == [
        ("essays@1", "essay-0"),
        ("essays@1", "essay-2"),
    ]
    for bad in ("author", "text=x", "author="):
        done = CliRunner().invoke(app, ["find", "--field", bad, *h], env=env)
        assert done.exit_code == 2 and "--field" in done.stderr, bad
    asked = ["takedown", "request", "--by", "Jane Q. Doe", "--reason", "personal data", "--field", "author=jane q. doe"]
    done = CliRunner().invoke(app, [*asked, "--json", *h], env=env)
    assert done.exit_code == 0, done.output
    request_id = json.loads(done.stdout)["id"]
    row = next(
        iter(home.storage.entries(0, 100_000, type_prefix="takedown.requested/", subject=f"takedown:{request_id}"))
    )
    assert b"doe" not in row.entry.lower().replace(b"jane q. doe", b"") and b'"field":"author"' in row.entry
    done = apply(home, request_id, cast.person(home, APPROVER), say=lambda _: None)
    [change] = done.body["versions"]
    assert (change["old"], change["removed"]) == ("essays@1", 2)
    kept = [r.id for _, r in DatasetRegistry(home).get(change["new"]).records()]
    assert kept == ["essay-1", "essay-3"]


def test_the_gate_denies_a_run_starting_from_a_tainted_checkpoint(corpus, cast):
    from custody.policy.gate import run_gate
    from custody.policy.inputs import RunContext
    from custody.policy.schema import load_policy

    home, _, _, _, datasets = corpus
    finished = home.storage.entries(0, 100_000, type_prefix="run.finished/", subject="run:tiny-run-0001abcd")
    model = json.loads(next(iter(finished)).entry)["body"]["model_digest"]
    eve, policy = cast.person(home, "eve"), load_policy("default")
    tainted = RunContext("next-tune", "eve", start_checkpoint=model)
    result = run_gate(home, [datasets["other"]], policy, purpose="commercial", run=tainted, actor=eve)
    [reason] = [r for r in result.decision.reasons if r.rule == "takedown.tainted-start"]
    assert reason.subject == "run:next-tune" and "of run tiny-run-0001abcd, tainted by takedown td-" in reason.message
    clean = RunContext("next-tune", "eve", start_checkpoint="0" * 64)
    result = run_gate(home, [datasets["other"]], policy, purpose="commercial", run=clean, actor=eve)
    assert not [r for r in result.decision.reasons if r.rule == "takedown.tainted-start"]


def test_gc_for_an_unknown_or_unapplied_takedown_is_refused(corpus, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, _, books, _, _ = corpus
    env = {"CUSTODY_KEY": str(cast.key_file("admin"))}
    size = home.ledger.size
    unknown = (("td-00000000", "no takedown request td-00000000"), ("nonsense", "not a takedown request id"))
    for takedown, says in unknown:
        done = CliRunner().invoke(app, ["store", "gc", "--takedown", takedown, "--home", str(home.path)], env=env)
        assert done.exit_code == 2 and says in done.stderr, done.output
    pending = _request(home, cast, passage_of(books[27]))
    done = CliRunner().invoke(app, ["store", "gc", "--takedown", pending.id, "--home", str(home.path)], env=env)
    assert done.exit_code == 2 and "has not been applied" in done.stderr
    assert home.ledger.size == size + 1  # only the request itself was recorded
