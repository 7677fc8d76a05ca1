"""What a Ray run waits for before its first shard: the probes behind issue 23's warm pools.

    python bench/ray_startup.py [--drivers 4] [--json bench/out/ray_startup.json]

Two questions, each answered in fresh driver processes (as every `custody check` is one):

1. **Actor start.** On a one-node cluster with 2 CPUs started here, each driver asks for one
   actor and times, from the request: the actor's `__init__` starting (a Ray worker process that
   has started Python and imported Ray), and its first reply. Three kinds, every driver in turn:
   - `empty`: a class that imports nothing;
   - `custody`: its `__init__` imports custody's worker module (what `CheckWorker` needs);
   - `detached`: a detached, named actor of the `custody` kind that the first driver starts and
     later drivers find by name (what a warm pool does): later drivers' first reply.
   The first driver of the cluster is left out of `empty` and `custody` (the cluster prestarts
   workers for its first driver only).
2. **The driver's meter.** A fresh process starts one CodeCarbon tracker as `run_check` does
   (`UnitMeter`), with py-cpuinfo's cache empty (XDG_CACHE_HOME in a new folder: the first
   process on a machine) and then kept (every later process); and, on its own, how long
   py-cpuinfo's `get_cpu_info()` takes in a fresh process.

Medians over --drivers drivers (or processes); every sample is in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _meta import load_average, stamp
from scale import start_cluster

HERE = Path(__file__).resolve().parent

DRIVER = r"""
import json, sys, time
import ray

address, kind = sys.argv[1], sys.argv[2]
ray.init(address=address, namespace="custody-startup-probe", log_to_driver=False)


class Empty:
    def __init__(self):
        self.entered = time.time()

    def stamps(self):
        return self.entered, 0.0


class Custody:
    def __init__(self):
        self.entered = time.time()
        started = time.perf_counter()
        import custody.pipeline.executors.ray_workers  # noqa: F401  what CheckWorker imports

        self.imported = time.perf_counter() - started

    def stamps(self):
        return self.entered, self.imported


asked = time.time()
if kind == "detached":
    try:
        actor, found = ray.get_actor("probe-warm"), True
    except ValueError:
        actor, found = ray.remote(Custody).options(name="probe-warm", lifetime="detached", num_cpus=1).remote(), False
else:
    actor, found = ray.remote(Empty if kind == "empty" else Custody).options(num_cpus=1).remote(), False
entered, imported = ray.get(actor.stamps.remote())
replied = time.time()
print(json.dumps({"kind": kind, "found": found, "to_init_s": round(entered - asked, 3),
                  "import_s": round(imported, 3), "to_reply_s": round(replied - asked, 3)}))
"""

METER = r"""
import json, time
started = time.perf_counter()
from custody.train.carbon import CarbonConfig, UnitMeter
meter = UnitMeter(CarbonConfig(), "probe").start()
seconds = time.perf_counter() - started
assert meter.meter is not None, meter.problem
meter.finish()
print(json.dumps({"meter_start_s": round(seconds, 3)}))
"""

CPUINFO = r"""
import json, time
import cpuinfo
started = time.perf_counter()
cpuinfo.get_cpu_info()
print(json.dumps({"get_cpu_info_s": round(time.perf_counter() - started, 3)}))
"""


def run(code: str, *args: str, env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=HERE, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def actor_start(drivers: int) -> dict:
    samples: dict[str, list[dict]] = {"empty": [], "custody": [], "detached": []}
    with tempfile.TemporaryDirectory(prefix="custody-startup-") as tmp:
        cluster = start_cluster(Path(tmp) / "ray")
        try:
            run(DRIVER, cluster.address, "empty")  # the first driver: its workers were prestarted
            for _ in range(drivers):
                for kind in samples:
                    samples[kind].append(run(DRIVER, cluster.address, kind))
                    print(f"  {kind:<9} {samples[kind][-1]}", flush=True)
        finally:
            cluster.shutdown()
    found = [s for s in samples["detached"] if s["found"]]
    median = lambda rows, key: round(statistics.median(r[key] for r in rows), 3)  # noqa: E731
    return {
        "samples": samples,
        "empty_to_init_s": median(samples["empty"], "to_init_s"),
        "custody_to_init_s": median(samples["custody"], "to_init_s"),
        "custody_import_s": median(samples["custody"], "import_s"),
        "custody_to_reply_s": median(samples["custody"], "to_reply_s"),
        "detached_found_to_reply_s": median(found, "to_reply_s"),
    }


def meter_start(processes: int) -> dict:
    cold, kept, probe = [], [], []
    with tempfile.TemporaryDirectory(prefix="custody-cpuinfo-") as tmp:
        for number in range(processes):
            empty = os.environ | {"XDG_CACHE_HOME": str(Path(tmp) / f"empty-{number}")}
            cold.append(run(METER, env=empty)["meter_start_s"])
            kept.append(run(METER, env=os.environ | {"XDG_CACHE_HOME": str(Path(tmp) / "kept")})["meter_start_s"])
            probe.append(run(CPUINFO)["get_cpu_info_s"])
            print(f"  meter start: cache empty {cold[-1]} s, kept {kept[-1]} s; get_cpu_info {probe[-1]} s", flush=True)
    return {
        "cache_empty_s": cold,
        "cache_kept_s": kept[1:],  # the first call with the kept folder fills it
        "get_cpu_info_s": probe,
        "median_cache_empty_s": round(statistics.median(cold), 3),
        "median_cache_kept_s": round(statistics.median(kept[1:]), 3),
        "median_get_cpu_info_s": round(statistics.median(probe), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drivers", type=int, default=4)
    parser.add_argument("--json", type=Path, default=HERE / "out" / "ray_startup.json")
    args = parser.parse_args()
    print(f"load {load_average()}", flush=True)
    actors = actor_start(args.drivers)
    meter = meter_start(args.drivers + 1)
    print(
        f"actor start, request to __init__: empty class {actors['empty_to_init_s']} s, custody's "
        f"{actors['custody_to_init_s']} s (then its imports {actors['custody_import_s']} s); "
        f"a detached actor found by name replies in {actors['detached_found_to_reply_s']} s"
    )
    print(
        f"driver meter start: {meter['median_cache_empty_s']} s with py-cpuinfo's cache empty, "
        f"{meter['median_cache_kept_s']} s with it kept; get_cpu_info alone {meter['median_get_cpu_info_s']} s"
    )
    out = {"drivers": args.drivers, "actor_start": actors, "meter": meter, "load_average": load_average()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(stamp(out), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
