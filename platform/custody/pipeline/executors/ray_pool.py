"""Warm actors: a check's or stage's Ray actors kept loaded between runs, so the next run skips their start-up.

Starting an actor costs a fresh worker process (Python and Ray), custody's imports and the
check's model load: ~4 s for the pii check on a small node, which is most of a short run
(docs/benchmarks.md, "Scale (Ray)"). With `keep_warm` the actors are detached and named after
everything their loaded state depends on (`pool_name`): the check as pickled, the home, the
dataset unless the check's `open` reads only the home, the CPUs per actor and custody's version.
A later run that asks for the same pool finds them by name; any difference is another pool.

A stage's pool is named the same way after the stage's name and configuration digest (a stage is
built from those and the home, never from the dataset).

A warm actor holds its CPUs while it waits, so it is a cache, never a reservation:
- it leaves by itself after `keep_warm` idle seconds (`IdleClock` in the actor);
- a run that finds too few free CPUs for its own actors asks the warm actors of other pools to
  leave once idle for `BUSY_GAP_S` (`make_room`): one busy with a shard, or between two shards of
  a run, finishes that run first; the asking run's actors wait for the CPUs meanwhile;
- `custody ray release` (`release`) asks every warm actor to leave now.
An actor that leaves while a run still sends it a shard is a lost actor, which the executor
already survives: the shard is run again on a fresh one.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from custody import __version__
from custody.ledger.entry import json_digest

NAMESPACE = "custody"
PREFIX = "custody-warm-"
BUSY_GAP_S = 2.0  # idle for less than this: between two shards of a run, not to be evicted


def pool_name(
    kind: str, work: bytes, home_path: str, database_url: str, dataset_digest: str | None, cpus: float
) -> str:
    """The name shared by the actors of one pool (`-<slot>` follows): `kind` is the actor class
    ("check", "stage"), `work` what it holds (a pickled check; a stage's name and configuration
    digest). A digest, so no URL or password shows in Ray's actor list."""
    scope = {
        "kind": kind,
        "work": hashlib.sha256(work).hexdigest(),
        "home": home_path,
        "database": database_url,
        "dataset": dataset_digest,
        "cpus": cpus,
        "custody": __version__,
    }
    return f"{PREFIX}{json_digest(scope)[:16]}"


def slot_name(pool: str, slot: int) -> str:
    return f"{pool}-{slot}"


def pool_of(name: str) -> str:
    """The pool a warm actor's name belongs to (`slot_name` undone)."""
    return name.rsplit("-", 1)[0]


def warm_names(ray: Any) -> set[str]:
    """The names of every warm actor alive in custody's namespace (whichever the driver's is)."""
    named = ray.util.list_named_actors(all_namespaces=True)
    return {a["name"] for a in named if a["namespace"] == NAMESPACE and a["name"].startswith(PREFIX)}


def _ask_to_leave(ray: Any, names: set[str], idle_at_least: float) -> list[Any]:
    """Ask each named warm actor to leave once idle that long; the replies (an actor gone since
    the names were read is skipped)."""
    replies = []
    for name in sorted(names):
        try:
            replies.append(ray.get_actor(name, namespace=NAMESPACE).leave.remote(idle_at_least))
        except ValueError:
            continue
    return replies


def make_room(ray: Any, cpus_needed: float, keep: str | None = None) -> int:
    """Ask idle warm actors of pools other than `keep` to leave while the cluster has fewer
    than `cpus_needed` free CPUs; return how many were asked. They leave on their own time."""
    if ray.available_resources().get("CPU", 0.0) >= cpus_needed:
        return 0
    others = {name for name in warm_names(ray) if pool_of(name) != keep}
    return len(_ask_to_leave(ray, others, BUSY_GAP_S))


def release(ray: Any, wait_s: float = 30.0) -> int:
    """Ask every warm actor to leave once its current shard is done; return how many left
    within `wait_s`. A run still using one goes on with fresh actors."""
    names = warm_names(ray)
    replies = _ask_to_leave(ray, names, 0.0)
    ray.wait(replies, num_returns=len(replies), timeout=wait_s)
    deadline = time.monotonic() + wait_s
    while names & warm_names(ray) and time.monotonic() < deadline:
        time.sleep(0.1)  # an actor that left is named until Ray has cleaned it up
    return len(names - warm_names(ray))


class IdleClock:
    """When a warm actor was last busy, and the thread that sends it away once it has been idle
    for `keep_warm` seconds. `leave` (the actor's method, run between its tasks) decides."""

    def __init__(self, keep_warm: float, send_away: Callable[[], None]) -> None:
        self.keep_warm = keep_warm
        self.busy = 0
        self.last = time.monotonic()
        self._send_away = send_away
        threading.Thread(target=self._watch, name="custody-idle-clock", daemon=True).start()

    def __enter__(self) -> IdleClock:
        self.busy += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.busy -= 1
        self.last = time.monotonic()

    def shorten(self, keep_warm: float) -> None:
        """Leave sooner: after `keep_warm` idle seconds, if that is less than the pool's."""
        self.keep_warm = min(self.keep_warm, keep_warm)

    def idle_for(self) -> float:
        return 0.0 if self.busy else time.monotonic() - self.last

    def _watch(self) -> None:
        asked = None  # the idle period already asked about: `leave` itself checks again
        while True:
            time.sleep(max(0.05, min(self.keep_warm, 5.0) / 2))
            if self.idle_for() >= self.keep_warm and asked != self.last:
                asked = self.last
                self._send_away()
