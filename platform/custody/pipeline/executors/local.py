"""The local executor: every shard in this process, in manifest order (the runner's original loop)."""

from __future__ import annotations

from collections.abc import Iterator

from custody.pipeline.executors.base import Executor, scan_one
from custody.pipeline.jobs import ScanJob, ScannedShard


class LocalExecutor(Executor):
    kind = "local"

    def scan(self, job: ScanJob, todo: list[int]) -> Iterator[ScannedShard]:
        for number in todo:
            yield scan_one(job.check, job.dataset, number, job.work.part_path(number, temporary=True))
