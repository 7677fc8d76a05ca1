"""Crash safety of the shared ledger (issue 21 item 6): two writers, SIGKILLed and checked.

A short run of `custody.testing.soak` on each backend: two writer processes append batches and
sign checkpoints on one home; one is killed at a random moment (a timer, or mid-batch, mid-COPY,
before COMMIT, mid-checkpoint), the other is stopped while the ledger is checked (no gap, every
batch a writer was told is committed present whole, no partial batch, head and checkpoints
consistent with the rows, full verification), then both go on. `bench/soak.py` runs 1,000 kills.

Also the two races the soak found, made deterministic: a ledger opened (or verified) while
another writer commits, and two writers of one home remembering their checkpoints out of order.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from custody.home import Home
from custody.ledger.log import Ledger
from custody.testing.soak import KINDS, VIOLATIONS, soak

KILLS = 6


def _assert_clean(result) -> None:
    assert result.kills == KILLS
    assert sum(result.violations.values()) == 0, (result.violations, result.examples, result.as_dict())
    assert result.checks == KILLS and set(result.violations) == set(VIOLATIONS)
    assert set(result.by_kind) <= set(KINDS)
    assert result.batches_reported > 0 and result.checkpoints_reported > 0


def test_soak_sqlite(tmp_path: Path) -> None:
    began = time.monotonic()
    result = soak("sqlite", KILLS, tmp_path / "soak", epoch=3, seed=21)
    _assert_clean(result)
    assert result.epochs == 2
    assert time.monotonic() - began < 30


@pytest.mark.postgres
def test_soak_postgres(tmp_path: Path, postgres_server: str) -> None:
    began = time.monotonic()
    result = soak("postgresql", KILLS, tmp_path / "soak", postgres_server, epoch=3, seed=6)
    _assert_clean(result)
    assert time.monotonic() - began < 30


def _append(home: Home, person, n: int, tag: str) -> None:
    entries = [home.entry("ledger.note/v1", "race", {"text": f"{tag} {i}"}, actor=person) for i in range(n)]
    home.append(entries)


def _homes(tmp_path: Path, cast, database: str | None):
    """Two processes' views of one home (two Home objects, two connections) and its admin."""
    path = tmp_path / "home"
    cast.init_home(path, database).close()
    first, second = Home.open(path), Home.open(path)
    return first, second, cast.person(first, "admin")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_open_and_verify_while_another_writer_commits(tmp_path: Path, cast, backend: str, request) -> None:
    """Before the fix the second read of the startup cross-check saw the other writer's commit:
    `head says N entries but the last stored index is M`, and the ledger refused writes."""
    database = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    writer, reader, admin = _homes(tmp_path, cast, database)
    try:
        _append(writer, admin, 20, "before")
        storage = reader.storage
        head, commits = storage.head, []

        def head_then_commit():
            found = head()
            _append(writer, admin, 12, "meanwhile")  # another process's commit between two reads
            commits.append(12)
            return found

        storage.head = head_then_commit  # type: ignore[method-assign]
        ledger = Ledger(storage, reader.config.origin)
        assert ledger.corruption is None
        report = ledger.verify(reader.verifier_key, reader.witness.remembered())
        assert report.ok, report.problems
        storage.head = head  # type: ignore[method-assign]
        assert Ledger(storage, reader.config.origin).verify(reader.verifier_key).size == 1 + 20 + sum(commits)
    finally:
        writer.close()
        reader.close()


def test_checkpoints_remembered_out_of_order(tmp_path: Path, cast) -> None:
    """Two writers of one home: the first signs, the second signs a newer checkpoint and
    remembers it, then the first remembers its older one. Before the fix: ForkDetected ("the log
    was rolled back"). Now the older one is accepted and the newer one stays remembered."""
    first, second, admin = _homes(tmp_path, cast, None)
    try:
        _append(first, admin, 5, "a")
        older = first.ledger.sign_checkpoint(first.signer(), first.witness.remembered())
        _append(second, admin, 5, "b")
        newer = second.checkpoint()
        first.witness.observe(older, first.ledger.consistency_proof)
        assert first.witness.remembered() == newer
        assert first.checkpoint() == newer  # same head: the stored note
    finally:
        first.close()
        second.close()
