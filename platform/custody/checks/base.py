"""The contract every check follows.

A check reads records and emits one row per record (verdict, reason, score, details — never a
raw personal value) and ends with a summary and dataset-level findings. The runner in
`results.py` does the bookkeeping: Parquet rows, summary, artifacts and the ledger entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

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


class Check(ABC):
    name: ClassVar[str]
    version: ClassVar[str]

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything the result depends on besides the data and the model (digested)."""

    def model_digest(self) -> str | None:
        """Digest of model weights the check used, if any."""
        return None

    @abstractmethod
    def run(self, dataset: RegisteredDataset, emit: Emit, progress: Callable[[int], None] | None = None) -> CheckReport:
        """Emit a row per record; return the summary and findings."""


def worst(verdicts: list[str]) -> str:
    return max(verdicts, key=VERDICT_ORDER.__getitem__, default="pass")
