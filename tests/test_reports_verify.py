"""`custody verify-report`: a fresh report verifies offline with the ledger's key alone; one
changed byte in a cited entry, a proof, a checkpoint, a claim, the seal or the human-readable
text fails with exit 1 and says what failed; a wrong key fails; a file that is no report exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.home import Home
from custody.reports.build import build_report
from custody.reports.layout import parse
from custody.reports.verify import ReportInputError, verify_report
from report_data import OWNER, report_home

runner = CliRunner()


@pytest.fixture(scope="module")
def reports(tmp_path_factory, shared_data: Path, cast):
    built = report_home(tmp_path_factory, shared_data, cast)
    home = Home.open(built.path)
    out = tmp_path_factory.mktemp("reports")
    files = {}
    for target in ("mix@1", built.run_id):
        for fmt in ("md", "html", "json"):
            path = out / f"{target}.{fmt}"
            path.write_bytes(build_report(home, target, fmt).data)
            files[(target, fmt)] = path
    key = str(home.verifier_key)
    yield built, home, files, key
    home.close()


@pytest.fixture(autouse=True)
def reporter_key(cast, monkeypatch: pytest.MonkeyPatch) -> None:
    """`custody report` names whoever takes the report: the registrar, by their key."""
    monkeypatch.setenv("CUSTODY_KEY", str(cast.key_file(OWNER)))


def cli(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def flip(data: bytes, segment: str, offset: int = 0, after: tuple[bytes, ...] = ()) -> bytes:
    """Change one character of `segment`'s first occurrence in the report document (at `offset` in it)."""
    start = max(data.rfind(b"```json custody-report"), data.rfind(b'id="custody-report"'), 0)
    for marker in after:  # e.g. inside the seal, then inside its proof
        start = data.index(marker, start)
    at = data.index(segment.encode(), start) + offset
    old = chr(data[at])
    new = {"0": "1", "a": "b"}.get(old, "0" if old != "0" else "1")
    if old.isalpha() and old.lower() not in "abcdef":
        new = "x" if old != "x" else "y"
    changed = data[:at] + new.encode() + data[at + 1 :]
    assert len(changed) == len(data) and changed != data
    return changed


def escaped(text: str) -> str:
    """How a string appears inside the report's JSON text."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def tampered(tmp_path: Path, path: Path, data: bytes) -> Path:
    bad = tmp_path / f"tampered-{path.name}"
    bad.write_bytes(data)
    return bad


def test_fresh_reports_verify_with_the_library_and_the_cli(reports):
    _, home, files, key = reports
    for (target, fmt), path in files.items():
        result = verify_report(path.read_bytes(), home.verifier_key)
        assert result.ok, (target, fmt, result.problems)
        assert result.fmt == fmt and result.entries_verified == result.claims_checked > 0
        doc = parse(path.read_bytes()).doc
        assert result.sealed_at == doc["seal"]["index"] and result.tree_size == doc["anchors"]["tree_size"]
    code, output = cli("verify-report", str(files[("mix@1", "html")]), "--key", key)
    assert code == 0 and "verified (html report on dataset:mix@1)" in output, output


def test_the_cli_writes_reports_and_accepts_a_key_file(reports, tmp_path: Path):
    built, _, _, key = reports
    out = tmp_path / "run.md"
    code, output = cli("report", built.run_id, "--format", "md", "--out", str(out), "--home", str(built.path), "--json")
    assert code == 0, output
    summary = json.loads(output)
    assert summary["subject"] == f"run:{built.run_id}" and out.read_bytes()
    key_file = tmp_path / "ledger.pub"
    key_file.write_text(key + "\n")
    code, output = cli("verify-report", str(out), "--key", str(key_file), "--json")
    assert code == 0 and json.loads(output)["ok"], output


def test_every_cited_decision_and_check_is_anchored(reports):
    _, _, files, _ = reports
    doc = parse(files[("mix@1", "json")].read_bytes()).doc
    anchored = {e["index"] for e in doc["anchors"]["entries"]}
    assert {c["ledger_index"] for c in doc["checks"].values()} <= anchored
    assert {d["ledger_index"] for d in doc["decisions"]} <= anchored and doc["decisions"]
    assert all(e["proof"] and len(e["leaf_hash"]) == 64 for e in doc["anchors"]["entries"])


def _first_anchor(path: Path) -> dict:
    return parse(path.read_bytes()).doc["anchors"]["entries"][0]


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
@pytest.mark.parametrize(
    "what, expected",
    [
        ("entry", "do not hash to its leaf hash"),
        ("leaf", "do not hash to its leaf hash"),
        ("proof", "inclusion proof does not lead to the expected root"),
        ("signature", "anchors' signed checkpoint: signature by"),
        ("checkpoint root", "anchors' signed checkpoint"),
        ("claim", "differs from the entry"),
        ("seal entry", "seal (ledger entry"),
        ("seal proof", "seal (ledger entry"),
    ],
)
def test_one_changed_byte_fails_and_says_where(reports, tmp_path: Path, fmt: str, what: str, expected: str):
    built, _, files, key = reports
    path = files[(built.run_id, fmt)]
    data = path.read_bytes()
    doc = parse(data).doc
    anchor = doc["anchors"]["entries"][0]
    if what == "entry":
        ts = json.loads(anchor["entry"])["ts"]
        segment = escaped(anchor["entry"])
        data = flip(data, segment, segment.index(ts) + len(ts) - 2)
    elif what == "leaf":
        data = flip(data, anchor["leaf_hash"], 5)
    elif what == "proof":
        data = flip(data, anchor["proof"][0], 10)
    elif what == "signature":
        note = escaped(doc["anchors"]["checkpoint"])
        data = flip(data, note, len(note) - 10)
    elif what == "checkpoint root":
        note = doc["anchors"]["checkpoint"]
        root_line = note.split("\n")[2]
        data = flip(data, escaped(note), len(escaped("\n".join(note.split("\n")[:2]) + "\n")) + 3)
        assert root_line
    elif what == "claim":
        claim = doc["run"]["finished"]
        data = flip(data, f'"model_digest": "{claim["model_digest"]}', 20)
    elif what == "seal entry":
        segment = escaped(doc["seal"]["entry"])
        data = flip(data, segment, segment.index(doc["seal"]["entry"].split('"digest":"')[1][:8]))
    elif what == "seal proof":
        data = flip(data, doc["seal"]["proof"][-1], 3, after=(b'"seal": {', b'"proof": ['))
    code, output = cli("verify-report", str(tampered(tmp_path, path, data)), "--key", key)
    assert code == 1, output
    assert expected in output, output


def test_a_claim_edit_is_named_even_though_the_seal_catches_it_too(reports, tmp_path: Path):
    _, home, files, _ = reports
    path = files[("mix@1", "json")]
    data = path.read_bytes().replace(b'"decision": "needs-review"', b'"decision": "allow-review"', 1)
    result = verify_report(data, home.verifier_key)
    assert not result.ok
    assert any("claim on ledger entry" in p and "policy.decision/v2" in p for p in result.problems), result.problems
    assert any("does not match the digest recorded" in p for p in result.problems), result.problems


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("signed_with", "names another signing key than the entry's signature"),
        ("method", "its attestation differs from the entry's"),
    ],
)
def test_who_signed_a_review_is_checked_against_the_entry(reports, field: str, expected: str):
    _, home, files, _ = reports
    data = files[("mix@1", "json")].read_bytes()
    doc = parse(data).doc
    attested = next(r for r in doc["reviews"] if "attest" in r)
    value = attested["signed_with"] if field == "signed_with" else attested["attest"]["method"]
    data = flip(data, f'"{field}": "{value}"', len(field) + 8)
    result = verify_report(data, home.verifier_key)
    assert any(f"claim on ledger entry {attested['ledger_index']}" in p and expected in p for p in result.problems), (
        result.problems
    )


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_one_changed_byte_in_the_human_readable_text_fails(reports, tmp_path: Path, fmt: str):
    _, _, files, key = reports
    path = files[("mix@1", fmt)]
    data = path.read_bytes().replace(b"Provenance fields", b"Provenance fieldz", 1)
    code, output = cli("verify-report", str(tampered(tmp_path, path, data)), "--key", key)
    assert code == 1 and f"the human-readable {fmt} text was edited" in output, output


def test_reformatted_json_fails_even_when_it_means_the_same(reports, tmp_path: Path):
    _, home, files, _ = reports
    data = files[("mix@1", "json")].read_bytes().replace(b'\n  "anchors"', b'\n   "anchors"', 1)
    result = verify_report(data, home.verifier_key)
    assert any("not as custody wrote it" in p for p in result.problems), result.problems


def test_a_wrong_key_fails(reports, tmp_path: Path):
    _, _, files, _ = reports
    other = Home.init(tmp_path / "other")
    code, output = cli("verify-report", str(files[("mix@1", "md")]), "--key", str(other.verifier_key))
    other.close()
    assert code == 1 and "no signature by key" in output, output


def test_malformed_input_exits_2(reports, tmp_path: Path):
    _, home, files, key = reports
    junk = tmp_path / "junk.md"
    junk.write_text("# just notes\n")
    assert cli("verify-report", str(junk), "--key", key)[0] == 2
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(files[("mix@1", "json")].read_bytes()[:500])
    code, output = cli("verify-report", str(truncated), "--key", key)
    assert code == 2 and "not JSON" in output, output
    assert cli("verify-report", str(junk), "--key", "not-a-key")[0] == 2
    assert cli("verify-report", str(tmp_path / "missing.md"), "--key", key)[0] == 2
    with pytest.raises(ReportInputError):
        verify_report(b'{"format": "something else"}', home.verifier_key)


def test_a_bad_target_exits_2_naming_it(reports, tmp_path: Path):
    built, *_ = reports
    for target in ("nope@1", "tiny-00000000", "not a target"):
        code, output = cli(
            "report", target, "--format", "md", "--out", str(tmp_path / "x.md"), "--home", str(built.path)
        )
        assert code == 2 and target in output, output
    code, output = cli("report", "mix@1", "--format", "pdf", "--out", str(tmp_path / "x"), "--home", str(built.path))
    assert code == 2 and "pdf" in output
