"""What the two halves of `custody run` share: the run's outcome so far, how it reports progress,
where its files go, and how its carbon settings and measurements are recorded.

governed.py (checks, gate, preparation) fills an outcome and hands it to training.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.policy.evaluate import DECISION_EXIT
from custody.policy.gate import GateResult
from custody.runs.spec import LoadedSpec, RunSpec
from custody.train.carbon import CarbonConfig, Emissions

Say = Callable[[str], None]


@dataclass
class RunOutcome:
    spec: LoadedSpec
    prepared: list[RegisteredDataset]
    gate: GateResult
    run_id: str | None = None
    result: Any = None  # custody.train.loop.TrainResult when training ran
    entries: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return DECISION_EXIT[self.gate.decision.decision]


def carbon_config(spec: RunSpec) -> CarbonConfig:
    c = spec.carbon
    return CarbonConfig(country_iso_code=c.country_iso_code, region=c.region, pue=c.pue, wue_l_per_kwh=c.wue_l_per_kwh)


def emissions_body(emissions: Emissions, tracker: str = "codecarbon OfflineEmissionsTracker") -> dict[str, Any]:
    return {
        "duration_s": round(emissions.duration_s, 3),
        "energy_kwh": emissions.energy_kwh,
        "emissions_kg_co2e": emissions.emissions_kg_co2e,
        "water_l": emissions.water_l,
        "country_iso_code": emissions.country_iso_code,
        "pue": emissions.pue,
        "wue_l_per_kwh": emissions.wue_l_per_kwh,
        "tracker": f"{tracker} (codecarbon {emissions.codecarbon_version})",
    }


def new_run_id(spec: RunSpec) -> str:
    return f"{spec.name}-{uuid.uuid4().hex[:8]}"


def run_dir(home: Home, run_id: str) -> Path:
    return home.path / "runs" / run_id
