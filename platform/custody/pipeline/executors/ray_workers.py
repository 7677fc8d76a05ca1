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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger.entry import json_digest
from custody.pipeline.decisions import DecisionWriter, output_row
from custody.pipeline.executors.base import scan_one
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

    def open(self) -> RegisteredDataset:
        home = Home.open(self.home_path, database=self.database_url)
        return RegisteredDataset(home=home, **self.fields)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _compare(what: str, mine: dict, expected_digest: str) -> None:
    if json_digest(mine) != expected_digest:
        raise ConfigMismatch(
            f"{what} on worker {worker_name()} has another configuration than the driver's "
            f"({json.dumps(mine, sort_keys=True)[:300]}): install the same custody, models and settings "
            "on every node"
        )


class CheckWorker:
    """Scans shards of one dataset with one check, opened once per actor (models load once).

    The driver starts it before opening its own copy of the check, so `warm` (the model load)
    runs while the driver opens; the driver's configuration digest and work area come with each
    shard, and the first shard compares the digest before scanning anything."""

    def __init__(self, blueprint: bytes, dataset: DatasetHandle, processes: int = 1) -> None:
        self.blueprint, self.handle, self.processes = blueprint, dataset, processes
        self.check: Any = None
        self.dataset: Any = None
        self.agreed: str | None = None  # the driver's config digest, once compared
        self.timing: dict[str, Any] = {"born": time.time()}  # reported with the first shard

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

    def scan(self, number: int, config_digest: str, work_dir: str) -> ScannedShard:
        self._ready()
        if self.agreed != config_digest:
            _compare(f"check {self.check.name}", self.check.config(), config_digest)
            self.agreed = config_digest
        path = ShardWork(Path(work_dir)).scratch_path(number, uuid.uuid4().hex[:12])
        started, cpu = time.time(), time.process_time()
        scanned = scan_one(self.check, self.dataset, number, path, worker_name(), digest=True)
        timing, self.timing = self.timing | {"scan": (started, time.time()), "cpu": time.process_time() - cpu}, {}
        return dataclasses.replace(scanned, timing=timing)


class StageWorker:
    """Runs one per-record stage over shards of one dataset, built once per actor."""

    def __init__(
        self, dataset: DatasetHandle, stage: str, options: dict[str, Any], config_digest: str, scratch: str
    ) -> None:
        self.handle, self.name, self.options = dataset, stage, options
        self.config_digest, self.scratch = config_digest, Path(scratch)
        self.stage: Any = None
        self.dataset: Any = None

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

    def process(self, number: int) -> StagePart:
        self._ready()
        shard = self.dataset.manifest.shards[number]
        attempt = uuid.uuid4().hex[:12]
        records = self.scratch / f"records-{number:05d}.{attempt}.jsonl"
        decisions = DecisionWriter(self.scratch / f"decisions-{number:05d}.{attempt}.parquet")
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
