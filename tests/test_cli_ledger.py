"""`custody init` and `custody ledger ...` end to end: happy paths, then bad input.

Bad input must give a one-line error on stderr (never a traceback), a non-zero exit (1 when
something does not verify, 2 for bad input), and leave the ledger exactly as it was.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from custody.cli.main import app
from custody.home import Home
from custody.ledger.signing import load_signer
from custody.ledger.verifier import Checkpoint, parse_checkpoint_body, parse_signed_note, verify_checkpoint

CUSTODY = Path(sys.executable).with_name("custody")
NO_HOME_ENV = {"CUSTODY_HOME": None, "CUSTODY_DATABASE": None, "CUSTODY_KEY": None}
WRITER = "admin"  # init puts the admin on the roster; the fixture's notes and the CLI's are theirs


def cli(*args: str | Path, key: Path | None = None):
    """Run the CLI; `key` is the acting person's private key file (as $CUSTODY_KEY)."""
    env = NO_HOME_ENV | ({"CUSTODY_KEY": str(key)} if key is not None else {})
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def init_args(cast) -> list[str]:
    """What `custody init` needs besides --home: the first admin's name and public key."""
    return ["--admin", WRITER, "--admin-key", f"{cast.key_file(WRITER)}.pub"]


def custody_process(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_HOME", "CUSTODY_DATABASE")}
    return subprocess.run([str(CUSTODY), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


def assert_ok(result) -> None:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)


def assert_clean_error(result, codes: tuple[int, ...] = (2,), mentions: str | None = None) -> str:
    """A one-line `error: ...` on stderr, an expected exit code, no traceback."""
    assert result.exit_code in codes, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    if mentions is not None:
        assert mentions in lines[0], lines[0]
    return lines[0]


def snapshot(path: Path) -> tuple:
    """Head, row counts and checkpoints, read without the library."""
    db = sqlite3.connect(f"file:{path / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        return (
            db.execute("SELECT size, root FROM head").fetchone(),
            db.execute("SELECT COUNT(*), MAX(idx) FROM entries").fetchone(),
            db.execute("SELECT COUNT(*) FROM nodes").fetchone(),
            db.execute("SELECT size, note FROM checkpoints ORDER BY size").fetchall(),
        )
    finally:
        db.close()


@pytest.fixture
def writer_key(cast) -> Path:
    """The private key file of the fixture's writer, for commands that record."""
    return cast.key_file(WRITER)


@pytest.fixture
def home_path(tmp_path: Path, cast) -> Path:
    """A home with five notes after the init entry, and a checkpoint at its head (size 6).

    The notes are the admin's, whom the init entry put on the roster (so no roster entry comes
    between). Built with the library, which is quicker; `test_cli_init_note_show_verify` builds
    one with the CLI.
    """
    path = tmp_path / "home"
    home = cast.init_home(path, admin=WRITER)
    writer = cast.person(home, WRITER)
    for i in range(5):
        home.record("ledger.note/v1", f"s{i}", {"text": f"note {i}"}, actor=writer)
    home.checkpoint()
    home.close()
    return path


def pubkey(path: Path) -> str:
    return Home.open(path).config.verifier_key


def write_proof(home_path: Path, index: int, out: Path) -> dict:
    result = cli("ledger", "proof", str(index), "--out", out, "--home", home_path)
    assert_ok(result)
    assert f"wrote proof of entry {index}" in result.stdout
    return json.loads(out.read_text())


# -- happy paths ------------------------------------------------------------------------------


def test_cli_init_note_show_verify(tmp_path: Path, cast, writer_key: Path) -> None:
    home_path = tmp_path / "home"
    result = cli("init", "--home", home_path, *init_args(cast))
    assert_ok(result)
    assert "initialized custody home" in result.stdout
    for i in range(5):
        result = cli("ledger", "note", f"note {i}", "--subject", f"s{i}", "--home", home_path, key=writer_key)
        assert_ok(result)
        assert f"recorded note at index {i + 1}" in result.stdout
    # A note is recorded under the name the roster binds to the key that signs it: the admin puts
    # alice's key on the roster (entry 6), and her key records her note (entry 7); `--as` only
    # asserts who holds the key.
    alice_key = cast.key_file("alice")
    result = cli(
        "people", "add", "alice", "--key", f"{alice_key}.pub", "--role", "engineer", "--home", home_path, key=writer_key
    )
    assert_ok(result)
    assert "ledger index 6" in result.stdout
    before = snapshot(home_path)
    result = cli("ledger", "note", "not alice's", "--as", "bob", "--home", home_path, key=alice_key)
    assert_clean_error(result, mentions="--as bob")
    assert snapshot(home_path) == before
    result = cli(
        "ledger",
        "note",
        "a legal hold was placed",
        "--subject",
        "hold:7",
        "--as",
        "alice",
        "--home",
        home_path,
        key=alice_key,
    )
    assert_ok(result)
    assert "recorded note at index 7" in result.stdout

    result = cli("ledger", "show", "--json", "--home", home_path)
    assert_ok(result)
    rows = json.loads(result.stdout)
    assert [r["index"] for r in rows] == list(range(8))
    assert rows[0]["entry"]["type"] == "home.initialized/v2"
    assert rows[6]["entry"]["type"] == "people.added/v1" and rows[6]["entry"]["body"]["name"] == "alice"
    assert rows[7]["entry"] == rows[7]["entry"] | {
        "type": "ledger.note/v1",
        "actor": "alice",
        "subject": "hold:7",
        "body": {"text": "a legal hold was placed"},
    }
    assert all(len(bytes.fromhex(r["leaf_hash"])) == 32 for r in rows)

    result = cli("ledger", "show", "--json", "--from", "2", "--limit", "3", "--home", home_path)
    assert_ok(result)
    page = json.loads(result.stdout)
    assert [r["index"] for r in page] == [2, 3, 4]
    assert [r["entry"]["body"]["text"] for r in page] == ["note 1", "note 2", "note 3"]

    result = cli("ledger", "show", "--json", "--subject", "hold:7", "--home", home_path)
    assert [r["index"] for r in json.loads(result.stdout)] == [7]

    result = cli("ledger", "show", "--home", home_path)  # the table
    assert_ok(result)
    assert "8 of 8 entries" in result.stdout

    result = cli("ledger", "verify", "--home", home_path)
    assert_ok(result)
    assert "ledger intact: 8 entries" in result.stdout
    assert "signatures: all 8 entries signed and permitted (7 person, 1 service)" in result.stdout
    result = cli("ledger", "verify", "--json", "--home", home_path)
    assert_ok(result)
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["size"] == 8 and doc["first_bad_index"] is None and doc["problems"] == []


def test_checkpoint_out_and_pubkey(home_path: Path, tmp_path: Path) -> None:
    result = cli("ledger", "pubkey", "--home", home_path)
    assert_ok(result)
    key_text = result.stdout.strip()
    home = Home.open(home_path)
    assert key_text == home.config.verifier_key == str(home.verifier_key)
    assert key_text.startswith(home.config.origin + "+")

    out = tmp_path / "cp.note"
    result = cli("ledger", "checkpoint", "--out", out, "--home", home_path)
    assert_ok(result)
    note = out.read_text()
    assert result.stdout == note
    checkpoint = verify_checkpoint(note, home.verifier_key)
    assert checkpoint.origin == home.config.origin
    assert (checkpoint.size, checkpoint.root) == home.ledger.head()
    assert home.witness.remembered() == note
    home.close()


def test_key_file_is_private_and_not_in_the_database(home_path: Path) -> None:
    key_file = home_path / "keys" / "ledger.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    pem = key_file.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    stored = b"".join(p.read_bytes() for p in home_path.glob("ledger.sqlite*"))
    assert stored
    for secret in (raw, der, pem.strip(), base64.b64encode(raw), raw.hex().encode()):
        assert secret not in stored
    assert not list((home_path / "witness").glob("*key*"))
    assert pem.strip() not in (home_path / "config.toml").read_bytes()


def test_proof_verifies_offline_without_a_home(home_path: Path, tmp_path: Path) -> None:
    bundle = write_proof(home_path, 3, tmp_path / "proof.json")
    assert bundle["index"] == 3 and bundle["tree_size"] == 6
    key_text = pubkey(home_path)

    result = cli("ledger", "verify-proof", tmp_path / "proof.json", "--key", key_text)
    assert_ok(result)
    assert "verified: entry 3 (ledger.note/v1)" in result.stdout

    # Elsewhere, with no home at all: only the file and the key.
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    (elsewhere / "proof.json").write_bytes((tmp_path / "proof.json").read_bytes())
    proc = custody_process("ledger", "verify-proof", "proof.json", "--key", key_text, cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert "verified: entry 3" in proc.stdout
    assert sorted(p.name for p in elsewhere.iterdir()) == ["proof.json"]  # made no home


def test_proof_beyond_the_last_checkpoint_signs_one(home_path: Path, tmp_path: Path, writer_key: Path) -> None:
    assert_ok(cli("ledger", "note", "late", "--home", home_path, key=writer_key))
    bundle = write_proof(home_path, 6, tmp_path / "late.json")
    assert bundle["tree_size"] == 7
    assert_ok(cli("ledger", "verify-proof", tmp_path / "late.json", "--key", pubkey(home_path)))


def test_consistency_with_an_older_checkpoint(home_path: Path, tmp_path: Path, writer_key: Path) -> None:
    old = tmp_path / "old.note"
    assert_ok(cli("ledger", "checkpoint", "--out", old, "--home", home_path))
    for i in range(9):
        assert_ok(cli("ledger", "note", f"later {i}", "--home", home_path, key=writer_key))
    result = cli("ledger", "consistency", old, "--home", home_path)
    assert_ok(result)
    assert "consistent: size 15 extends size 6" in result.stdout
    # Same size: trivially consistent.
    now = tmp_path / "now.note"
    assert_ok(cli("ledger", "checkpoint", "--out", now, "--home", home_path))
    result = cli("ledger", "consistency", now, "--key", pubkey(home_path), "--home", home_path)
    assert_ok(result)
    assert "consistent: size 15 extends size 15" in result.stdout


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["ledger", "note", "x"],
        ["ledger", "show"],
        ["ledger", "verify"],
        ["ledger", "checkpoint"],
        ["ledger", "pubkey"],
        ["ledger", "proof", "0", "--out", "p.json"],
    ],
)
def test_missing_home(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "nowhere"
    line = assert_clean_error(cli(*args, "--home", missing), mentions="no custody home")
    assert str(missing) in line
    assert not missing.exists()


def test_missing_home_in_a_real_process(tmp_path: Path) -> None:
    proc = custody_process("ledger", "verify", cwd=tmp_path)  # default ./.custody, absent
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "no custody home at .custody" in proc.stderr
    assert not (tmp_path / ".custody").exists()


def test_init_twice(home_path: Path, cast) -> None:
    before = snapshot(home_path)
    config = (home_path / "config.toml").read_bytes()
    key = (home_path / "keys" / "ledger.key").read_bytes()
    assert_clean_error(cli("init", "--home", home_path, *init_args(cast)), mentions="already a custody home")
    assert snapshot(home_path) == before
    assert (home_path / "config.toml").read_bytes() == config
    assert (home_path / "keys" / "ledger.key").read_bytes() == key


def test_verify_proof_with_another_homes_key(home_path: Path, tmp_path: Path, cast) -> None:
    write_proof(home_path, 2, tmp_path / "proof.json")
    other = tmp_path / "other"
    assert_ok(cli("init", "--home", other, *init_args(cast)))
    before = snapshot(home_path)
    line = assert_clean_error(
        cli("ledger", "verify-proof", tmp_path / "proof.json", "--key", pubkey(other)), codes=(1,)
    )
    assert "proof.json" in line
    assert snapshot(home_path) == before


@pytest.mark.parametrize(
    "bad_key",
    ["", "not-a-key", "name+zzzz+AAAA", "custody.local/x+00000000+AQ==", "a b+12345678+" + "A" * 44],
)
def test_verify_proof_with_malformed_key(home_path: Path, tmp_path: Path, bad_key: str) -> None:
    write_proof(home_path, 2, tmp_path / "proof.json")
    assert_clean_error(cli("ledger", "verify-proof", tmp_path / "proof.json", "--key", bad_key), mentions="--key")


def test_verify_proof_key_name_mismatch_is_not_a_crash(home_path: Path, tmp_path: Path) -> None:
    """A well-formed key for the right public key but another name (origin) must not verify."""
    write_proof(home_path, 2, tmp_path / "proof.json")
    real = Home.open(home_path).verifier_key
    from custody.ledger.verifier import VerifierKey, key_id

    renamed = VerifierKey("someone.else", key_id("someone.else", real.public_key), real.public_key)
    assert_clean_error(cli("ledger", "verify-proof", tmp_path / "proof.json", "--key", str(renamed)), codes=(1, 2))


@pytest.mark.parametrize("keep", [0, 1, 40, 0.5, -2])
def test_verify_proof_truncated_file(home_path: Path, tmp_path: Path, keep: float) -> None:
    write_proof(home_path, 2, tmp_path / "proof.json")
    text = (tmp_path / "proof.json").read_bytes()
    cut = int(len(text) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(text) + keep)
    (tmp_path / "proof.json").write_bytes(text[:cut])
    before = snapshot(home_path)
    assert_clean_error(
        cli("ledger", "verify-proof", tmp_path / "proof.json", "--key", pubkey(home_path)),
        codes=(1, 2),
        mentions="proof.json",
    )
    assert snapshot(home_path) == before


def test_verify_proof_missing_or_binary_file(home_path: Path, tmp_path: Path) -> None:
    key_text = pubkey(home_path)
    assert_clean_error(cli("ledger", "verify-proof", tmp_path / "absent.json", "--key", key_text), mentions="not found")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    assert_clean_error(
        cli("ledger", "verify-proof", tmp_path / "binary.json", "--key", key_text), mentions="binary.json"
    )
    assert_clean_error(cli("ledger", "verify-proof", tmp_path, "--key", key_text), mentions="directory")


def _flip_b64(text: str, at: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _tamper_bundle(doc: dict, where: str) -> dict:
    doc = dict(doc)
    if where == "entry":
        doc["entry"] = _flip_b64(doc["entry"], 40)
    elif where == "proof":
        doc["proof"] = [_flip_b64(doc["proof"][0], 7), *doc["proof"][1:]]
    elif where == "checkpoint_root":
        lines = doc["checkpoint"].split("\n")
        lines[2] = _flip_b64(lines[2], 3)
        doc["checkpoint"] = "\n".join(lines)
    elif where == "checkpoint_size":
        lines = doc["checkpoint"].split("\n")
        lines[1] = str(int(lines[1]) + 1)
        doc["checkpoint"] = "\n".join(lines)
    elif where == "checkpoint_signature":
        lines = doc["checkpoint"].split("\n")
        dash, name, signature = lines[-2].split(" ")
        lines[-2] = f"{dash} {name} {_flip_b64(signature, 30)}"
        doc["checkpoint"] = "\n".join(lines)
    elif where == "index":
        doc["index"] += 1
    elif where == "tree_size":
        doc["tree_size"] -= 1
    elif where == "proof_dropped":
        doc["proof"] = doc["proof"][:-1]
    elif where == "proof_extended":
        doc["proof"] = [*doc["proof"], doc["proof"][0]]
    elif where == "index_negative":
        doc["index"] = -1
    elif where == "index_huge":
        doc["index"] = 2**70
    elif where == "index_bool":
        doc["index"] = True
    elif where == "tree_size_zero":
        doc["tree_size"] = 0
    elif where == "proof_not_strings":
        doc["proof"] = [5, None]
    elif where == "proof_not_base64":
        doc["proof"] = ["%%%%"]
    elif where == "entry_not_base64":
        doc["entry"] = "not base64!"
    elif where == "checkpoint_not_string":
        doc["checkpoint"] = {"size": 6}
    elif where == "format":
        doc["format"] = "custody.inclusion-proof/v2"
    elif where == "not_an_object":
        return [doc]  # type: ignore[return-value]
    else:
        raise AssertionError(where)
    return doc


@pytest.mark.parametrize(
    "where",
    [
        "entry",
        "proof",
        "checkpoint_root",
        "checkpoint_size",
        "checkpoint_signature",
        "index",
        "tree_size",
        "proof_dropped",
        "proof_extended",
        "index_negative",
        "index_huge",
        "index_bool",
        "tree_size_zero",
        "proof_not_strings",
        "proof_not_base64",
        "entry_not_base64",
        "checkpoint_not_string",
        "format",
        "not_an_object",
    ],
)
def test_verify_proof_with_a_changed_byte(home_path: Path, tmp_path: Path, where: str) -> None:
    doc = write_proof(home_path, 2, tmp_path / "proof.json")
    key_text = pubkey(home_path)
    assert_ok(cli("ledger", "verify-proof", tmp_path / "proof.json", "--key", key_text))
    (tmp_path / "proof.json").write_text(json.dumps(_tamper_bundle(doc, where), indent=2))
    assert_clean_error(
        cli("ledger", "verify-proof", tmp_path / "proof.json", "--key", key_text), codes=(1, 2), mentions="proof.json"
    )


def test_verify_proof_with_one_raw_byte_changed_anywhere(home_path: Path, tmp_path: Path) -> None:
    """Change single characters of the file itself, at spread positions: never exit 0, never crash."""
    write_proof(home_path, 2, tmp_path / "proof.json")
    original = (tmp_path / "proof.json").read_text()
    key_text = pubkey(home_path)
    doc = json.loads(original)
    # positions inside the entry, the proof hash and the checkpoint's root and signature
    positions = [
        original.index(doc["entry"]) + 10,
        original.index(doc["proof"][0]) + 5,
        original.index('"checkpoint"') + 40,
        len(original) - 20,
    ]
    for at in positions:
        replacement = "B" if original[at] != "B" else "C"
        (tmp_path / "proof.json").write_text(original[:at] + replacement + original[at + 1 :])
        result = cli("ledger", "verify-proof", tmp_path / "proof.json", "--key", key_text)
        assert_clean_error(result, codes=(1, 2), mentions="proof.json")


def test_proof_index_beyond_the_ledger(home_path: Path, tmp_path: Path) -> None:
    before = snapshot(home_path)
    assert_clean_error(
        cli("ledger", "proof", "6", "--out", tmp_path / "p.json", "--home", home_path), mentions="index 6"
    )
    assert not (tmp_path / "p.json").exists()
    assert snapshot(home_path) == before
    result = cli("ledger", "proof", "-1", "--out", tmp_path / "p.json", "--home", home_path)
    assert result.exit_code == 2  # rejected by the option parser
    assert snapshot(home_path) == before


def test_consistency_with_a_checkpoint_of_another_home(home_path: Path, tmp_path: Path, cast) -> None:
    other = tmp_path / "other"
    assert_ok(cli("init", "--home", other, *init_args(cast)))
    assert_ok(cli("ledger", "checkpoint", "--out", tmp_path / "other.note", "--home", other))
    before = snapshot(home_path)
    assert_clean_error(cli("ledger", "consistency", tmp_path / "other.note", "--home", home_path), codes=(1, 2))
    assert snapshot(home_path) == before
    # Even when told the other home's key, its checkpoint is not of this log.
    result = cli("ledger", "consistency", tmp_path / "other.note", "--key", pubkey(other), "--home", home_path)
    assert_clean_error(result, codes=(1, 2))
    assert snapshot(home_path) == before


@pytest.mark.parametrize("fork_size", [3, 6])
def test_consistency_reports_a_fork_with_both_notes(home_path: Path, tmp_path: Path, fork_size: int) -> None:
    home = Home.open(home_path)
    origin = home.config.origin
    current = home.ledger.latest_checkpoint()
    assert current is not None and home.ledger.size == 6
    home.close()
    signer = load_signer(home_path / "keys" / "ledger.key", origin)
    forked = signer.sign(Checkpoint(origin, fork_size, b"\x42" * 32).body())
    (tmp_path / "forked.note").write_text(forked)
    before = snapshot(home_path)

    result = cli("ledger", "consistency", tmp_path / "forked.note", "--home", home_path)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr
    assert forked in result.stderr  # the remembered (forked) note, verbatim
    assert current in result.stderr  # and the ledger's own note
    assert "remembered checkpoint" in result.stderr and "presented checkpoint" in result.stderr
    assert snapshot(home_path) == before


def test_consistency_with_malformed_or_missing_checkpoint(home_path: Path, tmp_path: Path) -> None:
    before = snapshot(home_path)
    assert_clean_error(cli("ledger", "consistency", tmp_path / "absent.note", "--home", home_path), mentions="absent")
    good = (home_path / "witness" / "checkpoint").read_text()
    for name, text in {
        "empty.note": "",
        "nosig.note": parse_signed_note(good).text,
        "cut.note": good[: len(good) // 2],
        "junk.note": "hello\nworld\n",
    }.items():
        (tmp_path / name).write_text(text)
        assert_clean_error(
            cli("ledger", "consistency", tmp_path / name, "--home", home_path), codes=(1, 2), mentions=name
        )
    assert snapshot(home_path) == before
    assert parse_checkpoint_body(parse_signed_note(good).text).size == 6


def test_key_file_readable_by_others(home_path: Path, tmp_path: Path, writer_key: Path) -> None:
    key_file = home_path / "keys" / "ledger.key"
    assert_ok(cli("ledger", "note", "not yet checkpointed", "--home", home_path, key=writer_key))
    before = snapshot(home_path)
    os.chmod(key_file, 0o644)
    line = assert_clean_error(cli("ledger", "checkpoint", "--home", home_path), mentions="ledger.key")
    assert "644" in line and "chmod 600" in line
    assert_clean_error(cli("ledger", "proof", "6", "--out", tmp_path / "p.json", "--home", home_path))
    assert not (tmp_path / "p.json").exists()
    assert snapshot(home_path) == before
    os.chmod(key_file, 0o600)
    assert_ok(cli("ledger", "checkpoint", "--home", home_path))


def test_bad_note_input_records_nothing(home_path: Path, writer_key: Path) -> None:
    before = snapshot(home_path)
    assert_clean_error(cli("ledger", "note", "", "--home", home_path, key=writer_key), mentions="text")
    assert_clean_error(cli("ledger", "note", "x" * 10_001, "--home", home_path, key=writer_key), mentions="text")
    # The actor is whoever holds the key: an `--as` that is not the key's roster name is refused,
    # and so is a note without a key.
    result = cli("ledger", "note", "hi", "--as", "two words", "--home", home_path, key=writer_key)
    assert_clean_error(result, mentions=f"--as two words: the key {writer_key} belongs to {WRITER}")
    assert_clean_error(cli("ledger", "note", "hi", "--home", home_path), mentions="--key")
    assert snapshot(home_path) == before


def test_error_naming_a_path_with_brackets(tmp_path: Path) -> None:
    odd = tmp_path / "proof[/]final[red].json"
    result = cli("ledger", "verify-proof", odd, "--key", "k+00000000+AA==")
    line = assert_clean_error(result, mentions="not found")
    assert str(odd) in line  # printed literally, not eaten as markup


def test_show_prints_entries_with_brackets_literally(home_path: Path, writer_key: Path) -> None:
    assert_ok(cli("ledger", "note", "[/] [i]", "--subject", "[/]", "--home", home_path, key=writer_key))
    result = cli("ledger", "show", "--subject", "[/]", "--home", home_path)
    assert_ok(result)
    assert "[i]" in result.stdout  # not eaten as markup
    assert result.stdout.count("[/]") == 2  # the subject and the text
