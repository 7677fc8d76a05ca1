"""The gate's input document for the Policies page, with each dataset's facts carried forward from
a summary on disk instead of read again from the whole ledger.

`gather` (policy/inputs.py) reads, for each dataset, the newest result of every check ever
recorded on it: every `check.completed` entry about the dataset, decoded. A home whose checks
were run again and again pays that on every cold page (at 1,000,000 entries, 333,000 entries
decoded for 100 datasets: 7-10 s). A dataset's facts (`dataset_facts`) depend only on the entries
about that dataset (its registration, its check results, its takedowns) and on the opt-out
registries imported (`optout.` entries). So they are kept in HOME/cache/views/gate-facts.json at
a ledger size, and brought to the head by reading only what was appended since. A dataset whose
only new entries are check results (the common case: checks run again) has each new result folded
into its facts in index order, the newest per check winning as in `latest_results`; a dataset with
any other new entry about it is dropped (every dataset when a new entry is an `optout.` one) and
computed again, by `dataset_facts` itself, when asked for. No entry is skipped. The summary is
keyed on the bytes of policy/inputs.py too, so an edited `dataset_facts` starts from nothing
rather than from facts in an older shape; a check is written by `check_facts`, as `dataset_facts` does,
and tests/test_views_gate_facts.py holds the two to the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from custody.checks.results import COMPLETED, CheckResult
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger import query, summary
from custody.policy import inputs
from custody.policy.inputs import dataset_facts, gather, reviews_on

FORMAT = "custody.gate-facts/1"
EVERY_DATASET = ("optout.",)  # entry types that any dataset's facts read (the registries in force)


def summary_path(home: Home) -> Path:
    return home.path / "cache" / "views" / "gate-facts.json"


def _kind() -> str:
    return f"{FORMAT} {hashlib.sha256(Path(inputs.__file__).read_bytes()).hexdigest()}"


def facts(home: Home, datasets: list[RegisteredDataset]) -> dict[str, dict[str, Any]]:
    """`dataset_facts(home, d)` for each dataset, by ledger subject, at the ledger's head."""
    path, kind = summary_path(home), _kind()
    with home.storage.read_snapshot():  # the head and every read below from one state of the ledger
        head = home.ledger.size
        kept = summary.load(path, home.ledger, kind)
        if kept.size < head and kept.state:
            touched: dict[str, set[str]] = {}
            for type_, subject in query.touched(home.storage, kept.size, head):
                touched.setdefault(subject, set()).add(type_)
            if any(type_.startswith(EVERY_DATASET) for types in touched.values() for type_ in types):
                kept.state.clear()
            for subject, types in touched.items():
                if subject not in kept.state:
                    continue
                if all(type_.startswith(COMPLETED) for type_ in types):
                    kept.state[subject] = _fold_checks(home, kept.state[subject], subject, kept.size, head)
                else:
                    del kept.state[subject]
        missing = [d for d in datasets if d.ref.subject not in kept.state]
        for dataset in missing:  # through JSON, so fresh facts and loaded ones are the same values
            kept.state[dataset.ref.subject] = json.loads(json.dumps(dataset_facts(home, dataset)))
        if missing or kept.size != head:
            summary.save(path, home.ledger, kind, summary.Summary(head, kept.state))
        return {d.ref.subject: kept.state[d.ref.subject] for d in datasets}


def _fold_checks(home: Home, facts: dict[str, Any], subject: str, start: int, stop: int) -> dict[str, Any]:
    """The facts with the check results recorded on `subject` in [start, stop) folded in."""
    checks = dict(facts["checks"])
    for row in query.entries(home.storage, COMPLETED, subject, start=start, stop=stop):
        result = CheckResult.recorded(row.idx, query.body(row), row.ts)
        checks[result.check] = inputs.check_facts(home, result)
    folded = {**facts, "checks": dict(sorted(checks.items()))}
    if "license" in checks:
        folded["license_categories"] = inputs.license_categories(checks["license"]["summary"])
    return json.loads(json.dumps(folded))


def gate_input(home: Home, datasets: list[RegisteredDataset], purpose: str, now: dt.datetime) -> dict[str, Any]:
    """What `gather(home, datasets, purpose, now)` returns, byte for byte in canonical JSON, with
    the datasets' facts from the summary (tests/test_views_gate_facts.py holds it to that)."""
    ordered = sorted(datasets, key=lambda d: (d.ref.name, d.ref.version))
    doc = gather(home, [], purpose, now)  # everything but the datasets and the reviews on them
    found = facts(home, ordered)
    doc["datasets"] = [found[d.ref.subject] for d in ordered]
    doc["reviews"] = reviews_on(home, [d.ref.subject for d in ordered])
    return doc
