"""The stage a takedown runs on each dataset version that holds the work: drop those records.

It is an ordinary stage (stages/base.py), so the new version is a derived dataset with lineage
and a per-record decision, like any other preparation; its configuration names the request and
the text SHA-256s of the records it removes (digests only, never text).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from custody.datasets.readers import Record
from custody.home import Home
from custody.stages.base import Decision, Stage

STAGE_NAME = "takedown"


class RemoveRecords(Stage):
    name = STAGE_NAME
    version = "1"
    parallel = False  # never handed to workers: it is built from a request, not from the catalog

    def __init__(self, home: Home, *, request: str, remove: Iterable[str]) -> None:
        super().__init__(home)
        self.request = request
        self.remove = frozenset(remove)

    @classmethod
    def from_config(cls, home: Home, config: dict[str, Any]) -> RemoveRecords:
        """The stage again from its recorded configuration (re-deriving after a later takedown)."""
        return cls(home, request=config["request"], remove=config["remove"])

    def config(self) -> dict[str, Any]:
        return {"request": self.request, "remove": sorted(self.remove)}

    def process(self, records: Iterable[Record]) -> Iterator[Decision]:
        reason = f"takedown:{self.request}"
        for record in records:
            if record.content_hash in self.remove:
                yield Decision(record, "drop", reason)
            else:
                yield Decision(record, "keep")
