"""The approved records of a governed run as the data types other loops take: a torch
IterableDataset and a Hugging Face `datasets.Dataset`. Both read through `GovernedRun.records()`,
so every shard is hashed against the approved manifest before a record of it is parsed."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch.utils.data

if TYPE_CHECKING:
    import datasets as hf_datasets


class GovernedRun(Protocol):
    """What this module reads of a runs.api.GovernedRun (typed here, so api imports this module and
    not the other way round)."""

    @property
    def directory(self) -> Path: ...

    @property
    def datasets(self) -> list[Any]: ...

    def records(self, fields: Any = ()) -> Iterator[dict[str, Any]]: ...


# run -> the `_fingerprint` of every datasets.Dataset its hf_dataset() returned (weak: a run that is
# gone takes its entry with it); the Trainer callback (custody.integrations.hf) checks against them
_YIELDED: weakref.WeakKeyDictionary[GovernedRun, set[str]] = weakref.WeakKeyDictionary()


def yielded_fingerprints(run: GovernedRun) -> frozenset[str]:
    """The fingerprints of the Hugging Face datasets `run.hf_dataset()` has handed out so far."""
    return frozenset(_YIELDED.get(run, ()))


class RecordsDataset(torch.utils.data.IterableDataset):
    """The run's records as dicts, verified again on every pass (an epoch re-reads the shards).

    With DataLoader workers, worker w of n takes every n-th record, so each record is seen once."""

    def __init__(self, run: GovernedRun, fields: tuple[str, ...]) -> None:
        super().__init__()
        self.run, self.fields = run, fields

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = torch.utils.data.get_worker_info()
        step, offset = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        for position, row in enumerate(self.run.records(self.fields)):
            if position % step == offset:
                yield row


def hf_dataset(run: GovernedRun, fields: tuple[str, ...], batch: int = 4096) -> hf_datasets.Dataset:
    """An Arrow-backed dataset of the run's records: written once to an Arrow file in the run's own
    folder (in batches, so memory stays flat), then memory-mapped by `datasets`."""
    try:
        import datasets
    except ImportError:  # an optional dependency: say which and how
        raise ImportError("GovernedRun.hf_dataset needs the `datasets` package: pip install 'custody[hf]'") from None
    import pyarrow as pa

    names = ["text", "id", "dataset", *fields]
    path = run.directory / f"records-{'-'.join(fields) or 'text'}.arrow"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        schema = pa.schema([(n, pa.string()) for n in names[:3]] + [(n, pa.string()) for n in fields])
        partial = path.with_suffix(".partial")
        with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            rows: list[dict[str, Any]] = []
            for row in run.records(fields):
                rows.append({n: None if row.get(n) is None else str(row[n]) for n in names})
                if len(rows) >= batch:
                    writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
                    rows.clear()
            if rows:
                writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
        partial.rename(path)
    dataset = datasets.Dataset.from_file(str(path))
    _YIELDED.setdefault(run, set()).add(dataset._fingerprint)
    return dataset
