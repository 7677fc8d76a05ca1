"""The ledger's record of one measurement of energy, carbon and water.

Every entry that measured the work it records carries this body under `emissions`: a run's
training (`run.finished`) and preparation (`run.started`), each check (`check.completed/v2`) and
each stage (`stage.completed/v2`). It lives below all of them so that checks, stages and runs
share one schema; `custody.train.carbon` measures and fills it.
"""

from __future__ import annotations

from pydantic import Field

from custody.ledger.entry import EntryBody


class Emissions(EntryBody):
    duration_s: float = Field(ge=0)
    energy_kwh: float = Field(ge=0)
    emissions_kg_co2e: float = Field(ge=0)
    water_l: float = Field(ge=0)
    country_iso_code: str
    pue: float = Field(ge=1)
    wue_l_per_kwh: float = Field(ge=0)
    tracker: str  # e.g. "codecarbon OfflineEmissionsTracker (codecarbon 3.3.2)", or "not measured: why"


NOT_MEASURED = "not measured"  # how a `tracker` that measured nothing begins


def measured(body: dict | None) -> bool:
    """Whether an `emissions` body holds a measurement (not absent, not a "not measured" placeholder)."""
    return bool(body) and not str(body.get("tracker", "")).startswith(NOT_MEASURED)
