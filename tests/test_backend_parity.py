"""Backend parity (ledger.md, "What proves it" 8): SQLite and PostgreSQL give the same bytes.

The same entries (fixed timestamp, so the envelopes are byte-identical) are appended to a
SQLite ledger and to a PostgreSQL ledger on a real server, in the same mixed batch sizes. Both
must then agree on every root, on every sampled inclusion and consistency proof, on the signed
checkpoint notes (Ed25519 is deterministic, so one key gives byte-identical notes), on filtered
pages of entries, on the stored nodes, and both must verify. The CLI is also driven end to end
against a PostgreSQL database.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from custody.ledger import (
    entry_types,  # noqa: F401  registers the ledger's entry types
    merkle,
)
from custody.ledger.entry import Entry, make_entry
from custody.ledger.log import Ledger, load_note
from custody.ledger.signing import NoteSigner, generate_key_file, load_signer
from custody.ledger.storage import open_storage
from custody.ledger.verifier import (
    EMPTY_ROOT,
    leaf_hash,
    node_hash,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
    verify_proof_bundle,
)

pytestmark = pytest.mark.postgres

ORIGIN = "custody.test/backend-parity"
TS = "2026-01-01T00:00:00.000000Z"
# Mixed batch sizes: singles, sizes around powers of two, and one large batch.
BATCHES = [1, 1, 2, 3, 1, 8, 15, 17, 1, 64, 100, 5, 127, 129, 1, 256, 2, 300, 31, 33, 1]
CHECKPOINT_AFTER = {0, 3, 9, 13, len(BATCHES) - 1}  # sign after these batches (by position)
ACTORS = ["alice", "bob", "carol"]
SUBJECTS = ["dataset:web@1", "dataset:books@2", "model:tiny@1", "note"]


def _entry(i: int) -> Entry:
    actor, subject = ACTORS[i % len(ACTORS)], SUBJECTS[(i // 3) % len(SUBJECTS)]
    if i % 7 == 3:
        return make_entry(
            "artifact.erased/v1",
            actor,
            subject,
            {"digest": f"{i:064x}", "reason": "erasure request"},
            refs=[f"ledger:{i // 2}"],
            ts=TS,
        )
    if i % 11 == 5:
        return make_entry(
            "home.initialized/v1", actor, subject, {"origin": ORIGIN, "verifier_key": f"k{i}", "backend": "any"}, ts=TS
        )
    # Non-ASCII text, and a digest ref now and then, so canonical bytes are exercised too.
    refs = [f"sha256:{i:064x}"] if i % 5 == 0 else []
    return make_entry("ledger.note/v1", actor, subject, {"text": f'note {i}: ünïcødé ✓ \u2028 "q"'}, refs=refs, ts=TS)


def _reference_root(leaves: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 §2.1.1, independent of the stored nodes."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = merkle.split_point(len(leaves))
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


def _reference_roots(leaves: list[bytes]) -> list[bytes]:
    """Roots of every prefix [0, n), n = 0..len(leaves), via a right edge (fast for all n)."""
    roots, edge = [EMPTY_ROOT], merkle.RightEdge()
    for leaf in leaves:
        edge.append(leaf)
        roots.append(edge.root())
    return roots


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> NoteSigner:
    key = tmp_path_factory.mktemp("parity-key") / "ledger.key"
    generate_key_file(key)
    return load_signer(key, ORIGIN)


@pytest.fixture(scope="module")
def module_postgres_url(postgres_server: str) -> Iterator[str]:
    """One fresh database for this module's shared ledger (like conftest's `postgres_url`)."""
    import psycopg

    name = f"custody_parity_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server.rpartition('/')[0]}/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, module_postgres_url: str, signer: NoteSigner):
    """Both ledgers after the same batches, with checkpoints signed at the same points.

    Built once per module: the tests below only read (re-signing at an unchanged head returns
    the stored note and writes nothing).
    """
    path = tmp_path_factory.mktemp("parity-sqlite") / "ledger.sqlite"
    sqlite = Ledger(open_storage(f"sqlite:///{path}", create=True), ORIGIN)
    postgres = Ledger(open_storage(module_postgres_url, create=True), ORIGIN)
    entries = [_entry(i) for i in range(sum(BATCHES))]
    notes: list[tuple[str, str]] = []
    heads: list[tuple[int, bytes]] = []
    start = 0
    for position, count in enumerate(BATCHES):
        batch = entries[start : start + count]
        indices = (sqlite.append_batch(batch), postgres.append_batch(batch))
        assert indices[0] == indices[1] == list(range(start, start + count))
        start += count
        assert sqlite.head() == postgres.head()
        heads.append(sqlite.head())
        if position in CHECKPOINT_AFTER:
            notes.append((sqlite.sign_checkpoint(signer), postgres.sign_checkpoint(signer)))
    yield sqlite, postgres, entries, heads, notes
    sqlite.storage.close()
    postgres.storage.close()


def test_same_entries_same_roots_at_every_size(filled) -> None:
    sqlite, postgres, entries, heads, _ = filled
    leaves = [leaf_hash(e.raw) for e in entries]
    expected = _reference_roots(leaves)
    n = len(entries)
    assert sqlite.size == postgres.size == n
    assert expected[n] == _reference_root(leaves)
    for size in range(n + 1):
        assert sqlite.root_at(size) == postgres.root_at(size) == expected[size], f"root at size {size}"
    for size, root in heads:  # every head after every batch was the reference root of that size
        assert root == expected[size]


def test_same_stored_bytes_and_nodes(filled) -> None:
    sqlite, postgres, entries, _, _ = filled
    for i, built in enumerate(entries):
        a, b = sqlite.entry(i), postgres.entry(i)
        assert a == b
        assert a.entry == built.raw and a.leaf_hash == leaf_hash(built.raw)
    assert sqlite.storage.max_level() == postgres.storage.max_level() == (len(entries) - 1).bit_length() - 1
    for level in range(1, sqlite.storage.max_level() + 1):
        assert list(sqlite.storage.iter_level(level)) == list(postgres.storage.iter_level(level)), f"level {level}"


def _inclusion_samples(n: int, rng: random.Random) -> list[tuple[int, int]]:
    edges = [(0, 1), (0, n), (n - 1, n), (0, 2), (1, 2), (6, 7), (7, 8), (8, 9), (255, 256), (256, 257), (511, 1024)]
    sampled = []
    for _ in range(250):
        size = rng.randint(1, n)
        sampled.append((rng.randrange(size), size))
    return [(i, s) for i, s in edges if i < s <= n] + sampled


def _consistency_samples(n: int, rng: random.Random) -> list[tuple[int, int]]:
    edges = [(1, 1), (1, 2), (1, n), (n, n), (n - 1, n), (2, 3), (3, 7), (4, 8), (7, 8), (8, 9), (256, 257), (255, n)]
    sampled = []
    for _ in range(250):
        size2 = rng.randint(1, n)
        sampled.append((rng.randint(1, size2), size2))
    return [(m, s) for m, s in edges if 0 < m <= s <= n] + sampled


def test_same_inclusion_proofs(filled) -> None:
    sqlite, postgres, entries, _, _ = filled
    n = len(entries)
    for index, size in _inclusion_samples(n, random.Random(9162)):
        proof = sqlite.inclusion_proof(index, size)
        assert proof == postgres.inclusion_proof(index, size), f"inclusion ({index}, {size})"
        verify_inclusion(index, size, leaf_hash(entries[index].raw), proof, sqlite.root_at(size))
    # Default size is the head on both.
    assert sqlite.inclusion_proof(n // 2) == postgres.inclusion_proof(n // 2)


def test_same_consistency_proofs(filled) -> None:
    sqlite, postgres, entries, _, _ = filled
    n = len(entries)
    for size1, size2 in _consistency_samples(n, random.Random(2119)):
        proof = sqlite.consistency_proof(size1, size2)
        assert proof == postgres.consistency_proof(size1, size2), f"consistency ({size1}, {size2})"
        verify_consistency(size1, size2, sqlite.root_at(size1), sqlite.root_at(size2), proof)
    assert sqlite.consistency_proof(n // 3) == postgres.consistency_proof(n // 3)


def test_same_signed_checkpoints(filled, signer: NoteSigner) -> None:
    sqlite, postgres, _, heads, notes = filled
    assert len(notes) == len(CHECKPOINT_AFTER)
    for (sqlite_note, postgres_note), position in zip(notes, sorted(CHECKPOINT_AFTER), strict=True):
        assert sqlite_note == postgres_note  # the whole signed note, byte for byte
        checkpoint = verify_checkpoint(sqlite_note, signer.verifier_key)
        assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, *heads[position])
        assert sqlite_note.startswith(checkpoint.body())
    assert sqlite.storage.checkpoints() == postgres.storage.checkpoints()
    assert sqlite.latest_checkpoint() == postgres.latest_checkpoint() == notes[-1][0]
    # Signing again at the same head returns the stored note on both.
    assert sqlite.sign_checkpoint(signer) == postgres.sign_checkpoint(signer) == notes[-1][0]


def test_same_exported_proofs(filled, signer: NoteSigner) -> None:
    sqlite, postgres, entries, _, notes = filled
    early_note = notes[2][0]
    for index in (0, 5, load_note(early_note).size - 1, len(entries) - 1):
        bundle = sqlite.export_proof(index)
        assert bundle == postgres.export_proof(index)
        assert verify_proof_bundle(json.dumps(bundle), signer.verifier_key).entry == entries[index].raw
        if index < load_note(early_note).size:  # a proof pinned to an older checkpoint
            pinned = sqlite.export_proof(index, early_note)
            assert pinned == postgres.export_proof(index, early_note)
            assert pinned["tree_size"] == load_note(early_note).size
            verify_proof_bundle(json.dumps(pinned), signer.verifier_key)


PAGES = [
    {},
    {"start": 0, "limit": 1},
    {"start": 17, "limit": 50},
    {"start": 10_000, "limit": 10},
    {"start": 40, "limit": 25, "descending": True},
    {"start": 0, "limit": 10, "descending": True},
    {"limit": 500, "type_prefix": "ledger."},
    {"limit": 500, "type_prefix": "ledger.note/v1"},
    {"limit": 500, "type_prefix": "artifact"},
    {"start": 300, "limit": 40, "type_prefix": "home.initialized/"},
    {"limit": 500, "type_prefix": "no.such"},
    {"limit": 500, "type_prefix": "ledger_"},  # `_` is literal, not a LIKE wildcard
    {"limit": 500, "type_prefix": "%"},  # `%` is literal too
    {"limit": 500, "subject": "dataset:web@1"},
    {"start": 100, "limit": 30, "subject": "model:tiny@1", "descending": True},
    {"limit": 500, "actor": "bob"},
    {"limit": 500, "actor": "Bob"},  # exact match is case-sensitive on both
    {"limit": 500, "subject": "note", "actor": "carol", "type_prefix": "ledger."},
    {"start": 900, "limit": 15, "subject": "dataset:books@2", "actor": "alice", "descending": True},
]


@pytest.mark.parametrize("page", range(len(PAGES)))
def test_same_entry_pages(filled, page: int) -> None:
    sqlite, postgres, entries, _, _ = filled
    query = PAGES[page]
    rows = sqlite.storage.entries(**query)
    assert rows == postgres.storage.entries(**query)
    # And the page is the right one, computed from the entries we built.
    start, limit = query.get("start", 0), query.get("limit", 100)
    descending = query.get("descending", False)
    order = range(min(start, len(entries) - 1), -1, -1) if descending else range(start, len(entries))
    expected = [
        i
        for i in order
        if entries[i].type.startswith(query.get("type_prefix", ""))
        and query.get("subject", entries[i].subject) == entries[i].subject
        and query.get("actor", entries[i].actor) == entries[i].actor
    ][:limit]
    assert [r.idx for r in rows] == expected


def test_type_prefix_filter_is_case_sensitive_on_both(filled) -> None:
    sqlite, postgres, _, _, _ = filled
    assert (
        sqlite.storage.entries(limit=500, type_prefix="LEDGER.")
        == postgres.storage.entries(limit=500, type_prefix="LEDGER.")
        == []
    )


def test_both_verify(filled, signer: NoteSigner) -> None:
    sqlite, postgres, entries, _, notes = filled
    reports = [ledger.verify(signer.verifier_key, remembered=notes[1][0]) for ledger in (sqlite, postgres)]
    for report in reports:
        assert report.ok, report.problems
        assert report.size == len(entries)
        assert report.checkpoints_checked == len(CHECKPOINT_AFTER) + 1  # stored ones + the remembered one
    assert reports[0].root == reports[1].root
    # Reopening re-runs the startup cross-check: neither backend reports corruption.
    for ledger in (sqlite, postgres):
        assert Ledger(ledger.storage, ORIGIN).corruption is None


def test_cli_on_postgres(tmp_path: Path, postgres_url: str, cast) -> None:
    from typer.testing import CliRunner

    from custody.cli.main import app

    runner = CliRunner()
    home = tmp_path / "home"
    admin_key = cast.key_file("admin")  # the first admin records the notes: no roster entry in between

    def cli(*args: str, code: int = 0, key: Path | None = None) -> str:
        env = {"CUSTODY_KEY": str(key) if key is not None else None}
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, f"custody {' '.join(args)}: {result.output}"
        return result.output

    out = cli(
        "init", "--home", str(home), "--database", postgres_url, "--admin", "admin", "--admin-key", f"{admin_key}.pub"
    )
    assert "postgresql" in out
    assert postgres_url in (home / "config.toml").read_text()
    assert not any(home.glob("*.sqlite")), "init with --database must not create a SQLite ledger"
    first = cli(
        "ledger", "note", "first note on postgres", "--home", str(home), "--key", str(admin_key), "--as", "admin"
    )
    assert "index 1" in first
    assert "index 2" in cli(
        "ledger", "note", "second", "--subject", "dataset:web@1", "--home", str(home), key=admin_key
    )
    verified = cli("ledger", "verify", "--home", str(home))
    assert "ledger intact: 3 entries" in verified
    assert "signatures: all 3 entries signed and permitted" in verified  # read back from PostgreSQL
    report = json.loads(cli("ledger", "verify", "--json", "--home", str(home)))
    assert report["ok"] and report["size"] == 3

    shown = json.loads(cli("ledger", "show", "--json", "--type", "ledger.", "--home", str(home)))
    assert [row["index"] for row in shown] == [1, 2]
    assert shown[0]["entry"]["body"] == {"text": "first note on postgres"}

    proof_file = tmp_path / "proof.json"
    cli("ledger", "proof", "1", "--out", str(proof_file), "--home", str(home))
    key = cli("ledger", "pubkey", "--home", str(home)).strip()
    assert "verified: entry 1 (ledger.note/v1)" in cli("ledger", "verify-proof", str(proof_file), "--key", key)
    bundle = json.loads(proof_file.read_text())
    assert bundle["tree_size"] == 3

    # The rows really are in PostgreSQL, and a tampered proof fails with exit 1.
    storage = open_storage(postgres_url)
    try:
        assert storage.head()[0] == 3
        assert storage.entry(1).entry == base64.b64decode(bundle["entry"])
        assert storage.entry(1).leaf_hash.hex() == bundle["leaf_hash"]
    finally:
        storage.close()
    bundle["index"] = 2
    proof_file.write_text(json.dumps(bundle))
    cli("ledger", "verify-proof", str(proof_file), "--key", key, code=1)
