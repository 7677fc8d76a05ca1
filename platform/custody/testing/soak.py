"""Crash soak of the shared ledger: two writers append batches and sign checkpoints; kill, check, restart.

    python -m custody.testing.soak writer --home HOME --log SIDE.log [--batch 50:400] [--checkpoint-every 2]
    python -m custody.testing.soak drive --backend sqlite|postgresql [--server URL] --kills 20 --dir DIR

**The writer** opens the home, then appends batches of `ledger.note/v1` entries in a loop (each
entry service-signed and admitted under the writer lock, as `Home.append` does) and signs a
checkpoint every `--checkpoint-every` batches (`Home.checkpoint`: sign under the lock, then the
witness file). Each entry's text names its batch: `<run> <seq> <i> <n>`, `run` being random per
process start. Only after `append_batch` (or the checkpoint) has returned does it write the batch
(`run`, `seq`, first index, size, SHA-256 of its entry bytes) or the checkpoint (size, root) as one
JSON line to its side log and fsync it: the side log is what the writer was told is committed.

With `--die-at PHASE --die-after N` the writer SIGKILLs itself at that point of its `N`-th batch
(or checkpoint) from here, to hit moments a timer rarely hits: `locked` (the writer lock held,
nothing written), `mid-entries` (halfway through the entry rows: inside the binary COPY on
PostgreSQL, inside `executemany` on SQLite), `mid-nodes`, `head-set` (everything written, before
COMMIT), `committed` (returned, not yet in the side log), `checkpoint-insert` (signed, the note's
row not yet inserted) and `checkpoint-witness` (the note committed, the witness file not yet
written). The seams are wrappers around this process's storage object and the row list handed to
it; the ledger code has no test hooks.

**The driver** keeps two writers running on one home. Each (re)start draws how it dies: a timer
(`timer`: SIGKILL from the driver after a uniform random delay) or one of the phases above. When
a writer dies the driver checks the ledger while the other one goes on writing, and starts a new
writer in the dead one's place. Every `--epoch` kills the home is replaced by a
fresh one, so full verification after each kill stays short. Each check counts violations of:

- `gap`: indices not contiguous from 0, or the row count not the head's size;
- `lost_batch`: a batch a side log says was committed is missing, or has other bytes;
- `partial_batch`: a batch whose entries are not all present, contiguous and in order;
- `head`: the startup cross-check fails (head, rows, stored nodes, last checkpoint disagree);
- `checkpoint`: a checkpoint a side log reports is not stored with the root of the rows at its size;
- `verify`: `Ledger.verify` with the home's key and its remembered checkpoint reports a problem;
- `signatures`: the signature audit (`custody ledger verify`'s second half) at the end of each epoch;
- `writer_error`: a writer ended other than by SIGKILL (an exception: the ledger refused it);
- `check_failed`: the check could not read the ledger at all.

A check reads the database in one snapshot (`Storage.read_snapshot`), after reading the side logs
and the witness file: everything those report was committed before the snapshot began, and what
the running writer commits meanwhile is not seen. (Stopping the other writer instead, with
SIGSTOP, can freeze it inside SQLite's WAL-index update, where a new connection waits for it.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PHASES = (
    "locked",
    "mid-entries",
    "mid-nodes",
    "head-set",
    "committed",
    "checkpoint-insert",
    "checkpoint-witness",
)
KINDS = ("timer", *PHASES)
VIOLATIONS = (
    "gap",
    "lost_batch",
    "partial_batch",
    "head",
    "checkpoint",
    "verify",
    "signatures",
    "writer_error",
    "check_failed",
)
SUBJECT = "soak"
WRITER = "admin"  # the home's first admin signs the notes, with a key kept in HOME/KEYS
KEYS = "soak-keys"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)  # never reached: SIGKILL cannot be caught


class _Rows(list):
    """A row list that runs `at_middle` when iteration reaches its middle row (inside the insert)."""

    def __init__(self, rows: list, at_middle) -> None:
        super().__init__(rows)
        self._at_middle = at_middle

    def __iter__(self) -> Iterator:
        middle = len(self) // 2
        for i, row in enumerate(list.__iter__(self)):
            if i == middle:
                self._at_middle()
            yield row


# -- the writer -----------------------------------------------------------------------------


def write(
    home_path: Path,
    log_path: Path,
    batch: tuple[int, int],
    checkpoint_every: int,
    die_at: str | None = None,
    die_after: int = 0,
    seed: int | None = None,
) -> None:
    """Append batches and sign checkpoints until killed (see the module docstring)."""
    from custody.home import Home
    from custody.testing.people import Cast

    rng = random.Random(seed)
    run = uuid.uuid4().hex[:12]
    home = Home.open(home_path)
    person = Cast(home_path / KEYS).person(home, WRITER)
    ledger, storage = home.ledger, home.storage
    countdown = {"n": die_after}

    def seam(phase: str) -> None:
        if die_at == phase and countdown["n"] <= 0:
            _die()

    # Seams: wrappers on this process's storage object, never in the ledger code.
    insert_entries, insert_nodes, set_head = storage.insert_entries, storage.insert_nodes, storage.set_head
    insert_checkpoint, observe = storage.insert_checkpoint, home.witness.observe
    storage.insert_entries = lambda rows: insert_entries(_Rows(rows, lambda: seam("mid-entries")))  # type: ignore[method-assign]
    storage.insert_nodes = lambda nodes: insert_nodes(_Rows(nodes, lambda: seam("mid-nodes")))  # type: ignore[method-assign]

    def _set_head(size: int, root: bytes) -> None:
        set_head(size, root)
        seam("head-set")

    def _insert_checkpoint(size: int, root: bytes, note: str) -> None:
        seam("checkpoint-insert")
        insert_checkpoint(size, root, note)

    def _observe(note: str, prove):
        seam("checkpoint-witness")
        return observe(note, prove)

    storage.set_head = _set_head  # type: ignore[method-assign]
    storage.insert_checkpoint = _insert_checkpoint  # type: ignore[method-assign]
    home.witness.observe = _observe  # type: ignore[method-assign]

    def admit(entries, size: int) -> None:
        home._admit(entries, size)
        seam("locked")

    log = open(log_path, "ab", buffering=0)  # noqa: SIM115  kept open for the process's life

    def report(record: dict[str, Any]) -> None:
        log.write((json.dumps(record, separators=(",", ":")) + "\n").encode())
        os.fsync(log.fileno())

    seq = 0
    checkpoint_phases = die_at in ("checkpoint-insert", "checkpoint-witness")
    while True:
        n = rng.randint(*batch)
        entries = [
            home.entry("ledger.note/v1", SUBJECT, {"text": f"{run} {seq} {i} {n}"}, actor=person) for i in range(n)
        ]
        indices = ledger.append_batch(entries, admit=admit)
        seam("committed")
        digest = hashlib.sha256(b"".join(e.raw for e in entries)).hexdigest()
        report({"batch": [run, seq], "first": indices[0], "n": n, "sha256": digest})
        seq += 1
        if not checkpoint_phases:
            countdown["n"] -= 1
        if seq % checkpoint_every == 0:
            note = home.checkpoint()
            lines = note.split("\n")
            report({"checkpoint": int(lines[1]), "root": lines[2]})
            if checkpoint_phases:
                countdown["n"] -= 1


# -- reading a side log ---------------------------------------------------------------------


def read_side_log(path: Path) -> tuple[list[dict], list[dict]]:
    """(batches, checkpoints) the log reports; a torn last line (killed mid-write) is not a report."""
    batches, checkpoints = [], []
    if not path.exists():
        return batches, checkpoints
    for line in path.read_bytes().split(b"\n"):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        (batches if "batch" in record else checkpoints).append(record)
    return batches, checkpoints


# -- checking -------------------------------------------------------------------------------


def check(home_path: Path, logs: list[Path], signatures: bool = False) -> tuple[dict[str, int], list[str], int]:
    """Count violations (by kind) of the promises in the module docstring; also return what they
    were and the ledger's size."""
    from custody.home import Home
    from custody.ledger.log import Ledger

    counts = dict.fromkeys(VIOLATIONS, 0)
    notes: list[str] = []

    def violation(kind: str, what: str) -> None:
        counts[kind] += 1
        notes.append(f"{kind}: {what}")

    # What the writers reported and the witness remembered is read before the snapshot begins,
    # so all of it was committed before the snapshot: the other writer need not stop.
    reports = [read_side_log(log_path) for log_path in logs]
    home = Home.open(home_path)
    try:
        remembered = home.witness.remembered()
        storage = home.storage
        with storage.read_snapshot():
            ledger = Ledger(storage, home.config.origin)  # runs the startup cross-check
            if ledger.corruption:
                violation("head", ledger.corruption)
            size, _root = storage.head()
            rows = list(storage.iter_entries())
            if [r.idx for r in rows] != list(range(len(rows))) or len(rows) != size:
                violation("gap", f"head {size}, {len(rows)} rows, indices not 0..{size - 1}")
            # Whole batches only: group the soak entries by (run, seq).
            found: dict[tuple[str, int], list[tuple[int, int, int, bytes]]] = {}
            for row in rows:
                if row.subject != SUBJECT:
                    continue
                run, seq, i, n = json.loads(row.entry)["body"]["text"].split()
                found.setdefault((run, int(seq)), []).append((row.idx, int(i), int(n), row.entry))
            for key, members in found.items():
                n = members[0][2]
                first = members[0][0]
                if [(idx, i) for idx, i, _, _ in members] != [(first + i, i) for i in range(n)]:
                    violation("partial_batch", f"batch {key}: {len(members)} of {n} entries at {first}..")
            # Every batch a writer was told is committed is there, byte for byte.
            reported_checkpoints = []
            for batches, cps in reports:
                reported_checkpoints.extend(cps)
                for b in batches:
                    key = (b["batch"][0], b["batch"][1])
                    members = found.get(key, [])
                    digest = hashlib.sha256(b"".join(m[3] for m in members)).hexdigest()
                    if not members or members[0][0] != b["first"] or len(members) != b["n"] or digest != b["sha256"]:
                        violation("lost_batch", f"batch {key} reported at {b['first']} (+{b['n']}) is not there whole")
            stored = {s: r for s, r, _ in storage.checkpoints()}
            for cp in reported_checkpoints:
                cp_size, cp_root = cp["checkpoint"], bytes.fromhex(_b64hex(cp["root"]))
                if stored.get(cp_size) != cp_root or cp_size > size or ledger.root_at(cp_size) != cp_root:
                    violation("checkpoint", f"reported checkpoint at size {cp_size} is not stored with its root")
            report = ledger.verify(home.verifier_key, remembered)
            for idx, problem in report.problems:
                violation("verify", f"index {idx}: {problem}")
            if signatures:
                from custody.trust.audit import verify_signatures

                audit = verify_signatures(storage, workers=1)
                for idx, problem in audit.problems:
                    violation("signatures", f"index {idx}: {problem}")
    finally:
        home.close()
    return counts, notes, size


def _b64hex(b64: str) -> str:
    import base64

    return base64.b64decode(b64).hex()


# -- the driver -----------------------------------------------------------------------------


@dataclass
class Slot:
    """One writer place: the process now in it, how it is to die, and its side logs so far."""

    name: str
    pid: int = 0
    kind: str = "timer"
    deadline: float = 0.0
    logs: list[Path] = field(default_factory=list)


@dataclass
class SoakResult:
    backend: str
    kills: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    violations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VIOLATIONS, 0))
    examples: list[str] = field(default_factory=list)
    checks: int = 0
    epochs: int = 0
    entries_at_checks: int = 0  # sum of ledger sizes checked (their mean says how much each verified)
    batches_reported: int = 0
    checkpoints_reported: int = 0
    elapsed_s: float = 0.0
    check_s: float = 0.0

    def as_dict(self) -> dict:
        return {
            "backend": self.backend,
            "kills": self.kills,
            "kills_by_kind": self.by_kind,
            "violations": self.violations,
            "violations_total": sum(self.violations.values()),
            "examples": self.examples[:20],
            "checks": self.checks,
            "epochs": self.epochs,
            "mean_entries_verified": round(self.entries_at_checks / self.checks) if self.checks else 0,
            "batches_reported": self.batches_reported,
            "checkpoints_reported": self.checkpoints_reported,
            "elapsed_s": round(self.elapsed_s, 1),
            "check_s": round(self.check_s, 1),
        }


class Driver:
    def __init__(
        self,
        backend: str,
        workdir: Path,
        server: str | None = None,
        batch: tuple[int, int] = (50, 400),
        checkpoint_every: int = 2,
        max_delay: float = 0.6,
        epoch: int = 25,
        spawn: str = "fork",
        seed: int | None = None,
    ) -> None:
        self.backend, self.workdir, self.server = backend, workdir, server
        self.batch, self.checkpoint_every, self.max_delay, self.epoch = batch, checkpoint_every, max_delay, epoch
        self.spawn = spawn
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
        self.rng = random.Random(self.seed)
        self.result = SoakResult(backend)
        self.home: Path | None = None
        self.database: str | None = None
        self.slots = [Slot("w0"), Slot("w1")]
        self._starts = 0

    # -- homes ------------------------------------------------------------------------------
    def new_home(self) -> None:
        from custody.testing.people import Cast

        self.result.epochs += 1
        self.home = self.workdir / f"home-{self.result.epochs}"
        database = None
        if self.backend == "postgresql":
            import psycopg

            if self.server is None:
                raise ValueError("the postgresql backend needs a server URL")
            name = f"custody_soak_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(self.server, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            database = f"{self.server.rpartition('/')[0]}/{name}"
        self.home.mkdir(parents=True)
        (self.home / KEYS).mkdir()
        Cast(self.home / KEYS).init_home(self.home, database, admin=WRITER).close()
        self.database = database
        for slot in self.slots:
            slot.logs = []

    def drop_home(self) -> None:
        if self.database is not None and self.server is not None:
            import psycopg

            with psycopg.connect(self.server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database.rpartition("/")[2]}" WITH (FORCE)')
            self.database = None

    # -- writers ----------------------------------------------------------------------------
    def start(self, slot: Slot) -> None:
        assert self.home is not None
        self._starts += 1
        slot.kind = self.rng.choice(KINDS)
        die_after = self.rng.randint(0, 2)
        log = self.workdir / f"side-{self.result.epochs}-{slot.name}-{self._starts}.log"
        slot.logs.append(log)
        err = self.workdir / f"{slot.name}.stderr"
        die_at = None if slot.kind == "timer" else slot.kind
        seed = self.rng.getrandbits(32)
        if self.spawn == "fork":
            pid = os.fork()
            if pid == 0:  # the child: a writer until killed
                code = 1
                try:
                    fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.dup2(fd, 2)
                    write(self.home, log, self.batch, self.checkpoint_every, die_at, die_after, seed)
                except BaseException:
                    import traceback

                    traceback.print_exc()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
            slot.pid = pid
        else:
            cmd = [
                sys.executable,
                "-m",
                "custody.testing.soak",
                "writer",
                "--home",
                str(self.home),
                "--log",
                str(log),
                "--batch",
                f"{self.batch[0]}:{self.batch[1]}",
                "--checkpoint-every",
                str(self.checkpoint_every),
                "--seed",
                str(seed),
            ]
            if die_at:
                cmd += ["--die-at", die_at, "--die-after", str(die_after)]
            with open(err, "wb") as stderr:
                slot.pid = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr).pid
        slot.deadline = time.monotonic() + self.rng.uniform(0.0, self.max_delay) if slot.kind == "timer" else 0.0
        if slot.kind != "timer":  # a phase kill that never comes (a long batch) is cut by the timer
            slot.deadline = time.monotonic() + 30.0

    def _reap(self, slot: Slot, block: bool) -> int | None:
        pid, status = os.waitpid(slot.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return None
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, kills: int, progress=None) -> SoakResult:
        began = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.new_home()
        for slot in self.slots:
            self.start(slot)
        try:
            while self.result.kills < kills:
                dead, killed = self._wait_for_death()
                if killed:
                    self.result.kills += 1
                    self.result.by_kind[dead.kind] = self.result.by_kind.get(dead.kind, 0) + 1
                elif self.result.violations["writer_error"] > kills:
                    raise RuntimeError(f"writers keep failing: {self.result.examples[-1]}")
                end_of_epoch = killed and (self.result.kills % self.epoch == 0 or self.result.kills == kills)
                other = next(s for s in self.slots if s is not dead)
                if end_of_epoch:  # the epoch ends: the other writer dies too (a kill not counted)
                    os.kill(other.pid, signal.SIGKILL)
                    self._account_exit(other, self._reap(other, block=True))
                self._check(signatures=end_of_epoch)  # the other writer goes on meanwhile
                if progress is not None:
                    progress(self.result)
                if self.result.kills >= kills:
                    break
                if end_of_epoch:
                    self.drop_home()
                    self.new_home()
                    for slot in self.slots:
                        self.start(slot)
                else:
                    self.start(dead)
        finally:
            for slot in self.slots:
                try:
                    os.kill(slot.pid, signal.SIGKILL)
                    os.waitpid(slot.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
            self.drop_home()
        self.result.elapsed_s = time.monotonic() - began
        return self.result

    def _wait_for_death(self) -> tuple[Slot, bool]:
        """The next writer to end, and whether SIGKILL ended it (anything else is a writer error)."""
        while True:
            now = time.monotonic()
            for slot in self.slots:
                status = self._reap(slot, block=False)
                if status is not None:
                    return slot, self._account_exit(slot, status)
                if slot.deadline and now >= slot.deadline:
                    os.kill(slot.pid, signal.SIGKILL)
                    killed = self._account_exit(slot, self._reap(slot, block=True))
                    slot.kind = "timer"  # a phase that did not come in time ends by the timer too
                    return slot, killed
            time.sleep(0.002)

    def _account_exit(self, slot: Slot, status: int | None) -> bool:
        if status == -signal.SIGKILL:
            return True
        err = (self.workdir / f"{slot.name}.stderr").read_text(errors="replace").strip().splitlines()
        self._violation("writer_error", f"{slot.name} exited with {status}: {err[-1] if err else ''}")
        return False

    def _violation(self, kind: str, what: str) -> None:
        self.result.violations[kind] += 1
        if len(self.result.examples) < 50:
            self.result.examples.append(f"kill {self.result.kills + 1} ({self.backend}) {kind}: {what}")

    def _check(self, signatures: bool) -> None:
        assert self.home is not None
        began = time.monotonic()
        logs = [log for slot in self.slots for log in slot.logs]
        try:
            counts, notes, size = check(self.home, logs, signatures)
        except Exception as exc:  # the ledger could not even be read: that is a finding too
            counts, notes, size = {"check_failed": 1}, [f"check_failed: {type(exc).__name__}: {exc}"], 0
        for kind, count in counts.items():
            self.result.violations[kind] += count
        for note in notes:
            if len(self.result.examples) < 50:
                self.result.examples.append(f"kill {self.result.kills} ({self.backend}) {note}")
        self.result.checks += 1
        self.result.entries_at_checks += size
        self.result.check_s += time.monotonic() - began
        if signatures:  # the epoch's side logs are final: count what they reported
            for log in logs:
                batches, cps = read_side_log(log)
                self.result.batches_reported += len(batches)
                self.result.checkpoints_reported += len(cps)


def soak(backend: str, kills: int, workdir: Path, server: str | None = None, progress=None, **options) -> SoakResult:
    """Run `kills` kills on `backend` (see the module docstring); the result counts violations."""
    return Driver(backend, workdir, server, **options).run(kills, progress)


# -- command line ---------------------------------------------------------------------------


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition(":")
    return int(low), int(high or low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m custody.testing.soak", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("writer", help="append batches and sign checkpoints until killed")
    w.add_argument("--home", type=Path, required=True)
    w.add_argument("--log", type=Path, required=True, help="side log of committed batches (fsynced)")
    w.add_argument("--batch", type=_range, default=(50, 400), help="entries per batch, LOW:HIGH (default 50:400)")
    w.add_argument("--checkpoint-every", type=int, default=2)
    w.add_argument("--die-at", choices=PHASES)
    w.add_argument("--die-after", type=int, default=0, help="batches (or checkpoints) to pass before dying")
    w.add_argument("--seed", type=int)
    d = sub.add_parser("drive", help="two writers, killed and checked --kills times")
    d.add_argument("--backend", choices=("sqlite", "postgresql"), required=True)
    d.add_argument("--server", help="PostgreSQL server URL (a fresh database per epoch is made on it)")
    d.add_argument("--kills", type=int, default=20)
    d.add_argument("--dir", type=Path, required=True, help="work folder for homes and side logs")
    d.add_argument("--epoch", type=int, default=25, help="kills per fresh home")
    d.add_argument("--batch", type=_range, default=(50, 400), help="entries per batch, LOW:HIGH (default 50:400)")
    d.add_argument("--checkpoint-every", type=int, default=2)
    d.add_argument("--max-delay", type=float, default=0.6, help="longest timer before a SIGKILL, seconds")
    d.add_argument("--spawn", choices=("fork", "exec"), default="fork")
    d.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    if args.command == "writer":
        write(args.home, args.log, args.batch, args.checkpoint_every, args.die_at, args.die_after, args.seed)
        return 0
    options = {"batch": args.batch, "checkpoint_every": args.checkpoint_every, "max_delay": args.max_delay}
    result = soak(
        args.backend, args.kills, args.dir, args.server, epoch=args.epoch, spawn=args.spawn, seed=args.seed, **options
    )
    print(json.dumps(result.as_dict(), indent=2))
    return 0 if not any(result.violations.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
