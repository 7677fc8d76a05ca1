"""Energy, CO2e and water added up from what the ledger recorded: per dataset and per run.

Every measured entry carries an `emissions` body (custody.emissions): each check
(`check.completed/v2`), each stage (`stage.completed/v2`), a run's preparation (`run.started`'s
`preparation_emissions`) and its training (`run.finished`, a failed run's up to the failure).

- A dataset's total: every check run on it, plus every stage that produced it or one of its
  ancestors (its lineage). Entries recorded before measuring began (`/v1`) count as unmeasured.
- A run's total: preparation + checks + training. The preparation meter of `custody run`
  surrounds the checks it runs, so the checks measured in the run's window (after its
  `run.requested`, before its `run.started`, on the datasets it read) are taken out of it:
  preparation is then the stages, the overlap measurement and the bookkeeping before the gate,
  and the three parts add up to the total without counting anything twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from custody.datasets.names import DatasetRefError, parse_ref
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.emissions import measured
from custody.home import Home
from custody.ledger.query import body, entries
from custody.ledger.storage import EntryRow

FIELDS = ("energy_kwh", "emissions_kg_co2e", "water_l", "duration_s")


@dataclass(frozen=True)
class Total:
    """A sum of measurements, and how many entries it read that held none."""

    energy_kwh: float = 0.0
    emissions_kg_co2e: float = 0.0
    water_l: float = 0.0
    duration_s: float = 0.0
    measured: int = 0  # entries whose measurement is in the sum
    unmeasured: int = 0  # entries that recorded none (older versions, "not measured")

    def add(self, emissions: dict[str, Any] | None) -> Total:
        if not measured(emissions):
            return Total(*(getattr(self, f) for f in FIELDS), self.measured, self.unmeasured + 1)
        return Total(*(getattr(self, f) + float(emissions[f]) for f in FIELDS), self.measured + 1, self.unmeasured)

    def __add__(self, other: Total) -> Total:
        return Total(
            *(getattr(self, f) + getattr(other, f) for f in FIELDS),
            self.measured + other.measured,
            self.unmeasured + other.unmeasured,
        )

    def less(self, other: Total) -> Total:
        """This measurement without a part of it that was measured on its own (never below zero:
        two trackers' estimates of the same seconds need not agree to the last joule)."""
        return Total(*(max(0.0, getattr(self, f) - getattr(other, f)) for f in FIELDS), self.measured, self.unmeasured)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _sum(rows: list[EntryRow]) -> Total:
    total = Total()
    for row in rows:
        total = total.add(body(row).get("emissions"))
    return total


def dataset_energy(home: Home, dataset: RegisteredDataset) -> dict[str, Any]:
    """{"checks", "stages", "total"}: every check run on this version, every stage of its lineage."""
    checks = _sum(list(entries(home.storage, "check.completed/", dataset.ref.subject)))
    ancestors, _ = DatasetRegistry(home).lineage(dataset.ref)
    subjects = [dataset.ref.subject] + [
        node.ref.subject for _, node in ancestors if isinstance(node, RegisteredDataset)
    ]
    stages = _sum([row for s in subjects for row in entries(home.storage, "stage.completed/", s)])
    return {
        "checks": checks.as_json(),
        "stages": stages.as_json(),
        "total": (checks + stages).as_json(),
    }


def run_energy(home: Home, started_row: EntryRow, finished: dict[str, Any] | None) -> dict[str, Any]:
    """{"preparation", "checks", "training", "total"} of one run; `finished` is its run.finished body."""
    started = body(started_row)
    requested = None
    for row in entries(home.storage, "run.requested/", f"run:{started['name']}", stop=started_row.idx):
        requested = row.idx
    checks = Total()
    if requested is not None:
        for item in started["datasets"]:
            try:
                subject = parse_ref(item["ref"]).subject
            except DatasetRefError:
                continue
            window = entries(home.storage, "check.completed/", subject, start=requested + 1, stop=started_row.idx)
            checks = checks + _sum(list(window))
    preparation = Total().add(started.get("preparation_emissions"))
    if preparation.measured:
        preparation = preparation.less(checks)
    training = Total().add((finished or {}).get("emissions")) if finished else Total()
    return {
        "preparation": preparation.as_json(),
        "checks": checks.as_json(),
        "training": training.as_json(),
        "total": (preparation + checks + training).as_json(),
    }
