"""The contract every check follows.

A check reads records and emits one row per record (verdict, reason, score, details — never a
raw personal value) and ends with a summary and dataset-level findings. It works shard by shard:
`scan_shard` emits one shard's rows and returns that shard's tally (JSON-serializable counts),
and `finish` turns the tallies of all shards, in manifest order, into the summary and findings.
That split is what makes a check resumable: the pipeline (pipeline/run_check.py) keeps each finished
shard's rows and tally, so a crashed run starts again at the first unfinished shard and the
result is byte-identical to an uninterrupted one. The runner also does the bookkeeping: Parquet
rows, summary, artifacts and the ledger entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from custody.datasets.manifest import ShardInfo
from custody.datasets.registry import RegisteredDataset

Verdict = Literal["pass", "flag", "fail"]
VERDICT_ORDER = {"pass": 0, "flag": 1, "fail": 2}


@dataclass(frozen=True)
class RecordRow:
    record_id: str
    content_hash: str
    shard: str
    position: int
    verdict: Verdict
    reason: str = ""
    score: float | None = None
    details: str | None = None  # JSON: entity types, offsets, categories; never raw values

    @classmethod
    def of(
        cls,
        shard: str,
        record: Any,
        verdict: Verdict,
        reason: str = "",
        score: float | None = None,
        details: str | None = None,
    ) -> RecordRow:
        """The row for one record of one shard (ids and hashes come from the record)."""
        return cls(record.id, record.content_hash, shard, record.position, verdict, reason, score, details)


@dataclass(frozen=True)
class Finding:
    """A dataset-level finding a reviewer or the gate can act on; `id` is stable per check."""

    id: str
    severity: Literal["flag", "fail"]
    message: str


@dataclass
class CheckReport:
    summary: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


Emit = Callable[[RecordRow], None]
Tally = dict[str, Any]  # one shard's counts; must survive a JSON round trip unchanged


class Check(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    # What `open` loads is needed by `finish` (or `config`) too. False: `open` only prepares
    # scanning, so a driver whose shards are scanned by workers elsewhere skips it (the pii
    # check's scanner is a spaCy model load the driver would never use).
    finish_needs_open: ClassVar[bool] = True
    # What `open` reads besides the check's own fields: "dataset" (the safe default) or "home"
    # (the dataset's home only). A warm Ray worker reuses an opened check across datasets of one
    # home only when it is "home".
    open_reads: ClassVar[Literal["dataset", "home"]] = "dataset"

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything the result depends on besides the data and the model (digested)."""

    def model_digest(self) -> str | None:
        """Digest of model weights the check used, if any."""
        return None

    def open(self, dataset: RegisteredDataset) -> None:  # noqa: B027  optional hook
        """Load models, start workers, read settings from the dataset's home; before any shard."""

    def close(self) -> None:  # noqa: B027  optional hook
        """Release what `open` started; called even when a shard fails."""

    @abstractmethod
    def scan_shard(self, dataset: RegisteredDataset, shard: ShardInfo, emit: Emit) -> Tally:
        """Emit a row per record of one shard, in record order; return the shard's tally."""

    @abstractmethod
    def finish(self, dataset: RegisteredDataset, tallies: list[Tally]) -> CheckReport:
        """The summary and findings from every shard's tally (in manifest order)."""


def worst(verdicts: list[str]) -> str:
    return max(verdicts, key=VERDICT_ORDER.__getitem__, default="pass")
