"""A classifier run's data: each approved dataset's records with their labels, split by text digest.

Records are read only from shard bytes re-hashed against the manifest (train.data.verified_records);
a record whose text SHA-256, read as a fraction of 2^64, falls under the held-out fraction is never
trained on (the rule a language model's validation split uses, so anyone can recompute it).
"""

from __future__ import annotations

from dataclasses import dataclass

from custody.datasets.registry import RegisteredDataset
from custody.train.data import in_val_split, verified_records

# True == 1 == 1.0 in a set, so these also take 1/0 and 1.0/0.0.
_TRUE = {True, "1", "true", "True", "yes"}
_FALSE = {False, "0", "false", "False", "no"}


class LabelError(ValueError):
    """A record whose label field is missing or not a yes/no value; names the dataset, shard, line and field."""


@dataclass
class LabelledSet:
    """One approved dataset's records, split by text digest into trained-on and held-out."""

    dataset: RegisteredDataset
    label_field: str
    train_texts: list[str]
    train_labels: list[int]
    held_texts: list[str]
    held_labels: list[int]


def _label(value: object) -> int | None:
    if isinstance(value, bool | int | float | str):
        if value in _TRUE:
            return 1
        if value in _FALSE:
            return 0
    return None


def labelled_set(dataset: RegisteredDataset, label_field: str, held_out: float) -> LabelledSet:
    """The dataset's verified records with their labels; a bad label stops the run before training."""
    found = LabelledSet(dataset, label_field, [], [], [], [])
    for shard, record in verified_records(dataset, extra=(label_field,)):
        value = (record.extra or {}).get(label_field)
        label = _label(value)
        if label is None:
            what = "is missing" if value is None else f"must be true/false or 1/0, not {type(value).__name__}"
            raise LabelError(f"{dataset.ref}: {shard.name}:{record.position}: field '{label_field}' {what}")
        if in_val_split(record.content_hash, held_out):
            found.held_texts.append(record.text)
            found.held_labels.append(label)
        else:
            found.train_texts.append(record.text)
            found.train_labels.append(label)
    return found
