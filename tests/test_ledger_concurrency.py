"""Concurrent writers (design/ledger.md, "What proves it" 7).

Four processes append 50 entries each to one home at the same moment, two of them one entry
per commit and two in batches of five. Afterwards the indices are unique and contiguous, every
entry is there exactly once (in each writer's own order), the head root equals a reference
folded over the stored order, and full verification passes. Once on SQLite, once on PostgreSQL.

Each writer signs its notes with the admin's key (loaded from the test cast's key folder) and
appends through `Home.append`, which admits every entry against the roster under the writer lock;
afterwards every signature is re-checked too.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from custody.home import Home
from custody.ledger import merkle
from custody.ledger.verifier import leaf_hash
from custody.trust.audit import verify_signatures

WRITERS = 4
PER_WRITER = 50
BATCHED = {1: 5, 3: 5}  # writer -> batch size; the others commit one entry at a time
SIGNER = "admin"  # init put the admin on the roster

WRITER = r"""
import os, sys, time
from pathlib import Path
from custody.home import Home
from custody.testing.people import Cast

path, writer, per_writer, batch, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
home = Home.open(path)
home.ledger  # connect and cross-check before the start signal
person = Cast(Path(sys.argv[6])).person(home, sys.argv[7])
print("ready", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.005)
writers = int(sys.argv[8])
indices = []
for first in range(0, per_writer, batch):
    entries = [home.entry("ledger.note/v1", f"writer-{writer}", {"text": f"w{writer} n{i}"}, actor=person)
               for i in range(first, min(first + batch, per_writer))]
    indices.extend(home.append(entries))  # one commit per entry, or per batch
    if first == 0:
        # Wait until every writer has committed once, so that no writer can finish before the
        # others begin, however the OS schedules them: the appends below truly overlap.
        Path(f"{go}.{writer}").touch()
        while sum(os.path.exists(f"{go}.{w}") for w in range(writers)) < writers:
            if time.monotonic() > deadline:
                sys.exit("the other writers never committed")
            time.sleep(0.005)
print(" ".join(map(str, indices)), flush=True)
home.close()
"""


def run_writers(path: Path, tmp_path: Path, key_dir: Path) -> dict[int, list[int]]:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(path),
                str(w),
                str(PER_WRITER),
                str(BATCHED.get(w, 1)),
                str(go),
                str(key_dir),
                SIGNER,
                str(WRITERS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == "ready\n", (line, proc.stderr.read() if proc.stderr else "")
        go.touch()
        returned = {}
        for w, proc in enumerate(procs):
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            returned[w] = [int(x) for x in out.split()]
        return returned
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def check_after_writers(home: Home, start: int, returned: dict[int, list[int]]) -> None:
    total = start + WRITERS * PER_WRITER
    size, root = home.ledger.head()
    assert size == total
    rows = list(home.storage.iter_entries())
    # Unique and contiguous indices, as many rows as the head says.
    assert [r.idx for r in rows] == list(range(total))
    assert home.storage.entry_count() == total

    # Every writer's entries are present exactly once, in that writer's order, at the indices
    # its appends returned.
    seen: dict[int, list[tuple[int, int]]] = {w: [] for w in range(WRITERS)}
    for row in rows[start:]:
        doc = json.loads(row.entry)
        writer_part, number_part = doc["body"]["text"].split()
        writer = int(writer_part.removeprefix("w"))
        assert doc["subject"] == f"writer-{writer}"
        seen[writer].append((int(number_part.removeprefix("n")), row.idx))
    for w in range(WRITERS):
        assert [n for n, _ in seen[w]] == list(range(PER_WRITER)), w
        assert [idx for _, idx in seen[w]] == returned[w], w
    all_returned = sorted(i for indices in returned.values() for i in indices)
    assert all_returned == list(range(start, total))

    # The writers really overlapped: each commits once, then waits for the others (the barrier
    # in WRITER), so the first four commits switch owner three times and the rest at least three
    # more; run back to back, four writers would switch exactly three times.
    owners = [json.loads(r.entry)["subject"] for r in rows[start:]]
    switches = sum(1 for a, b in itertools.pairwise(owners) if a != b)
    assert switches >= 2 * (WRITERS - 1), owners

    # The root equals a reference folded over the stored order, from the entry bytes alone.
    edge = merkle.RightEdge()
    for row in rows:
        assert row.leaf_hash == leaf_hash(row.entry)
        edge.append(leaf_hash(row.entry))
    assert edge.size == total
    assert edge.root() == root
    assert home.ledger.root_at(total) == root

    assert home.ledger.cross_check() is None
    home.checkpoint()
    report = home.ledger.verify(home.verifier_key, home.witness.remembered())
    assert report.ok, report.problems
    assert report.size == total
    signatures = verify_signatures(home.storage, workers=1)
    assert signatures.ok, signatures.problems[:3]
    assert signatures.entries == total


def _run(path: Path, tmp_path: Path, key_dir: Path) -> None:
    home = Home.open(path)
    start = home.ledger.size
    home.close()
    began = time.monotonic()
    returned = run_writers(path, tmp_path, key_dir)
    assert time.monotonic() - began < 120
    home = Home.open(path)
    try:
        check_after_writers(home, start, returned)
    finally:
        home.close()


def test_concurrent_writers_sqlite(tmp_path: Path, cast) -> None:
    path = tmp_path / "home"
    cast.init_home(path).close()
    _run(path, tmp_path, cast.key_dir)


@pytest.mark.postgres
def test_concurrent_writers_postgres(tmp_path: Path, postgres_url: str, cast) -> None:
    path = tmp_path / "home"
    home = cast.init_home(path, database=postgres_url)
    assert home.storage.name == "postgresql"
    home.close()
    _run(path, tmp_path, cast.key_dir)
