"""Everything a home knows about a dataset or a run, as one plain dict of claims (see claims.py).

No record text and no personal data: the card, the manifest (shard digests), check summaries
(types, counts, rates), decisions, reviews, lineage, runs and their metrics and emissions.
"""

from __future__ import annotations

import json
import re
from typing import Any

from custody import __version__
from custody.checks.results import latest_results
from custody.datasets.names import DatasetRefError, parse_ref
from custody.datasets.registry import DatasetNotFound, DatasetRegistry, RegisteredDataset
from custody.home import Home
from custody.ledger.entry import json_digest, utc_now
from custody.ledger.query import body, entries, first, latest
from custody.ledger.storage import EntryRow
from custody.reports import REPORT_FORMAT
from custody.reports.claims import cite, cite_signed
from custody.reports.energy import dataset_energy, run_energy

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*-[0-9a-f]{8}$")


class ReportTargetError(LookupError):
    """The target is neither a registered NAME@VERSION nor a recorded run id."""


def gather(home: Home, target: str) -> dict[str, Any]:
    """The report content for `NAME@VERSION` or a run id (`NAME-xxxxxxxx`)."""
    if "@" in target:
        try:
            dataset = DatasetRegistry(home).get(parse_ref(target))
        except (DatasetRefError, DatasetNotFound) as exc:
            raise ReportTargetError(f"report target {target!r}: {exc}") from exc
        return dataset_report(home, dataset)
    if RUN_ID.fullmatch(target):
        started = first(home.storage, "run.started/", f"run:{target}")
        if started is not None:
            return run_report(home, target, started)
    raise ReportTargetError(
        f"report target {target!r} is neither a registered dataset NAME@VERSION nor a recorded run id "
        "(see `custody dataset list` and `custody ledger show --type run.started`)"
    )


def _frame(home: Home, kind: str, subject: str, target: str) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "kind": kind,
        "subject": subject,
        "target": target,
        "origin": home.config.origin,
        "generated_at": utc_now(),
        "generator": f"custody {__version__}",
    }


# -- datasets -------------------------------------------------------------------------------


def registration(home: Home, dataset: RegisteredDataset) -> dict[str, Any]:
    """The dataset.registered claim, with its card and manifest (shard digests) by digest."""
    row = home.ledger.entry(dataset.index)
    return cite(row, card=dataset.card.as_json(), manifest=dataset.manifest.to_json())


def checks(home: Home, dataset: RegisteredDataset) -> dict[str, dict[str, Any]]:
    """The latest result of each check on exactly these bytes, with its summary."""
    found = {}
    for name, result in sorted(latest_results(home, dataset).items()):
        if result.dataset_digest != dataset.digest:
            continue
        found[name] = cite(home.ledger.entry(result.entry_index), summary=result.summary(home))
    return found


def lineage(home: Home, dataset: RegisteredDataset) -> dict[str, list[dict[str, Any]]]:
    registry = DatasetRegistry(home)
    ancestors, descendants = registry.lineage(dataset.ref)
    up = []
    for depth, node in ancestors:
        if isinstance(node, RegisteredDataset):
            up.append({"depth": depth, "dataset": registration(home, node)})
        else:  # recorded as a parent but not registered here (any more)
            up.append({"depth": depth, "unregistered": node})
    down = [{"depth": depth, "dataset": cite(home.ledger.entry(node.index))} for depth, node in descendants]
    return {"ancestors": up, "descendants": down}


def decisions_on(home: Home, ledger_subjects: set[str]) -> list[dict[str, Any]]:
    """Every gate decision naming one of these subjects, oldest first."""
    found = []
    for row in entries(home.storage, "policy.decision/"):
        if any(s["name"] in ledger_subjects for s in body(row)["subjects"]):
            found.append(cite(row))
    return found


def reviews_on(home: Home, ledger_subject: str) -> list[dict[str, Any]]:
    """Reviews on a subject, each saying who signed it (a person's own key, or the dashboard's attestation)."""
    return [cite_signed(row) for row in entries(home.storage, "review.recorded/", ledger_subject)]


def dataset_report(home: Home, dataset: RegisteredDataset) -> dict[str, Any]:
    content = _frame(home, "dataset", dataset.ref.subject, str(dataset.ref))
    content["dataset"] = registration(home, dataset)
    content["checks"] = checks(home, dataset)
    content["decisions"] = decisions_on(home, {dataset.ref.subject})
    content["reviews"] = reviews_on(home, dataset.ref.subject)
    content["lineage"] = lineage(home, dataset)
    names = {str(dataset.ref)} | {
        d["dataset"]["name"] + "@" + d["dataset"]["version"] for d in content["lineage"]["descendants"]
    }
    content["runs"] = runs_using(home, names)
    content["takedowns"] = takedowns_on(home, dataset.ref.subject, "dataset.removed/", made=str(dataset.ref))
    content["preferences"] = exported_preferences(home, dataset.ref.subject)
    content["energy"] = dataset_energy(home, dataset)  # checks + the stages that produced it
    return content


def exported_preferences(home: Home, ledger_subject: str) -> list[dict[str, Any]]:
    """The `prefs.exported` entry of a preference dataset `custody prefs export` made: the weights
    its pairs were sampled from, the prompts, and every judgement its records rest on."""
    return [cite(row) for row in entries(home.storage, "prefs.exported/", ledger_subject)]


def takedowns_on(home: Home, ledger_subject: str, marks: str, made: str | None = None) -> list[dict[str, Any]]:
    """Each takedown that touched a subject: its mark on it (`dataset.removed`, `run.tainted`), the
    signed request and application; and, for a dataset version a takedown made, that application."""
    found = []
    for row in entries(home.storage, marks, ledger_subject):
        found.append({"mark": cite(row), **_takedown(home, body(row)["takedown"])})
    if made is not None:
        for row in entries(home.storage, "takedown.applied/"):
            if any(v["new"] == made for v in body(row)["versions"]):
                found.append({"made": made, **_takedown(home, body(row)["id"], row)})
    return found


def _takedown(home: Home, request_id: str, applied: EntryRow | None = None) -> dict[str, Any]:
    subject = f"takedown:{request_id}"
    request = first(home.storage, "takedown.requested/", subject)
    applied = applied or first(home.storage, "takedown.applied/", subject)
    return {
        "request": cite_signed(request) if request is not None else None,
        "applied": cite_signed(applied) if applied is not None else None,
    }


def runs_using(home: Home, refs: set[str]) -> list[dict[str, Any]]:
    """Runs whose run.started lists one of these datasets (read, or prepared from)."""
    found = []
    for row in entries(home.storage, "run.started/"):
        started = body(row)
        if any(d["ref"] in refs or d.get("source") in refs for d in started["datasets"]):
            found.append({"started": cite(row), "finished": _finished(home, started["run_id"])})
    return found


def _finished(home: Home, run_id: str, with_metrics: bool = False) -> dict[str, Any] | None:
    row = latest(home.storage, "run.finished/", f"run:{run_id}")
    if row is None:
        return None
    if not with_metrics:
        return cite(row)
    metrics = _json_artifact(home, body(row)["metrics_digest"])
    return cite(row, metrics=metrics) if metrics is not None else cite(row)


def _json_artifact(home: Home, digest: str) -> Any | None:
    """A JSON artifact, only when its canonical form is what was stored (so a verifier can re-hash it)."""
    try:
        value = json.loads(home.store.read_bytes(digest))
    except (OSError, ValueError, LookupError):
        return None
    return value if json_digest(value) == digest else None


# -- runs -----------------------------------------------------------------------------------


def _requested(home: Home, name: str, before: int) -> dict[str, Any] | None:
    """The signed request this run answered: the newest run.requested for its spec name before it started."""
    found = None
    for row in entries(home.storage, "run.requested/", f"run:{name}"):
        if row.idx < before:
            found = row
    return cite_signed(found) if found is not None else None


PREFERENCE_KINDS = ("reward", "dpo")  # runs that learn from human preferences (run.finished/v3 `preference`)


def preference_sources(home: Home, started: dict[str, Any]) -> dict[str, Any]:
    """What a reward or DPO run rests on besides its datasets: each preference dataset's export
    from judgements (if `custody prefs export` made it), and the entry that recorded each model it
    started from or was scored by (the run.finished naming the digest, else the run.checkpoint)."""
    exports = []
    for item in started["datasets"]:
        try:
            subject = parse_ref(item["ref"]).subject
        except DatasetRefError:
            continue
        exports.append({"ref": item["ref"], "exported": exported_preferences(home, subject)})
    wanted = {
        role: digest
        for role, digest in (
            ("reference" if started["kind"] == "dpo" else "started from", started.get("init_checkpoint_digest")),
            ("reward model", started.get("reward_model_digest")),
        )
        if digest
    }
    written: dict[str, EntryRow] = {}
    for entry_type, field in (("run.finished/", "model_digest"), ("run.checkpoint/", "checkpoint_digest")):
        for row in entries(home.storage, entry_type):
            digest = body(row).get(field)
            if digest in wanted.values() and digest not in written:
                written[digest] = row
    models = [
        {"role": role, "digest": digest, "written_by": cite(written[digest]) if digest in written else None}
        for role, digest in wanted.items()
    ]
    return {"datasets": exports, "models": models}


def run_report(home: Home, run_id: str, started_row: EntryRow) -> dict[str, Any]:
    subject = f"run:{run_id}"
    started = body(started_row)
    content = _frame(home, "run", subject, run_id)
    content["run"] = {
        "requested": _requested(home, started["name"], started_row.idx),
        "started": cite(started_row),
        "checkpoints": [cite(row) for row in entries(home.storage, "run.checkpoint/", subject)],
        "finished": _finished(home, run_id, with_metrics=True),
    }
    content["decision"] = cite(home.ledger.entry(started["decision_index"]))
    registry = DatasetRegistry(home)
    datasets = []
    for item in started["datasets"]:
        read = registry.find(parse_ref(item["ref"]))
        if read is None or read.digest != item["digest"]:
            datasets.append({"ref": item["ref"], "unregistered": item})
            continue
        datasets.append(
            {"ref": item["ref"], "read": registration(home, read), "checks": checks(home, read), **lineage(home, read)}
        )
    content["datasets"] = datasets
    content["reviews"] = reviews_on(home, subject)
    content["takedowns"] = takedowns_on(home, subject, "run.tainted/")
    model = (content["run"]["finished"] or {}).get("model_digest")
    content["evaluations"] = (
        [cite(row) for row in entries(home.storage, "eval.completed/", f"model:{model}")] if model else []
    )
    if started["kind"] in PREFERENCE_KINDS:
        content["preferences"] = preference_sources(home, started)
    content["contamination"] = _before_training(home, started["name"], content["run"]["requested"]) + [
        cite(row) for row in entries(home.storage, "eval.contamination/", subject)
    ]
    finished_row = latest(home.storage, "run.finished/", subject)
    content["energy"] = run_energy(home, started_row, body(finished_row) if finished_row else None)
    return content


def _before_training(home: Home, name: str, requested: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The overlap `custody run` measured before the gate, for the request this run answered
    (subject `run:SPEC_NAME`, as the request: the run had no id yet)."""
    if requested is None:
        return []
    return [
        cite(row)
        for row in entries(home.storage, "eval.contamination/", f"run:{name}")
        if body(row).get("request_index") == requested["ledger_index"]
    ]
