"""Tamper suite (design/ledger.md, "What proves it" 5): raw SQL behind the library's back.

A template home holds 40 entries with checkpoints signed at sizes 1, 10, 25 and 40 (the witness
file remembers 40): the signed init entry, which puts the admin on the roster, then 39 notes the
admin signed with their own key (so entry i is note i). Each case copies it, drops the
append-only triggers, rewrites history with plain sqlite3, and then both `Ledger.verify` and
`custody ledger verify` must fail, exit 1, and name the first bad index.

Forged entries are signed by an insider: someone on the roster, holding their own key. Their
signatures verify, so only the Merkle tree and the checkpoints can catch the rewrite. Entries
whose signature is missing or not the roster's are appended behind the library's back with an
honest tree by `test_forged_signature_is_caught_by_ledger_verify`: only the signature check
catches those.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.home import Home
from custody.ledger import merkle
from custody.ledger.entry import Entry, make_entry
from custody.ledger.log import LedgerCorrupted
from custody.ledger.verifier import leaf_hash
from custody.trust import sshsig
from custody.trust.acting import Person

SIZE = 40
CHECKPOINT_SIZES = (1, 10, 25, 40)
TRIGGERS = (
    "entries_no_update",
    "entries_no_delete",
    "nodes_no_update",
    "nodes_no_delete",
    "checkpoints_no_update",
    "checkpoints_no_delete",
)
ENTRY_COLUMNS = "entry, leaf_hash, type, ts, actor, subject"
CUSTODY = Path(sys.executable).with_name("custody")
WRITER = "admin"  # init puts the admin on the roster: no roster entry shifts the note indices


# -- building and tampering --------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, cast) -> Path:
    path = tmp_path_factory.mktemp("tamper") / "template"
    home = cast.init_home(path)  # entry 0 (naming the admin) and a checkpoint at size 1
    writer = cast.person(home, WRITER)
    for i in range(1, SIZE):
        home.record("ledger.note/v1", f"subject-{i}", {"text": f"note number {i}"}, actor=writer)
        if home.ledger.size in CHECKPOINT_SIZES:
            home.checkpoint()
    assert home.ledger.size == SIZE
    assert [c[0] for c in home.storage.checkpoints()] == list(CHECKPOINT_SIZES)
    assert home.ledger.verify(home.verifier_key, home.witness.remembered()).ok
    home.close()
    return path


@pytest.fixture(scope="module")
def insider(cast) -> Person:
    """The template's writer, holding their key: what they forge carries a valid signature."""
    return Person(WRITER, cast.signer(WRITER), frozenset({"admin"}))


@pytest.fixture
def copy_home(template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "home"
    shutil.copytree(template, path)
    return path


def raw_db(path: Path, drop_triggers: bool = True) -> sqlite3.Connection:
    db = sqlite3.connect(path / "ledger.sqlite", isolation_level=None)
    if drop_triggers:
        for trigger in TRIGGERS:
            db.execute(f"DROP TRIGGER {trigger}")
    return db


def edge_at(db: sqlite3.Connection, size: int) -> merkle.RightEdge:
    """The right edge of the first `size` stored leaves, from the stored hashes."""
    hashes = []
    for level, idx in merkle.perfect_nodes(0, size):
        if level == 0:
            row = db.execute("SELECT leaf_hash FROM entries WHERE idx = ?", (idx,)).fetchone()
        else:
            row = db.execute("SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, idx)).fetchone()
        hashes.append(row[0])
    return merkle.RightEdge(size, hashes)


def truncate_honestly(db: sqlite3.Connection, size: int) -> None:
    """Drop entries >= size and every node they fed, and set a head that is right for the rest."""
    db.execute("DELETE FROM entries WHERE idx >= ?", (size,))
    db.execute("DELETE FROM nodes WHERE ((idx + 1) << level) > ?", (size,))
    db.execute("UPDATE head SET size = ?, root = ? WHERE id = 0", (size, edge_at(db, size).root()))


def append_honestly(db: sqlite3.Connection, entries: list[Entry]) -> None:
    """Append entries after the stored head, with their nodes and the head computed honestly."""
    (size,) = db.execute("SELECT size FROM head WHERE id = 0").fetchone()
    edge = edge_at(db, size)
    for entry in entries:
        leaf = leaf_hash(entry.raw)
        db.execute(
            f"INSERT INTO entries (idx, {ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (edge.size, entry.raw, leaf, entry.type, entry.ts, entry.actor, entry.subject),
        )
        db.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", edge.append(leaf))
    db.execute("UPDATE head SET size = ?, root = ? WHERE id = 0", (edge.size, edge.root()))


def replace_tail(db: sqlite3.Connection, insider: Person, start: int, end: int) -> None:
    """Rewrite entries [start, end) with forged ones the insider signed, with nodes and head
    recomputed honestly."""
    truncate_honestly(db, start)
    forged = [
        make_entry("ledger.note/v1", insider.name, f"subject-{i}", {"text": f"forged note {i}"}, sign=insider.sign)
        for i in range(start, end)
    ]
    append_honestly(db, forged)


def edit_entry_byte(db: sqlite3.Connection, _insider: Person) -> None:
    # The edited bytes no longer match their signature either: `custody ledger verify` reports
    # that at the same index 17.
    (raw,) = db.execute("SELECT entry FROM entries WHERE idx = 17").fetchone()
    edited = bytearray(raw)
    at = raw.index(b"note number 17") + len("note number 1")
    edited[at] = ord("8")  # "17" -> "18": still a valid envelope, different bytes
    db.execute("UPDATE entries SET entry = ? WHERE idx = 17", (bytes(edited),))


def edit_entry_and_leaf(db: sqlite3.Connection, insider: Person) -> None:
    """Forge entry 18 consistently: new bytes with a valid signature, their leaf hash, matching columns."""
    (ts,) = db.execute("SELECT ts FROM entries WHERE idx = 18").fetchone()
    forged = make_entry("ledger.note/v1", insider.name, "subject-18", {"text": "forged"}, ts=ts, sign=insider.sign)
    db.execute(
        "UPDATE entries SET entry = ?, leaf_hash = ?, type = ?, actor = ?, subject = ? WHERE idx = 18",
        (forged.raw, leaf_hash(forged.raw), forged.type, forged.actor, forged.subject),
    )


def edit_indexed_column(db: sqlite3.Connection, _insider: Person) -> None:
    db.execute("UPDATE entries SET subject = 'someone-else' WHERE idx = 33")


def delete_middle_row(db: sqlite3.Connection, _insider: Person) -> None:
    db.execute("DELETE FROM entries WHERE idx = 20")


def swap_rows(db: sqlite3.Connection, _insider: Person) -> None:
    i, j = 12, 30
    row_i = db.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE idx = ?", (i,)).fetchone()
    row_j = db.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE idx = ?", (j,)).fetchone()
    assignments = ", ".join(f"{c} = ?" for c in ENTRY_COLUMNS.split(", "))
    db.execute(f"UPDATE entries SET {assignments} WHERE idx = ?", (*row_j, i))
    db.execute(f"UPDATE entries SET {assignments} WHERE idx = ?", (*row_i, j))


def truncate_tail(db: sqlite3.Connection, _insider: Person) -> None:
    truncate_honestly(db, 30)  # the stored checkpoint at 40 is left behind


def truncate_tail_and_checkpoints(db: sqlite3.Connection, _insider: Person) -> None:
    truncate_honestly(db, 30)
    db.execute("DELETE FROM checkpoints WHERE size > 30")  # only the witness file remembers 40


def truncate_tail_lazily(db: sqlite3.Connection, _insider: Person) -> None:
    db.execute("DELETE FROM entries WHERE idx >= 30")  # nodes and head left as they were


def replace_tail_under_checkpoint(db: sqlite3.Connection, insider: Person) -> None:
    replace_tail(db, insider, 25, SIZE)  # the stored checkpoint at 40 covers the forged range


def replace_tail_and_checkpoints(db: sqlite3.Connection, insider: Person) -> None:
    replace_tail(db, insider, 25, SIZE)
    db.execute("DELETE FROM checkpoints WHERE size > 25")  # only the witness file remembers 40


def edit_node(db: sqlite3.Connection, _insider: Person) -> None:
    db.execute("UPDATE nodes SET hash = ? WHERE level = 2 AND idx = 5", (b"\x5a" * 32,))  # leaves [20, 24)


def edit_head_root(db: sqlite3.Connection, _insider: Person) -> None:
    db.execute("UPDATE head SET root = ? WHERE id = 0", (b"\x00" * 32,))


def edit_checkpoint_note(db: sqlite3.Connection, _insider: Person) -> None:
    (note,) = db.execute("SELECT note FROM checkpoints WHERE size = 25").fetchone()
    root_line = note.split("\n")[2]
    forged_root = base64.b64encode(b"\x01" * 32).decode()
    db.execute("UPDATE checkpoints SET note = ? WHERE size = 25", (note.replace(root_line, forged_root),))


def edit_checkpoint_root_column(db: sqlite3.Connection, _insider: Person) -> None:
    db.execute("UPDATE checkpoints SET root = ? WHERE size = 25", (b"\x02" * 32,))


def corrupt_checkpoint_signature(db: sqlite3.Connection, _insider: Person) -> None:
    (note,) = db.execute("SELECT note FROM checkpoints WHERE size = 25").fetchone()
    signature = note.rstrip("\n").split("\n")[-1].split(" ")[-1]
    raw = bytearray(base64.b64decode(signature))
    raw[20] ^= 0x01  # inside the Ed25519 signature, after the 4-byte key id
    db.execute(
        "UPDATE checkpoints SET note = ? WHERE size = 25",
        (note.replace(signature, base64.b64encode(bytes(raw)).decode()),),
    )


Tamper = Callable[[sqlite3.Connection, Person], None]
Case = tuple[Tamper, int, str]
CASES: dict[str, Case] = {
    # name: (tamper, expected first bad index, a phrase the problem list must contain)
    "edit_entry_byte": (edit_entry_byte, 17, "entry bytes do not match their stored leaf hash"),
    "edit_entry_and_leaf": (edit_entry_and_leaf, 18, "node (1, 9) does not match entries [18, 20)"),
    "edit_indexed_column": (edit_indexed_column, 33, "indexed columns differ from the entry bytes"),
    "delete_middle_row": (delete_middle_row, 20, "entry 20 is missing"),
    "swap_rows": (swap_rows, 12, "node (1, 6) does not match entries [12, 14)"),
    "truncate_tail": (truncate_tail, 30, "checkpoint at size 40 is beyond the 30 stored entries"),
    "truncate_tail_and_checkpoints": (
        truncate_tail_and_checkpoints,
        30,
        "remembered checkpoint at size 40 is beyond the 30 stored entries",
    ),
    "truncate_tail_lazily": (truncate_tail_lazily, 30, "head says 40 entries but 30 are stored"),
    "replace_tail_under_checkpoint": (
        replace_tail_under_checkpoint,
        25,
        "checkpoint at size 40 does not match the entries: history in [25, 40) was rewritten",
    ),
    "replace_tail_and_checkpoints": (
        replace_tail_and_checkpoints,
        25,
        "remembered checkpoint at size 40 does not match the entries: history in [25, 40) was rewritten",
    ),
    "edit_node": (edit_node, 20, "node (2, 5) does not match entries [20, 24)"),
    "edit_head_root": (edit_head_root, 40, "head root does not match the entries"),
    "edit_checkpoint_note": (edit_checkpoint_note, 25, "checkpoint at size 25: signature"),
    "edit_checkpoint_root_column": (edit_checkpoint_root_column, 25, "stored size/root/origin differ"),
    "corrupt_checkpoint_signature": (corrupt_checkpoint_signature, 25, "checkpoint at size 25: signature"),
}
# Cases whose exact first bad index the library gets wrong today (it reports a smaller one).


def tampered(copy_home: Path, tamper: Tamper, insider: Person) -> Path:
    db = raw_db(copy_home)
    tamper(db, insider)
    db.close()
    return copy_home


def library_report(path: Path):
    home = Home.open(path)
    try:
        return home.ledger.verify(home.verifier_key, home.witness.remembered())
    finally:
        home.close()


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def head_and_count(path: Path) -> tuple[int, bytes, int, int]:
    db = raw_db(path, drop_triggers=False)
    try:
        size, root = db.execute("SELECT size, root FROM head").fetchone()
        (count,) = db.execute("SELECT COUNT(*) FROM entries").fetchone()
        (checkpoints,) = db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()
        return size, root, count, checkpoints
    finally:
        db.close()


# -- the cases -----------------------------------------------------------------------------


def test_untampered_copy_verifies(copy_home: Path) -> None:
    report = library_report(copy_home)
    assert report.ok, report.problems
    assert report.size == SIZE
    assert report.checkpoints_checked == len(CHECKPOINT_SIZES) + 1  # stored ones and the witness
    result = cli("ledger", "verify", "--home", str(copy_home))
    assert result.exit_code == 0, result.stderr
    assert "ledger intact: 40 entries" in result.stdout
    assert "signatures: all 40 entries signed and permitted (39 person, 1 service)" in result.stdout


@pytest.mark.parametrize("name", list(CASES))
def test_tamper_is_detected(copy_home: Path, insider: Person, name: str) -> None:
    tamper, expected, phrase = CASES[name]
    path = tampered(copy_home, tamper, insider)

    report = library_report(path)
    assert not report.ok
    assert report.first_bad_index is not None
    assert report.first_bad_index <= expected  # never blames a later index than the real one
    assert any(phrase in what for _, what in report.problems), report.problems

    result = cli("ledger", "verify", "--home", str(path))
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"first bad index {report.first_bad_index}:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    result = cli("ledger", "verify", "--json", "--home", str(path))
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["first_bad_index"] == report.first_bad_index


@pytest.mark.parametrize("name", list(CASES))
def test_tamper_names_first_bad_index(copy_home: Path, insider: Person, name: str) -> None:
    tamper, expected, _ = CASES[name]
    path = tampered(copy_home, tamper, insider)
    report = library_report(path)
    assert report.first_bad_index == expected, sorted(report.problems)
    result = cli("ledger", "verify", "--home", str(path))
    assert result.exit_code == 1
    assert f"first bad index {expected}:" in result.stderr


def forged_signature(kind: str, path: Path, insider: Person, cast) -> Entry:
    """A note for index 40 whose signature is not what the roster permits (see SIGNATURE_CASES)."""
    text, subject = {"text": f"forged {kind}"}, "subject-40"
    if kind == "unsigned":  # a v1 envelope, as homes made before signatures hold
        return make_entry("ledger.note/v1", insider.name, subject, text)
    if kind == "outsider":  # a key never put on the roster
        mallory = Person("mallory", cast.signer("mallory"), frozenset({"admin"}))
        return make_entry("ledger.note/v1", mallory.name, subject, text, sign=mallory.sign)
    if kind == "service_key":  # the home's own key (anyone who can read the home holds it)
        home = Home.open(path)
        try:
            service = home.service_signer()
        finally:
            home.close()
        return make_entry("ledger.note/v1", insider.name, subject, text, sign=lambda m: sshsig.sign(service, m))
    if kind == "altered":  # the insider's signature over other bytes
        signed = make_entry("ledger.note/v1", insider.name, subject, text, sign=insider.sign)
        return make_entry(
            "ledger.note/v1", insider.name, subject, {"text": "altered"}, ts=signed.ts, sign=lambda _m: signed.signature
        )
    raise AssertionError(kind)


SIGNATURE_CASES = {
    "unsigned": "entry is unsigned (v1 envelope) in a home whose entries are all signed",
    "outsider": "which the roster does not hold at this index",
    "service_key": "ledger.note/v1 is a person's action; it must carry admin's own signature",
    "altered": "signature does not verify",
}


@pytest.mark.parametrize("kind", list(SIGNATURE_CASES))
def test_forged_signature_is_caught_by_ledger_verify(copy_home: Path, insider: Person, cast, kind: str) -> None:
    """An entry appended behind the library's back with an honest tree: the Merkle tree and the
    checkpoints are consistent with it, so only the signature check of `custody ledger verify`
    can catch it, at its own index."""
    entry = forged_signature(kind, copy_home, insider, cast)
    db = raw_db(copy_home)
    append_honestly(db, [entry])
    db.close()

    report = library_report(copy_home)
    assert report.ok, report.problems  # the tree extends every checkpoint: nothing else is wrong
    assert report.size == SIZE + 1

    result = cli("ledger", "verify", "--home", str(copy_home))
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert f"first bad index {SIZE}:" in result.stderr
    assert SIGNATURE_CASES[kind] in result.stderr
    result = cli("ledger", "verify", "--json", "--home", str(copy_home))
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["first_bad_index"] == SIZE
    assert [p["index"] for p in doc["problems"]] == [SIZE]


def test_restored_older_database_is_caught_by_the_witness(tmp_path: Path, cast) -> None:
    path = tmp_path / "home"
    home = cast.init_home(path)
    writer = cast.person(home, WRITER)
    home.ledger.append_batch([home.entry("ledger.note/v1", "s", {"text": f"old {i}"}, actor=writer) for i in range(24)])
    home.checkpoint()
    assert home.ledger.size == 25
    home.close()  # the last connection to close folds the WAL into the main file
    backup = tmp_path / "backup"
    backup.mkdir()
    for suffix in ("", "-wal", "-shm"):
        if (path / f"ledger.sqlite{suffix}").exists():
            shutil.copy2(path / f"ledger.sqlite{suffix}", backup / f"ledger.sqlite{suffix}")

    home = Home.open(path)
    home.ledger.append_batch([home.entry("ledger.note/v1", "s", {"text": f"new {i}"}, actor=writer) for i in range(15)])
    home.checkpoint()
    assert home.ledger.size == 40
    home.close()

    for suffix in ("", "-wal", "-shm"):
        (path / f"ledger.sqlite{suffix}").unlink(missing_ok=True)
        if (backup / f"ledger.sqlite{suffix}").exists():
            shutil.copy2(backup / f"ledger.sqlite{suffix}", path / f"ledger.sqlite{suffix}")

    # The restored database is consistent in itself: only the witness outside it knows better.
    home = Home.open(path)
    assert home.ledger.size == 25
    assert home.ledger.verify(home.verifier_key).ok
    report = home.ledger.verify(home.verifier_key, home.witness.remembered())
    home.close()
    assert not report.ok
    assert report.first_bad_index == 25
    assert any("remembered checkpoint at size 40" in what for _, what in report.problems)

    result = cli("ledger", "verify", "--home", str(path))
    assert result.exit_code == 1
    assert "first bad index 25:" in result.stderr
    assert "rolled back" in result.stderr


def test_checkpoint_after_rollback_is_refused_before_signing(copy_home: Path, insider: Person) -> None:
    path = tampered(copy_home, truncate_tail_and_checkpoints, insider)
    before = head_and_count(path)
    result = cli("ledger", "checkpoint", "--home", str(path))
    assert result.exit_code == 1
    assert "rolled back" in result.stderr
    assert head_and_count(path) == before  # no checkpoint over the forked history was stored


CORRUPT_ON_OPEN = {
    "truncate_tail": "checkpoint was signed at size 40",
    "truncate_tail_lazily": "head says 40 entries but the last stored index is 29",
    "replace_tail_under_checkpoint": "stored tree does not match the checkpoint at size 40",
    "edit_right_edge_node": "stored nodes do not fold to the head root",
    "edit_head_root": "stored nodes do not fold to the head root",
}


@pytest.mark.parametrize("name", list(CORRUPT_ON_OPEN))
def test_tampered_ledger_refuses_writes(copy_home: Path, insider: Person, cast, name: str) -> None:
    if name == "edit_right_edge_node":

        def tamper(db: sqlite3.Connection, _insider: Person) -> None:
            db.execute("UPDATE nodes SET hash = ? WHERE level = 5 AND idx = 0", (b"\x33" * 32,))

    else:
        tamper = CASES[name][0]
    path = tampered(copy_home, tamper, insider)
    before = head_and_count(path)

    home = Home.open(path)
    try:
        assert home.ledger.corruption is not None
        assert CORRUPT_ON_OPEN[name] in home.ledger.corruption
        writer = cast.person(home, WRITER)  # a permitted writer: only the corruption refuses
        with pytest.raises(LedgerCorrupted, match="refuses writes"):
            home.record("ledger.note/v1", "s", {"text": "should not land"}, actor=writer)
        with pytest.raises(LedgerCorrupted):
            home.ledger.append_batch([home.entry("ledger.note/v1", "s", {"text": "nor this"}, actor=writer)])
        with pytest.raises(LedgerCorrupted):
            home.checkpoint()
    finally:
        home.close()

    result = cli("ledger", "note", "should not land either", "--home", str(path), "--key", str(cast.key_file(WRITER)))
    assert result.exit_code == 1
    assert "refuses writes" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    result = cli("ledger", "checkpoint", "--home", str(path))
    assert result.exit_code == 1
    assert head_and_count(path) == before


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE entries SET subject = 'x' WHERE idx = 3",
        "DELETE FROM entries WHERE idx = 39",
        "UPDATE nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 0",
        "DELETE FROM nodes",
        "UPDATE checkpoints SET note = 'x' WHERE size = 10",
        "DELETE FROM checkpoints WHERE size = 40",
    ],
)
def test_triggers_refuse_update_and_delete(copy_home: Path, sql: str) -> None:
    counts = "SELECT (SELECT COUNT(*) FROM entries), (SELECT COUNT(*) FROM nodes), (SELECT COUNT(*) FROM checkpoints)"
    db = raw_db(copy_home, drop_triggers=False)
    before = db.execute(counts).fetchone()
    with pytest.raises(sqlite3.IntegrityError, match=r"append-only|write-once"):
        db.execute(sql)
    assert db.execute(counts).fetchone() == before
    db.close()
    assert library_report(copy_home).ok


def test_corrupted_database_file_is_a_clear_error(copy_home: Path, cast) -> None:
    db_file = copy_home / "ledger.sqlite"
    with db_file.open("r+b") as handle:
        handle.write(bytes(range(7, 107)))  # the 100-byte SQLite header
    before = db_file.read_bytes()
    # The writer's key is given, so the note fails on the database, not for want of a key.
    env = {k: v for k, v in os.environ.items() if k != "CUSTODY_HOME"} | {"CUSTODY_KEY": str(cast.key_file(WRITER))}
    for args in (["ledger", "verify"], ["ledger", "note", "hello"], ["ledger", "show"]):
        proc = subprocess.run(
            [str(CUSTODY), *args, "--home", str(copy_home)], capture_output=True, text=True, env=env, timeout=60
        )
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: ")
        assert "ledger.sqlite" in lines[0]
    assert db_file.read_bytes() == before
