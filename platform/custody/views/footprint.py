"""A run's energy, carbon and water as people read them: each in the unit that fits its size
(custody.wording: `0.317 Wh`, not `0.000 kWh`), with everyday equivalents only where they say
something. The recorded figures stay in base units (kWh, kg, L) in the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
