"""Crash soak of the shared ledger: SIGKILLs of two concurrent writers, counted violations per backend.

    python bench/soak.py [--kills 1000] [--backends sqlite,postgresql] [--budget-s 720] [--out docs/figures/soak.json]

For each backend, `custody.testing.soak` keeps two writer processes appending batches of 50 to
400 signed entries to one home and signing a checkpoint every second batch, kills one with
SIGKILL at a random moment (a timer, or one of the phases: lock held, halfway through the entry
rows, i.e. inside the binary COPY on PostgreSQL, halfway through the node rows, head set before
COMMIT, committed but not yet reported, mid-checkpoint before its row, after it before the
witness file), stops the other, checks the ledger, resumes the other and restarts the dead one.
What a check counts is in that module's docstring; the goal is zero of every kind.

`--kills` per backend, unless `--budget-s` seconds of soaking on that backend pass first: then
it stops after the kill in progress and the output says how many were run. PostgreSQL is a
durable throwaway cluster (fsync on) unless CUSTODY_BENCH_POSTGRES_URL names a server.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _meta import load_average, log, write_json
from custody.testing.soak import Driver, SoakResult

REPO = Path(__file__).resolve().parents[1]


class _Budget(Exception):
    pass


def run_backend(backend: str, kills: int, budget_s: float, server: str | None, seed: int | None) -> dict:
    began = time.monotonic()

    def progress(result: SoakResult) -> None:
        if result.kills % 50 == 0:
            bad = sum(result.violations.values())
            log(f"{backend}: {result.kills} kills, {bad} violations, {time.monotonic() - began:.0f} s")
        if time.monotonic() - began > budget_s and result.kills < kills:
            raise _Budget

    with tempfile.TemporaryDirectory(prefix=f"custody-soak-{backend}-") as tmp:
        driver = Driver(backend, Path(tmp), server, seed=seed)
        stopped_early = False
        try:
            result = driver.run(kills, progress)
        except _Budget:
            result = driver.result
            result.elapsed_s = time.monotonic() - began
            stopped_early = True
    out = result.as_dict()
    out.update(
        {
            "kills_asked": kills,
            "stopped_by_budget": stopped_early,
            "seed": driver.seed,
            "seconds_per_kill": round(result.elapsed_s / max(result.kills, 1), 3),
            "settings": {
                "batch": list(driver.batch),
                "checkpoint_every": driver.checkpoint_every,
                "max_delay_s": driver.max_delay,
                "epoch_kills": driver.epoch,
                "spawn": driver.spawn,
            },
        }
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=1000, help="kills per backend (default 1,000)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--budget-s", type=float, default=None, help="stop a backend after this many seconds")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "soak.json")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(backends) - {"sqlite", "postgresql"}:
        parser.error("backends are sqlite and postgresql")
    budget = args.budget_s if args.budget_s is not None else float("inf")
    load_before = load_average()
    results = []
    cluster = None
    try:
        for backend in backends:
            server = None
            if backend == "postgresql":
                server = os.environ.get("CUSTODY_BENCH_POSTGRES_URL")
                if not server:
                    from custody.testing.postgres import start

                    cluster = start(durable=True)
                    server = cluster.url
            log(f"{backend}: {args.kills} kills")
            result = run_backend(backend, args.kills, budget, server, args.seed)
            if backend == "postgresql":
                import psycopg

                with psycopg.connect(server) as conn:
                    result["server_version"] = conn.execute("SHOW server_version").fetchone()[0]
                result["server"] = "own durable cluster (fsync on)" if cluster else "CUSTODY_BENCH_POSTGRES_URL"
            results.append(result)
    finally:
        if cluster is not None:
            cluster.stop()

    print(f"{'backend':<11} {'kills':>6} {'violations':>10} {'elapsed':>9}  by kind")
    for r in results:
        kinds = ", ".join(f"{k} {v}" for k, v in r["violations"].items())
        print(f"{r['backend']:<11} {r['kills']:>6} {r['violations_total']:>10} {r['elapsed_s']:>8.0f}s  {kinds}")
        if r["stopped_by_budget"]:
            print(f"  {r['backend']}: stopped by the budget after {r['kills']} of {r['kills_asked']} kills")
        for example in r["examples"][:5]:
            print(f"  {example}")
    write_json(args.out, {"load_average_before": load_before, "load_average_after": load_average(), "results": results})
    print(f"wrote {args.out}")
    return 0 if all(r["violations_total"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
