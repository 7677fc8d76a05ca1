"""Ledger benchmark: appends, full verification and proofs on SQLite and PostgreSQL.

    python bench/ledger.py [--entries 1000000] [--backends sqlite,postgresql] [--out bench/out/ledger.json]
    python bench/ledger.py --build-only [--entries 200000] [--out docs/figures/entry_build.json]

For each backend it measures, on one ledger grown to `--entries`:
  * envelope building (make_entry) per second, batched appends per second (`--batch` entries per
    transaction, entries built beforehand), and the end-to-end rate of both together;
  * full verification (Ledger.verify with the verifier key) of the whole ledger;
  * inclusion and consistency proof generation and verification at that size (median and p99 over
    `--samples` random indices, in microseconds);
  * appends with one commit each (`--single` appends, on top of the large ledger).
Every figure is printed next to its target from shared/design/ledger.md and, for appends, next to
the published peer figures quoted there (as a ratio). Results also go to a JSON file.

Envelope building is also compared with the previous make_entry (before issue 23's fast path), a
copy of which is kept here as `previous_make_entry`: both build the same entries in alternating
batches of the same run, after a check that they write the same bytes. `--build-only` measures just
that, without storage (seconds, not minutes); the full run adds the ratio to its building figure.

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

import rfc8785

from _meta import cpu_model, load_average, log, stamp
from custody.ledger import entry_types  # noqa: F401  registers the ledger's entry types
from custody.ledger.entry import _ENTRY_TYPES, _REF, ENVELOPE_VERSION, MAX_SAFE_INTEGER, Entry, EntryError, make_entry
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
TARGET_BUILD = 50_000  # entries built per second (issue 23)


@dataclass
class Figure:
    metric: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    peers: dict[str, float] = field(default_factory=dict)  # peer name -> our value / theirs
    detail: str = ""


def build_entry(i: int, make=make_entry, ts: str | None = None) -> Entry:
    """A realistic mix: mostly notes, some erasure records with refs; ~250 bytes each."""
    actor = f"bench-{i % 7}"
    subject = f"dataset:web@{i % 97}"
    if i % 10 == 9:
        return make(
            "artifact.erased/v1",
            actor,
            subject,
            {"digest": f"{i:064x}", "reason": "erasure request under GDPR art. 17"},
            refs=[f"ledger:{i // 2}", f"sha256:{i:064x}"],
            ts=ts,
        )
    return make("ledger.note/v1", actor, subject, {"text": f"benchmark note {i}: reviewed shard {i % 4096:04d}"}, ts=ts)


# -- the previous make_entry (unsigned envelopes), kept as the peer of the current one ----------


def _previous_fast_path_ok(value) -> bool:
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and (k.isascii() or max(k) < "\ud800") and _previous_fast_path_ok(v)
            for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return all(_previous_fast_path_ok(v) for v in value)
    return False


def previous_canonical_json(value) -> bytes:
    if _previous_fast_path_ok(value):
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:
            pass
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise EntryError(f"value cannot be canonicalized: {exc}") from exc


def previous_utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def previous_make_entry(type, actor, subject, body, refs=None, ts=None) -> Entry:
    """make_entry as it was before issue 23 (commit ebe721b), for unsigned entries."""
    model = _ENTRY_TYPES[type]
    validated = body if isinstance(body, model) else model.model_validate(body)
    if not actor or not subject:
        raise EntryError("an entry needs an actor and a subject")
    refs = list(refs or [])
    for ref in refs:
        if not _REF.fullmatch(ref):
            raise EntryError(f"reference {ref!r} must be 'sha256:<64 hex>' or 'ledger:<index>'")
    envelope = {
        "v": ENVELOPE_VERSION,
        "type": type,
        "ts": ts or previous_utc_now(),
        "actor": actor,
        "subject": subject,
        "body": validated.model_dump(mode="json", exclude_none=True),
        "refs": refs,
    }
    raw = previous_canonical_json(envelope)
    return Entry(raw, type, envelope["ts"], actor, subject, envelope["body"], refs)


def measure_build(count: int, batch: int) -> dict:
    """make_entry and previous_make_entry on the same `count` entries, in alternating batches.

    Each batch is built into a list (as the load does) by one and then the other, the order
    swapped every batch, so that a busy machine slows both alike."""
    same = min(count, 2_000)
    fixed = "2026-12-06T00:00:00.000000Z"
    if any(
        build_entry(i, make_entry, fixed).raw != build_entry(i, previous_make_entry, fixed).raw for i in range(same)
    ):
        raise SystemExit("make_entry and the previous make_entry disagree on the bytes of an entry")
    makers = {"make_entry": make_entry, "previous make_entry": previous_make_entry}
    wall = dict.fromkeys(makers, 0.0)
    cpu = dict.fromkeys(makers, 0.0)
    load_before = load_average()
    for n, start in enumerate(range(0, count, batch)):
        stop = min(start + batch, count)
        for name in list(makers)[:: 1 if n % 2 == 0 else -1]:
            make = makers[name]
            t0, c0 = time.perf_counter(), time.process_time()
            built = [build_entry(i, make) for i in range(start, stop)]
            wall[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
            del built
    rates = {
        name: {
            "entries": count,
            "seconds": round(wall[name], 3),
            "per_s": count / wall[name],
            "cpu_seconds": round(cpu[name], 3),
            "per_cpu_s": count / cpu[name] if cpu[name] > 0 else None,
        }
        for name in makers
    }
    return {
        "entries": count,
        "batch": batch,
        "bytes_checked_equal": same,
        "target_per_s": TARGET_BUILD,
        "current": rates["make_entry"],
        "previous": rates["previous make_entry"],
        "speedup": rates["make_entry"]["per_s"] / rates["previous make_entry"]["per_s"],
        "load_average": {"before": load_before, "after": load_average()},
    }


def profile_parts(count: int) -> dict:
    """Microseconds per entry of each part of building, current and previous, on the bench's mix."""
    from custody.ledger import entry as current

    items = []
    for i in range(count):
        e = build_entry(i, previous_make_entry, "2026-12-06T00:00:00.000000Z")
        items.append((e.type, e.actor, e.subject, e.body, e.refs))
    models = [_ENTRY_TYPES[t] for t, *_ in items]

    def per_entry(run) -> float:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
        return round(best / count * 1e6, 3)

    validated = [m.model_validate(b) for m, (_, _, _, b, _) in zip(models, items, strict=True)]
    dumped = [v.model_dump(mode="json", exclude_none=True) for v in validated]
    ts = "2026-12-06T00:00:00.000000Z"
    envelopes = [
        {"v": 1, "type": t, "ts": ts, "actor": a, "subject": s, "body": d, "refs": r}
        for (t, a, s, _, r), d in zip(items, dumped, strict=True)
    ]
    raws = [previous_canonical_json(e) for e in envelopes]
    pairs = list(zip(models, items, strict=True))
    return {
        "entries": count,
        "previous": {
            "model_validate": per_entry(lambda: [m.model_validate(b) for m, (_, _, _, b, _) in pairs]),
            "model_dump": per_entry(lambda: [v.model_dump(mode="json", exclude_none=True) for v in validated]),
            "utc_now_strftime": per_entry(lambda: [previous_utc_now() for _ in items]),
            "canonical_json_envelope": per_entry(lambda: [previous_canonical_json(e) for e in envelopes]),
            "entry_dataclass_init": per_entry(
                lambda: [Entry(x, t, ts, a, s, d, r) for x, (t, a, s, _, r), d in zip(raws, items, dumped, strict=True)]
            ),
            "whole": per_entry(lambda: [build_entry(i, previous_make_entry) for i in range(count)]),
        },
        "current": {
            "validate_python": per_entry(
                lambda: [m.__pydantic_validator__.validate_python(b) for m, (_, _, _, b, _) in pairs]
            ),
            "serializer_to_python": per_entry(
                lambda: [
                    type(v).__pydantic_serializer__.to_python(v, mode="json", exclude_none=True) for v in validated
                ]
            ),
            "utc_now": per_entry(lambda: [current.utc_now() for _ in items]),
            "envelope_bytes": per_entry(
                lambda: [
                    current._envelope_bytes(t, ts, a, s, d, r) for (t, a, s, _, r), d in zip(items, dumped, strict=True)
                ]
            ),
            "entry_dict_update": per_entry(
                lambda: [
                    current._unsigned_entry(x, t, ts, a, s, d, r)
                    for x, (t, a, s, _, r), d in zip(raws, items, dumped, strict=True)
                ]
            ),
            "whole": per_entry(lambda: [build_entry(i) for i in range(count)]),
        },
    }


def print_build(result: dict) -> None:
    current, previous = result["current"], result["previous"]
    print(
        f"\nenvelope building, {result['entries']:,} entries "
        f"(bytes equal on the first {result['bytes_checked_equal']:,}):"
    )
    for name, r in (("make_entry", current), ("previous make_entry", previous)):
        print(f"  {name:<20} {r['per_s']:>9,.0f} /s  ({r['seconds']:,.2f} s; {r['per_cpu_s']:,.0f}/s per CPU-second)")
    met = "met" if current["per_s"] >= result["target_per_s"] else "NOT met"
    print(f"  ratio {result['speedup']:.2f}x the previous make_entry; target >= {result['target_per_s']:,}/s: {met}")
    load = result["load_average"]
    print(f"  1-min load average before/after: {load['before']}/{load['after']} on {os.cpu_count()} CPUs")
    if "parts_us" in result:
        parts = result["parts_us"]
        print(f"  µs per entry by part (best of 3 over {parts['entries']:,} entries):")
        for side in ("previous", "current"):
            print(f"    {side}: " + "; ".join(f"{name} {us:.2f}" for name, us in parts[side].items()))


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
        compared = measure_build(min(built, 100_000), args.batch)
        figures.append(
            Figure(
                "envelope building (make_entry)",
                built / build_s,
                "/s",
                target=f">= {TARGET_BUILD:,}/s",
                met=built / build_s >= TARGET_BUILD,
                peers={"previous make_entry": compared["speedup"]},
                detail=f"{built:,} in {build_s:,.1f} s; apart from the load, {compared['entries']:,} entries: "
                f"{compared['current']['per_s']:,.0f}/s vs {compared['previous']['per_s']:,.0f}/s for the "
                "previous make_entry, in alternating batches (bench/ledger.py --build-only)",
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
        "--build-only",
        action="store_true",
        help="only envelope building: make_entry against the previous make_entry (no storage, no backends)",
    )
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

    if args.build_only:
        log(f"building {args.entries:,} entries with make_entry and the previous make_entry")
        result = measure_build(args.entries, args.batch)
        result["parts_us"] = profile_parts(min(args.entries, 20_000))
        print_build(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        document = {"config": {"entries": args.entries, "batch": args.batch}, **result}
        args.out.write_text(json.dumps(stamp(document), indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}")
        return 0

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
