"""An evaluation set's records, read from verified shards and checked against their task shape.

The task follows from the records' fields (or is given): `choices` and `answer` make a
multiple-choice set, `label` a classification set, plain text a next-token loss set; `slice`
(optional) names the labelled slice of each record. Every record is checked before anything
uses it, and a bad one is refused in one line (`EvalError`) with nothing recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from custody.datasets.names import parse_ref
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.home import Home

ALL = "all"
TASKS = ("auto", "loss", "multiple-choice", "classification")
FIELDS = ("choices", "answer", "label", "slice")


class EvalError(ValueError):
    """An evaluation that cannot run as asked; the message names the field. Nothing is recorded."""


@dataclass(frozen=True)
class EvalRecord:
    id: str
    text: str  # the prompt, for multiple-choice
    slice: str
    choices: tuple[str, ...] | None = None
    answer: int | None = None
    label: int | None = None


def load_records(dataset: RegisteredDataset, task: str) -> tuple[str, list[EvalRecord]]:
    """(task, records), every record checked against the task's fields."""
    from custody.train.data import verified_records  # torch: imported only when a set is read

    if task not in TASKS:
        raise EvalError(f"--task {task!r}: one of {', '.join(TASKS)}")
    raw = [record for _, record in verified_records(dataset, extra=FIELDS)]
    fields = [record.extra or {} for record in raw]
    if task == "auto":
        if any(f.get("choices") is not None for f in fields):
            task = "multiple-choice"
        elif any(f.get("label") is not None for f in fields):
            task = "classification"
        else:
            task = "loss"
    records = [_checked(dataset, task, record.id, record.text, f) for record, f in zip(raw, fields, strict=True)]
    if not records:
        raise EvalError(f"{dataset.ref}: no records")
    return task, records


def evaluation_sets(home: Home, wanted: Sequence[tuple[str, str]]) -> list[tuple[RegisteredDataset, list[EvalRecord]]]:
    """Each (NAME@VERSION, task) registered and its records checked: an evaluation set that is not
    registered (`DatasetNotFound`) or has a bad record (`EvalError`) is refused before anything is
    recorded."""
    registry = DatasetRegistry(home)
    found = []
    for ref, task in wanted:
        dataset = registry.get(parse_ref(ref))
        found.append((dataset, load_records(dataset, task)[1]))
    return found


def _checked(dataset: RegisteredDataset, task: str, rid: str, text: str, fields: dict[str, Any]) -> EvalRecord:
    where = f"{dataset.ref}: record {rid}"
    slice_ = fields.get("slice")
    if slice_ is not None and (not isinstance(slice_, str) or not slice_.strip()):
        raise EvalError(f"{where}: field 'slice' must be a non-empty string")
    slice_name = slice_.strip() if slice_ else ALL
    if task == "multiple-choice":
        choices, answer = fields.get("choices"), fields.get("answer")
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
            raise EvalError(f"{where}: field 'choices' must be a list of at least two non-empty strings")
        if not isinstance(answer, int) or isinstance(answer, bool):
            raise EvalError(
                f"{where}: field 'answer' must be the index of the right choice (an integer), not {answer!r}"
            )
        if not 0 <= answer < len(choices):
            raise EvalError(
                f"{where}: field 'answer': {answer} is out of range ({len(choices)} choices: 0 to {len(choices) - 1})"
            )
        return EvalRecord(rid, text, slice_name, tuple(choices), answer)
    if task == "classification":
        label = fields.get("label")
        if label is None:
            raise EvalError(f"{where}: field 'label' is missing: a classification set labels every record")
        if label not in (0, 1) or isinstance(label, float):
            raise EvalError(f"{where}: field 'label' must be 0 or 1, not {label!r}")
        return EvalRecord(rid, text, slice_name, label=int(label))
    return EvalRecord(rid, text, slice_name)
