"""`custody run SPEC --resume RUN_ID`: continue an interrupted run from its last recorded checkpoint.

The resumed run is a run of its own, through the gate again (data taken down since, or a policy
tightened since, stops it like any run), and its `run.started/v4` names the run and checkpoint it
continues (`resumed_from`). It must be the same spec, on the same prepared bytes, with the same
tokenizer; the loop checks the checkpoint's model, tokens and settings as well. The interrupted run,
if nothing recorded its end (a killed process), gets one now: failed, "interrupted", and its energy
is counted in the resumed run, whose measurement continues the checkpoint's cumulative one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger import query
from custody.ledger.entry import canonical_json
from custody.runs.spec import LoadedSpec
from custody.train.carbon import not_measured_body


class ResumeError(ValueError):
    """The run cannot be resumed as asked; nothing was recorded."""


@dataclass(frozen=True)
class Resumable:
    run_id: str
    step: int
    checkpoint_digest: str
    tokenizer_digest: str
    datasets: dict[str, str]  # prepared dataset ref -> digest the interrupted run read
    finished: bool  # whether its end is already recorded (a failure the process could still record)

    def path(self, home: Home) -> Path:
        """The checkpoint's bytes: in the store (a torchrun run's, any node) or the run's folder (the
        loop checks them against the digest either way)."""
        stored = home.store.path_for(self.checkpoint_digest)
        if stored.exists():
            return stored
        return home.path / "runs" / self.run_id / f"step-{self.step:07d}.pt"

    def as_json(self) -> dict:
        return {"run_id": self.run_id, "step": self.step, "checkpoint_digest": self.checkpoint_digest}


def find_resumable(home: Home, loaded: LoadedSpec, run_id: str) -> Resumable:
    """The interrupted run and its last recorded checkpoint, checked before anything is recorded."""
    subject = f"run:{run_id}"
    started = query.first(home.storage, "run.started/", subject)
    if started is None:
        raise ResumeError(f"--resume {run_id}: no run with that id in this ledger")
    body = query.body(started)
    if body["spec_digest"] != loaded.digest:
        raise ResumeError(
            f"--resume {run_id}: it ran spec sha256 {body['spec_digest'][:12]}, not {loaded.path} "
            f"(sha256 {loaded.digest[:12]}); a resume continues the same spec"
        )
    finished = query.latest(home.storage, "run.finished/", subject)
    if finished is not None and query.body(finished)["status"] == "completed":
        raise ResumeError(f"--resume {run_id}: the run completed (ledger index {finished.idx}); nothing to resume")
    checkpoint = query.latest(home.storage, "run.checkpoint/", subject)
    if checkpoint is None:
        raise ResumeError(f"--resume {run_id}: it recorded no checkpoint to continue from; start it again")
    saved = query.body(checkpoint)
    resumable = Resumable(
        run_id,
        saved["step"],
        saved["checkpoint_digest"],
        body["tokenizer_digest"],
        {d["ref"]: d["digest"] for d in body["datasets"]},
        finished is not None,
    )
    if not resumable.path(home).exists():
        raise ResumeError(f"--resume {run_id}: checkpoint sha256 {saved['checkpoint_digest'][:12]} is not in the store")
    return resumable


def check_same_data(resumable: Resumable, prepared: list[RegisteredDataset]) -> None:
    """The resumed run reads exactly the bytes the interrupted one did."""
    now = {str(d.ref): d.digest for d in prepared}
    if now != resumable.datasets:
        changed = sorted(set(now.items()) ^ set(resumable.datasets.items()))
        raise ResumeError(
            f"--resume {resumable.run_id}: the prepared data differs from what it trained on: "
            + ", ".join(f"{ref} {digest[:12]}" for ref, digest in changed)
        )


def close_interrupted(home: Home, resumable: Resumable, new_run_id: str, carbon, actor) -> int | None:
    """Record the interrupted run's end, if nothing did: failed, interrupted, resumed by the new run."""
    if resumable.finished:
        return None
    body = {
        "run_id": resumable.run_id,
        "status": "failed",
        "error": f"interrupted after its checkpoint at step {resumable.step}; resumed as run {new_run_id}",
        "steps": resumable.step,
        "tokens": 0,
        "tokens_per_s": 0.0,
        "model_digest": resumable.checkpoint_digest,
        "metrics_digest": home.store.put_bytes(canonical_json({"steps": [], "evals": []})),
        "emissions": not_measured_body(
            carbon, f"counted in run {new_run_id}, whose measurement continues this run's last checkpoint"
        ),
    }
    refs = [f"sha256:{resumable.checkpoint_digest}"]
    return home.record("run.finished/v4", f"run:{resumable.run_id}", body, refs=refs, actor=actor)
