"""The stage contract.

A stage is a function over a stream of records (as in datatrove): it takes records and yields,
for each, a decision — keep, modify (with the new text) or drop — and the reason. The pipeline
(pipeline/run_stage.py) does the bookkeeping: the derived dataset, the per-record decisions (an exclusion
record for every dropped document, as datatrove's exclusion writer keeps), and lineage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from custody.datasets.readers import Record
from custody.datasets.registry import RegisteredDataset
from custody.home import Home

Action = Literal["keep", "modify", "drop"]


class StageError(ValueError):
    """Unknown stage, bad stage configuration, or an output name already taken."""


class EmptyOutput(StageError):
    """A stage dropped every record: there is nothing to register."""


@dataclass(frozen=True)
class Decision:
    record: Record
    action: Action
    reason: str = ""
    text: str | None = None  # the new text, for "modify"
    score: float | None = None
    details: str | None = None  # JSON; types, offsets, scores — never raw personal values


class Stage(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    # True when a record's decision depends on that record alone: shards can then be processed
    # apart (on Ray workers) and concatenated in input order with the same output, byte for byte.
    # Stages that look across records (deduplication) leave it False and run in the driver.
    parallel: ClassVar[bool] = False

    def __init__(self, home: Home) -> None:
        self.home = home

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything the output depends on besides the input (digested into the lineage)."""

    def recorded_config(self) -> dict[str, Any]:
        """The configuration lineage records and workers compare: name, version and settings."""
        return {"stage": self.name, "version": self.version, **self.config()}

    @abstractmethod
    def process(self, records: Iterable[Record]) -> Iterator[Decision]:
        """One decision per input record, in input order."""

    def observe(self, action: Action, reason: str) -> None:  # noqa: B027  optional hook
        """Told every decision, in input order, wherever it was made; count what `summarize` reports here."""

    def summarize(self, output: RegisteredDataset) -> dict[str, Any]:
        """Extra summary computed over the registered output (e.g. residual PII); optional."""
        return {}
