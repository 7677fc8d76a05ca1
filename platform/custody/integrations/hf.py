"""`CustodyCallback`: a Hugging Face `transformers.Trainer` trains under a custody run.

    from custody.integrations.hf import TRAINER, CustodyCallback

    with custody.governed_run("research", ["web@1"], key="me.key", trainer=TRAINER) as run:
        train = run.hf_dataset().map(tokenize, batched=True, remove_columns=["text", "id", "dataset"])
        trainer = Trainer(model, args, train_dataset=train, callbacks=[CustodyCallback(run)])
        trainer.train()

The run gates and records its start and end (`governed_run`); the callback ties the Trainer to it:

- `on_train_begin` refuses (raises `TrainingRefused`, before the first step) unless the ledger entry
  the run names is an allow decision for exactly the bytes the run reads (the check `custody run`
  makes), the run has not finished, and the Trainer's training data can be traced to the run (below).
  Inside `governed_run` the refusal leaves the block, so the run is recorded as failed, naming why.
- `on_log` records the Trainer's numeric logs (`loss`, `learning_rate`, `grad_norm`, ...) at its
  global step with `run.log`, and the tokens seen when `include_num_input_tokens_seen` is on.
- `on_save` records the checkpoint folder the Trainer just wrote (`output_dir/checkpoint-STEP`) with
  `run.checkpoint`: every file is copied to the artifact store and the entry names a manifest of their
  digests, so a later export or audit names exactly those bytes.
- The end is the run's: leaving the `with` block records run.finished (completed, or failed with the
  exception and the energy measured up to it). Save the final model and record it before leaving:
  `trainer.save_model(out); run.checkpoint(out)`.

Without a `with` block (a run from `open_run`), the callback records run.started at on_train_begin
(the trainer and its version, device, seed, parameters, world size) and you finish the run yourself:

    run = custody.runs.api.open_run(home, spec, actor)
    try:
        trainer.train()
    except BaseException as exc:
        run.fail(exc)
        raise
    run.finish(steps=trainer.state.global_step, tokens=trainer.state.num_input_tokens_seen)

What the training-data check detects, and what it does not. It looks at the dataset of the data
loader the Trainer built (after its own column removal), unwrapping torch `Subset`/`ConcatDataset`
and accelerate's shards, and accepts each dataset it finds only if it is
- a `datasets.Dataset` whose fingerprint is one `run.hf_dataset()` returned, or
- a `datasets.Dataset` all of whose Arrow files lie in the run's own folder, when the run has handed
  out a Hugging Face dataset: `datasets` writes the output of `.map`, `.filter`, `.shuffle`,
  `.train_test_split`, ... next to its input's file, so what was derived from the run's data with
  caching on stays there, while a dataset loaded or built from anything else has files elsewhere
  (or none, in memory), or
- the run's own `run.torch_dataset()`.
It refuses anything else, so a dataset loaded from disk or the Hub, built in memory
(`Dataset.from_dict`, `keep_in_memory=True`, or with caching disabled, even when derived from the
run's data), concatenated with other data, a streaming `datasets.IterableDataset`, or a torch
Dataset of your own. It does not re-run your transforms: a function passed to `.map` that reads
other data, or an Arrow file someone writes into the run's folder, is not detected; it guards
against the wrong dataset reaching the Trainer, not against a user who means to bypass it. Evaluation
datasets and `resume_from_checkpoint` are not checked.

Recording happens on the world's process zero only (one ledger writer); the refusals happen on every
process, so no rank trains on data the run cannot account for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import transformers
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from custody.runs.api import GovernedRun
from custody.runs.api_data import RecordsDataset, yielded_fingerprints
from custody.runs.governed import RunRefused, require_allow

TRAINER = f"transformers.Trainer {transformers.__version__}"
"""The name the run.started entry gives this trainer: `governed_run(..., trainer=TRAINER)`."""


class TrainingRefused(RunRefused):
    """The callback did not let the Trainer start: no allow decision, a finished run, or training
    data that cannot be traced to the run."""


class CustodyCallback(TrainerCallback):
    """Gates `Trainer.train()` on the run's allow decision and data, and records its logs and
    checkpoints in the run (see the module docstring for what is checked and what is not)."""

    def __init__(self, run: GovernedRun) -> None:
        if not isinstance(run, GovernedRun):
            raise TypeError(
                f"CustodyCallback needs the run custody.governed_run yields, not {type(run).__name__}: "
                "with custody.governed_run(...) as run: ... CustodyCallback(run)"
            )
        self.run = run
        self.started_here = False

    # -- the gate --------------------------------------------------------------------------------------

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        run = self.run
        if "run.finished" in run.entries:
            raise TrainingRefused(
                f"run {run.run_id} has already finished (ledger index {run.entries['run.finished']}): "
                "open a new custody.governed_run for more training"
            )
        decision = run.outcome.gate.ledger_index
        if run.outcome.gate.decision.decision != "allow" or decision is None:
            raise TrainingRefused(
                f"run {run.run_id} holds no allow decision (the gate decided {run.outcome.gate.decision.decision}"
                f", ledger index {decision}): training does not start"
            )
        try:
            require_allow(run.home, decision, run.datasets)
        except RunRefused as refused:
            raise TrainingRefused(f"run {run.run_id}: {refused}; training does not start") from None
        loader = kwargs.get("train_dataloader")
        dataset = getattr(loader, "dataset", None)
        if dataset is None:
            raise TrainingRefused(f"run {run.run_id}: the Trainer has no training data loader to check")
        problems = [problem for leaf in _leaves(dataset) if (problem := untraced(run, leaf))]
        if problems:
            raise TrainingRefused(
                f"run {run.run_id}: the Trainer's train_dataset is not the data this run was allowed "
                f"to read: {'; '.join(problems)}. Build it from run.hf_dataset() (its .map(), .filter(), "
                "... with caching on) or run.torch_dataset()"
            )
        if "run.started" not in run.entries and state.is_world_process_zero:
            model = kwargs.get("model")
            run.start(
                trainer=TRAINER,
                device=str(args.device),
                seed=int(args.seed),
                world_size=int(args.world_size),
                parameters=sum(p.numel() for p in model.parameters()) if model is not None else None,
            )
            self.started_here = True

    # -- what the Trainer reports ------------------------------------------------------------------------

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero:
            return
        metrics = {key: float(value) for key, value in (logs or {}).items() if _number(value)}
        if state.num_input_tokens_seen:
            metrics["tokens"] = float(state.num_input_tokens_seen)
        if metrics:
            self.run.log(state.global_step, **metrics)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if not folder.is_dir():  # a checkpoint the ledger cannot name must not pass silently
            raise FileNotFoundError(f"the Trainer saved step {state.global_step}, but {folder} is not a folder")
        self.run.checkpoint(folder, step=state.global_step)


def untraced(run: GovernedRun, dataset: object) -> str | None:
    """Why `dataset` cannot be traced to what `run` handed out, or None when it can."""
    if isinstance(dataset, RecordsDataset):
        return None if dataset.run is run else "a torch dataset of another run"
    try:
        import datasets
    except ImportError:
        datasets = None  # type: ignore[assignment]
    if datasets is not None and isinstance(dataset, datasets.IterableDataset):
        return "a streaming datasets.IterableDataset (its source cannot be traced)"
    if datasets is None or not isinstance(dataset, datasets.Dataset):
        return f"a {type(dataset).__module__}.{type(dataset).__name__} custody cannot trace"
    yielded = yielded_fingerprints(run)
    if dataset._fingerprint in yielded:
        return None
    if not yielded:
        return "a datasets.Dataset, but this run has not handed out one (call run.hf_dataset())"
    files = [Path(f["filename"]).resolve() for f in dataset.cache_files]
    if not files:
        return "a datasets.Dataset held in memory (built with from_dict, keep_in_memory or caching off)"
    home = run.directory.resolve()
    outside = [str(f) for f in files if not f.is_relative_to(home)]
    if outside:
        return f"a datasets.Dataset read from {', '.join(sorted(outside)[:3])}, outside the run's folder {home}"
    return None


def _leaves(dataset: object) -> Iterator[object]:
    """The datasets a loader's dataset is made of: torch ConcatDataset/Subset and accelerate's shard
    wrappers unwrapped (a Hugging Face Dataset is a leaf)."""
    try:
        import datasets

        leaf_types: tuple[type, ...] = (datasets.Dataset, datasets.IterableDataset, RecordsDataset)
    except ImportError:
        leaf_types = (RecordsDataset,)
    if isinstance(dataset, leaf_types):
        yield dataset
    elif isinstance(getattr(dataset, "datasets", None), list | tuple):
        for part in dataset.datasets:  # type: ignore[attr-defined]
            yield from _leaves(part)
    elif getattr(dataset, "dataset", None) is not None:
        yield from _leaves(dataset.dataset)  # type: ignore[attr-defined]
    else:
        yield dataset


def _number(value: object) -> bool:
    """A metric the ledger can hold: a finite int or float (not a bool, not NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["TRAINER", "CustodyCallback", "TrainingRefused", "untraced"]
