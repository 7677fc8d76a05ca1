"""Witness cosigning latency: sequential `add-checkpoint` calls to a `custody witness serve` process.

    python bench/witness.py [--calls 200] [--out bench/out/witness.json]

A fresh home and a witness made by the real CLI (`custody witness init`, `add-log`), served by
`custody witness serve --port 0` in its own process on 127.0.0.1. Then, --calls times: one note
appended to the ledger and the head signed (untimed), and `custody.witness.client.cosign` timed:
the request over loopback, the witness parsing the note, verifying the log's signature and the
consistency proof from the size it last cosigned, writing its state (two fsyncs) and cosigning,
and the client verifying and storing the cosignature. Median, mean and p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _meta import stamp
from custody.home import Home
from custody.ledger.entry import make_entry
from custody.ledger.verifier import parse_cosigner_key
from custody.witness.client import WitnessTarget, cosign

REPO = Path(__file__).resolve().parents[1]
NAME = "witness.bench/w1"


def custody(*args: str | Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_HOME", "CUSTODY_DATABASE")}
    proc = subprocess.run(
        [sys.executable, "-m", "custody", *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )
    if proc.returncode != 0:
        raise SystemExit(f"custody {args[0]} {args[1]} failed: {proc.stderr}")
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "witness.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="custody-bench-witness-") as tmp:
        root = Path(tmp)
        home = Home.init(root / "home")
        home.ledger.append_batch([make_entry("ledger.note/v1", "bench", "note", {"text": "start"})])
        home.checkpoint()
        vkey = custody("witness", "init", "--dir", root / "witness", "--name", NAME).strip()
        custody("witness", "add-log", "--dir", root / "witness", "--key", home.config.verifier_key)
        env = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_HOME", "CUSTODY_DATABASE")}
        with open(root / "serve.log", "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "custody", "witness", "serve", "--dir", str(root / "witness"), "--port", "0"],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
        try:
            line = server.stdout.readline()
            if "listening on http://127.0.0.1:" not in line:
                raise SystemExit(f"the witness did not start: {line!r}")
            target = WitnessTarget(line.strip().rsplit(" ", 1)[-1], parse_cosigner_key(vkey))
            times = []
            for i in range(args.calls):
                home.ledger.append_batch([make_entry("ledger.note/v1", "bench", "note", {"text": f"note {i}"})])
                note = home.checkpoint()
                started = time.perf_counter()
                cosign(home.ledger, note, target)
                times.append(time.perf_counter() - started)
        finally:
            server.terminate()
            server.wait(timeout=10)
            server.stdout.close()
            home.close()
    ms = sorted(t * 1000 for t in times)
    figures = {
        "calls": len(ms),
        "median_ms": statistics.median(ms),
        "mean_ms": statistics.fmean(ms),
        "p99_ms": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
        "min_ms": ms[0],
        "max_ms": ms[-1],
    }
    print(
        f"{len(ms)} sequential add-checkpoint calls over loopback: median {figures['median_ms']:.2f} ms, "
        f"mean {figures['mean_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms"
    )
    document = {"benchmark": "witness add-checkpoint latency, sequential, loopback", "witness": NAME, **figures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(stamp(document), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
