"""Training runs: the list, and one run's gate decision, data, curves, emissions and checkpoints.

A run is the ledger subject `run:<run id>`; its entries follow custody.runs.entry_types. The
loss curve lives in the metrics artifact the `run.finished` entry names. A run a takedown
tainted (it read a version the takedown replaced, or started from a tainted run's checkpoint)
has a `run.tainted/v1` entry per takedown: the list and the run's page say which.
"""

from __future__ import annotations

import json
import math
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
    preference: str = ""  # a reward or DPO run's measures in one line (preference_summary)

    def as_row(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "tainted by": ", ".join(self.tainted_by),
            "preferences": self.preference,
            "started": when(self.started),
            "by": self.requested_by,
            "energy": energy(self.energy_kwh) if self.energy_kwh is not None else "",
            "CO2e": mass(self.co2e_kg) if self.co2e_kg is not None else "",
            "index": self.index,
        }


def table_rows(rows: list[RunRow]) -> list[dict[str, Any]]:
    """The list's rows; the "tainted by" column only where a run in it was tainted, "preferences"
    only where one learnt from human preferences."""
    return without_empty(without_empty([row.as_row() for row in rows], "tainted by"), "preferences")


def _g(value: float) -> str:
    """Three significant digits, never in e-notation (a KL of 0.0000123 reads as such)."""
    if value == 0 or abs(value) >= 1e-4:
        return f"{value:.3g}"
    return f"{value:.{2 - math.floor(math.log10(abs(value)))}f}"


def kl_bound(p: dict[str, Any]) -> str:
    """`0.0123 (bound 10)`: the KL a DPO run measured against its reference, and the bound it kept to."""
    if p.get("kl") is None:
        return ""
    return _g(p["kl"]) + (f" (bound {p['max_kl']:g})" if p.get("max_kl") is not None else "")


def preference_summary(p: dict[str, Any] | None) -> str:
    """A reward or DPO run's measures in one line (run.finished/v3 `preference`): a reward model's
    ranking accuracy on held-out pairs; a policy's mean reward before → after and its KL (bound)."""
    if not p:
        return ""
    if p.get("method") == "bradley-terry":
        if p.get("held_out_accuracy") is None:
            return "no held-out pairs"
        return f"held-out accuracy {p['held_out_accuracy']:.1%} on {p['pairs_held_out']:,} pairs"
    if p.get("reward_before") is None or p.get("reward_after") is None:
        return ""
    return f"reward {_g(p['reward_before'])} → {_g(p['reward_after'])}, KL {kl_bound(p)}"


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
                preference_summary(finished[2].get("preference")) if finished else "",
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

    @property
    def preference(self) -> dict[str, Any] | None:
        """What a reward or DPO run measured (run.finished/v3), or None for every other run."""
        return (self.finished or {}).get("preference")

    def preference_digests(self) -> list[tuple[str, str]]:
        """(what, sha256) of the weights a preference run rests on and wrote: a reward model started
        from a recorded model; DPO from its frozen reference, scored by a reward model."""
        if not self.preference:
            return []
        p, started = self.preference, self.started
        start = p.get("reference_digest") or started.get("init_checkpoint_digest")
        found = [("reference" if p["method"] == "dpo" else "started from", start)]
        found.append(("reward model", p.get("reward_model_digest") or started.get("reward_model_digest")))
        found.append(("weights", (self.finished or {}).get("model_digest")))
        return [(label, digest) for label, digest in found if digest]

    def preference_measures(self) -> list[tuple[str, str, str]]:
        """(label, value, help) for the run page's metrics: a reward model's held-out ranking
        accuracy; a DPO policy's reward before → after and KL against its reference (bound)."""
        p = self.preference
        if not p:
            return []
        pairs = (
            "Pairs trained / held out",
            f"{p['pairs_trained']:,} / {p['pairs_held_out']:,}",
            "held out by text digest, as every custody run splits",
        )
        if p["method"] == "bradley-terry":
            accuracy = p.get("held_out_accuracy")
            shown = f"{accuracy:.1%}" if accuracy is not None else "—"
            why = "share of held-out pairs whose chosen completion the reward model scores above the rejected one"
            return [("Held-out ranking accuracy", shown, why), pairs]
        before, after = p.get("reward_before"), p.get("reward_after")
        reward = f"{_g(before)} → {_g(after)}" if before is not None and after is not None else "—"
        prompts = p.get("eval_prompts") or 0
        return [
            ("Reward before → after", reward, f"mean reward of completions of {prompts:,} held-out prompts"),
            ("KL (bound)", kl_bound(p) or "—", "nats per completion, policy against reference, on its own samples"),
            ("β", f"{p['beta']:g}" if p.get("beta") is not None else "—", "the DPO temperature"),
            pairs,
        ]

    def footprint(self) -> Footprint | None:
        """Energy, CO2e, water and time in readable units, with the equivalents that mean something."""
        e = self.emissions()
        return footprint(e) if e else None

    def preference_curve(self) -> list[dict[str, Any]]:
        """A DPO run's evaluations, one row each: the step, the policy's mean reward on held-out
        prompts and its KL to the reference (long form: series, value)."""
        return [
            {"step": e["step"], "series": name, "value": e[field]}
            for e in self.metrics.get("evals", [])
            if e.get("reward") is not None
            for name, field in (("mean reward", "reward"), ("KL to the reference", "kl"))
            if e.get(field) is not None
        ]

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
