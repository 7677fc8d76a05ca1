"""Scale benchmark: the PII check's docs/s locally and on 1 and 2 Ray workers, in one run.

    python bench/scale.py [--shared ../shared/data] [--copies 4] [--shards 8] [--json bench/out/scale.json]

Data: pii_presidio_synth/data.jsonl (750 short documents) repeated --copies times, each copy
marked so no two records are equal, registered as one dataset of --shards shards in a
throwaway home. Three runs of `run_check` with the pii check's default configuration, each on
the same dataset (the work area is cleared by every recorded run, so each scans every shard):

- local: the local executor, its ParallelScanner over 2 processes (this machine's cores);
- ray x1, ray x2: the Ray executor with 1 and 2 actors (one CPU each, the scanner in one
  process inside each) on a one-node Ray cluster started here with 2 CPUs.

Each figure is end to end, as a user waits for it: opening the check, starting actors and
loading the spaCy model in each, scanning, concatenating and recording. Docs/s = records /
wall seconds. Scaling efficiency = ray x2 docs/s / (2 x ray x1 docs/s). The result digests of
the three runs must be equal (the benchmark fails otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from _data import write_shards
from _meta import stamp
from custody.checks.pii import PiiCheck
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.pipeline.run_check import run_check

HERE = Path(__file__).resolve().parent


def build_dataset(home: Home, shared: Path, copies: int, shards: int, folder: Path):
    with open(shared / "pii_presidio_synth" / "data.jsonl", encoding="utf-8") as fh:
        base = [json.loads(line)["text"] for line in fh]
    texts = [f"{text} (copy {copy})" for copy in range(copies) for text in base]
    write_shards(folder, texts, shards)
    card = parse_card(CARD_TEMPLATE)
    dataset, _ = DatasetRegistry(home).register([folder], DatasetRef("scale", "1"), card, Fields(id="id"))
    return dataset, sum(len(t) for t in texts)


def timed(label: str, home: Home, dataset, check, executor=None) -> dict:
    start = time.perf_counter()
    result = run_check(home, dataset, check, executor=executor)
    seconds = time.perf_counter() - start
    figure = {"run": label, "seconds": round(seconds, 2), "docs_per_s": round(result.records / seconds, 1)}
    print(f"  {label:<8} {seconds:7.1f} s  {figure['docs_per_s']:8.1f} docs/s", flush=True)
    return figure | {"result_digest": result.result_digest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared" / "data")
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--json", type=Path, default=HERE / "out" / "scale.json")
    args = parser.parse_args()

    import ray

    from custody.pipeline.executors.ray import RayExecutor
    from custody.testing.ray_cluster import local_cluster

    with tempfile.TemporaryDirectory(prefix="custody-scale-") as tmp:
        home = Home.init(Path(tmp) / "home")
        dataset, characters = build_dataset(home, args.shared, args.copies, args.shards, Path(tmp) / "data")
        records = dataset.manifest.records
        print(f"{records} records, {characters} characters, {args.shards} shards", flush=True)
        runs = [timed("local", home, dataset, PiiCheck(processes=2))]
        with local_cluster(nodes=1, cpus_per_node=2) as address:
            ray.init(address=address, log_to_driver=False)
            try:
                runs.append(timed("ray x1", home, dataset, PiiCheck(), RayExecutor(workers=1)))
                runs.append(timed("ray x2", home, dataset, PiiCheck(), RayExecutor(workers=2)))
            finally:
                ray.shutdown()
        home.close()

    if len({r["result_digest"] for r in runs}) != 1:
        raise SystemExit("result digests differ between executors")
    local, one, two = (r["docs_per_s"] for r in runs)
    efficiency = two / (2 * one)
    per_worker_chars = one * characters / records
    for r in runs:
        r["vs_local"] = round(r["docs_per_s"] / local, 2)
    print(f"  scaling efficiency (ray x2 / 2 x ray x1): {efficiency:.2f}")
    print(f"  per worker: {one:.1f} docs/s, {per_worker_chars:,.0f} chars/s")
    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "records": records,
        "characters": characters,
        "shards": args.shards,
        "runs": runs,
        "scaling_efficiency": round(efficiency, 3),
        "per_worker_docs_per_s": one,
        "per_worker_chars_per_s": round(per_worker_chars),
        "result_digest": runs[0]["result_digest"],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(stamp(out), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
