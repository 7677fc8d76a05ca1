"""Recording a training run's ledger entries by hand, for tests and benchmarks.

`custody run` writes these for real; this writes entries of the same schemas (and a metrics
artifact of the documented format) so the dashboards can be exercised without training.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger.entry import Entry, canonical_json
from custody.runs import entry_types as _run_types  # noqa: F401  registers the run.* entry types


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run_entries(
    home: Home,
    run_id: str,
    decision_index: int,
    datasets: list[RegisteredDataset],
    steps: int = 100,
    checkpoint_every: int = 25,
    actor: str = "trainer",
    energy_kwh: float = 1.2,
) -> list[Entry]:
    """The started, checkpoint and finished entries of one completed run (the metrics go to the store)."""
    subject = f"run:{run_id}"
    losses = [round(5.0 * math.exp(-step / max(steps / 3, 1)) + 1.5, 4) for step in range(1, steps + 1)]
    evals = [
        {
            "step": s,
            "val_loss": round(losses[s - 1] + 0.2, 4),
            "val_perplexity": round(math.exp(losses[s - 1] + 0.2), 2),
        }
        for s in range(checkpoint_every, steps + 1, checkpoint_every)
    ]
    metrics = {
        "steps": [
            {"step": s, "train_loss": losses[s - 1], "lr": 3e-4, "tokens": 4096 * s} for s in range(1, steps + 1)
        ],
        "evals": evals,
    }
    metrics_digest = home.store.put_bytes(canonical_json(metrics))
    emissions = {
        "duration_s": 60.0 * steps / 10,
        "energy_kwh": energy_kwh,
        "emissions_kg_co2e": round(energy_kwh * 0.35, 6),
        "water_l": round(energy_kwh * 1.8, 6),
        "country_iso_code": "DEU",
        "pue": 1.2,
        "wue_l_per_kwh": 1.8,
        "tracker": "codecarbon (recorded by custody.testing.runs)",
    }
    started = {
        "run_id": run_id,
        "name": f"tiny-{run_id}",
        "kind": "pretrain",
        "spec_path": f"pipelines/{run_id}.toml",
        "spec_digest": _digest(f"spec {run_id}"),
        "decision_index": decision_index,
        "datasets": [{"ref": str(d.ref), "digest": d.digest} for d in datasets],
        "tokenizer_digest": _digest("tokenizer"),
        "model_config_digest": _digest("model"),
        "train_config_digest": _digest("train"),
        "code_version": "test",
        "device": "cpu",
        "world_size": 1,
        "seed": 1,
        "parameters": 123_456,
    }
    entries = [home.entry("run.started/v1", subject, started, actor=actor)]
    for e in evals:
        checkpoint = {
            "run_id": run_id,
            "step": e["step"],
            "checkpoint_digest": _digest(f"{run_id} checkpoint {e['step']}"),
            "tokens": 4096 * e["step"],
            "train_loss": losses[e["step"] - 1],
            "val_loss": e["val_loss"],
            "val_perplexity": e["val_perplexity"],
        }
        entries.append(home.entry("run.checkpoint/v1", subject, checkpoint, actor=actor))
    finished: dict[str, Any] = {
        "run_id": run_id,
        "status": "completed",
        "steps": steps,
        "tokens": 4096 * steps,
        "tokens_per_s": 4096 * steps / emissions["duration_s"],
        "final_train_loss": losses[-1],
        "final_val_loss": evals[-1]["val_loss"] if evals else None,
        "model_digest": _digest(f"{run_id} checkpoint {steps}"),
        "metrics_digest": metrics_digest,
        "emissions": emissions,
    }
    entries.append(home.entry("run.finished/v1", subject, finished, actor=actor))
    return entries


def record_run(home: Home, run_id: str, decision_index: int, datasets: list[RegisteredDataset], **kwargs: Any) -> int:
    """Append a completed run; return the index of its run.started entry."""
    first = home.ledger.append_batch(run_entries(home, run_id, decision_index, datasets, **kwargs))[0]
    home.checkpoint()
    return first
