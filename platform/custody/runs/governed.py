"""`custody run`: checks, the gate, preparation and training, in that order, each recorded.

1. Prepare every dataset of the spec (its stages; outputs are derived datasets with lineage,
   named `NAME@VERSION+for-SPEC`; rerunning a spec reuses an output whose lineage shows the same
   source, stages and settings, and a changed spec gets `...+for-SPEC.2`).
2. Run the checks on every prepared dataset whose latest results are stale or missing, and
   measure how much of each evaluation set the spec lists the prepared data holds (shared runs
   of 13 words, `eval.contamination/v2`, stage `before-training`).
3. Ask the gate (the policy an admin bound to the spec's purpose, plus the spec's own policy,
   which can only add reasons, with the run's energy estimates): the decision is
   in the ledger before anything trains. Anything but allow stops here (exit 3 or 4).
4. Before training, `require_allow` re-reads that decision from the ledger and checks it allows
   exactly the datasets' current digests; the data loader then re-hashes every shard it reads
   against the approved manifest, so bytes swapped after approval stop the run.
5. Train with CodeCarbon on, recording run.started, run.checkpoint and run.finished.
"""

from __future__ import annotations

from custody.checks.catalog import CHECKS
from custody.checks.results import latest_results
from custody.datasets.names import MAX_VERSION, DatasetRef, is_intermediate, parse_ref
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.evalsets import contamination as overlap
from custody.evalsets.records import evaluation_sets
from custody.home import Home, actor_name
from custody.ledger import query
from custody.ledger.entry import json_digest
from custody.pipeline.chain import run_chain
from custody.pipeline.executors import Executor, make_executor
from custody.pipeline.run_check import DEFAULT_CARBON, run_check
from custody.policy.gate import run_gate
from custody.policy.inputs import RunContext
from custody.policy.schema import load_policy
from custody.runs import entry_types  # noqa: F401  registers run.started/checkpoint/finished
from custody.runs.outcome import RunOutcome, Say, carbon_config
from custody.runs.preference_data import preference_reviewers
from custody.runs.spec import LoadedSpec, RunSpec
from custody.stages.catalog import STAGES
from custody.takedown.index import index_for
from custody.train.carbon import CarbonConfig, Emissions, track_emissions
from custody.trust.acting import Acting, Person


class RunRefused(RuntimeError):
    """The ledger holds no allow decision for exactly these datasets' current bytes."""


def chain_signature(home: Home, stages: list[str], options: dict) -> list[tuple[str, str]]:
    """Each stage of a chain as (name, config digest), as its stage.completed entry records them."""
    built = {name: STAGES.build(name, home, options=dict(options.get(name, {}))) for name in stages}
    return [(name, json_digest(built[name].recorded_config())) for name in stages]


def _made_by(registry: DatasetRegistry, dataset: RegisteredDataset, source: RegisteredDataset, signature) -> bool:
    """Whether `dataset` is `source` through exactly these stages and settings (its lineage says)."""
    node = dataset
    for position, (name, digest) in enumerate(reversed(signature)):
        stage = node.body.get("stage") or {}
        if (stage.get("name"), stage.get("config_digest")) != (name, digest) or len(node.parents) != 1:
            return False
        parent = node.parents[0]
        if position == len(signature) - 1:
            return parent["digest"] == source.digest
        found = registry.find(parse_ref(parent["dataset"]))
        if found is None:
            return False
        node = found
    return False


def prepared_target(
    registry: DatasetRegistry, spec: RunSpec, source: RegisteredDataset, signature: list[tuple[str, str]]
) -> tuple[DatasetRef, RegisteredDataset | None]:
    """The prepared output's name, as a person would write it (`web@1+for-demo-gpt`), with the
    dataset to reuse when this source was already prepared through these same stages."""
    # Any spec that prepared this source the same way already made it: reuse that, whatever its name.
    for version in registry.versions(source.ref.name):
        ref = DatasetRef(source.ref.name, version)
        if version.startswith(f"{source.ref.version}+") and not is_intermediate(ref):
            candidate = registry.find(ref)
            if candidate is not None and _made_by(registry, candidate, source, signature):
                return ref, candidate
    base = f"{source.ref.version}+for-{spec.name}"
    for n in range(1, 1000):
        version = base if n == 1 else f"{base}.{n}"
        if len(version) > MAX_VERSION:  # a very long spec name: fall back to a digest
            digest = json_digest([source.digest, signature])[:12]
            version = f"{source.ref.version}+prepared-{digest}"
        ref = DatasetRef(source.ref.name, version)
        if registry.find(ref) is None:
            return ref, None
    raise RunRefused(f"{source.ref}: too many prepared versions for {spec.name}")


def prepare(
    home: Home, spec: RunSpec, actor: str, say: Say, executor: Executor | None = None
) -> list[RegisteredDataset]:
    registry = DatasetRegistry(home)
    prepared = []
    for item in spec.datasets:
        source = registry.get(parse_ref(item.ref))
        stages = spec.stages_for(item)
        if not stages:
            prepared.append(source)
            continue
        options = {name: values for name, values in spec.prepare.options.items() if name in stages}
        target, existing = prepared_target(registry, spec, source, chain_signature(home, stages, options))
        if existing is not None:
            say(f"prepare {source.ref}: reusing {target} (same data, stages and options)")
            prepared.append(existing)
            continue
        results = run_chain(
            home, source, stages, target, options, actor=actor, executor=executor, carbon=carbon_config(spec)
        )
        for r in results:
            say(
                f"prepare {r.stage}: {r.output.ref} kept {r.counts['keep']}, modified {r.counts['modify']}, "
                f"dropped {r.counts['drop']} (ledger index {r.entry_index})"
            )
            index_for(home, r.output, actor)  # `custody find` reaches the prepared data at once
        prepared.append(results[-1].output)
    return prepared


def check(
    home: Home,
    datasets: list[RegisteredDataset],
    actor: str,
    say: Say,
    executor: Executor | None = None,
    carbon: CarbonConfig = DEFAULT_CARBON,
) -> None:
    """Run every check whose latest result does not cover the dataset's current bytes and version."""
    for dataset in datasets:
        latest = latest_results(home, dataset)
        for name in CHECKS.names():
            found = latest.get(name)
            if found is not None and found.dataset_digest == dataset.digest and found.version == CHECKS.version(name):
                continue
            result = run_check(home, dataset, CHECKS.build(name), actor=actor, executor=executor, carbon=carbon)
            say(
                f"check {name} on {dataset.ref}: {result.status}, {result.records} records "
                f"(ledger index {result.entry_index})"
            )


def require_allow(home: Home, decision_index: int, datasets: list[RegisteredDataset]) -> dict:
    """The decision at `decision_index`, if it is an allow for exactly these datasets' digests."""
    row = query.at(home.storage, decision_index)
    if row is None:
        raise RunRefused(f"no ledger entry at index {decision_index}")
    entry = query.envelope(row)
    if entry["type"] not in ("policy.decision/v1", "policy.decision/v2"):
        raise RunRefused(f"ledger entry {decision_index} is a {entry['type']}, not a policy decision")
    problem = home.attribute(row).problem
    if problem:
        raise RunRefused(f"decision {decision_index} is not a valid signed entry: {problem}")
    if home.roster().signed and not any(p["role"] == "bound" for p in entry["body"].get("policies", [])):
        raise RunRefused(f"decision {decision_index} was not judged by the policy bound to its purpose")
    body = entry["body"]
    if body["result"]["decision"] != "allow":
        raise RunRefused(f"decision {decision_index} is {body['result']['decision']}, not allow")
    approved = {s["name"]: s["digest"]["sha256"] for s in body["subjects"] if s.get("digest")}
    wanted = {f"dataset:{d.ref}": d.digest for d in datasets}
    if approved != wanted:
        changed = sorted(set(approved.items()) ^ set(wanted.items()))
        raise RunRefused(
            f"decision {decision_index} allowed other datasets or bytes than this run reads: "
            + ", ".join(f"{name} {digest[:12]}" for name, digest in changed)
        )
    return body


def _preference_reviewers(home: Home, spec: RunSpec, prepared: list[RegisteredDataset]) -> dict[str, str] | None:
    """Who judged the preference data of a reward-model or DPO run; bad records stop it before the gate."""
    settings = spec.reward or spec.dpo
    if settings is None:
        return None
    return preference_reviewers(prepared, settings.held_out, home.roster())


def request_run(home: Home, loaded: LoadedSpec, purpose: str, actor: Acting | str | None) -> int:
    """Record the person's signed request for this run: who asked is a key, not a name."""
    spec = loaded.spec
    body = {
        "run": spec.name,
        "spec_digest": loaded.digest,
        "purpose": purpose,
        "datasets": [item.ref for item in spec.datasets],
    }
    return home.record("run.requested/v1", f"run:{spec.name}", body, refs=[f"sha256:{loaded.digest}"], actor=actor)


def gate_spec(
    home: Home,
    loaded: LoadedSpec,
    actor: Acting | str | None = None,
    say: Say = print,
    executor: Executor | None = None,
) -> tuple[RunOutcome, Emissions | None]:
    """Steps 1-3: request, prepare, check, measure contamination and ask the gate, each recorded; the
    outcome (with the decision) and the energy the preparation used. Whoever trains next (custody's
    own loop or any loop through `custody.governed_run`) starts from here."""
    spec = loaded.spec
    policy = load_policy(spec.policy.file) if spec.policy.file else None
    purpose = spec.policy.purpose or policy.policy.purpose  # the spec requires one of the two
    # The evaluation sets the spec lists, read and checked first: one not registered or with a bad
    # record is refused before anything is recorded.
    evalsets = evaluation_sets(home, [(e.evalset, e.task) for e in spec.evaluations])
    registry = DatasetRegistry(home)
    for item in spec.datasets:  # an unknown dataset is refused before the request is recorded
        registry.get(parse_ref(item.ref))
    home.store.put_bytes(loaded.raw)  # the run's entries name the spec by digest
    requested = request_run(home, loaded, purpose, actor)
    say(f"run {spec.name} requested by {actor_name(actor)} (ledger index {requested})")
    own = executor is None
    if executor is None:
        executor = make_executor(spec.executor.kind, spec.executor.address, spec.executor.workers)
    try:
        with track_emissions(carbon_config(spec), label="custody-prepare") as meter:
            if executor.distributed:
                say(f"executor: {executor.describe()}")
            prepared = prepare(home, spec, actor, say, executor)
            check(home, prepared, actor, say, executor, carbon_config(spec))
            # How much of each evaluation set the prepared data holds, for the gate to judge.
            measured = overlap.record(
                home, evalsets, prepared, f"run:{spec.name}", "before-training", actor, request_index=requested
            )
            for c in measured:
                say(overlap.describe(c))
    finally:
        if own:
            executor.close()
    key = actor.fingerprint if isinstance(actor, Person) else home.key_of(actor_name(actor))
    run = RunContext(
        spec.name,
        actor_name(actor),
        spec.carbon.estimated_kwh,
        spec.carbon.estimated_kg_co2e,
        key,
        spec.start_checkpoint,
        contamination=overlap.facts(measured) if evalsets else None,
        preference_reviewers=_preference_reviewers(home, spec, prepared),
    )
    gate = run_gate(home, prepared, policy, purpose, run=run, actor=actor)
    outcome = RunOutcome(loaded, prepared, gate, entries={"run.requested": requested})
    say(f"gate: {gate.decision.decision} by {gate.describe_policies()}, ledger index {gate.ledger_index}")
    for reason in gate.decision.reasons:
        say(f"  {reason.outcome}: {reason.finding} — {reason.message}")
    for note in gate.notes:
        say(f"  note: {note}")
    return outcome, meter.result
