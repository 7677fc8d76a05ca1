"""Ledger benchmark: appends, full verification and proofs on SQLite and PostgreSQL.

    python bench/ledger.py [--entries 1000000] [--backends sqlite,postgresql] [--out bench/out/ledger.json]

For each backend it measures, on one ledger grown to `--entries`:
  * envelope building (make_entry) per second, batched appends per second (`--batch` entries per
    transaction, entries built beforehand), and the end-to-end rate of both together;
  * full verification (Ledger.verify with the verifier key) of the whole ledger;
  * inclusion and consistency proof generation and verification at that size (median and p99 over
    `--samples` random indices, in microseconds);
  * appends with one commit each (`--single` appends, on top of the large ledger).
Every figure is printed next to its target from shared/design/ledger.md and, for appends, next to
the published peer figures quoted there (as a ratio). Results also go to a JSON file.

PostgreSQL: a durable throwaway cluster (fsync on) is started unless CUSTODY_BENCH_POSTGRES_URL
names a server; either way the benchmark works in a fresh database that it drops at the end.
Loading PostgreSQL stops early when it exceeds `--pg-budget` seconds; the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _meta import cpu_model, load_average, log, stamp
from custody.ledger import entry_types  # noqa: F401  registers the ledger's entry types
from custody.ledger.entry import Entry, make_entry
from custody.ledger.log import Ledger
from custody.ledger.signing import generate_key_file, load_signer
from custody.ledger.storage import open_storage
from custody.ledger.verifier import verify_consistency, verify_inclusion

ORIGIN = "custody.bench/ledger"

# Targets from ledger.md, "Figures worth beating" (a 2-core machine, SQLite).
TARGET_BATCHED = 30_000  # appends/s, batched
TARGET_SINGLE = 5_000  # appends/s, one commit per append
TARGET_PROOF_US = 1_000  # inclusion proof generation at 1M entries, < 1 ms
TARGET_VERIFY_PROOF_US = 100  # verifying a proof, < 100 µs
TARGET_FULL_VERIFY_S = 60  # full verification of 1M entries "in seconds, not minutes"
# Published peer figures quoted in ledger.md.
PEERS = {"Tessera local": 2_900, "Trillian/MySQL": 60}


@dataclass
class Figure:
    metric: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    peers: dict[str, float] = field(default_factory=dict)  # peer name -> our value / theirs
    detail: str = ""


def build_entry(i: int) -> Entry:
    """A realistic mix: mostly notes, some erasure records with refs; ~250 bytes each."""
    actor = f"bench-{i % 7}"
    subject = f"dataset:web@{i % 97}"
    if i % 10 == 9:
        return make_entry(
            "artifact.erased/v1",
            actor,
            subject,
            {"digest": f"{i:064x}", "reason": "erasure request under GDPR art. 17"},
            refs=[f"ledger:{i // 2}", f"sha256:{i:064x}"],
        )
    return make_entry("ledger.note/v1", actor, subject, {"text": f"benchmark note {i}: reviewed shard {i % 4096:04d}"})


def rate_figure(metric: str, count: int, seconds: float, target: int | None, detail: str = "") -> Figure:
    rate = count / seconds if seconds > 0 else float("inf")
    return Figure(
        metric,
        rate,
        "/s",
        target=f">= {target:,}/s" if target else "",
        met=(rate >= target) if target else None,
        peers={name: rate / theirs for name, theirs in PEERS.items()},
        detail=detail,
    )


def micro_figure(metric: str, samples_ns: list[int], target_us: float | None, detail: str = "") -> Figure:
    median = statistics.median(samples_ns) / 1000
    p99 = sorted(samples_ns)[int(len(samples_ns) * 0.99) - 1] / 1000
    return Figure(
        metric,
        median,
        "µs",
        target=f"< {target_us:,.0f} µs" if target_us else "",
        met=(median < target_us) if target_us else None,
        detail=f"median of {len(samples_ns)}, p99 {p99:,.1f} µs" + (f"; {detail}" if detail else ""),
    )


def run_backend(name: str, url: str, args: argparse.Namespace, key_path: Path, budget: float | None) -> dict:
    load_before = load_average()
    signer = load_signer(key_path, ORIGIN)
    ledger = Ledger(open_storage(url, create=True), ORIGIN)
    figures: list[Figure] = []
    notes: list[str] = []
    try:
        # -- load: build envelopes and append them in batches, timing each part --------------
        build_s = append_s = append_cpu = 0.0
        built = 0
        wall = time.perf_counter()
        while built < args.entries:
            count = min(args.batch, args.entries - built)
            t0 = time.perf_counter()
            batch = [build_entry(i) for i in range(built, built + count)]
            t1, c1 = time.perf_counter(), time.process_time()
            ledger.append_batch(batch)
            t2 = time.perf_counter()
            append_cpu += time.process_time() - c1
            build_s += t1 - t0
            append_s += t2 - t1
            built += count
            if built % 100_000 == 0:
                log(f"{name}: {built:,} entries, {built / append_s:,.0f} appends/s so far")
            if budget is not None and append_s > budget and built < args.entries:
                projected = args.entries * append_s / built
                notes.append(
                    f"{name}: load stopped at {built:,} of {args.entries:,} entries after {append_s:,.1f} s of "
                    f"appending (budget {budget:g} s); {args.entries:,} would take about {projected:,.0f} s at "
                    f"the measured rate, so its figures are at {built:,} entries. Storage fix: insert with "
                    "COPY ... FROM STDIN (FORMAT BINARY) instead of executemany (about 2x, docs/benchmarks.md)."
                )
                log(notes[-1])
                break
        wall = time.perf_counter() - wall
        size = ledger.size
        assert size == built
        figures.append(
            rate_figure(
                f"batched appends ({args.batch:,}/txn)",
                built,
                append_s,
                TARGET_BATCHED,
                f"{built:,} entries in {append_s:,.1f} s, envelopes built beforehand; "
                f"{cpu_note(name, built, append_cpu)}",
            )
        )
        figures.append(
            Figure(
                "envelope building (make_entry)",
                built / build_s,
                "/s",
                detail=f"{built:,} in {build_s:,.1f} s; no target (not a ledger figure)",
            )
        )
        figures.append(
            rate_figure("end to end: build + batched append", built, wall, None, f"{built:,} in {wall:,.1f} s wall")
        )

        # -- full verification -------------------------------------------------------------
        signer_note = ledger.sign_checkpoint(signer)
        t0, c0 = time.perf_counter(), time.process_time()
        report = ledger.verify(signer.verifier_key, remembered=signer_note)
        verify_s, verify_cpu = time.perf_counter() - t0, time.process_time() - c0
        if not report.ok:
            raise SystemExit(f"{name}: verification failed: {report.first_problem()}")
        figures.append(
            Figure(
                f"full verification ({size:,} entries)",
                verify_s,
                "s",
                target=f"< {TARGET_FULL_VERIFY_S} s",
                met=verify_s < TARGET_FULL_VERIFY_S,
                detail=f"{size / verify_s:,.0f} entries/s; rehash, decode, rebuild all nodes, "
                f"{report.checkpoints_checked} checkpoints; {verify_cpu:,.1f} s of this process's CPU",
            )
        )

        # -- proofs at this size -----------------------------------------------------------
        rng = random.Random(9162)
        root = ledger.root_at(size)
        indices = [rng.randrange(size) for _ in range(args.samples)]
        leaves = {i: ledger.entry(i).leaf_hash for i in indices}
        gen_ns, ver_ns, proofs = [], [], []
        for i in indices:
            t0 = time.perf_counter_ns()
            proof = ledger.inclusion_proof(i, size)
            gen_ns.append(time.perf_counter_ns() - t0)
            proofs.append(proof)
        for i, proof in zip(indices, proofs, strict=True):
            leaf = leaves[i]
            t0 = time.perf_counter_ns()
            verify_inclusion(i, size, leaf, proof, root)
            ver_ns.append(time.perf_counter_ns() - t0)
        length = statistics.median(len(p) for p in proofs)
        figures.append(
            micro_figure(f"inclusion proof generation @ {size:,}", gen_ns, TARGET_PROOF_US, f"{length:.0f} hashes")
        )
        figures.append(micro_figure(f"inclusion proof verification @ {size:,}", ver_ns, TARGET_VERIFY_PROOF_US))

        olds = [rng.randint(1, size - 1) for _ in range(args.samples)] if size > 1 else [1] * args.samples
        old_roots = {m: ledger.root_at(m) for m in olds}
        gen_ns, ver_ns, proofs = [], [], []
        for m in olds:
            t0 = time.perf_counter_ns()
            proof = ledger.consistency_proof(m, size)
            gen_ns.append(time.perf_counter_ns() - t0)
            proofs.append(proof)
        for m, proof in zip(olds, proofs, strict=True):
            old_root = old_roots[m]
            t0 = time.perf_counter_ns()
            verify_consistency(m, size, old_root, root, proof)
            ver_ns.append(time.perf_counter_ns() - t0)
        length = statistics.median(len(p) for p in proofs)
        figures.append(
            micro_figure(
                f"consistency proof generation (m, {size:,})",
                gen_ns,
                TARGET_PROOF_US,
                f"{length:.0f} hashes; target borrowed from inclusion",
            )
        )
        figures.append(
            micro_figure(
                f"consistency proof verification (m, {size:,})",
                ver_ns,
                TARGET_VERIFY_PROOF_US,
                "target borrowed from inclusion",
            )
        )

        # -- one commit per append, on top of the large ledger ----------------------------
        singles = [build_entry(size + i) for i in range(args.single)]
        latencies = []
        t0, c0 = time.perf_counter(), time.process_time()
        for entry in singles:
            t1 = time.perf_counter_ns()
            ledger.append(entry)
            latencies.append(time.perf_counter_ns() - t1)
        single_s, single_cpu = time.perf_counter() - t0, time.process_time() - c0
        durability = durability_note(ledger)
        figures.append(
            rate_figure(
                f"one commit per append (x{args.single:,})",
                args.single,
                single_s,
                TARGET_SINGLE,
                f"median commit {statistics.median(latencies) / 1000:,.0f} µs; {durability}; "
                f"{cpu_note(name, args.single, single_cpu)}",
            )
        )
        if name == "sqlite" and args.single_full:
            ledger.storage._conn.execute("PRAGMA synchronous = FULL")  # an fsync per commit, for comparison
            t0 = time.perf_counter()
            for i in range(args.single_full):
                ledger.append(build_entry(size + args.single + i))
            full_s = time.perf_counter() - t0
            figures.append(
                rate_figure(
                    f"one commit per append, synchronous=FULL (x{args.single_full:,})",
                    args.single_full,
                    full_s,
                    None,
                    "an fsync per commit; informative",
                )
            )
        on_disk = storage_bytes(ledger, url)
        return {
            "backend": name,
            "entries": size,
            "requested_entries": args.entries,
            "bytes_on_disk": on_disk,
            "load_average": {"before": load_before, "after": load_average()},
            "figures": [vars(f) for f in figures],
            "notes": notes,
        }
    finally:
        ledger.storage.close()


def cpu_note(backend: str, count: int, cpu_s: float) -> str:
    """The same work by this process's CPU time: on a busy machine, wall time includes waiting for a core.

    SQLite runs inside this process, so count / CPU time is roughly what an idle machine would show
    (it leaves out I/O waits). PostgreSQL does much of the work in its server process, not counted here.
    """
    if cpu_s <= 0:
        return ""
    rate = count / cpu_s
    if backend == "sqlite":
        return f"{cpu_s:,.1f} s of this process's CPU = {rate:,.0f}/s per CPU-second (the idle-machine ceiling)"
    return f"{cpu_s:,.1f} s of client CPU (server CPU not counted)"


def durability_note(ledger: Ledger) -> str:
    if ledger.storage.name == "sqlite":
        mode = ledger.storage._rows("PRAGMA synchronous")[0][0]
        return (
            f"WAL, synchronous={ {0: 'OFF', 1: 'NORMAL', 2: 'FULL', 3: 'EXTRA'}.get(mode, mode) } (no fsync per commit)"
        )
    rows = ledger.storage._rows("SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit')")
    return ", ".join(f"{k}={v}" for k, v in sorted(rows))


def storage_bytes(ledger: Ledger, url: str) -> int | None:
    if ledger.storage.name == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return int(ledger.storage._rows("SELECT pg_database_size(current_database())")[0][0])


def fresh_pg_database(server_url: str) -> tuple[str, str]:
    import psycopg

    name = f"custody_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url.rpartition('/')[0]}/{name}", name


def drop_pg_database(server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fmt_value(f: dict) -> str:
    value = f["value"]
    if f["unit"] == "/s":
        return f"{value:,.0f} /s"
    if f["unit"] == "µs":
        return f"{value:,.1f} µs"
    return f"{value:,.1f} s"


def fmt_peers(f: dict) -> str:
    return ", ".join(f"{ratio:,.1f}x {name}" for name, ratio in f["peers"].items()) if f["peers"] else ""


def print_table(results: list[dict]) -> None:
    rows = [("backend", "metric", "measured", "target", "met", "vs peers (ours / theirs)")]
    for result in results:
        for f in result["figures"]:
            met = "" if f["met"] is None else ("yes" if f["met"] else "NO")
            rows.append((result["backend"], f["metric"], fmt_value(f), f["target"], met, fmt_peers(f)))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    line = "  ".join("-" * w for w in widths)
    print()
    for n, row in enumerate(rows):
        print(
            "  ".join(
                cell.ljust(w) if c in (0, 1, 3, 4, 5) else cell.rjust(w)
                for c, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            print(line)
    print()
    print("details:")
    for result in results:
        for f in result["figures"]:
            if f["detail"]:
                print(f"  {result['backend']:<10}  {f['metric']}: {f['detail']}")
        if result["bytes_on_disk"]:
            print(
                f"  {result['backend']:<10}  on disk: {result['bytes_on_disk'] / 2**20:,.0f} MiB "
                f"({result['bytes_on_disk'] / max(result['entries'], 1):,.0f} bytes/entry)"
            )
    cpus = os.cpu_count() or 1
    for result in results:
        load = result["load_average"]
        busy = max(load.values()) > 1.5 * cpus  # the benchmark itself (plus PostgreSQL) accounts for ~1-2
        print(
            f"  {result['backend']:<10}  1-min load average before/after: "
            f"{load['before']}/{load['after']} on {cpus} CPUs"
            + ("  <- the machine was busy with other work: figures are pessimistic" if busy else "")
        )
    notes = [n for r in results for n in r["notes"]]
    print("peers (ledger.md): Tessera local backend ~2,900 writes/s; Trillian on MySQL ~60 appends/s at 280M entries.")
    for note in notes:
        print(f"NOTE: {note}")


def run_postgresql(args: argparse.Namespace, key_path: Path, meta: dict) -> dict | None:
    """On CUSTODY_BENCH_POSTGRES_URL's server or a durable cluster of our own, in a fresh database."""
    import psycopg

    from custody.testing.postgres import PostgresUnavailable, start

    server = os.environ.get("CUSTODY_BENCH_POSTGRES_URL")
    cluster = None
    if not server:
        try:
            cluster = start(durable=True)
        except PostgresUnavailable as exc:
            log(f"postgresql: skipped: {exc} (or set CUSTODY_BENCH_POSTGRES_URL)")
            return None
        server = cluster.url
    try:
        url, name = fresh_pg_database(server)
        try:
            with psycopg.connect(server) as conn:
                meta["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
            where = "own durable cluster (fsync on)" if cluster else "CUSTODY_BENCH_POSTGRES_URL"
            log(f"postgresql: loading ({where})")
            result = run_backend("postgresql", url, args, key_path, args.pg_budget)
            result["server"] = where
            return result
        finally:
            drop_pg_database(server, name)
    finally:
        if cluster is not None:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="ledger size to grow to (default 1,000,000)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql")
    parser.add_argument("--out", type=Path, default=Path("bench/out/ledger.json"), help="JSON results file")
    parser.add_argument("--batch", type=int, default=1000, help="entries per batched transaction")
    parser.add_argument("--single", type=int, default=3000, help="appends with one commit each")
    parser.add_argument(
        "--single-full",
        type=int,
        default=1000,
        help="SQLite only: extra single appends with synchronous=FULL (0 to skip)",
    )
    parser.add_argument("--samples", type=int, default=1000, help="random indices for proof timings")
    parser.add_argument(
        "--pg-budget",
        type=float,
        default=240.0,
        help="seconds of appending after which the PostgreSQL load stops early",
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown or args.entries < 2:
        parser.error(f"unknown backend(s) {sorted(unknown)}" if unknown else "--entries must be at least 2")

    started = datetime.now(UTC)
    results: list[dict] = []
    meta: dict = {
        "date": started.strftime("%Y-%m-%d"),
        "started": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": cpu_model()},
        "git": _git_state(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "config": {k: str(v) for k, v in vars(args).items()},
        "targets": {
            "batched_per_s": TARGET_BATCHED,
            "single_per_s": TARGET_SINGLE,
            "proof_us": TARGET_PROOF_US,
            "verify_proof_us": TARGET_VERIFY_PROOF_US,
            "full_verify_s": TARGET_FULL_VERIFY_S,
        },
        "peers_per_s": PEERS,
    }
    print(
        f"ledger benchmark: {args.entries:,} entries, batches of {args.batch:,}, backends {', '.join(backends)}, "
        f"{os.cpu_count()} CPUs, Python {meta['python']}, SQLite {meta['sqlite']}"
    )
    with tempfile.TemporaryDirectory(prefix="custody-bench-") as tmp:
        key_path = Path(tmp) / "keys" / "ledger.key"
        generate_key_file(key_path)
        if "sqlite" in backends:
            log("sqlite: loading")
            results.append(run_backend("sqlite", f"sqlite:///{tmp}/ledger.sqlite", args, key_path, None))
            (Path(tmp) / "ledger.sqlite").unlink()
        if "postgresql" in backends:
            result = run_postgresql(args, key_path, meta)
            if result is not None:
                results.append(result)

    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(stamp({**meta, "results": results}), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 0


def _git_state() -> dict:
    """The commit measured, and whether the ledger's sources differ from it (uncommitted edits)."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "platform/custody/ledger"], cwd=repo, capture_output=True, text=True
        ).stdout.split()
    except OSError:
        return {}
    return {"commit": commit, "ledger_sources_modified": dirty[1::2]}


if __name__ == "__main__":
    sys.exit(main())
