"""Scale benchmark: the PII check's docs/s locally and on 1 and 2 Ray workers, in one run.

    python bench/scale.py [--shared ../shared/data] [--copies 4] [--shards 8] [--rounds 3] [--json bench/out/scale.json]

Data: pii_presidio_synth/data.jsonl (750 short documents) repeated --copies times, each copy
marked so no two records are equal, registered as one dataset of --shards shards in a
throwaway home. Kinds of run of `run_check` with the pii check's default configuration,
each on the same dataset (the work area is cleared by every recorded run, so each scans every
shard):

- local: the local executor, its ParallelScanner over 2 processes (this machine's cores);
- ray x1, ray x2: the Ray executor with 1 and 2 actors (one CPU each, the scanner in one
  process inside each) on a one-node Ray cluster started here with 2 CPUs;
- ray 1x2: one actor holding both CPUs (`cpus_per_worker=2`), its scanner forking 2 processes
  from the one model it loaded: the same two cores with one start-up instead of two. Its scan
  CPU-seconds count the actor's own process only, not the forked scanners.
- ray x1 warm, ray x2 warm: 1 and 2 actors of a warm pool (`keep_warm`): loaded actors kept
  from an earlier run, as a cluster that serves one check after another keeps them. They run in
  a second phase, after the cold rounds (a cold run sends idle warm actors away to get their
  CPUs): one priming run starts the pool (its figure is kept as `warm_pool.first_run`), then
  rounds of local, ray x1 warm and ray x2 warm. The driver is still a fresh process each time.
- ray x1 warm, unmetered and ray x2 warm, unmetered: the same, without the driver's CodeCarbon
  tracker (`carbon=None`), to show what its start in a fresh process costs the ratio (custody
  itself always measures; `meter_start` in each breakdown is that start).

Every run is a fresh Python process, as a `custody check` command is: nothing (a loaded model,
a Ray connection's workers) carries over from one run to the next, except a warm pool's actors. The kinds run in turn,
--rounds times (local, ray x1, ray x2, cores, local, ...), so a change in the machine's load
falls on all alike; each kind's figure is its median round, every ratio is taken within a round
and then its median, and every round is kept in the JSON. `cores` is the machine's own ceiling
without Ray: the model loaded once, then 1 or 2 forked processes scanning the shards.

Each figure is end to end, as a user waits for it: `run_check` from its call to its return
(opening the check, starting actors and loading the spaCy model in each, scanning, accepting,
concatenating and recording). Docs/s = records / wall seconds. Scaling efficiency, end to end
= ray x2 docs/s / (2 x ray x1 docs/s). Steady-state efficiency uses the
same ratio over the scanning window alone (the first shard's start on any worker to the last
shard's end): what the two workers achieve once started, with start-up and the driver's tail
left out of both sides alike. Each Ray run also reports where its wall time went (the driver's
phases and its workers' start-up, model load, scans and hand-backs: `custody.pipeline.timeline`).
The result digests of every run must be equal (the benchmark fails otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _data import write_shards
from _meta import load_average, stamp
from custody.checks.pii import PiiCheck
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.pipeline.run_check import DEFAULT_CARBON, run_check
from custody.pipeline.timeline import Timeline

HERE = Path(__file__).resolve().parent
REF = DatasetRef("scale", "1")
# Ray kinds: (actors, CPUs per actor, keep_warm seconds). "ray 1x2" is one actor holding both
# CPUs, its scanner forking 2 processes from one loaded model (RayExecutor(cpus_per_worker=2)).
# "unmetered": the same run without the driver's CodeCarbon tracker (run_check(carbon=None)), to
# show what the tracker's start costs; custody itself always meters.
KEEP_WARM_S = 600.0
KINDS = {"local": None, "ray x1": (1, 1, 0.0), "ray x2": (2, 1, 0.0), "ray 1x2": (1, 2, 0.0)}
WARM_KINDS = {
    "local": None,
    "ray x1 warm": (1, 1, KEEP_WARM_S),
    "ray x2 warm": (2, 1, KEEP_WARM_S),
    "ray x1 warm, unmetered": (1, 1, KEEP_WARM_S),
    "ray x2 warm, unmetered": (2, 1, KEEP_WARM_S),
}


def build_dataset(home: Home, shared: Path, copies: int, shards: int, folder: Path):
    with open(shared / "pii_presidio_synth" / "data.jsonl", encoding="utf-8") as fh:
        base = [json.loads(line)["text"] for line in fh]
    texts = [f"{text} (copy {copy})" for copy in range(copies) for text in base]
    write_shards(folder, texts, shards)
    card = parse_card(CARD_TEMPLATE)
    dataset, _ = DatasetRegistry(home).register([folder], REF, card, Fields(id="id"))
    return dataset, sum(len(t) for t in texts)


# -- one run, in its own process ------------------------------------------------------------------
def breakdown(timeline: Timeline, start: float, end: float, workers: int) -> dict:
    """Where one Ray run's wall time went, in seconds (sums over workers where several overlap)."""
    scans = timeline.named("scan")
    first, last = min(s.start for s in scans), max(s.end for s in scans)
    scanning = sum(s.seconds for s in scans)

    def total(name: str) -> float:
        return round(timeline.seconds(name), 3)

    def longest(name: str) -> float:
        return round(max((s.seconds for s in timeline.named(name)), default=0.0), 3)

    return {
        "wall_s": round(end - start, 3),
        "to_first_scan_s": round(first - start, 3),  # open, actor start-up and model load, as waited for
        "meter_start_s": total("meter start"),  # the driver's CodeCarbon tracker (its imports, once a process)
        "driver_open_s": total("open"),
        "driver_open_cpu_s": round(sum(s.labels["cpu"] for s in timeline.named("open")), 3),
        "actor_start_s": longest("actor start"),  # asked for -> constructed (process, imports)
        "model_load_s": longest("model load"),  # the check opened in the actor (the spaCy model)
        "model_load_cpu_s": round(sum(s.labels["cpu"] or 0.0 for s in timeline.named("model load")), 3),
        "scan_window_s": round(last - first, 3),
        "scan_s": round(scanning, 3),  # summed over workers
        "scan_cpu_s": round(sum(s.labels["cpu"] or 0.0 for s in scans), 3),
        "per_shard_s": round(scanning / len(scans), 3),
        "hand_back_s": total("hand back"),  # scan end -> result in the driver (object transfer)
        "accept_s": total("accept"),  # the driver's durable rename and digest per shard
        "after_last_scan_s": round(end - last, 3),  # the tail: last hand-back to the returned result
        "finish_s": total("finish"),
        "concatenate_s": total("concatenate"),
        "store_s": total("store"),
        "record_s": total("record"),
        "worker_busy": round(scanning / (workers * (end - start)), 3),  # share of the wall the workers scanned
    }


def one(args: argparse.Namespace) -> None:
    """Run one kind once, print its figures as one JSON line (the parent reads it)."""
    home = Home.open(args.home)
    dataset = DatasetRegistry(home).get(REF)
    shape = (KINDS | WARM_KINDS)[args.one]
    executor = None
    if shape:
        import ray

        from custody.pipeline.executors.ray import RayExecutor

        ray.init(address=args.address, log_to_driver=False)
        executor = RayExecutor(workers=shape[0], cpus_per_worker=shape[1], keep_warm=shape[2])
    check = PiiCheck(processes=2) if shape is None else PiiCheck()
    timeline = Timeline()
    carbon = None if args.one.endswith("unmetered") else DEFAULT_CARBON
    start = time.time()
    result = run_check(home, dataset, check, executor=executor, timeline=timeline, carbon=carbon)
    end = time.time()
    figure = {
        "run": args.one,
        "seconds": round(end - start, 2),
        "docs_per_s": round(result.records / (end - start), 1),
        "load_average": load_average(),
        "result_digest": result.result_digest,
    }
    if shape:
        figure["breakdown"] = breakdown(timeline, start, end, shape[0])
        ray.shutdown()
    home.close()
    print(json.dumps(figure), flush=True)


def _scan_part(check: PiiCheck, dataset, numbers: list[int]) -> None:
    for number in numbers:
        check.scan_shard(dataset, dataset.manifest.shards[number], lambda row: None)


def cores(args: argparse.Namespace) -> None:
    """What this machine's cores give this scanning work without Ray: the model loaded once, then
    1 or 2 forked processes each scanning its share of the shards (shard i to process i mod n),
    as Ray's actors do; the wall from fork to the last join. The steady state's ceiling."""
    import multiprocessing

    home = Home.open(args.home)
    dataset = DatasetRegistry(home).get(REF)
    check = PiiCheck(processes=1)
    check.open(dataset)  # loads the model here; forked processes inherit it
    _scan_part(check, dataset, [0])  # warm: the first scan's lazy set-up is nobody's scanning
    context = multiprocessing.get_context("fork")
    seconds = {}
    for n in (1, 2):
        shards = len(dataset.manifest.shards)
        parts = [[i for i in range(shards) if i % n == p] for p in range(n)]
        start = time.perf_counter()
        processes = [context.Process(target=_scan_part, args=(check, dataset, part)) for part in parts]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
            assert process.exitcode == 0
        seconds[n] = time.perf_counter() - start
    check.close()
    home.close()
    one, two = seconds[1], seconds[2]
    figure = {"run": "cores", "one_process_s": round(one, 3), "two_processes_s": round(two, 3)}
    print(json.dumps(figure | {"efficiency": round(one / (2 * two), 3), "load_average": load_average()}), flush=True)


# -- the whole benchmark ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(temp_dir: Path):
    """A one-node Ray cluster with 2 CPUs, on a port and in a temp dir of its own (others share this machine)."""
    from ray.cluster_utils import Cluster

    from custody.testing.ray_cluster import AGENT_WAIT_MS

    # Ray writes the cluster's address to /tmp/ray/ray_current_cluster even with a temp dir of
    # our own, and fails on a machine where no Ray ran before.
    Path(tempfile.gettempdir(), "ray").mkdir(exist_ok=True)
    return Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "gcs_server_port": free_port(),
            "temp_dir": str(temp_dir),
            "include_dashboard": False,
            "object_store_memory": 200 << 20,
            "_system_config": {"agent_register_timeout_ms": AGENT_WAIT_MS},
        },
    )


def child(kind: str, home: Path, address: str) -> dict:
    command = [sys.executable, __file__, "--one", kind, "--home", str(home), "--address", address]
    env = os.environ | ({"OMP_NUM_THREADS": "1"} if kind == "cores" else {})  # as Ray sets it for an actor
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=HERE, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_rounds(rounds: dict[str, list[dict]], count: int, home: Path, address: str) -> None:
    """Run every kind in `rounds` in turn, `count` times; each figure is appended to its kind's list."""
    for number in range(count):
        for kind in rounds:
            figure = child(kind, home, address)
            rounds[kind].append(figure)
            if kind == "cores":
                line = f"1 process {figure['one_process_s']:6.2f} s, 2 processes {figure['two_processes_s']:.2f} s"
            else:
                line = f"{figure['seconds']:6.2f} s {figure['docs_per_s']:7.1f} docs/s"
                if "breakdown" in figure:
                    line += f"  scan window {figure['breakdown']['scan_window_s']:.2f} s"
            print(f"  round {number + 1} {kind:<11} {line}  load {figure['load_average']:.2f}", flush=True)


def median_round(rounds: list[dict]) -> dict:
    return sorted(rounds, key=lambda r: r["seconds"])[(len(rounds) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared" / "data")
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=HERE / "out" / "scale.json")
    parser.add_argument("--one", choices=[*KINDS, *WARM_KINDS, "cores"], help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one == "cores":
        return cores(args)
    if args.one:
        return one(args)

    rounds: dict[str, list[dict]] = {kind: [] for kind in [*KINDS, "cores"]}
    warm_rounds: dict[str, list[dict]] = {kind: [] for kind in WARM_KINDS}
    with tempfile.TemporaryDirectory(prefix="custody-scale-") as tmp:
        home = Home.init(Path(tmp) / "home")
        dataset, characters = build_dataset(home, args.shared, args.copies, args.shards, Path(tmp) / "data")
        records = dataset.manifest.records
        home.close()
        print(f"{records} records, {characters} characters, {args.shards} shards, load {load_average()}", flush=True)
        cluster = start_cluster(Path(tmp) / "ray")
        try:
            run_rounds(rounds, args.rounds, Path(tmp) / "home", cluster.address)
            print("  warm pool: first run", flush=True)
            first_warm = child("ray x2 warm", Path(tmp) / "home", cluster.address)
            print(f"    {first_warm['seconds']:6.2f} s (starts the pool's 2 actors)", flush=True)
            run_rounds(warm_rounds, args.rounds, Path(tmp) / "home", cluster.address)
        finally:
            cluster.shutdown()

    every = [r for kind in KINDS for r in rounds[kind]] + [r for kind in WARM_KINDS for r in warm_rounds[kind]]
    if len({r["result_digest"] for r in [*every, first_warm]}) != 1:
        raise SystemExit("result digests differ between executors")
    runs = [median_round(rounds[kind]) | {"rounds": [r["seconds"] for r in rounds[kind]]} for kind in KINDS]
    local, one_worker, two_workers, one_actor = runs
    for r in runs:
        r["vs_local"] = round(r["docs_per_s"] / local["docs_per_s"], 2)

    # Ratios within a round (its runs follow one another, under about the same load), then the median.
    x1, x2 = rounds["ray x1"], rounds["ray x2"]
    pairs = list(zip(x1, x2, strict=True))
    window = lambda r: r["breakdown"]["scan_window_s"]  # noqa: E731
    cpu = lambda r, part: r["breakdown"][part]  # noqa: E731
    efficiency = statistics.median(b["docs_per_s"] / (2 * a["docs_per_s"]) for a, b in pairs)
    steady_efficiency = statistics.median(window(a) / (2 * window(b)) for a, b in pairs)
    # The same two ratios for one actor holding both CPUs (one model load, two forked scanners).
    packed = list(zip(x1, rounds["ray 1x2"], strict=True))
    packed_efficiency = statistics.median(b["docs_per_s"] / (2 * a["docs_per_s"]) for a, b in packed)
    packed_steady = statistics.median(window(a) / (2 * window(b)) for a, b in packed)
    # Generous: ray x1's start-up and tail as they were, only its scan window halved.
    ceiling = statistics.median(a["seconds"] / (2 * (a["seconds"] - window(a) / 2)) for a in x1)
    cores_ceiling = statistics.median(c["efficiency"] for c in rounds["cores"])
    scan_cpu = statistics.median(cpu(b, "scan_cpu_s") / cpu(a, "scan_cpu_s") for a, b in pairs)
    # The same two runs on 2 idle cores, from the CPU-seconds each part took (no neighbours, no
    # process start-up): one worker loads beside the driver and scans alone; two workers and the
    # driver share both cores for their three loads, then scan on one each.
    load1 = statistics.median(max(cpu(a, "driver_open_cpu_s"), cpu(a, "model_load_cpu_s")) for a in x1)
    scan1 = statistics.median(cpu(a, "scan_cpu_s") for a in x1)
    load2 = statistics.median((cpu(b, "driver_open_cpu_s") + cpu(b, "model_load_cpu_s")) / 2 for b in x2)
    loads2 = statistics.median(cpu(b, "model_load_cpu_s") / 2 for b in x2)  # the actors' alone
    scan2 = statistics.median(cpu(b, "scan_cpu_s") / 2 for b in x2)
    idle = {
        "ray_x1_s": round(load1 + scan1, 2),
        "ray_x2_s": round(load2 + scan2, 2),
        "efficiency": round((load1 + scan1) / (2 * (load2 + scan2)), 3),
        "without_driver_load_efficiency": round((load1 + scan1) / (2 * (loads2 + scan2)), 3),
    }
    per_worker = one_worker["docs_per_s"]
    per_worker_chars = per_worker * characters / records
    steady_chars = characters / statistics.median(window(a) for a in x1)
    seconds = ", ".join(f"{r['run']} {r['seconds']:.2f} s" for r in runs)
    print(f"  median rounds: {seconds}")
    print(
        f"  vs local (the peer, same rounds): ray x1 {one_worker['vs_local']:.2f}, ray x2 {two_workers['vs_local']:.2f}"
    )
    print(f"  scaling efficiency, end to end (ray x2 / 2 x ray x1, median of rounds): {efficiency:.2f}")
    print(f"  scaling efficiency, steady state (scan windows, median of rounds): {steady_efficiency:.2f}")
    print(f"  scanning CPU-seconds, ray x2 over ray x1: {scan_cpu:.2f}")
    print(
        f"  one actor with 2 CPUs (ray 1x2) over twice ray x1: {packed_efficiency:.2f} end to end, "
        f"{packed_steady:.2f} steady state; vs local {one_actor['vs_local']:.2f}"
    )
    print(f"  ceiling, end to end (ray x1's start-up and tail, its scan window halved): {ceiling:.2f}")
    print(f"  ceiling, steady state (2 forked processes over twice 1, without Ray, same rounds): {cores_ceiling:.2f}")
    print(
        f"  on 2 idle cores, from CPU-seconds: ray x1 {idle['ray_x1_s']} s, ray x2 {idle['ray_x2_s']} s, "
        f"efficiency {idle['efficiency']:.2f} ({idle['without_driver_load_efficiency']:.2f} without the driver's load)"
    )
    print(f"  per worker: {per_worker:.1f} docs/s end to end, {steady_chars:,.0f} chars/s scanning")
    # The warm pool: the same two ratios over runs whose actors were loaded by an earlier run.
    w1, w2 = warm_rounds["ray x1 warm"], warm_rounds["ray x2 warm"]
    warm_pairs = list(zip(w1, w2, strict=True))
    warm_efficiency = statistics.median(b["docs_per_s"] / (2 * a["docs_per_s"]) for a, b in warm_pairs)
    warm_steady = statistics.median(window(a) / (2 * window(b)) for a, b in warm_pairs)
    warm_runs = [
        median_round(warm_rounds[kind]) | {"rounds": [r["seconds"] for r in warm_rounds[kind]]} for kind in WARM_KINDS
    ]
    for r in warm_runs:
        r["vs_local"] = round(r["docs_per_s"] / warm_runs[0]["docs_per_s"], 2)
    # Generous: ray x1 warm's driver work (before the first scan, after the last) as measured, and
    # its scan window divided by 2 at this machine's own steady-state efficiency.
    warm_ceiling = statistics.median(
        a["seconds"] / (2 * (a["seconds"] - window(a) + window(a) / (2 * cores_ceiling))) for a in w1
    )
    u1, u2 = warm_rounds["ray x1 warm, unmetered"], warm_rounds["ray x2 warm, unmetered"]
    unmetered = statistics.median(b["docs_per_s"] / (2 * a["docs_per_s"]) for a, b in zip(u1, u2, strict=True))
    meter_start = statistics.median(r["breakdown"]["meter_start_s"] for r in w1 + w2)
    seconds = ", ".join(f"{r['run']} {r['seconds']:.2f} s" for r in warm_runs)
    print(f"  warm pool, median rounds: {seconds}; its first run {first_warm['seconds']:.2f} s")
    print(
        f"  warm pool vs local (same rounds): ray x1 warm {warm_runs[1]['vs_local']:.2f}, "
        f"ray x2 warm {warm_runs[2]['vs_local']:.2f}"
    )
    print(f"  scaling efficiency, warm pool, end to end (median of rounds): {warm_efficiency:.2f}")
    print(f"  scaling efficiency, warm pool, steady state (scan windows): {warm_steady:.2f}")
    print(f"  ceiling, warm pool, end to end (ray x1 warm's driver work, window at cores' ceiling): {warm_ceiling:.2f}")
    print(
        f"  the driver's CodeCarbon start in those runs: {meter_start:.2f} s; without it (unmetered): {unmetered:.2f}"
    )
    for r in (one_worker, two_workers, one_actor, *warm_runs[1:]):
        parts = ", ".join(f"{k.removesuffix('_s')} {v}" for k, v in r["breakdown"].items())
        print(f"  {r['run']}: {parts}")
    out = {
        "machine": {"cpus": os.cpu_count()},
        "records": records,
        "characters": characters,
        "shards": args.shards,
        "rounds": args.rounds,
        "load_average": [r["load_average"] for kind in rounds for r in rounds[kind]],
        "runs": runs,
        "all_rounds": rounds,
        "scaling_efficiency": round(efficiency, 3),
        "steady_state_scaling_efficiency": round(steady_efficiency, 3),
        "scan_cpu_ratio": round(scan_cpu, 3),
        "one_actor_two_cpus": {
            "scaling_efficiency": round(packed_efficiency, 3),
            "steady_state_scaling_efficiency": round(packed_steady, 3),
        },
        "end_to_end_ceiling": round(ceiling, 3),
        "steady_state_ceiling": round(cores_ceiling, 3),
        "idle_estimate": idle,
        "warm_pool": {
            "keep_warm_s": KEEP_WARM_S,
            "first_run": first_warm,
            "runs": warm_runs,
            "all_rounds": warm_rounds,
            "scaling_efficiency": round(warm_efficiency, 3),
            "steady_state_scaling_efficiency": round(warm_steady, 3),
            "end_to_end_ceiling": round(warm_ceiling, 3),
            "meter_start_s": round(meter_start, 3),
            "unmetered_scaling_efficiency": round(unmetered, 3),
        },
        "per_worker_docs_per_s": per_worker,
        "per_worker_chars_per_s": round(per_worker_chars),
        "per_worker_scanning_chars_per_s": round(steady_chars),
        "result_digest": local["result_digest"],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(stamp(out), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
