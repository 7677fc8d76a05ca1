"""Contamination: did an evaluation set leak into the training data?

An evaluation record is contaminated when it shares a run of at least N = 13 consecutive words
with any training record (the n-gram length of the GPT-3 paper's analysis; Brown et al. 2020,
appendix C), words normalised as `custody find` normalises them (NFKC, case-folded, runs of `\\w`).
Every 13-gram of the evaluation set is hashed (64 bits, the fingerprints' word and shingle
hashes); the training data is read once, verified against its manifests, and its 13-grams looked
up in that set. A record shorter than 13 words cannot be judged this way and is counted apart
(`unjudged`). For a multiple-choice record the prompt is checked, and the right answer after it.

A 64-bit hash match is not re-checked word by word: a false match needs two different 13-word
runs with the same hash, about one in 10^19 per pair looked up.

One measurement serves both moments it is taken: `custody run`, before the gate, for the evaluation
sets the run spec lists (the gate's `training.contamination` rule judges it), and `custody release`
for the sets the weights were evaluated on (`release.contamination`). Each is recorded as
`eval.contamination/v2` with its `stage` (`record`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from custody.datasets.registry import RegisteredDataset
from custody.evalsets import entry_types  # noqa: F401  registers eval.contamination/v2
from custody.evalsets.records import EvalRecord
from custody.home import Home
from custody.takedown.fingerprints import batch_fingerprints, shingle_hashes, words

NGRAM = 13
BATCH_CHARS = 1 << 20
ENTRY_TYPE = "eval.contamination/v2"
# What a gate rule reads of each measurement (training.contamination, release.contamination).
FACTS = ("ledger_index", "evalset", "evalset_digest", "ngram", "judged", "contaminated", "share")


@dataclass
class Overlap:
    evalset: str
    evalset_digest: str
    records: int
    judged: int
    contaminated: list[str] = field(default_factory=list)  # ids of contaminated evaluation records

    def as_json(self) -> dict[str, Any]:
        return {
            "evalset": self.evalset,
            "evalset_digest": self.evalset_digest,
            "records": self.records,
            "judged": self.judged,
            "unjudged": self.records - self.judged,
            "contaminated": len(self.contaminated),
            "share": round(len(self.contaminated) / self.judged, 6) if self.judged else 0.0,
            "contaminated_ids": sorted(self.contaminated)[:50],
        }


def checked_text(record: EvalRecord) -> str:
    """What of an evaluation record could have leaked: the text, and a right answer after it."""
    if record.choices is not None and record.answer is not None:
        return f"{record.text} {record.choices[record.answer]}"
    return record.text


def _training_ngrams(datasets: Sequence[RegisteredDataset], n: int) -> Iterable[np.ndarray]:
    """The n-gram hashes of every training record, a batch at a time (none spans two records)."""
    from custody.train.data import verified_records  # torch: imported only when data is read

    pending: list[str] = []
    size = 0
    for dataset in datasets:
        for _, record in verified_records(dataset):
            pending.append(record.text)
            size += len(record.text)
            if size >= BATCH_CHARS:
                yield _batch_ngrams(pending, n)
                pending, size = [], 0
    if pending:
        yield _batch_ngrams(pending, n)


def _batch_ngrams(texts: list[str], n: int) -> np.ndarray:
    """Every n-gram hash of the texts: the passage fingerprints with a winnowing window of one (each
    n-gram its own minimum), computed by the same compiled loop."""
    return batch_fingerprints(texts, n, 1)[0]


def measure(
    evalsets: Sequence[tuple[RegisteredDataset, Sequence[EvalRecord]]],
    training: Sequence[RegisteredDataset],
    n: int = NGRAM,
) -> list[Overlap]:
    """The overlap of each evaluation set with the training datasets, reading the training data once."""
    owners: dict[int, set[tuple[int, str]]] = {}
    results = []
    for position, (dataset, records) in enumerate(evalsets):
        judged = 0
        for record in records:
            grams = shingle_hashes(words(checked_text(record)).words, n)
            if len(grams) == 0:
                continue
            judged += 1
            for gram in grams.tolist():
                owners.setdefault(gram, set()).add((position, record.id))
        results.append(Overlap(str(dataset.ref), dataset.digest, len(records), judged))
    if not owners:
        return results
    wanted = np.fromiter(owners, dtype=np.uint64, count=len(owners))
    found: set[tuple[int, str]] = set()
    for grams in _training_ngrams(training, n):
        for gram in grams[np.isin(grams, wanted)].tolist():
            found |= owners[gram]
    for position, record_id in found:
        results[position].contaminated.append(record_id)
    return results


def record(
    home: Home,
    evalsets: Sequence[tuple[RegisteredDataset, Sequence[EvalRecord]]],
    training: Sequence[RegisteredDataset],
    subject: str,
    stage: str,
    actor: Any = None,
    **about: Any,
) -> list[dict[str, Any]]:
    """Measure the overlap of each evaluation set with the training datasets and record each as
    `eval.contamination/v2` under `subject`; `about` names the run, the weights (release) or the
    request (before training). Returns each entry's body with its ledger index."""
    out = []
    for overlap in measure(evalsets, training):
        summary = overlap.as_json()
        body = {
            "stage": stage,
            **about,
            "evalset": overlap.evalset,
            "evalset_digest": overlap.evalset_digest,
            "training": [{"dataset": str(d.ref), "digest": d.digest} for d in training],
            "ngram": NGRAM,
            **{k: summary[k] for k in ("records", "judged", "contaminated", "share")},
        }
        refs = [f"sha256:{overlap.evalset_digest}", *(f"sha256:{d.digest}" for d in training)]
        index = home.record(ENTRY_TYPE, subject, body, refs=refs, actor=actor)
        out.append({"ledger_index": index, **body})
    return out


def facts(recorded: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the gate's input document holds of each recorded measurement."""
    return [{k: c[k] for k in FACTS} for c in recorded]


def describe(c: dict[str, Any]) -> str:
    """One line about one measurement, as `custody run` prints it."""
    return (
        f"contamination of {c['evalset']}: {c['contaminated']} of {c['judged']} judged records share a run of "
        f"{c['ngram']} words with the training data ({c['share']:.2%}; {c['records'] - c['judged']} too short "
        f"to judge; ledger index {c['ledger_index']})"
    )
