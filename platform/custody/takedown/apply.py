"""`custody takedown apply`: carry a request out through the lineage.

1. **Plan** (nothing written): `find` the live dataset versions holding the work; each one whose
   parents do not hold it is a *root* and gets a new version without those records (the
   `takedown` stage, takedown/removal.py); every live version derived from an affected one is
   derived again from its parent's new version with the same stage and options, rebuilt from
   what its registration recorded and refused unless the rebuilt configuration has exactly the
   recorded digest (so the new output is what deriving from scratch without the records gives).
   Runs that read an affected version are tainted, and so are runs started from their checkpoints.
2. **Derive** the new versions, parents first. Each is an ordinary derived dataset with lineage
   and per-record decisions. Its name is the old version plus the request id
   (`books@1` -> `books@1-td-0a1b2c3d`), so a crash here resumes: a rerun reuses each new
   version whose lineage matches and derives the rest.
3. **Confirm** with `find` that no new version holds the work, and build each new version's
   sorted-digest tree (takedown/absence.py) with a proof that every removed record is absent.
4. **Record**, in one ledger transaction: `takedown.applied/v1` (signed by the person deciding),
   `dataset.removed/v1` on every old version (the gate denies them: rule `takedown.applied`) and
   `run.tainted/v1` on every tainted run. Until that transaction commits nothing is taken down.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from custody.datasets.names import MAX_VERSION, DatasetRef
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.home import Home, actor_name
from custody.ledger import query
from custody.ledger.entry import json_digest
from custody.pipeline.run_stage import run_stage
from custody.stages.base import EmptyOutput, Stage, StageError
from custody.stages.catalog import STAGES
from custody.takedown import entry_types  # noqa: F401  registers takedown.applied/v1 and friends
from custody.takedown.absence import DigestTree
from custody.takedown.find import Found, removed_versions
from custody.takedown.removal import STAGE_NAME, RemoveRecords
from custody.takedown.requests import TakedownRequest, affected, get

Say = Callable[[str], None]


class ApplyError(ValueError):
    """A takedown that cannot be applied as asked; nothing is taken down."""


@dataclass
class Change:
    """One live dataset version the takedown replaces."""

    old: RegisteredDataset
    new_ref: DatasetRef
    how: str  # "removed" (its own records dropped) or "re-derived" (from its parent's new version)
    stage: Stage
    options: dict[str, Any] | None
    remove: frozenset[str]  # text SHA-256s of its records that hold the work
    parent: str | None = None  # the old parent, for a re-derived version
    new: RegisteredDataset | None = None
    retired: bool = False  # nothing was left: no version replaces it


@dataclass
class Plan:
    request: TakedownRequest
    found: Found
    changes: list[Change]
    tainted: list[dict]
    running: list[dict] = field(default_factory=list)


def applied(home: Home, request_id: str) -> list[tuple[int, dict]]:
    """The `takedown.applied` entries of a request, oldest first, as (ledger index, body)."""
    rows = query.entries(home.storage, "takedown.applied/", subject=f"takedown:{request_id}")
    return [(row.idx, query.body(row)) for row in rows]


def new_version_ref(old: DatasetRef, request_id: str) -> DatasetRef:
    version = f"{old.version}-{request_id}"
    if len(version) > MAX_VERSION:
        raise ApplyError(f"{old}: the new version {version} would exceed {MAX_VERSION} characters")
    return DatasetRef(old.name, version)


def _rebuild(home: Home, dataset: RegisteredDataset) -> tuple[Stage, dict[str, Any] | None]:
    """The stage that made `dataset`, built again from its registration, with the recorded digest."""
    stage_info = dataset.body.get("stage") or {}
    if len(dataset.parents) != 1 or not stage_info:
        raise ApplyError(
            f"{dataset.ref} is derived from {len(dataset.parents)} parents without a single recorded stage; "
            "custody cannot derive it again: remove the work from it by hand and register a new version"
        )
    config = json.loads(home.store.read_bytes(stage_info["config_digest"]))
    options = None
    if stage_info.get("options_digest"):
        options = json.loads(home.store.read_bytes(stage_info["options_digest"]))
    name = stage_info["name"]
    try:
        if name == STAGE_NAME:
            stage: Stage = RemoveRecords.from_config(home, config)
        else:
            stage = STAGES.build(name, home, options=dict(options or {}))
    except (StageError, KeyError, ValueError) as exc:
        raise ApplyError(f"{dataset.ref}: cannot build stage {name} again: {exc}") from None
    rebuilt = stage.recorded_config()
    if json_digest(rebuilt) != stage_info["config_digest"]:
        differs = sorted(k for k in set(config) | set(rebuilt) if config.get(k) != rebuilt.get(k))
        known = "the options it was given" if options is not None else "its default options (none were recorded)"
        raise ApplyError(
            f"{dataset.ref}: stage {name} built again with {known} has another configuration than the "
            f"recorded one (differs in: {', '.join(differs)}); deriving it again would not give the same output"
        )
    return stage, options


def _runs(home: Home, affected_refs: set[str]) -> tuple[list[dict], list[dict]]:
    """(tainted runs, those of them still in progress): runs that read an affected version, and
    runs that started from one of their checkpoints, transitively."""
    started = [(row, query.body(row)) for row in query.entries(home.storage, "run.started/")]
    tainted: dict[str, dict] = {}
    digests: dict[str, str] = {}  # checkpoint or model digest -> the tainted run that wrote it

    def taint(row, body: dict, read: list[str], inherits: str | None) -> None:
        run_id = body["run_id"]
        tainted[run_id] = {"run_id": run_id, "started_index": row.idx, "read": read, "inherits_from": inherits}
        subject = f"run:{run_id}"
        for r in query.entries(home.storage, "run.checkpoint/", subject):
            digests[query.body(r)["checkpoint_digest"]] = run_id
        finished = query.latest(home.storage, "run.finished/", subject)
        if finished is not None and query.body(finished).get("model_digest"):
            digests[query.body(finished)["model_digest"]] = run_id

    for row, body in started:
        read = sorted(
            {d["ref"] for d in body["datasets"] if d["ref"] in affected_refs or d.get("source") in affected_refs}
        )
        if read:
            taint(row, body, read, None)
    grew = True
    while grew:  # fine-tuning from a tainted checkpoint inherits the taint
        grew = False
        for row, body in started:
            parent = digests.get(body.get("init_checkpoint_digest") or "")
            if parent is not None and body["run_id"] not in tainted:
                taint(row, body, [], parent)
                grew = True
    running = [t for t in tainted.values() if query.latest(home.storage, "run.finished/", f"run:{t['run_id']}") is None]
    return sorted(tainted.values(), key=lambda t: t["started_index"]), running


def plan(home: Home, request_id: str, actor=None) -> Plan:
    """What applying the request would do; raises ApplyError when it cannot be applied as asked."""
    taken = get(home, request_id)
    found = affected(home, taken, actor)
    gone = removed_versions(home)
    registry = DatasetRegistry(home)
    live = {str(d.ref): d for d in registry.all() if str(d.ref) not in gone}
    holders: dict[str, set[str]] = {}
    for hit in found.hits:
        if hit.dataset in live:
            holders.setdefault(hit.dataset, set()).add(hit.content_hash)
    if not holders:
        done = applied(home, taken.id)
        if done:
            raise ApplyError(
                f"request {taken.id} was already applied (ledger index {done[-1][0]}) and no live dataset "
                "version holds the work now"
            )
        raise ApplyError(f"no live dataset version holds the work of request {taken.id}: there is nothing to remove")
    children: dict[str, list[RegisteredDataset]] = {}
    for dataset in live.values():
        for parent in dataset.parents:
            if parent["dataset"] in live and live[parent["dataset"]].digest == parent["digest"]:
                children.setdefault(parent["dataset"], []).append(dataset)
    affected_refs, frontier = set(holders), list(holders)
    while frontier:
        for child in children.get(frontier.pop(), []):
            if str(child.ref) not in affected_refs:
                affected_refs.add(str(child.ref))
                frontier.append(str(child.ref))
    changes: list[Change] = []
    placed: set[str] = set()
    pending = sorted(affected_refs)
    while pending:  # parents before children
        ready = [r for r in pending if not any(p["dataset"] in affected_refs - placed for p in live[r].parents)]
        if not ready:
            raise ApplyError(f"the lineage of {', '.join(pending)} has a cycle")
        for ref in ready:
            dataset = live[ref]
            remove = frozenset(holders.get(ref, ()))
            affected_parents = [p["dataset"] for p in dataset.parents if p["dataset"] in affected_refs]
            if affected_parents:
                stage, options = _rebuild(home, dataset)
                how, parent = "re-derived", affected_parents[0]
            else:
                stage, options = RemoveRecords(home, request=taken.id, remove=remove), None
                how, parent = "removed", None
            changes.append(Change(dataset, new_version_ref(dataset.ref, taken.id), how, stage, options, remove, parent))
            placed.add(ref)
        pending = [r for r in pending if r not in placed]
    tainted, running = _runs(home, affected_refs)
    return Plan(taken, found, changes, tainted, running)


def _made_here(existing: RegisteredDataset, parent: RegisteredDataset, stage: Stage) -> bool:
    """Whether an already registered new version is exactly this step's output (a resumed apply)."""
    recorded = existing.body.get("stage") or {}
    return existing.parents == [{"dataset": str(parent.ref), "digest": parent.digest}] and recorded.get(
        "config_digest"
    ) == json_digest(stage.recorded_config())


def _derive(home: Home, change: Change, source: RegisteredDataset, actor: str, say: Say) -> None:
    registry = DatasetRegistry(home)
    existing = registry.find(change.new_ref)
    if existing is not None:
        if not _made_here(existing, source, change.stage):
            raise ApplyError(
                f"{change.new_ref} is already registered and was not made by this takedown from {source.ref}"
            )
        change.new = existing
        say(f"  {change.old.ref} -> {change.new_ref} (already derived: resumed)")
        return
    if change.how == "removed" and len(change.remove) and _removes_everything(change):
        change.retired = True
        say(f"  {change.old.ref}: every record holds the work; no version replaces it")
        return
    try:
        result = run_stage(home, change.stage, source, change.new_ref, actor=actor, options=change.options)
    except EmptyOutput:
        change.retired = True
        say(f"  {change.old.ref}: nothing is left once derived again; no version replaces it")
        return
    change.new = result.output
    kept, dropped = result.counts["keep"] + result.counts["modify"], result.counts["drop"]
    say(f"  {change.old.ref} -> {change.new_ref} ({change.how}: kept {kept:,}, dropped {dropped:,})")


def _removes_everything(change: Change) -> bool:
    return all(record.content_hash in change.remove for _, record in change.old.records())


@dataclass
class Applied:
    request: TakedownRequest
    ledger_index: int
    body: dict
    changes: list[Change]


def apply(home: Home, request_id: str, actor=None, include_running: bool = False, say: Say = print) -> Applied:
    """Apply a takedown request (see the module docstring); returns what was recorded."""
    _may_apply(home, actor)
    the_plan = plan(home, request_id, actor)
    if the_plan.running and not include_running:
        listed = ", ".join(f"{r['run_id']} (started at ledger index {r['started_index']})" for r in the_plan.running)
        raise ApplyError(
            f"runs in progress read data the takedown removes: {listed}; wait for them to finish, "
            "or apply with --include-running to taint them too"
        )
    taken, name = the_plan.request, actor_name(actor)
    say(f"applying {taken.id}: {len(the_plan.changes)} dataset version(s) to replace")
    by_old: dict[str, Change] = {}
    for change in the_plan.changes:
        if change.parent is None:
            _derive(home, change, change.old, name, say)
        else:
            parent = by_old[change.parent]
            if parent.retired:
                change.retired = True
                say(f"  {change.old.ref}: its parent {change.parent} has no new version; none replaces it")
            else:
                _derive(home, change, parent.new, name, say)
        by_old[str(change.old.ref)] = change
    new_refs = {str(c.new.ref) for c in the_plan.changes if c.new is not None}
    residual = [h for h in affected(home, taken, actor).hits if h.dataset in new_refs]
    if residual:
        raise ApplyError(
            f"the new versions still hold the work ({residual[0].dataset}, record {residual[0].record_id}); "
            "nothing was taken down"
        )
    body = {
        "id": taken.id,
        "request_index": taken.ledger_index,
        "versions": [_version_change(home, c) for c in the_plan.changes],
        "tainted_runs": the_plan.tainted,
        "residual_hits": 0,
    }
    index = _record(home, taken, body, the_plan, actor)
    return Applied(taken, index, body, the_plan.changes)


def _may_apply(home: Home, actor) -> None:
    """Refuse before deriving anything when the ledger would refuse the decision's entry."""
    if not home.roster().signed:
        return
    from custody.trust.acting import Attested, NotPermitted, Person, require_roles
    from custody.trust.permissions import person_roles

    roles = person_roles("takedown.applied/v1", "", {}) or frozenset()
    if isinstance(actor, Attested):  # signed in to the dashboard: the roster says what they may do
        member = home.roster().by_name(actor.person)
        if member is None or not member.roles & roles:
            raise NotPermitted(f"{actor.person} may not apply a takedown; needs role approver or admin")
        return
    if not isinstance(actor, Person):
        raise NotPermitted("applying a takedown is a person's decision: it needs the acting person's key")
    require_roles(actor, roles, "apply a takedown")


def _version_change(home: Home, change: Change) -> dict[str, Any]:
    records = [r.content_hash for _, r in change.new.records()] if change.new is not None else []
    tree = DigestTree(records)
    stored = home.store.put_bytes(tree.packed())
    absent = sorted(change.remove)
    for digest in absent:
        tree.absence(digest)  # raises if a removed record were still in the new version
    return {
        "old": str(change.old.ref),
        "old_digest": change.old.digest,
        "new": str(change.new.ref) if change.new is not None else None,
        "new_digest": change.new.digest if change.new is not None else None,
        "how": change.how,
        "removed": len(change.remove),
        "absent": absent,
        "records": tree.size,
        "records_root": tree.root(),
        "digests_artifact": stored,
    }


def _record(home: Home, taken: TakedownRequest, body: dict, the_plan: Plan, actor) -> int:
    """The takedown and everything it marks, in one transaction."""
    subject = f"takedown:{taken.id}"
    refs = [f"ledger:{taken.ledger_index}"]
    for version in body["versions"]:
        refs += [f"sha256:{version['digests_artifact']}"]
        refs += [f"sha256:{version['new_digest']}"] if version["new_digest"] is not None else []
    entries = [home.entry("takedown.applied/v1", subject, body, refs=refs, actor=actor)]
    for version in body["versions"]:
        removed = {"takedown": taken.id, "digest": version["old_digest"], "replaced_by": version["new"]}
        entries.append(home.entry("dataset.removed/v1", f"dataset:{version['old']}", removed, actor=actor_name(actor)))
    for run in the_plan.tainted:
        tainted = {"takedown": taken.id, "read": run["read"], "inherits_from": run["inherits_from"]}
        entries.append(
            home.entry(
                "run.tainted/v1",
                f"run:{run['run_id']}",
                tainted,
                refs=[f"ledger:{run['started_index']}"],
                actor=actor_name(actor),
            )
        )
    index = home.append(entries)[0]
    home.checkpoint()
    return index
