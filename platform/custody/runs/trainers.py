"""`custody run`: the gate (runs/governed.py), then the trainer the spec's kind names, every entry
through one `GovernedRun` (runs/api.py), the same as any loop that uses `custody.governed_run`.

A language model trains in this process (runs/training.py) or on torchrun's ranks
(runs/distributed_run.py, `--nproc-per-node`); a classifier and the preference kinds (reward, DPO)
have trainers of their own. `--resume RUN_ID` continues an interrupted run (runs/resume.py).
"""

from __future__ import annotations

from typing import Any

from custody.home import Home
from custody.pipeline.executors import Executor
from custody.runs.api import GovernedRun
from custody.runs.governed import RunRefused, gate_spec, require_allow
from custody.runs.outcome import RunOutcome, Say, carbon_config
from custody.runs.spec import LoadedSpec
from custody.trust.acting import Acting


def run_spec(
    home: Home,
    loaded: LoadedSpec,
    actor: Acting | str | None = None,
    say: Say = print,
    executor: Executor | None = None,
    launch: Any = None,
    resume: str | None = None,
) -> RunOutcome:
    """Prepare, check, gate and train; checks and per-record stages run on `executor` (None: the spec's).
    The gate and the run's entries go through the same `GovernedRun` as `custody.governed_run`.
    `launch` (runs.distributed_run.Launch): train on that many torchrun ranks instead of in this process.
    `resume`: the id of an interrupted run of this spec to continue from its last checkpoint (runs/resume.py)."""
    spec = loaded.spec
    if spec.kind == "external":
        raise RunRefused(
            f"{loaded.path}: kind = 'external' is trained by your own loop: "
            "open it with custody.governed_run (docs/api.md), not custody run"
        )
    if launch is not None and spec.kind not in ("pretrain", "finetune", "transfer"):
        raise RunRefused(f"{loaded.path}: kind = '{spec.kind}' trains in one process; torchrun is for language models")
    resumable = None
    if resume is not None:
        from custody.runs import resume as resuming

        if spec.kind not in ("pretrain", "finetune", "transfer"):
            raise RunRefused(f"{loaded.path}: --resume continues language-model runs, not kind = '{spec.kind}'")
        resumable = resuming.find_resumable(home, loaded, resume)  # before anything is recorded
    outcome, preparation = gate_spec(home, loaded, actor, say, executor)
    if outcome.gate.decision.decision != "allow" or outcome.gate.ledger_index is None:
        return outcome
    require_allow(home, outcome.gate.ledger_index, outcome.prepared)
    run = GovernedRun(home, outcome, actor, say, preparation, trainer="custody")
    if resumable is not None:
        resuming.check_same_data(resumable, outcome.prepared)
        closed = resuming.close_interrupted(home, resumable, run.run_id, carbon_config(spec), actor)
        say(
            f"resuming run {resumable.run_id} from its checkpoint at step {resumable.step} as run {run.run_id}"
            + (f" (its end recorded as interrupted, ledger index {closed})" if closed is not None else "")
        )
        run.resume = resumable
    if spec.kind == "classifier":
        from custody.runs.classifier import train_classifier

        train_classifier(run)
    elif spec.kind in ("reward", "dpo"):
        from custody.runs.preference_runs import train_preferences

        train_preferences(run)
    elif launch is not None:
        from custody.runs.distributed_run import train_distributed

        train_distributed(run, launch)
    else:
        from custody.runs.training import train_run  # torch is imported only when a run trains

        train_run(run)
    return outcome
