"""Where registration's time goes on one shard: the profile behind datasets/shard_scan.py.

    python bench/register_profile.py [--shard-mb 64] [--json OUT]

Generates one JSONL shard like bench/register.py's, warms it into the page cache, and times each
part of reading it on one core (best of three):
  * reading the bytes, and hashing them with OpenSSL (the floor);
  * the reference path: `read_records` (json.loads, validation and a SHA-256 of every record's
    text), which registration used before issue 23, plus the two extra reads it made in place;
  * orjson alone over every line, and the fast path of shard_scan (`scan_shard`: one read,
    hashed, orjson with the checks, the json path only for lines it cannot settle).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from _meta import stamp
from custody.datasets.readers import Fields, read_records
from custody.datasets.shard_scan import ShardTask, scan_shard
from custody.store import sha256_file
from register import MiB, generate_corpus


def best(fn: Callable[[], object], rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shard-mb", type=int, default=64)
    parser.add_argument("--json", type=Path, dest="json_out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="custody-register-profile-") as work:
        (shard,), records = generate_corpus(Path(work), args.shard_mb / 1024, args.shard_mb)
        size = shard.stat().st_size
        data = shard.read_bytes()
        lines = data.split(b"\n")
        parts = {
            "read the bytes": lambda: shard.read_bytes(),
            "sha256 (OpenSSL)": lambda: hashlib.sha256(data).hexdigest(),
            "split into lines": lambda: data.split(b"\n"),
            "orjson.loads every line": lambda: [orjson.loads(line) for line in lines if line.strip()],
            "json.loads every line": lambda: [json.loads(line.decode()) for line in lines if line.strip()],
            "before: read_records (json, checks, sha256 per record)": lambda: sum(
                1 for _ in read_records(shard, "jsonl", Fields())
            ),
            "before, --in-place: hash + read_records + hash again": lambda: (
                sha256_file(shard),
                sum(1 for _ in read_records(shard, "jsonl", Fields())),
                sha256_file(shard),
            ),
            "after: scan_shard in place (one read: hash, orjson, checks)": lambda: scan_shard(
                ShardTask(shard.name, str(shard), "jsonl", Fields(), 32 << 20, None)
            ),
        }
        timings = {name: best(fn) for name, fn in parts.items()}
    result = {
        "benchmark": "registration profile, one shard on one core",
        "shard_bytes": size,
        "records": records,
        "parts": [
            {"part": name, "seconds": round(s, 4), "mib_per_s": round(size / MiB / s, 1)} for name, s in timings.items()
        ],
    }
    print(f"one shard: {size / MiB:.0f} MiB, {records:,} records (best of 3, one core)")
    for part in result["parts"]:
        print(f"  {part['part']:<62} {part['seconds']:>7.3f} s {part['mib_per_s']:>8.1f} MiB/s")
    if args.json_out:
        args.json_out.write_text(json.dumps(stamp(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
