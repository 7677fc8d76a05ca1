"""Where a running check keeps its finished shards, so a crashed run resumes instead of restarting.

HOME/work/checks/<dataset digest>/<check>-<version>/<config digest>/ holds, per finished shard,
its rows (`shard-00000.parquet`) and then its tally (`shard-00000.json`, written last: the
tally is the "this shard is done" mark). Both are written to a temporary name, fsynced and
renamed, so a kill leaves either a whole shard or none. The directory name says everything the
rows depend on, so a different dataset, check version or configuration never reuses them; the
tally also records the digest of the rows file and of the shard, and a part that does not match
is scanned again. One run at a time holds the directory (an exclusive lock); the directory is
removed once the check's result is recorded.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.checks.base import Check, Tally
from custody.datasets.manifest import ShardInfo
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.store import sha256_file


class CheckBusyError(RuntimeError):
    """Another process is running the same check over the same dataset and configuration."""


@dataclass(frozen=True)
class FinishedShard:
    tally: Tally
    verdicts: dict[str, int]
    rows: int


class ShardWork:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    @contextmanager
    def claim(cls, home: Home, dataset: RegisteredDataset, check: Check, config_digest: str) -> Iterator[ShardWork]:
        path = home.path / "work" / "checks" / dataset.digest / f"{check.name}-{check.version}" / config_digest
        path.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f"{config_digest}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CheckBusyError(
                    f"check {check.name} is already running on {dataset.ref} with this configuration"
                ) from None
            yield cls(path)

    def part_path(self, number: int, temporary: bool = False) -> Path:
        return self.path / (f"shard-{number:05d}.parquet" + (".tmp" if temporary else ""))

    def scratch_path(self, number: int, attempt: str) -> Path:
        """A part's name for one attempt (a Ray worker): a retried attempt never writes over another's."""
        return self.path / f"shard-{number:05d}.parquet.{attempt}.tmp"

    def _tally_path(self, number: int) -> Path:
        return self.path / f"shard-{number:05d}.json"

    def completed(self) -> dict[int, FinishedShard]:
        """Shards already finished by an earlier run whose files are whole and match."""
        done = {}
        for tally_path in sorted(self.path.glob("shard-*.json")):
            number = int(tally_path.stem.removeprefix("shard-"))
            finished = self._load(number)
            if finished is not None:
                done[number] = finished
        return done

    def _load(self, number: int) -> FinishedShard | None:
        part = self.part_path(number)
        try:
            saved: dict[str, Any] = json.loads(self._tally_path(number).read_text("utf-8"))
            if not part.exists() or sha256_file(part) != saved["rows_sha256"]:
                return None
            return FinishedShard(saved["tally"], saved["verdicts"], saved["rows"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged mark: the shard is scanned again

    def finish_shard(
        self, number: int, shard: ShardInfo, written: Path, tally: Tally, verdicts: dict[str, int], rows: int
    ) -> FinishedShard:
        """Make one shard's rows and tally durable; return the tally as a resumed run would read it."""
        part = self.part_path(number)
        _durable_rename(written, part)
        saved = {
            "shard": shard.name,
            "shard_sha256": shard.digest,
            "rows_sha256": sha256_file(part),
            "rows": rows,
            "verdicts": dict(sorted(verdicts.items())),
            "tally": tally,
        }
        text = json.dumps(saved, sort_keys=True, allow_nan=False)
        temporary = self._tally_path(number).with_suffix(".json.tmp")
        temporary.write_text(text, "utf-8")
        _durable_rename(temporary, self._tally_path(number))
        # Fresh and resumed runs both see the tally after a JSON round trip, so the summary
        # a check derives from it is the same bytes either way.
        loaded = json.loads(text)
        return FinishedShard(loaded["tally"], loaded["verdicts"], rows)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        (self.path.parent / f"{self.path.name}.lock").unlink(missing_ok=True)
        for parent in (self.path.parent, self.path.parent.parent):
            try:
                parent.rmdir()  # only when no other check or configuration still has work here
            except OSError:
                break


def _durable_rename(source: Path, target: Path) -> None:
    with open(source, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(source, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
