"""The local executor: every shard in this process, in manifest order (the runner's original loop)."""

from __future__ import annotations

from collections.abc import Iterator

from custody.checks.rows import RowWriter
from custody.pipeline.executors.base import Executor
from custody.pipeline.jobs import ScanJob, ScannedShard


class LocalExecutor(Executor):
    kind = "local"

    def scan(self, job: ScanJob, todo: list[int]) -> Iterator[ScannedShard]:
        shards = job.dataset.manifest.shards
        for number in todo:
            writer = RowWriter(job.work.part_path(number, temporary=True), str(job.dataset.ref), job.check)
            try:
                tally = job.check.scan_shard(job.dataset, shards[number], writer.emit)
            finally:
                writer.close()
            yield ScannedShard(number, writer.path, tally, dict(writer.verdicts), writer.count)
