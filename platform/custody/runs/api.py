"""custody's Python API for any training loop: `governed_run` gates, hands over verified data, records.

    import custody

    with custody.governed_run("commercial", datasets=["web@1"], name="my-run", key="me.key") as run:
        for record in run.records():            # only the approved bytes, each shard re-hashed first
            ...                                  # your loop
            run.log(step, loss=loss)
        run.checkpoint("model.safetensors", step=step)

Entering asks the gate exactly as `custody run` does (the same request, preparation, checks,
contamination measurement and decision, recorded in the same entries) and raises `RunDenied`,
with the decision's reasons, unless it allows; nothing is recorded as started then. Inside,
a CodeCarbon tracker measures the block. Leaving records `run.finished`: completed, or failed
with the exception and the energy measured up to it (the exception is re-raised).

`custody run` goes through the same two steps: `open_run` (gate, then an allowed `GovernedRun`)
and the `record_*` methods its trainers call, so the gate and the entries have one path.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from custody import __version__
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger.entry import canonical_json
from custody.pipeline.executors import Executor
from custody.policy.gate import GateResult
from custody.runs.governed import RunRefused, gate_spec, require_allow
from custody.runs.outcome import (
    RunOutcome,
    Say,
    carbon_config,
    emissions_body,
    new_run_id,
    record_failed,
    run_dir,
    started_fields,
)
from custody.runs.spec import LoadedSpec, SpecError, load_spec, spec_from_text
from custody.train.carbon import Emissions, EmissionsMeter, note_measured
from custody.train.data import verified_copy, verified_records
from custody.trust.acting import Acting

if TYPE_CHECKING:
    import datasets as hf_datasets
    import torch.utils.data

PURPOSES = ("commercial", "research")
EXTERNAL_STARTED = "run.started/v4"
EXTERNAL_CHECKPOINT = "run.checkpoint/v2"
EXTERNAL_FINISHED = "run.finished/v4"


def _quiet(_: str) -> None:
    """The API says nothing unless asked (`say=print`); the ledger holds the record."""


class RunDenied(RunRefused):
    """The gate did not allow the run: its decision, the ledger index it is recorded at, and its reasons."""

    def __init__(self, gate: GateResult) -> None:
        self.gate = gate
        self.decision = gate.decision.decision
        self.ledger_index = gate.ledger_index
        self.reasons = [f"{r.outcome}: {r.finding} — {r.message}" for r in gate.decision.reasons]
        listed = "; ".join(self.reasons) or "no reason given"
        super().__init__(f"the gate decided {self.decision} (ledger index {self.ledger_index}): {listed}")


class GovernedRun:
    """An allowed run: the approved data, verified as it is read, and what the run records.

    Recording is on rank 0 of a loop only (one ledger writer). Use it as a context manager (as
    `governed_run` does) or call `start()` and `finish()`/`fail()` yourself."""

    def __init__(
        self,
        home: Home,
        outcome: RunOutcome,
        actor: Acting | str | None,
        say: Say = _quiet,
        preparation: Emissions | None = None,
        trainer: str = "python",
    ) -> None:
        self.home, self.outcome, self.actor, self.say = home, outcome, actor, say
        self.preparation, self.trainer = preparation, trainer
        outcome.run_id = outcome.run_id or new_run_id(outcome.spec.spec)
        self.metrics: list[dict[str, Any]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self._meter: EmissionsMeter | None = None
        self._finished = False
        self.resume: Any = None  # runs.resume.Resumable: the interrupted run custody run --resume continues

    # -- what the run is ---------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.outcome.run_id  # type: ignore[return-value]  # set in __init__

    @property
    def subject(self) -> str:
        return f"run:{self.run_id}"

    @property
    def decision_index(self) -> int:
        """The ledger index of the allow decision this run trains under."""
        return self.outcome.gate.ledger_index  # type: ignore[return-value]  # allowed runs have one

    @property
    def datasets(self) -> list[RegisteredDataset]:
        """The prepared datasets the decision allowed, in the spec's order."""
        return self.outcome.prepared

    @property
    def directory(self) -> Path:
        """The run's own folder in the home (checkpoints, verified copies)."""
        return run_dir(self.home, self.run_id)

    @property
    def entries(self) -> dict[str, int]:
        """Ledger indexes of the run's entries so far: run.requested, run.started, run.finished."""
        return self.outcome.entries

    # -- the approved data, verified as it is read ---------------------------------------------------

    def records(self, fields: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
        """Every record of every approved dataset as a dict (text, id, dataset, and the `fields`
        named); each shard's bytes are hashed against the approved manifest before one is parsed,
        and a changed shard raises ShardIntegrityError."""
        for dataset in self.datasets:
            for _, record in verified_records(dataset, tuple(fields)):
                row: dict[str, Any] = {"text": record.text, "id": record.id, "dataset": str(dataset.ref)}
                row.update({name: (record.extra or {}).get(name) for name in fields})
                yield row

    def texts(self) -> Iterator[str]:
        """The text of every approved record, verified (for a tokenizer, a classifier, ...)."""
        for row in self.records():
            yield row["text"]

    def files(self) -> list[Path]:
        """Read-only copies of the approved shards in the run's folder, each one the bytes that were
        hashed against the manifest (so nothing can swap a file between the check and the read)."""
        out = self.directory / "data"
        paths = []
        for dataset in self.datasets:
            folder = out / dataset.ref.name / dataset.ref.version
            folder.mkdir(parents=True, exist_ok=True)
            for shard in dataset.manifest.shards:
                target = folder / Path(shard.name).name
                if not target.exists():
                    with verified_copy(dataset, shard) as copy:
                        shutil.copyfile(copy, target)
                    target.chmod(stat.S_IRUSR | stat.S_IRGRP)
                paths.append(target)
        return paths

    def torch_dataset(self, fields: Sequence[str] = ()) -> torch.utils.data.IterableDataset:
        """A torch IterableDataset of the records (as `records()` gives them), re-verified on every pass."""
        from custody.runs.api_data import RecordsDataset

        return RecordsDataset(self, tuple(fields))

    def hf_dataset(self, fields: Sequence[str] = ()) -> hf_datasets.Dataset:
        """A Hugging Face `datasets.Dataset` over the approved records only, built from verified bytes
        (its Arrow cache lives in the run's folder, not the shared HF cache)."""
        from custody.runs.api_data import hf_dataset

        return hf_dataset(self, tuple(fields))

    # -- recording: any loop ---------------------------------------------------------------------------

    def start(self, **details: Any) -> int:
        """Record run.started (once) and start measuring energy; `details` may name the trainer,
        `device`, `world_size`, `seed`, `parameters` and digests of configs kept in the store."""
        if "run.started" in self.outcome.entries:
            return self.outcome.entries["run.started"]
        spec = self.outcome.spec.spec
        fields = {
            "trainer": details.pop("trainer", self.trainer),
            "code_version": details.pop("code_version", f"custody {__version__}"),
            "world_size": details.pop("world_size", int(os.environ.get("WORLD_SIZE", "1"))),
            **details,
        }
        index = self.record_started(EXTERNAL_STARTED, fields)
        self._meter = EmissionsMeter(carbon_config(spec), label="custody-run").start()
        self.say(f"run {self.run_id} started ({fields['trainer']}; ledger index {index})")
        return index

    def log(self, step: int, **metrics: float) -> None:
        """Metrics at a step (loss, lr, ...): kept, and stored with the run's finished entry."""
        self.metrics.append({"step": int(step), **{k: float(v) for k, v in metrics.items()}})

    def checkpoint(self, path: str | Path, step: int | None = None, **metrics: float) -> str:
        """Record a checkpoint file (or a folder's files, as one manifest) by digest; returns the digest.
        The bytes go to the artifact store, so a later run or export names exactly them."""
        path = Path(path)
        digest = self._store(path)
        last = self.metrics[-1] if self.metrics else {}
        step = int(step if step is not None else last.get("step", len(self.checkpoints)))
        values = {**{k: v for k, v in last.items() if k != "step"}, **{k: float(v) for k, v in metrics.items()}}
        body = {
            "run_id": self.run_id,
            "step": step,
            "checkpoint_digest": digest,
            "tokens": int(values.get("tokens", 0)),
            "train_loss": values.get("loss", values.get("train_loss")),
            "val_loss": values.get("val_loss", values.get("eval_loss")),
            "metrics": values,
            "name": path.name,
        }
        index = self.home.record(EXTERNAL_CHECKPOINT, self.subject, body, refs=[f"sha256:{digest}"], actor=self.actor)
        self.checkpoints.append({"step": step, "digest": digest, "index": index})
        self.say(f"  checkpoint at step {step}: sha256 {digest[:16]} (ledger index {index})")
        return digest

    def finish(self, steps: int | None = None, tokens: int | None = None, **details: Any) -> int:
        """Record run.finished as completed (the last checkpoint is the model), with the energy measured."""
        emissions = self._stop_meter()
        last_step = self.metrics[-1]["step"] if self.metrics else 0
        steps = int(steps if steps is not None else max(last_step, *(c["step"] for c in self.checkpoints), 0))
        tokens = int(tokens if tokens is not None else 0)
        losses = [m["loss"] for m in self.metrics if "loss" in m]
        duration = emissions.duration_s if emissions else 0.0
        fields = {
            "status": "completed",
            "steps": steps,
            "tokens": tokens,
            "tokens_per_s": round(tokens / duration, 1) if duration else 0.0,
            "final_train_loss": losses[-1] if losses else None,
            "model_digest": self.checkpoints[-1]["digest"] if self.checkpoints else None,
            "metrics_digest": self.home.store.put_bytes(canonical_json({"steps": self.metrics, "evals": []})),
            "emissions": emissions_body(emissions) if emissions else self._not_measured(),
            **details,
        }
        refs = [f"sha256:{fields['model_digest']}"] if fields["model_digest"] else []
        index = self.record_finished(EXTERNAL_FINISHED, fields, refs)
        self.home.checkpoint()
        return index

    def fail(self, exc: BaseException) -> int:
        """Record run.finished as failed: the error and the energy measured up to it."""
        emissions = self._stop_meter()
        if emissions is not None:
            note_measured(exc, emissions)
        return self.record_failed(exc, EXTERNAL_FINISHED)

    def __enter__(self) -> GovernedRun:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._finished:
            return
        if exc is not None:
            self.fail(exc)
        else:
            self.finish()

    # -- recording: the entries every trainer writes (custody's own use these too) -----------------

    def record_started(self, entry_type: str, fields: dict[str, Any], refs: Sequence[str] = ()) -> int:
        body = {
            **started_fields(self.home, self.outcome),
            "preparation_emissions": emissions_body(self.preparation) if self.preparation else None,
            **fields,
        }
        index = self.home.record(entry_type, self.subject, body, refs=list(refs), actor=self.actor)
        self.outcome.entries["run.started"] = index
        return index

    def record_finished(self, entry_type: str, fields: dict[str, Any], refs: Sequence[str] = ()) -> int:
        body = {"run_id": self.run_id, **fields}
        index = self.home.record(entry_type, self.subject, body, refs=list(refs), actor=self.actor)
        self.outcome.entries["run.finished"] = index
        self._finished = True
        return index

    def record_failed(self, exc: BaseException, entry_type: str = "run.finished/v1") -> int:
        """The failed entry, once the run has started (a run refused before it started has none)."""
        if "run.started" in self.outcome.entries and not self._finished:
            record_failed(self.home, self.outcome, exc, self.actor, entry_type, self.metrics)
            self._finished = True
        return self.outcome.entries.get("run.finished", -1)

    def _stop_meter(self) -> Emissions | None:
        meter, self._meter = self._meter, None
        if meter is None:
            return None
        try:
            return meter.stop()
        except Exception:  # a tracker that cannot stop must not hide the run's own outcome
            return None

    def _not_measured(self) -> dict[str, Any]:
        from custody.train.carbon import not_measured_body

        return not_measured_body(carbon_config(self.outcome.spec.spec), "no meter ran around this run")

    def _store(self, path: Path) -> str:
        if path.is_file():
            return self.home.store.put_file(path)
        if path.is_dir():  # a checkpoint folder (a Trainer's): each file stored, the manifest names them
            files = {
                str(p.relative_to(path)): self.home.store.put_file(p) for p in sorted(path.rglob("*")) if p.is_file()
            }
            if not files:
                raise FileNotFoundError(f"{path}: an empty checkpoint folder")
            return self.home.store.put_bytes(canonical_json({"format": "custody-checkpoint-folder/1", "files": files}))
        raise FileNotFoundError(f"{path}: no such checkpoint file or folder")


def open_run(
    home: Home,
    loaded: LoadedSpec,
    actor: Acting | str | None = None,
    say: Say = _quiet,
    executor: Executor | None = None,
    trainer: str = "python",
) -> GovernedRun:
    """Gate the spec exactly as `custody run` does; an allowed run, or RunDenied (nothing started)."""
    outcome, preparation = gate_spec(home, loaded, actor, say, executor)
    if outcome.gate.decision.decision != "allow" or outcome.gate.ledger_index is None:
        raise RunDenied(outcome.gate)
    require_allow(home, outcome.gate.ledger_index, outcome.prepared)
    return GovernedRun(home, outcome, actor, say, preparation, trainer)


def external_spec(
    home: Home,
    purpose: str,
    datasets: Sequence[str],
    name: str,
    estimated_kwh: float | None = None,
    estimated_kg_co2e: float | None = None,
) -> LoadedSpec:
    """A run spec for a loop custody does not train (`kind = "external"`), written to the home so the
    run's entries name it by path and digest like any spec."""
    if purpose not in PURPOSES:
        raise SpecError(
            f"governed_run: purpose must be one of {', '.join(PURPOSES)} (or give a spec file), not {purpose!r}"
        )
    if not datasets:
        raise SpecError("governed_run: name at least one dataset (NAME@VERSION) for the run to read")
    lines = ["schema = 1", f"name = {_toml(name)}", 'kind = "external"', "", "[policy]", f"purpose = {_toml(purpose)}"]
    for ref in datasets:
        lines += ["", "[[datasets]]", f"ref = {_toml(ref)}"]
    estimates = {"estimated_kwh": estimated_kwh, "estimated_kg_co2e": estimated_kg_co2e}
    if any(v is not None for v in estimates.values()):  # for the training.budget rule
        lines += ["", "[carbon]"] + [f"{k} = {float(v)!r}" for k, v in estimates.items() if v is not None]
    text = "\n".join(lines) + "\n"
    loaded = spec_from_text(text, f"governed_run({name})")
    folder = home.path / "specs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{loaded.digest[:12]}.toml"
    path.write_text(text, "utf-8")
    return LoadedSpec(path.resolve(), loaded.raw, loaded.spec)


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _acting(home: Home, key: str | Path | None, actor: Acting | str | None) -> Acting | str | None:
    """Who asks: the roster member holding `key` in a signed home (checked against the roles that may
    ask for a run), else the name given."""
    if isinstance(actor, Acting) or not home.roster().signed:
        return actor
    from custody.trust.acting import key_path, person_for_key, require_roles
    from custody.trust.permissions import request_roles

    path = key_path(Path(key) if key is not None else None)
    if path is None:
        raise PermissionError("this home signs its entries: give governed_run your key (key=PATH or $CUSTODY_KEY)")
    person = person_for_key(home.roster(), path, actor if isinstance(actor, str) else None)
    require_roles(person, request_roles("run"), "run")
    return person


@contextmanager
def governed_run(
    spec_or_purpose: str | Path | LoadedSpec,
    datasets: Sequence[str] = (),
    *,
    home: Home | str | Path | None = None,
    name: str = "governed-run",
    key: str | Path | None = None,
    actor: Acting | str | None = None,
    say: Callable[[str], None] = _quiet,
    executor: Executor | None = None,
    trainer: str = "python",
    estimated_kwh: float | None = None,
    estimated_kg_co2e: float | None = None,
) -> Iterator[GovernedRun]:
    """Gate a run, then train inside the block on exactly the approved data; see the module docstring.

    spec_or_purpose: a run spec (path or loaded; its datasets, stages and policy), or a purpose
      ("commercial", "research") whose bound policy judges `datasets` (NAME@VERSION each).
    home: an open Home, or a path (default: $CUSTODY_HOME or ./.custody).
    key: your private key in a home that signs (default $CUSTODY_KEY); actor: your name otherwise.
    estimated_kwh, estimated_kg_co2e: the run's energy and carbon estimates, for a policy's
      training.budget rule (with a purpose; a spec gives them in its [carbon] table).
    Raises RunDenied when the gate does not allow, RunRefused when no allow covers the bytes.
    """
    own = not isinstance(home, Home)
    opened = Home.open(home) if own else home
    try:
        who = _acting(opened, key, actor)
        if isinstance(spec_or_purpose, LoadedSpec):
            loaded = spec_or_purpose
        elif isinstance(spec_or_purpose, str) and (
            spec_or_purpose in PURPOSES or not spec_or_purpose.endswith(".toml")
        ):
            loaded = external_spec(opened, spec_or_purpose, datasets, name, estimated_kwh, estimated_kg_co2e)
        else:
            loaded = load_spec(spec_or_purpose)
            if datasets and sorted(datasets) != sorted(d.ref for d in loaded.spec.datasets):
                raise SpecError(f"{loaded.path}: datasets= differs from the spec's; give one or the other")
        run = open_run(opened, loaded, who, say, executor, trainer)
        with run:
            yield run
    finally:
        if own:
            opened.close()


__all__ = ["GovernedRun", "RunDenied", "RunRefused", "governed_run", "open_run"]
