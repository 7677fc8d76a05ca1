"""Hand-over consistency proofs: `custody ledger consistency-proof OLD --out FILE` and
`custody ledger verify-consistency FILE --key KEY [--witness-key WKEY ...]`.

Whoever holds an old checkpoint gets a file that shows, offline and with nothing but the log's
key, that today's log extends it; a tampered proof, a forked old checkpoint or a missing
cosignature fails with exit 1, a malformed file with exit 2.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.home import Home
from custody.ledger import verifier as verifier_module
from custody.ledger.verifier import (
    CONSISTENCY_FORMAT,
    Checkpoint,
    ForkError,
    parse_checkpoint_body,
    parse_signed_note,
    verify_consistency_bundle,
)
from custody.witness.cosigner import Cosigner
from witness_data import assert_ok, cli, grow, one_line_error

CUSTODY = Path(sys.executable).with_name("custody")


def checkpoint_count(path: Path) -> int:
    db = sqlite3.connect(f"file:{path / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
    finally:
        db.close()


@pytest.fixture(scope="module")
def handed_over(tmp_path_factory):
    """A home, an old checkpoint at size 6 (written by the CLI), 9 more entries, and the hand-over."""
    root = tmp_path_factory.mktemp("handover")
    path = root / "home"
    Home.init(path).close()
    grow(path, 5, "early")
    old = root / "old.note"
    assert_ok(cli("ledger", "checkpoint", "--out", old, "--home", path))
    grow(path, 9, "later")
    before = checkpoint_count(path)
    out = root / "handover.json"
    result = cli("ledger", "consistency-proof", old, "--out", out, "--home", path)
    assert_ok(result)
    assert "size 15 extends size 6" in result.stdout
    assert checkpoint_count(path) == before + 1  # the head had moved: a checkpoint was signed for it
    key = Home.open(path).config.verifier_key
    return path, old, out, key


def test_document_shape(handed_over) -> None:
    path, old, out, key = handed_over
    doc = json.loads(out.read_text())
    assert doc["format"] == CONSISTENCY_FORMAT == "custody.consistency-proof/v1"
    assert (doc["old_size"], doc["new_size"], doc["origin"]) == (6, 15, key.split("+")[0])
    assert doc["old_checkpoint"] == old.read_text()
    assert doc["new_checkpoint"] == Home.open(path).ledger.latest_checkpoint()
    home = Home.open(path)
    assert [base64.b64decode(p) for p in doc["proof"]] == home.ledger.consistency_proof(6, 15)
    home.close()


def test_verifies_offline_with_only_the_file_and_the_key(handed_over, tmp_path: Path) -> None:
    _, _, out, key = handed_over
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    shutil.copy(out, auditor / "handover.json")
    env = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_HOME", "CUSTODY_DATABASE")}
    proc = subprocess.run(
        [str(CUSTODY), "ledger", "verify-consistency", "handover.json", "--key", key],
        capture_output=True,
        text=True,
        cwd=auditor,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "consistent: size 15" in proc.stdout and "extends size 6" in proc.stdout
    assert sorted(p.name for p in auditor.iterdir()) == ["handover.json"]  # made no home

    # The standalone verifier, copied next to the file, run with no custody on the path.
    shutil.copy(verifier_module.__file__, auditor / "verifier.py")
    run = [sys.executable, "-I", "verifier.py", "handover.json", key]
    proc = subprocess.run(run, capture_output=True, text=True, cwd=auditor, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "size 15" in proc.stdout


def test_same_size_hand_over(handed_over, tmp_path: Path) -> None:
    path, _, _, key = handed_over
    latest = tmp_path / "latest.note"
    latest.write_text(Home.open(path).ledger.latest_checkpoint())
    before = checkpoint_count(path)
    out = tmp_path / "same.json"
    assert_ok(cli("ledger", "consistency-proof", latest, "--out", out, "--home", path))
    assert checkpoint_count(path) == before  # the head had not moved: nothing new signed
    doc = json.loads(out.read_text())
    assert doc["old_size"] == doc["new_size"] == 15 and doc["proof"] == []
    assert_ok(cli("ledger", "verify-consistency", out, "--key", key))


def _flip(text: str, at: int = 5) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at % len(raw)] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _edited(doc: dict, where: str) -> dict:
    doc = json.loads(json.dumps(doc))
    if where == "proof_bit":
        doc["proof"][1] = _flip(doc["proof"][1])
    elif where == "proof_dropped":
        doc["proof"] = doc["proof"][:-1]
    elif where == "proof_extended":
        doc["proof"] = [*doc["proof"], doc["proof"][0]]
    elif where == "proof_reordered":
        doc["proof"] = doc["proof"][::-1]
    elif where == "new_root":
        lines = doc["new_checkpoint"].split("\n")
        lines[2] = _flip(lines[2])
        doc["new_checkpoint"] = "\n".join(lines)
    elif where == "new_signature":
        lines = doc["new_checkpoint"].split("\n")
        dash, name, signature = lines[-2].split(" ")
        lines[-2] = f"{dash} {name} {_flip(signature, 40)}"
        doc["new_checkpoint"] = "\n".join(lines)
    elif where == "swapped":
        doc["old_checkpoint"], doc["new_checkpoint"] = doc["new_checkpoint"], doc["old_checkpoint"]
        doc.pop("old_size"), doc.pop("new_size")
    elif where == "old_size_copy":
        doc["old_size"] = 7
    else:
        raise AssertionError(where)
    return doc


@pytest.mark.parametrize(
    "where",
    [
        "proof_bit",
        "proof_dropped",
        "proof_extended",
        "proof_reordered",
        "new_root",
        "new_signature",
        "swapped",
        "old_size_copy",
    ],
)
def test_tampered_hand_over_fails(handed_over, tmp_path: Path, where: str) -> None:
    _, _, out, key = handed_over
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(_edited(json.loads(out.read_text()), where)))
    one_line_error(cli("ledger", "verify-consistency", bad, "--key", key), 1, "tampered.json")
    proc = subprocess.run([sys.executable, "-I", verifier_module.__file__, str(bad), key], capture_output=True)
    assert proc.returncode == 1, proc.stderr


def test_forked_old_checkpoint(handed_over, tmp_path: Path) -> None:
    """The operator signed another root at size 6 (they hold the key): the two cannot both be true."""
    path, old, out, key = handed_over
    home = Home.open(path)
    try:
        signer = home.signer()
        body = parse_checkpoint_body(parse_signed_note(old.read_text()).text)
        forked = signer.sign(Checkpoint(body.origin, body.size, hashlib.sha256(b"another history").digest()).body())
    finally:
        home.close()
    doc = json.loads(out.read_text())
    doc["old_checkpoint"] = forked
    with pytest.raises(ForkError):
        verify_consistency_bundle(json.dumps(doc), Home.open(path).verifier_key)
    bad = tmp_path / "forked.json"
    bad.write_text(json.dumps(doc))
    one_line_error(cli("ledger", "verify-consistency", bad, "--key", key), 1, "does not extend")

    # The log refuses to hand over a proof for it: it is a fork of its history (evidence printed).
    forked_file = tmp_path / "forked.note"
    forked_file.write_text(forked)
    result = cli("ledger", "consistency-proof", forked_file, "--out", tmp_path / "never.json", "--home", path)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "never.json").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"\xff\xfe binary",
        b"[1, 2]",
        b'{"format": "custody.consistency-proof/v2"}',
        b'{"format": "custody.inclusion-proof/v1"}',
    ],
)
def test_malformed_file_exits_2(handed_over, tmp_path: Path, content: bytes) -> None:
    key = handed_over[3]
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    one_line_error(cli("ledger", "verify-consistency", bad, "--key", key), 2, "bad.json")


@pytest.mark.parametrize("field", ["old_checkpoint", "new_checkpoint", "proof"])
def test_missing_or_mistyped_field_exits_2(handed_over, tmp_path: Path, field: str) -> None:
    _, _, out, key = handed_over
    for value in (None, 5):
        doc = json.loads(out.read_text())
        doc[field] = value
        bad = tmp_path / "fields.json"
        bad.write_text(json.dumps(doc))
        one_line_error(cli("ledger", "verify-consistency", bad, "--key", key), 2, "fields.json", field)


def test_bad_key_and_missing_file(handed_over, tmp_path: Path) -> None:
    _, _, out, key = handed_over
    one_line_error(cli("ledger", "verify-consistency", out, "--key", "junk"), 2, "--key")
    one_line_error(cli("ledger", "verify-consistency", tmp_path / "absent.json", "--key", key), 2, "not found")
    other = tmp_path / "other"
    Home.init(other).close()
    one_line_error(cli("ledger", "verify-consistency", out, "--key", Home.open(other).config.verifier_key), 1)
    # An old checkpoint of another log, or not a checkpoint at all, handed to consistency-proof.
    foreign = tmp_path / "foreign.note"
    foreign.write_text(Home.open(other).ledger.latest_checkpoint())
    path = handed_over[0]
    one_line_error(cli("ledger", "consistency-proof", foreign, "--out", tmp_path / "x.json", "--home", path), 1)
    garbage = tmp_path / "garbage.note"
    garbage.write_text("hello\n")
    one_line_error(
        cli("ledger", "consistency-proof", garbage, "--out", tmp_path / "x.json", "--home", path), 2, "garbage.note"
    )
    assert not (tmp_path / "x.json").exists()


def test_required_witness_cosignature(tmp_path: Path) -> None:
    """The new checkpoint carries the cosignatures kept for it; --witness-key requires them."""
    path = tmp_path / "home"
    Home.init(path).close()
    old = tmp_path / "old.note"
    assert_ok(cli("ledger", "checkpoint", "--out", old, "--home", path))
    grow(path, 4, "more")
    witness = Cosigner("witness.test/handover", Ed25519PrivateKey.generate())
    stranger = Cosigner("witness.test/stranger", Ed25519PrivateKey.generate())
    home = Home.open(path)
    try:
        note = home.checkpoint()
        home.ledger.add_cosignature(home.ledger.size, witness.key, witness.cosign(note))
    finally:
        home.close()
    out = tmp_path / "handover.json"
    assert_ok(cli("ledger", "consistency-proof", old, "--out", out, "--home", path))
    key = Home.open(path).config.verifier_key
    result = cli("ledger", "verify-consistency", out, "--key", key, "--witness-key", str(witness.key))
    assert_ok(result)
    assert "cosigned by witness.test/handover" in result.stdout
    one_line_error(
        cli("ledger", "verify-consistency", out, "--key", key, "--witness-key", str(stranger.key)),
        1,
        "witness.test/stranger",
    )
    one_line_error(cli("ledger", "verify-consistency", out, "--key", key, "--witness-key", key), 2, "--witness-key")
