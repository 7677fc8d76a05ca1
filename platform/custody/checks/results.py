"""A check's recorded results, as the ledger holds them (`check.completed/v1`).

Running a check and recording its result is the pipeline's job (pipeline/run_check.py); this
module only reads what was recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from custody.checks import entry_types  # noqa: F401  registers check.completed/v1
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger import query

COMPLETED = "check.completed/"


@dataclass(frozen=True)
class CheckResult:
    check: str
    version: str
    dataset: str
    dataset_digest: str
    entry_index: int
    result_digest: str
    summary_digest: str
    config_digest: str
    status: str
    records: int
    body: dict
    ts: str = ""  # when it was recorded (the entry's time)

    @classmethod
    def recorded(cls, index: int, body: dict[str, Any], ts: str = "") -> CheckResult:
        """The result a `check.completed` body at ledger `index` records."""
        return cls(
            body["check"],
            body["version"],
            body["dataset"],
            body["dataset_digest"],
            index,
            body["result_digest"],
            body["summary_digest"],
            body["config_digest"],
            body["status"],
            body["records"],
            body,
            ts,
        )

    def summary(self, home: Home) -> dict:
        return json.loads(home.store.read_bytes(self.summary_digest))


def latest_results(
    home: Home, dataset: RegisteredDataset, names: Iterable[str] | None = None
) -> dict[str, CheckResult]:
    """The most recent recorded result of each check for this dataset, by check name.

    With `names`, only those checks, and reading (newest first) stops once each is found: a page
    that shows a dataset checked many times reads a few entries, not all of them."""
    wanted = None if names is None else set(names)
    latest: dict[str, CheckResult] = {}
    for row in query.entries(home.storage, COMPLETED, subject=dataset.ref.subject, newest_first=True):
        body = query.body(row)
        if body["check"] not in latest and (wanted is None or body["check"] in wanted):
            latest[body["check"]] = CheckResult.recorded(row.idx, body, row.ts)
            if wanted is not None and wanted <= set(latest):
                break
    return dict(sorted(latest.items()))
