"""What runs inside a Ray worker: one actor per worker slot, holding one built check or stage.

An actor opens the home from the shared path (no ledger writes, and no database connection
unless a check reads the ledger), rebuilds the check or stage, and loads its models once; then
it is handed shard numbers. It writes each shard's part to the shared work area under a name of
its own and returns the counts. Before its first shard it compares the digest of its own
configuration with the driver's, so a node with another model, scorer or setting fails loudly
instead of producing different rows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger.entry import json_digest
from custody.pipeline.decisions import DecisionWriter, output_row
from custody.pipeline.executors.base import scan_one
from custody.pipeline.executors.ray_pool import IdleClock
from custody.pipeline.jobs import ScannedShard, StagePart
from custody.pipeline.shard_work import ShardWork
from custody.stages.catalog import STAGES


class ConfigMismatch(RuntimeError):
    """A worker built the check or stage with another configuration than the driver's."""


@dataclass(frozen=True)
class DatasetHandle:
    """A registered dataset without its open home (no connection to pickle): where the home is,
    and the dataset's own fields, from which a worker opens it again."""

    home_path: str
    database_url: str
    fields: dict[str, Any]

    @classmethod
    def of(cls, dataset: RegisteredDataset) -> DatasetHandle:
        kept = {f.name: getattr(dataset, f.name) for f in dataclasses.fields(dataset) if f.name != "home"}
        return cls(str(Path(dataset.home.path).resolve()), dataset.home.database_url, kept)

    def open(self, home: Home | None = None) -> RegisteredDataset:
        """The dataset, on `home` when it is already open (a warm worker's), else on its own."""
        home = home or Home.open(self.home_path, database=self.database_url)
        return RegisteredDataset(home=home, **self.fields)

    @property
    def key(self) -> tuple[str, str, int]:
        """Which registration this is: the home and its ledger index (no deep comparison)."""
        return self.home_path, self.database_url, self.fields["index"]

    @property
    def digest(self) -> str:
        return self.fields["body"]["manifest_digest"]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _compare(what: str, mine: dict, expected_digest: str) -> None:
    if json_digest(mine) != expected_digest:
        raise ConfigMismatch(
            f"{what} on worker {worker_name()} has another configuration than the driver's "
            f"({json.dumps(mine, sort_keys=True)[:300]}): install the same custody, models and settings "
            "on every node"
        )


class WarmActor:
    """What an actor of a warm pool (ray_pool.py) adds: the clock that sends it away when idle,
    and leaving when asked. Actors not in a pool have no clock and leave whenever asked."""

    clock: IdleClock | None = None

    def _start_clock(self, keep_warm: float) -> None:
        self.clock = IdleClock(keep_warm, self._send_away) if keep_warm else None

    def _release(self) -> None:
        """Close what the actor opened, before it leaves."""

    # Set by the worker classes: the registration it was built for, and the dataset opened from it.
    handle: DatasetHandle
    dataset: Any

    def _serves(self, handle: DatasetHandle) -> bool:
        """Whether what this actor built serves another registration of its home as it is."""
        return True

    def _follow(self, dataset_key: tuple | None, dataset: list) -> None:
        """Move to the run's registration when a warm pool's run names another one (`dataset_key`,
        the handle itself in `dataset`, fetched only then). The pool's name holds the home, so
        another home, or a registration `_serves` refuses, is a bug in naming pools: refused."""
        if dataset_key is None or tuple(dataset_key) == self.handle.key:
            return
        import ray

        handle = ray.get(dataset[0])
        if handle.key[:2] != self.handle.key[:2] or not self._serves(handle):
            raise ConfigMismatch(f"warm worker {worker_name()} was built for another home or dataset than this run's")
        self.dataset, self.handle = handle.open(self.dataset.home), handle

    def leave(self, idle_at_least: float) -> bool:
        """Exit if idle for `idle_at_least` seconds (Ray runs this between the actor's tasks);
        else stay, and leave once idle that long instead of the pool's `keep_warm`."""
        if self.clock is not None and self.clock.idle_for() < idle_at_least:
            self.clock.shorten(idle_at_least)
            return False
        import ray

        self._release()
        # Not exit_actor(): Ray restarts an actor that exits while it has restarts left.
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
        return True

    def _send_away(self) -> None:
        import ray

        ray.get_runtime_context().current_actor.leave.remote(self.clock.keep_warm if self.clock else 0.0)


class CheckWorker(WarmActor):
    """Scans shards with one check, opened once per actor (models load once).

    The driver starts it before opening its own copy of the check, so `warm` (the model load)
    runs while the driver opens; the driver's configuration digest, work area and dataset come
    with each shard, and a shard under a digest not yet seen compares it before scanning.
    With `keep_warm` seconds the actor is one of a warm pool (ray_pool.py): it serves later runs
    (other datasets of the same home, where the check's `open` allows it) until it has been idle
    that long."""

    def __init__(self, blueprint: bytes, dataset: DatasetHandle, processes: int = 1, keep_warm: float = 0.0) -> None:
        self.blueprint, self.handle, self.processes = blueprint, dataset, processes
        self.check: Any = None
        self.dataset: Any = None
        self.agreed: str | None = None  # the driver's config digest, once compared
        self.timing: dict[str, Any] = {"born": time.time()}  # reported with the first shard
        self._start_clock(keep_warm)

    def _ready(self) -> None:
        if self.check is not None:
            return
        started, cpu = time.time(), time.process_time()
        from ray import cloudpickle

        check = cloudpickle.loads(self.blueprint)
        fields = {f.name for f in dataclasses.fields(check)} if dataclasses.is_dataclass(check) else set()
        if "processes" in fields:
            # One scanner process per CPU the actor holds: 1 by default (Ray gives the parallelism);
            # an actor holding several forks them from its one loaded model (cpus_per_worker).
            check = dataclasses.replace(check, processes=self.processes)
        self.dataset = self.handle.open()
        check.open(self.dataset)
        self.check = check
        self.timing["load"] = (started, time.time())
        self.timing["load_cpu"] = time.process_time() - cpu

    def warm(self) -> str:
        """Open the check now (load its models), before the first shard arrives."""
        self._ready()
        return worker_name()

    def scan(
        self, number: int, config_digest: str, work_dir: str, dataset_key: tuple | None = None, dataset: list = ()
    ) -> ScannedShard:
        """Scan one shard into the work area; a warm pool's run names its registration by
        `dataset_key`, with the handle itself in `dataset` (one ObjectRef, fetched on a change)."""
        with self.clock or nullcontext():
            self._ready()
            self._follow(dataset_key, dataset)
            if self.agreed != config_digest:
                _compare(f"check {self.check.name}", self.check.config(), config_digest)
                self.agreed = config_digest
            path = ShardWork(Path(work_dir)).scratch_path(number, uuid.uuid4().hex[:12])
            started, cpu = time.time(), time.process_time()
            scanned = scan_one(self.check, self.dataset, number, path, worker_name(), digest=True)
            timing, self.timing = self.timing | {"scan": (started, time.time()), "cpu": time.process_time() - cpu}, {}
            return dataclasses.replace(scanned, timing=timing)

    def _serves(self, handle: DatasetHandle) -> bool:
        # The pool's name holds the dataset too unless the check's `open` reads only the home.
        return self.check.open_reads == "home" or handle.digest == self.handle.digest

    def _release(self) -> None:
        if self.check is not None:
            self.check.close()


class StageWorker(WarmActor):
    """Runs one per-record stage over shards, built once per actor (a stage is built from its name,
    options and home: a warm pool's actor serves any dataset of that home)."""

    def __init__(
        self,
        dataset: DatasetHandle,
        stage: str,
        options: dict[str, Any],
        config_digest: str,
        scratch: str,
        keep_warm: float = 0.0,
    ) -> None:
        self.handle, self.name, self.options = dataset, stage, options
        self.config_digest, self.scratch = config_digest, Path(scratch)
        self.stage: Any = None
        self.dataset: Any = None
        self._start_clock(keep_warm)

    def _ready(self) -> None:
        if self.stage is not None:
            return
        self.dataset = self.handle.open()
        stage = STAGES.build(self.name, self.dataset.home, options=dict(self.options))
        _compare(f"stage {self.name}", stage.recorded_config(), self.config_digest)
        self.stage = stage

    def ready(self) -> str:
        self._ready()
        return worker_name()

    def process(
        self, number: int, scratch: str | None = None, dataset_key: tuple | None = None, dataset: list = ()
    ) -> StagePart:
        """One input shard's output records and decisions, into `scratch` (the run's; a warm
        pool's run names it and its registration with each shard, as `CheckWorker.scan` does)."""
        with self.clock or nullcontext():
            self._ready()
            self._follow(dataset_key, dataset)
            folder = Path(scratch) if scratch is not None else self.scratch
            shard = self.dataset.manifest.shards[number]
            attempt = uuid.uuid4().hex[:12]
            records = folder / f"records-{number:05d}.{attempt}.jsonl"
            decisions = DecisionWriter(folder / f"decisions-{number:05d}.{attempt}.parquet")
            count = 0
            try:
                with open(records, "wb") as out:
                    for decision in self.stage.process(self.dataset.shard_records(shard)):
                        row, new_hash = output_row(decision)
                        if row is not None:
                            out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
                        decisions.add(decision, new_hash)
                        count += 1
            finally:
                decisions.close()
            return StagePart(number, records, decisions.path, count, worker_name())
