"""Test-only checks that misbehave on purpose inside a Ray worker (never use with the local executor)."""

from __future__ import annotations

import os
from pathlib import Path

from custody.checks.base import Check


def dying(check_class: type[Check], shard: int, marker: Path) -> type[Check]:
    """`check_class`, but the worker process scanning shard number `shard` kills itself mid-shard,
    once: the marker file says it already died. Same name, version and configuration as the original.
    """

    class Dying(check_class):  # type: ignore[valid-type, misc]
        def scan_shard(self, dataset, shard_info, emit):
            number = [s.name for s in dataset.manifest.shards].index(shard_info.name)
            if number == shard and not os.path.exists(marker):
                Path(marker).write_text(str(os.getpid()))
                rows: list = []
                super().scan_shard(dataset, shard_info, rows.append)
                for row in rows[: len(rows) // 2]:  # half a shard goes out, then the process is gone
                    emit(row)
                os._exit(9)
            return super().scan_shard(dataset, shard_info, emit)

    Dying.__name__ = Dying.__qualname__ = check_class.__name__
    return Dying


class ShardFailed(RuntimeError):
    """Raised once by `failing` checks: the check as a whole stops, as after a crash."""


def failing(check_class: type[Check], shard: int, marker: Path) -> type[Check]:
    """`check_class`, but scanning shard number `shard` raises once (the marker says it did)."""

    class Failing(check_class):  # type: ignore[valid-type, misc]
        def scan_shard(self, dataset, shard_info, emit):
            number = [s.name for s in dataset.manifest.shards].index(shard_info.name)
            if number == shard and not os.path.exists(marker):
                Path(marker).write_text("failed")
                raise ShardFailed(f"stopped in {shard_info.name}")
            return super().scan_shard(dataset, shard_info, emit)

    Failing.__name__ = Failing.__qualname__ = check_class.__name__
    return Failing
