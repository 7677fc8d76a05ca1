"""The PII check at scale: records/s and peak memory as the input doubles, and one 1 MB record.

    python bench/pii_scale.py [--copies 12 24] [--shards 3] [--processes 2] [--json bench/out/pii_scale.json]

Data: pii_presidio_synth + pii_wnut17_emerging_entities (the dev halves, 3,595 documents)
repeated --copies times (each copy marked, so no two records are equal) into --shards shards,
registered in a throwaway home. For each size, in a fresh process: `run_check` with the pii
check's default configuration over --processes worker processes, end to end (reading and
re-hashing shards, scanning, Parquet rows, ledger entry): wall time, records/s, the peak RSS of
that process (the parent) and the largest peak RSS of its worker processes (RUSAGE_CHILDREN).

Long records, each in a fresh process with one scanner (no pool): the first 1,000,000
characters of tiny Shakespeare (English prose; NER runs over 50,000-character windows), and
three records of 1,000,000 characters that are not prose, so NER is skipped and only the
pattern recognizers run: random punctuation, random bytes (code points 0-255), and a table of
numbers (rows of eight "123.45" cells). CPU seconds, spans found and peak RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _data import write_shards
from _meta import stamp

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
SOURCES = ["pii_presidio_synth", "pii_wnut17_emerging_entities"]
LONG = ["prose", "punctuation", "binary", "numbers"]


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def one_size(shared: Path, copies: int, shards: int, processes: int) -> dict:
    from custody.checks.pii import PiiCheck
    from custody.datasets.card import CARD_TEMPLATE, parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields
    from custody.datasets.registry import DatasetRegistry
    from custody.home import Home
    from custody.pipeline.run_check import run_check

    base = []
    for source in SOURCES:
        with open(shared / source / "data.jsonl", encoding="utf-8") as fh:
            base += [json.loads(line)["text"] for line in fh if line.strip()]
    texts = [f"{text} (copy {copy})" for copy in range(copies) for text in base]
    with tempfile.TemporaryDirectory(prefix="custody-bench-pii-scale-") as tmp:
        folder = Path(tmp) / "data"
        write_shards(folder, texts, shards, width=7)
        home = Home.init(Path(tmp) / "home")
        dataset, _ = DatasetRegistry(home).register(
            [folder], DatasetRef("pii-scale", "1"), parse_card(CARD_TEMPLATE), Fields(id="id")
        )
        started = time.perf_counter()
        result = run_check(home, dataset, PiiCheck(processes=processes))
        seconds = time.perf_counter() - started
        home.close()
    return {
        "copies": copies,
        "records": result.records,
        "characters": sum(map(len, texts)),
        "shards": shards,
        "processes": processes,
        "seconds": round(seconds, 2),
        "records_per_s": round(result.records / seconds, 1),
        "peak_rss_parent_mib": _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
        "peak_rss_workers_mib": _mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss),
    }


def one_long(kind: str, shared: Path) -> dict:
    from custody.pii.fast import FastScanner, ScannerConfig

    rng = random.Random(0)
    if kind == "prose":
        text = (shared / "corpus_tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:1_000_000]
    elif kind == "punctuation":
        text = "".join(rng.choice(".,;:-+=/|()[]{}#%!?*&^~ \n") for _ in range(1_000_000))
    elif kind == "binary":
        text = "".join(chr(rng.randrange(0, 256)) for _ in range(1_000_000))
    else:  # a table of numbers
        rows = (" | ".join(f"{rng.random() * 1000:.2f}" for _ in range(8)) for _ in range(20_000))
        text = "\n".join(rows)[:1_000_000]
    scanner = FastScanner(ScannerConfig())
    scanner.scan_batch(["warm up: call John Smith at 212-555-0199"])
    cpu, started = time.process_time(), time.perf_counter()
    spans = scanner.scan_batch([text])[0]
    return {
        "record": kind,
        "characters": len(text),
        "cpu_s": round(time.process_time() - cpu, 2),
        "wall_s": round(time.perf_counter() - started, 2),
        "spans": len(spans),
        "peak_rss_mib": _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
    }


def child(argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--copies", type=int, nargs="+", default=[12, 24])
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--json", type=Path, default=HERE / "out" / "pii_scale.json")
    parser.add_argument("--child-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-long", choices=LONG, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_size is not None:
        print(json.dumps(one_size(args.shared, args.child_size, args.shards, args.processes)))
        return
    if args.child_long is not None:
        print(json.dumps(one_long(args.child_long, args.shared)))
        return

    common = ["--shared", str(args.shared), "--shards", str(args.shards), "--processes", str(args.processes)]
    sizes = []
    for copies in args.copies:
        sizes.append(child([*common, "--child-size", str(copies)]))
        r = sizes[-1]
        print(
            f"{r['records']:>8,} records, {r['characters'] / 1e6:.1f} M chars: {r['seconds']:.1f} s, "
            f"{r['records_per_s']:,.0f} records/s, peak RSS parent {r['peak_rss_parent_mib']:.0f} MiB, "
            f"workers {r['peak_rss_workers_mib']:.0f} MiB",
            flush=True,
        )
    long = []
    for kind in LONG:
        long.append(child(["--shared", str(args.shared), "--child-long", kind]))
        r = long[-1]
        print(
            f"one 1 MB record, {kind}: {r['cpu_s']:.1f} CPU-s, {r['spans']} spans, "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    document = {"benchmark": "pii check at scale", "sources": SOURCES, "sizes": sizes, "long_records": long}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(stamp(document), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
