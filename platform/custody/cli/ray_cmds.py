"""`custody ray ...`: the warm actors `--ray-keep-warm` leaves on a Ray cluster (docs/scale.md)."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from custody.cli.common import JsonOption, command_group, console, fail, print_json
from custody.cli.executor_opts import RayAddressOption
from custody.wording import plural

app = command_group(help="Warm Ray actors: loaded checks and stages kept between runs by --ray-keep-warm.")


def _connect(address: str | None) -> Any:
    """Join the cluster the warm actors live on; never start one (it would hold none)."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        fail("--ray-address: warm actors live on a running cluster; name it (or set $RAY_ADDRESS)")
    import ray

    try:
        ray.init(address=address, namespace="custody", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        fail(f"--ray-address: cannot reach the Ray cluster at {address}: {exc}")
    return ray


@app.command()
def warm(ray_address: RayAddressOption = None, as_json: JsonOption = False) -> None:
    """List the warm actors alive on the cluster, by pool."""
    from custody.pipeline.executors.ray_pool import pool_of, warm_names

    ray = _connect(ray_address)
    try:
        pools = Counter(pool_of(name) for name in warm_names(ray))
    finally:
        ray.shutdown()
    if as_json:
        print_json({"pools": dict(sorted(pools.items()))})
        return
    if not pools:
        console.print("no warm actors")
    for pool, actors in sorted(pools.items()):
        console.print(f"{pool}: {plural(actors, 'actor')}")


@app.command()
def release(ray_address: RayAddressOption = None, as_json: JsonOption = False) -> None:
    """Stop every warm actor once its current shard is done, freeing its CPUs now."""
    from custody.pipeline.executors.ray_pool import release as release_all
    from custody.pipeline.executors.ray_pool import warm_names

    ray = _connect(ray_address)
    try:
        left = release_all(ray)
        staying = len(warm_names(ray))
    finally:
        ray.shutdown()
    if as_json:
        print_json({"released": left, "still_running": staying})
        return
    console.print(f"released {plural(left, 'warm actor')}")
    if staying:
        fail(f"{plural(staying, 'warm actor')} did not stop within 30 s (busy with a long shard?); run this again", 1)
