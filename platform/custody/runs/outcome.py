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

from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.home import Home
from custody.ledger.entry import canonical_json
from custody.policy.evaluate import DECISION_EXIT
from custody.policy.gate import GateResult
from custody.runs.spec import LoadedSpec, RunSpec
from custody.train.carbon import TRACKER, CarbonConfig, Emissions, measured_before, not_measured_body

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


def emissions_body(emissions: Emissions, tracker: str = TRACKER) -> dict[str, Any]:
    return emissions.ledger_body(tracker)


def new_run_id(spec: RunSpec) -> str:
    return f"{spec.name}-{uuid.uuid4().hex[:8]}"


def run_dir(home: Home, run_id: str) -> Path:
    return home.path / "runs" / run_id


def dataset_json(home: Home, dataset: RegisteredDataset) -> dict:
    """The prepared dataset the loader reads, and the registered dataset it was prepared from."""
    ancestors, _ = DatasetRegistry(home).lineage(dataset.ref)
    root = max(ancestors, key=lambda pair: pair[0])[1] if ancestors else None
    if isinstance(root, dict):  # an ancestor no longer registered: its recorded name and digest
        return {
            "ref": str(dataset.ref),
            "digest": dataset.digest,
            "source": root["dataset"],
            "source_digest": root["digest"],
        }
    return {
        "ref": str(dataset.ref),
        "digest": dataset.digest,
        "source": str(root.ref) if root else None,
        "source_digest": root.digest if root else None,
    }


def started_fields(home: Home, outcome: RunOutcome) -> dict[str, Any]:
    """What every run.started body begins with: the run, its spec, the decision, the data it reads."""
    spec = outcome.spec.spec
    return {
        "run_id": outcome.run_id,
        "name": spec.name,
        "kind": spec.kind,
        "spec_path": str(outcome.spec.path),
        "spec_digest": outcome.spec.digest,
        "decision_index": outcome.gate.ledger_index,
        "datasets": [dataset_json(home, d) for d in outcome.prepared],
    }


def record_failed(
    home: Home,
    outcome: RunOutcome,
    exc: BaseException,
    actor: str,
    entry_type: str = "run.finished/v1",
    metrics: list[dict] | None = None,
) -> None:
    """A run that stopped still leaves a finished entry: what failed, and what it had used so far
    (what the meter around the training measured up to the failure, which the exception carries;
    "not measured" only when no meter ran)."""
    spec = outcome.spec.spec
    partial = measured_before(exc)
    if partial is not None:
        emissions = emissions_body(partial, f"{TRACKER}, up to the failure")
    else:
        emissions = not_measured_body(carbon_config(spec), "the run failed before its meter started")
    body = {
        "run_id": outcome.run_id,
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}"[:500],
        "steps": max((m["step"] for m in metrics or []), default=0),
        "tokens": 0,
        "tokens_per_s": 0.0,
        "metrics_digest": home.store.put_bytes(canonical_json({"steps": metrics or [], "evals": []})),
        "emissions": emissions,
    }
    index = home.record(entry_type, f"run:{outcome.run_id}", body, actor=actor)
    outcome.entries["run.finished"] = index
