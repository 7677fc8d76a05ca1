"""Training runs: the list, and one run's gate decision, data, curves, emissions and checkpoints.

A run is the ledger subject `run:<run id>`; its entries follow custody.runs.entry_types. The
loss curve lives in the metrics artifact the `run.finished` entry names. A run a takedown
tainted (it read a version the takedown replaced, or started from a tainted run's checkpoint)
has a `run.tainted/v1` entry per takedown: the list and the run's page say which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from custody.home import Home
from custody.ledger.query import body, entries, latest, newest
from custody.ledger.storage import EntryRow
from custody.runs import entry_types as _run_types  # noqa: F401  registers the run.* entry types
from custody.takedown import entry_types as _takedown_types  # noqa: F401  registers run.tainted/v1
from custody.views.common import when, without_empty
from custody.views.decisions import DecisionInfo, decision_info
from custody.views.footprint import Footprint, footprint
from custody.wording import energy, mass

STARTED, CHECKPOINT, FINISHED = "run.started/", "run.checkpoint/", "run.finished/"
TAINTED = "run.tainted/"
MAX_CHECKPOINTS = 500  # newest checkpoints a page lists; the count is exact


@dataclass(frozen=True)
class Taint:
    """A takedown's mark on a run: its checkpoints and model hold data the takedown removed."""

    takedown: str
    index: int  # of the run.tainted entry
    ts: str
    read: tuple[str, ...]  # the replaced versions the run read
    inherits_from: str | None  # or the tainted run whose checkpoint it started from

    def why(self) -> str:
        if self.read:
            return f"it read {', '.join(self.read)}, which the takedown replaced"
        return f"it started from a checkpoint of run {self.inherits_from}, which the same takedown tainted"


def _taint(row: EntryRow) -> Taint:
    data = body(row)
    return Taint(data["takedown"], row.idx, row.ts, tuple(data["read"]), data.get("inherits_from"))


def taints(home: Home) -> dict[str, list[Taint]]:
    """Every tainted run's marks, by run id, oldest first (one pass over the run.tainted entries)."""
    out: dict[str, list[Taint]] = {}
    for row in entries(home.storage, TAINTED):
        out.setdefault(row.subject.removeprefix("run:"), []).append(_taint(row))
    return out


@dataclass(frozen=True)
class RunRow:
    run_id: str
    name: str
    kind: str
    started: str
    requested_by: str
    index: int
    status: str  # running | completed | failed
    energy_kwh: float | None
    co2e_kg: float | None
    tainted_by: tuple[str, ...] = ()  # the takedowns that tainted it

    def as_row(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "tainted by": ", ".join(self.tainted_by),
            "started": when(self.started),
            "by": self.requested_by,
            "energy": energy(self.energy_kwh) if self.energy_kwh is not None else "",
            "CO2e": mass(self.co2e_kg) if self.co2e_kg is not None else "",
            "index": self.index,
        }


def table_rows(rows: list[RunRow]) -> list[dict[str, Any]]:
    """The list's rows; the "tainted by" column only where a run in it was tainted."""
    return without_empty([row.as_row() for row in rows], "tainted by")


def subject(run_id: str) -> str:
    return f"run:{run_id}"


def _finished(home: Home, run_id: str) -> tuple[int, str, dict[str, Any]] | None:
    row = latest(home.storage, FINISHED, subject(run_id))
    return (row.idx, row.ts, body(row)) if row else None


def list_runs(home: Home, limit: int = 200) -> list[RunRow]:
    """The newest runs, newest first."""
    runs, marked = [], taints(home)
    for row in newest(home.storage, STARTED, limit):
        data = body(row)
        finished = _finished(home, data["run_id"])
        emissions = finished[2]["emissions"] if finished else None
        runs.append(
            RunRow(
                data["run_id"],
                data["name"],
                data["kind"],
                row.ts,
                row.actor,
                row.idx,
                finished[2]["status"] if finished else "running",
                emissions["energy_kwh"] if emissions else None,
                emissions["emissions_kg_co2e"] if emissions else None,
                tuple(dict.fromkeys(t.takedown for t in marked.get(data["run_id"], []))),
            )
        )
    return runs


@dataclass(frozen=True)
class RunDetail:
    run_id: str
    started: dict[str, Any]
    started_index: int
    decision: DecisionInfo | None
    checkpoints: list[dict[str, Any]]  # newest first, at most MAX_CHECKPOINTS
    checkpoint_count: int
    finished: dict[str, Any] | None
    finished_index: int | None
    metrics: dict[str, Any]  # {"steps": [...], "evals": [...]}
    tainted: list[Taint] = field(default_factory=list)  # oldest first

    @property
    def datasets(self) -> list[dict[str, Any]]:
        return [
            {
                "dataset": d["ref"],
                "sha256": d["digest"],
                "prepared from": d.get("source") or "",
                "source sha256": d.get("source_digest") or "",
            }
            for d in self.started["datasets"]
        ]

    def emissions(self) -> dict[str, Any] | None:
        return self.finished["emissions"] if self.finished else None

    def footprint(self) -> Footprint | None:
        """Energy, CO2e, water and time in readable units, with the equivalents that mean something."""
        e = self.emissions()
        return footprint(e) if e else None

    def loss_curve(self) -> list[dict[str, Any]]:
        """One row per step: train loss, and validation loss where an eval ran at that step."""
        evals = {e["step"]: e.get("val_loss") for e in self.metrics.get("evals", [])}
        rows = [
            {"step": s["step"], "train_loss": s.get("train_loss"), "val_loss": None}
            for s in self.metrics.get("steps", [])
        ]
        seen = {r["step"] for r in rows}
        for row in rows:
            row["val_loss"] = evals.get(row["step"])
        rows += [{"step": s, "train_loss": None, "val_loss": v} for s, v in evals.items() if s not in seen]
        return sorted(rows, key=lambda r: r["step"])


def run_detail(home: Home, run_id: str) -> RunDetail | None:
    started_row = latest(home.storage, STARTED, subject(run_id))
    if started_row is None:
        return None
    started = body(started_row)
    decision = None
    try:
        row = home.ledger.entry(started["decision_index"])
        if row.type.startswith("policy.decision/"):
            decision = decision_info(row.idx, row.ts, body(row))
    except ValueError:
        decision = None
    checkpoints, count = [], 0
    for row in entries(home.storage, CHECKPOINT, subject(run_id), newest_first=True):
        count += 1
        if len(checkpoints) < MAX_CHECKPOINTS:
            data = body(row)
            checkpoints.append(
                {
                    "step": data["step"],
                    "tokens": data["tokens"],
                    "train_loss": data["train_loss"],
                    "val_loss": data.get("val_loss"),
                    "val_perplexity": data.get("val_perplexity"),
                    "sha256": data["checkpoint_digest"],
                    "time": when(row.ts),
                    "index": row.idx,
                }
            )
    finished = _finished(home, run_id)
    metrics: dict[str, Any] = {}
    if finished and home.store.exists(finished[2]["metrics_digest"]):
        metrics = json.loads(home.store.read_bytes(finished[2]["metrics_digest"]))
    return RunDetail(
        run_id,
        started,
        started_row.idx,
        decision,
        checkpoints,
        count,
        finished[2] if finished else None,
        finished[0] if finished else None,
        metrics,
        [_taint(row) for row in entries(home.storage, TAINTED, subject(run_id))],
    )
