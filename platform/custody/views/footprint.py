"""A run's energy, carbon and water as people read them: each in the unit that fits its size
(custody.wording: `0.317 Wh`, not `0.000 kWh`), with everyday equivalents only where they say
something. The recorded figures stay in base units (kWh, kg, L) in the ledger. Totals per run
(preparation + checks + training) and per dataset (checks + the stages that produced it) are added
up by custody.reports.energy, so the dashboard and the reports show the same sums."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger.query import body, first, latest
from custody.reports.energy import dataset_energy, run_energy
from custody.views.equivalents import Equivalent, equivalents, meaningful
from custody.wording import energy, mass, volume


def duration(seconds: float) -> str:
    """`42 s`, `12.5 min`, `3.2 h`."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Footprint:
    energy: str
    co2e: str
    water: str
    duration: str
    equivalents: list[Equivalent]  # only those big enough to mean something

    def comparison(self) -> str:
        """The equivalents in one line, or why there are none."""
        if not self.equivalents:
            return "too small for an everyday comparison (under a hundredth of a smartphone charge)"
        return " · ".join(f"{e.quantity}: about {e.label()}" for e in self.equivalents)


def footprint(emissions: dict[str, Any]) -> Footprint:
    """From a `run.finished` entry's `emissions` (energy_kwh, emissions_kg_co2e, water_l, duration_s)."""
    found = equivalents(emissions["energy_kwh"], emissions["emissions_kg_co2e"], emissions["water_l"])
    return Footprint(
        energy(emissions["energy_kwh"]),
        mass(emissions["emissions_kg_co2e"]),
        volume(emissions["water_l"]),
        duration(emissions["duration_s"]),
        meaningful(found),
    )


@dataclass(frozen=True)
class TotalRow:
    """One part of a total (or the total) as the dashboard's table shows it, water beside energy and CO2e."""

    part: str
    energy: str
    co2e: str
    water: str
    duration: str
    entries: str  # "3 measured" or "3 measured, 1 not measured"
    energy_kwh: float  # as recorded, for sums and help text

    def as_row(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "energy": self.energy,
            "CO2e": self.co2e,
            "water": self.water,
            "time measured": self.duration,
            "entries": self.entries,
        }


def _row(label: str, total: dict[str, Any]) -> TotalRow:
    entries = f"{total['measured']} measured"
    if total["unmeasured"]:
        entries += f", {total['unmeasured']} not measured"
    return TotalRow(
        label,
        energy(total["energy_kwh"]),
        mass(total["emissions_kg_co2e"]),
        volume(total["water_l"]),
        duration(total["duration_s"]),
        entries,
        total["energy_kwh"],
    )


RUN_PARTS = (
    ("preparation", "preparation (stages, overlap, bookkeeping)"),
    ("checks", "checks"),
    ("training", "training"),
)
DATASET_PARTS = (("checks", "checks run on it"), ("stages", "stages that produced it"))


def run_totals(home: Home, run_id: str) -> list[TotalRow]:
    """A run's preparation, checks and training, and their total (reports/energy.py says how)."""
    started = first(home.storage, "run.started/", f"run:{run_id}")
    if started is None:
        return []
    finished = latest(home.storage, "run.finished/", f"run:{run_id}")
    parts = run_energy(home, started, body(finished) if finished else None)
    return [_row(label, parts[key]) for key, label in (*RUN_PARTS, ("total", "total"))]


def dataset_totals(home: Home, dataset: RegisteredDataset) -> list[TotalRow]:
    """What was spent on one dataset version: its checks and the stages of its lineage, and the total."""
    parts = dataset_energy(home, dataset)
    return [_row(label, parts[key]) for key, label in (*DATASET_PARTS, ("total", "total"))]
