"""Crash safety (design/ledger.md, "What proves it" 6).

A writer process appends batches of entries (and now and then signs a checkpoint) in a loop and
is killed with SIGKILL at a random moment. After reopening: no gaps, the head is the last
committed batch, full verification passes, the startup cross-check is clean, appends work.
The writer signs its notes with the admin's key, loaded from the test cast's key folder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from custody.home import Home
from custody.trust.audit import verify_signatures

BATCH = 200
WRITER = "admin"  # init put the admin on the roster
ITERATIONS = 6

WRITER_PROCESS = r"""
import sys
from pathlib import Path
from custody.home import Home
from custody.testing.people import Cast

home = Home.open(sys.argv[1])
batch, tag = int(sys.argv[2]), sys.argv[3]
writer = Cast(Path(sys.argv[4])).person(home, sys.argv[5])
n = 0
print("ready", home.ledger.size, flush=True)
while True:
    entries = [
        home.entry("ledger.note/v1", "crash", {"text": f"{tag} batch {n} entry {i}"}, actor=writer)
        for i in range(batch)
    ]
    indices = home.ledger.append_batch(entries)
    print(indices[-1] + 1, flush=True)  # committed size
    n += 1
    if n % 5 == 0:
        home.checkpoint()
"""


def run_writer_and_kill(path: Path, key_dir: Path, tag: str, delay: float) -> tuple[int, list[int]]:
    """Start a writer, SIGKILL it `delay` seconds after it is ready; return its start and committed sizes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_PROCESS, str(path), str(BATCH), tag, str(key_dir), WRITER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("ready "), (ready, proc.stderr.read() if proc.stderr else "")
        start = int(ready.split()[1])
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err)
    assert "Traceback" not in err, err
    return start, [int(line) for line in out.split()]


def test_sigkill_mid_batch_leaves_last_committed_batch(tmp_path: Path, cast) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    path = tmp_path / "home"
    cast.init_home(path).close()
    seed_note = f"(seed {seed})"

    for iteration in range(ITERATIONS):
        delay = rng.uniform(0.02, 0.4)
        start, committed = run_writer_and_kill(path, cast.key_dir, f"run{iteration}", delay)

        home = Home.open(path)
        try:
            ledger = home.ledger
            assert ledger.corruption is None, (ledger.corruption, seed_note)
            assert ledger.cross_check() is None, seed_note
            size, root = ledger.head()
            # No gaps: the head, the row count and the last index agree.
            assert home.storage.entry_count() == size, seed_note
            assert home.storage.max_index() == size - 1, seed_note
            # The head is the last committed batch: whole batches only, at least what was reported.
            assert (size - start) % BATCH == 0, (start, size, seed_note)
            last_reported = committed[-1] if committed else start
            assert size in (last_reported, last_reported + BATCH), (committed, size, seed_note)
            if size > start:  # the last entry closes a batch
                text = json.loads(home.ledger.entry(size - 1).entry)["body"]["text"]
                assert text.endswith(f" entry {BATCH - 1}"), (text, seed_note)
            report = ledger.verify(home.verifier_key, home.witness.remembered())
            assert report.ok, (report.problems, seed_note)
            assert report.root == root
            signatures = verify_signatures(home.storage, workers=1)
            assert signatures.ok and signatures.entries == size, (signatures.problems[:3], seed_note)
            # Appends and checkpoints work again.
            writer = cast.person(home, WRITER)
            index = home.record("ledger.note/v1", "crash", {"text": f"after kill {iteration}"}, actor=writer)
            assert index == size
            home.checkpoint()
        finally:
            home.close()
