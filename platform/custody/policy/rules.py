"""What each rule checks: one function per rule id, over the facts gathered about one dataset.

A rule function reads only the input document (see `inputs.py`), never the home, so that a
recorded decision can be evaluated again from the document alone. It returns violations; the
evaluator turns them into reasons with the rule's outcome and applies reviews and waivers.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from custody.pii.risk import LEVEL_NUMBERS
from custody.policy.schema import (
    DeniedSources,
    FindingsFailed,
    FindingsReview,
    FreshnessCurrent,
    LicenseAllowed,
    PiiMaxRate,
    PiiMaxRisk,
    ReleaseContamination,
    ReleaseEvaluation,
    RequiredFields,
    Reserved,
    TakedownApplied,
    TakedownTaintedStart,
    ToxicityMaxRate,
    TrainingApproval,
    TrainingBudget,
    TrainingContamination,
    TrainingPreferences,
)
from custody.wording import plural

PII_REMEDIES = {
    "redact": "redact it (`custody prepare {ref} --stages redact-pii`)",
    "drop": "drop the records that contain it",
    "block": "block (this data must not be used; no review or waiver lifts it)",
}
TOXICITY_REMEDIES = {
    "drop": "drop them (`custody prepare {ref} --stages drop-toxic`)",
    "block": PII_REMEDIES["block"],
}


@dataclass(frozen=True)
class Violation:
    """One way a dataset (or run) fails a rule. `qualifier` makes the finding id unique."""

    qualifier: str | None
    message: str
    action: str | None = None  # redact | drop | block: what the policy requires to be done
    finding: str | None = None  # a check's own finding id, used as is (findings.* rules)
    undecidable: bool = False  # the facts to judge the rule are missing: always a deny (fail closed)


class MissingResult(Exception):
    def __init__(self, check: str) -> None:
        super().__init__(check)
        self.check = check


def _summary(ds: dict, check: str) -> dict:
    result = ds["checks"].get(check)
    if result is None:
        raise MissingResult(check)
    return result["summary"]


def _pct(rate: float) -> str:
    return f"{rate:.2%}"


def _glob(value: str | None, patterns: list[str]) -> str | None:
    if not value:
        return None
    return next((p for p in patterns if fnmatch.fnmatchcase(value.lower(), p.lower())), None)


# -- freshness -------------------------------------------------------------------------------


def freshness_current(rule: FreshnessCurrent, ds: dict, doc: dict) -> list[Violation]:
    ref, out = ds["dataset"], []
    for name in rule.checks:
        if name not in ds["checks"]:
            out.append(Violation(name, f"no {name} result (run `custody check {ref} --checks {name}`)"))
    for name, result in sorted(ds["checks"].items()):
        problems = []
        if result["dataset_digest"] != ds["digest"]:
            problems.append(
                f"describes dataset digest {result['dataset_digest'][:12]}, not the current {ds['digest'][:12]}"
            )
        current = doc["check_versions"].get(name)
        if current is None:
            problems.append("comes from a check this custody no longer has")
        elif result["version"] != current:
            problems.append(f"comes from {name} {result['version']}, the current version is {current}")
        if problems:
            out.append(
                Violation(
                    name,
                    f"the {name} result at ledger index {result['ledger_index']} {' and '.join(problems)} "
                    f"(rerun `custody check {ref} --checks {name}`)",
                )
            )
    if rule.verify_bytes:
        problems = ds.get("shard_problems")
        if problems is None:
            out.append(Violation("bytes", "the shards' bytes were not verified at gate time", undecidable=True))
        elif problems:
            listed = "; ".join(f"{shard}: {what}" for shard, what in problems)
            out.append(Violation("bytes", f"the data no longer matches its registered digest ({listed})"))
    return out


# -- provenance ------------------------------------------------------------------------------


def card_value(card: dict, dotted: str) -> Any:
    """The card value at a dotted path, or None when absent or empty (as DatasetCard.value)."""
    node: Any = card
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if node not in ("", [], {}) else None


def required_fields(rule: RequiredFields, ds: dict, doc: dict) -> list[Violation]:
    missing = [f for f in rule.fields if card_value(ds["card"], f) is None]
    if not missing:
        return []
    return [Violation(None, f"the dataset card lacks required fields: {', '.join(missing)}")]


def denied_sources(rule: DeniedSources, ds: dict, doc: dict) -> list[Violation]:
    out = []
    if rule.check_deny_list:
        hits: dict[str, list[str]] = {}
        for finding in _summary(ds, "provenance")["findings"]:
            for prefix in ("source.denied:", "records.denied_source:"):
                if finding["id"].startswith(prefix):
                    hits.setdefault(finding["id"].removeprefix(prefix), []).append(finding["message"])
        for list_id, messages in sorted(hits.items()):
            out.append(Violation(f"list:{list_id}", "; ".join(messages)))
    for source in ds["card"].get("sources", []):
        name, uri, kind = source.get("name"), source.get("uri"), source.get("kind")
        why = None
        if pattern := _glob(name, rule.names):
            why = f"name matches '{pattern}'"
        elif pattern := _glob(uri, rule.urls):
            why = f"URI matches '{pattern}'"
        elif kind in rule.kinds:
            why = f"this policy denies {kind} sources"
        if why:
            out.append(Violation(f"source:{name}", f"card source '{name}' is denied: {why}"))
    return out


def _are(count: int) -> str:
    return f"{plural(count, 'record')} {'is' if count == 1 else 'are'}"


def reserved(rule: Reserved, ds: dict, doc: dict) -> list[Violation]:
    """Records a site reserved (per signal the rule names) or a registry in force lists."""
    summary, ref = _summary(ds, "provenance"), ds["dataset"]
    if "reservations" not in summary or "opt_out" not in summary:
        version = ds["checks"]["provenance"]["version"]
        message = (
            f"the provenance result ({version}) predates reservations and opt-outs "
            f"(rerun `custody check {ref} --checks provenance`)"
        )
        return [Violation(None, message, undecidable=True)]
    remedy = f"required action: leave them out (`custody findings {ref} --check provenance` lists them)"
    out = []
    by_signal = summary["reservations"]["by_signal"]
    for signal in rule.signals:
        if by_signal.get(signal):
            message = f"{_are(by_signal[signal])} reserved from AI training by {signal}; {remedy}"
            out.append(Violation(f"reserved:{signal}", message, action="drop"))
    if not rule.opt_outs:
        return out
    in_force = ds.get("opt_out_registry", {}).get("digest")
    if summary["opt_out"].get("digest") != in_force:
        index = ds.get("opt_out_registry", {}).get("ledger_index", "?")
        message = (
            f"the opt-out registries changed since the provenance result (the newest import is at ledger index "
            f"{index}): rerun `custody check {ref} --checks provenance`"
        )
        out.append(Violation("opt-out:registry", message, undecidable=True))
    for registry, count in sorted(summary["opt_out"]["by_registry"].items()):
        message = f"{_are(count)} on the opt-out registry '{registry}'; {remedy}"
        out.append(Violation(f"opted-out:{registry}", message, action="drop"))
    return out


# -- license ---------------------------------------------------------------------------------


def license_allowed(rule: LicenseAllowed, ds: dict, doc: dict) -> list[Violation]:
    purpose = doc["purpose"]
    summary = _summary(ds, "license")
    allowance = getattr(rule, purpose)
    if allowance is None:
        return [Violation(f"purpose:{purpose}", f"this policy allows no license for {purpose} use")]
    allowed_ids = {i.lower() for i in allowance.ids}

    def allowed(expression: str | None, category: str) -> bool:
        return category in allowance.categories or (expression is not None and expression.lower() in allowed_ids)

    bad: dict[str, list[str]] = {}
    declared = summary["declared"]
    shown = declared.get("normalized") or declared.get("expression")
    if not allowed(declared.get("normalized"), declared["category"]):
        if declared.get("error"):  # say why it is unknown: the card's expression does not parse
            what = f"declared {declared.get('expression')!r}, which is not valid SPDX ({declared['error']})"
        else:
            what = f"declared {shown or 'nothing'}"
        bad.setdefault(declared["category"], []).append(what)
    for source in summary["sources"]:
        if not allowed(source["license"], source["category"]):
            bad.setdefault(source["category"], []).append(
                f"source '{source['source']}' {source['license'] or 'without a license'}"
            )
    categories = ds.get("license_categories", {})
    for expression, count in summary["record_licenses"].items():
        category = categories.get(expression, "unknown")
        if not allowed(expression, category):
            bad.setdefault(category, []).append(f"{count} records {expression}")
    unparseable = summary["records"] - summary["records_inheriting_declared"] - sum(summary["record_licenses"].values())
    if unparseable > 0 and not allowed(None, "unknown"):
        bad.setdefault("unknown", []).append(f"{unparseable} records with a license that is not valid SPDX")
    return [
        Violation(category, f"{category} licenses are not allowed for {purpose} use: {'; '.join(items)}")
        for category, items in sorted(bad.items())
    ]


def license_allowed_start(rule: LicenseAllowed, run: dict, doc: dict) -> list[Violation]:
    """license.allowed on a run: the outside model its weights start from (`custody import-model`)
    is licensed like a dataset, and judged by the same allowance for the purpose."""
    model = run.get("start_model")
    if not model:
        return []
    purpose = doc["purpose"]
    allowance = getattr(rule, purpose)
    category, expression = model["license_category"], model["license"]
    if allowance is not None and (
        category in allowance.categories or expression.lower() in {i.lower() for i in allowance.ids}
    ):
        return []
    return [
        Violation(
            f"start-model:{category}",
            f"run {run['name']} starts from imported model {model['digest'][:16]}… ({model['source']}, "
            f"ledger index {model['ledger_index']}) licensed {expression} ({category}), "
            f"which is not allowed for {purpose} use",
        )
    ]


# -- PII and toxicity ------------------------------------------------------------------------


def pii_max_rate(rule: PiiMaxRate, ds: dict, doc: dict) -> list[Violation]:
    summary = _summary(ds, "pii")
    ref, scanned = ds["dataset"], set(summary["entities"])
    rates, counts = summary["record_rate_by_entity"], summary["records_by_entity"]
    limits = dict(rule.entities)
    if rule.default is not None:
        for entity in scanned - set(limits):
            limits[entity] = rule.default
    out = []
    for entity, limit in sorted(limits.items()):
        if entity not in scanned:
            message = f"the pii check did not look for {entity}, which this policy limits to {_pct(limit.max)}"
            out.append(Violation(entity, message, undecidable=True))
            continue
        rate = rates.get(entity, 0.0)
        if rate > limit.max:
            out.append(
                Violation(
                    entity,
                    f"{_pct(rate)} of records contain {entity} ({counts.get(entity, 0)} of "
                    f"{summary['records_scanned']}), above the limit of {_pct(limit.max)}; required action: "
                    + PII_REMEDIES[limit.action].format(ref=ref),
                    action=limit.action,
                )
            )
    return out


def pii_max_risk(rule: PiiMaxRisk, ds: dict, doc: dict) -> list[Violation]:
    summary = _summary(ds, "pii")
    ref, floor = ds["dataset"], LEVEL_NUMBERS[rule.at_or_above]
    ratings = summary.get("risk")
    if ratings is None:
        version = ds["checks"]["pii"]["version"]
        message = f"the pii result ({version}) has no risk ratings (rerun `custody check {ref} --checks pii`)"
        return [Violation(None, message, undecidable=True)]
    redaction = summary.get("redaction")
    if redaction:  # output of redact-pii (or of stages over it only): its findings count as redacted
        return []
    out = []
    for entity, count in sorted(summary["entity_counts"].items()):
        if entity in rule.ignore or not count:
            continue
        rating = ratings["entities"].get(entity)
        if rating is None:
            message = f"{count} {entity} findings have no pii-codex rating, so this policy cannot judge their risk"
            out.append(Violation(entity, message, undecidable=True))
            continue
        if rating["level"] >= floor:
            records = summary["records_by_entity"].get(entity, 0)
            out.append(
                Violation(
                    entity,
                    f"{count} {entity} findings in {records} of {summary['records_scanned']} records are rated "
                    f"{rating['level_name']} by {ratings['source']} ({rating['category']}), at or above "
                    f"{rule.at_or_above}, and not redacted; required action: " + PII_REMEDIES["redact"].format(ref=ref),
                    action="redact",
                )
            )
    return out


def toxic_rate(summary: dict, threshold: float) -> float | None:
    """The share of records scoring >= threshold, when the summary can tell: exactly at the
    check's own threshold, and from its 10-bin histogram at multiples of 0.1 below 1."""
    if math.isclose(threshold, summary["threshold"]):
        return summary["rate_above_threshold"]
    tenths = threshold * 10
    counts = summary.get("score_histogram", {}).get("counts")
    if counts and math.isclose(tenths, round(tenths)) and round(tenths) < len(counts) and summary["records"]:
        return round(sum(counts[round(tenths) :]) / summary["records"], 6)
    return None


def toxicity_max_rate(rule: ToxicityMaxRate, ds: dict, doc: dict) -> list[Violation]:
    summary = _summary(ds, "toxicity")
    rate = toxic_rate(summary, rule.threshold)
    if rate is None:
        return [
            Violation(
                None,
                f"the toxicity check ran at threshold {summary['threshold']}; its summary cannot give the rate at "
                f"{rule.threshold} (rerun the check at {rule.threshold}, or use a multiple of 0.1)",
                undecidable=True,
            )
        ]
    if rate <= rule.max_rate:
        return []
    scorer = summary.get("scorer", {}).get("name", "the scorer")
    return [
        Violation(
            None,
            f"{_pct(rate)} of records score >= {rule.threshold} by {scorer}, above the limit of "
            f"{_pct(rule.max_rate)}; required action: " + TOXICITY_REMEDIES[rule.action].format(ref=ds["dataset"]),
            action=rule.action,
        )
    ]


# -- check findings --------------------------------------------------------------------------


def findings_failed(rule: FindingsFailed, ds: dict, doc: dict) -> list[Violation]:
    out = []
    for name, result in sorted(ds["checks"].items()):
        for finding in result["summary"]["findings"]:
            if finding["severity"] == "fail" and not _glob(finding["id"], rule.ignore):
                out.append(Violation(None, f"{name}: {finding['message']}", finding=finding["id"]))
    return out


def findings_review(rule: FindingsReview, ds: dict, doc: dict) -> list[Violation]:
    out = []
    for name, result in sorted(ds["checks"].items()):
        for finding in result["summary"]["findings"]:
            if _glob(finding["id"], rule.match):
                out.append(Violation(None, f"{name}: {finding['message']}", finding=finding["id"]))
    return out


# -- training runs (evaluated when the gate is given a run) ---------------------------------


def training_budget(rule: TrainingBudget, run: dict, doc: dict) -> list[Violation]:
    if run.get("release") is not None:
        return []  # a release trains nothing
    out = []
    for key, limit, unit in (
        ("estimated_kwh", rule.max_kwh, "kWh"),
        ("estimated_kg_co2e", rule.max_kg_co2e, "kg CO2e"),
    ):
        if limit is None:
            continue
        estimate = run.get(key)
        qualifier = "kwh" if unit == "kWh" else "co2e"
        if estimate is None:
            message = f"the run gives no {unit} estimate; the budget is {limit} {unit}"
            out.append(Violation(qualifier, message, undecidable=True))
        elif estimate > limit:
            out.append(Violation(qualifier, f"the run's estimate of {estimate} {unit} exceeds the budget of {limit}"))
    return out


def training_approval(rule: TrainingApproval, run: dict, doc: dict) -> list[Violation]:
    if run.get("release") is not None:
        return []  # a release trains nothing: release.evaluation judges it
    return [Violation(None, f"run {run['name']} needs a person's approval before it starts")]


# -- takedowns -------------------------------------------------------------------------------


def takedown_applied(rule: TakedownApplied, ds: dict, doc: dict) -> list[Violation]:
    out = []
    for removal in ds.get("taken_down", []):
        instead = f"; train on {removal['replaced_by']}" if removal.get("replaced_by") else ""
        out.append(
            Violation(
                removal["takedown"],
                f"takedown {removal['takedown']} removed a work from {ds['dataset']} "
                f"(ledger index {removal['ledger_index']}){instead}",
            )
        )
    return out


def release_evaluation(rule: ReleaseEvaluation, run: dict, doc: dict) -> list[Violation]:
    """Each requirement met by the newest matching evaluation recorded for exactly these weights."""
    release = run.get("release")
    if release is None:
        return []  # a training run, not a release
    out = []
    weights = release["run_id"] or f"sha256:{release['model_digest']}"
    for need in rule.require:
        bound = f"at least {need.at_least}" if need.at_least is not None else f"at most {need.at_most}"
        qualifier = f"{need.evalset}:{need.metric}"
        matching = [
            e
            for e in release["evaluations"]
            if e["evalset"] == need.evalset or e["evalset"].split("@")[0] == need.evalset
        ]
        if not matching:
            out.append(
                Violation(
                    qualifier,
                    f"no evaluation on {need.evalset} is recorded for model sha256 {release['model_digest'][:16]}… "
                    f"(run `custody eval {weights} {need.evalset}@VERSION`)",
                )
            )
            continue
        newest = max(matching, key=lambda e: e["ledger_index"])
        value = newest["results"].get(need.slice, {}).get(need.metric)
        where = f"{need.metric} on {newest['evalset']} (slice {need.slice}, ledger index {newest['ledger_index']})"
        if not isinstance(value, int | float):
            out.append(Violation(qualifier, f"{where} was not measured", undecidable=True))
        elif (need.at_least is not None and value < need.at_least) or (
            need.at_most is not None and value > need.at_most
        ):
            out.append(Violation(qualifier, f"{where} is {value}; a release needs {bound}"))
    return out


def _leaked(measured: list[dict], max_share: float, training: str) -> list[Violation]:
    """One violation per evaluation set whose share of judged records found in `training` is above the limit."""
    return [
        Violation(
            c["evalset"],
            f"{c['contaminated']} of {c['judged']} records of {c['evalset']} share a run of {c['ngram']} words with "
            f"{training} ({c['share']:.2%}, at most {max_share:.2%} allowed; ledger index {c['ledger_index']})",
        )
        for c in measured
        if c["share"] > max_share
    ]


def release_contamination(rule: ReleaseContamination, run: dict, doc: dict) -> list[Violation]:
    release = run.get("release")
    if release is None:
        return []
    return _leaked(release.get("contamination", []), rule.max_share, "the training data")


def training_contamination(rule: TrainingContamination, run: dict, doc: dict) -> list[Violation]:
    """The evaluation sets a run spec lists, measured against its prepared data before the gate."""
    if run.get("release") is not None:
        return []  # a release: release.contamination judges it
    return _leaked(run.get("contamination", []), rule.max_share, f"the data run {run['name']} would train on")


def training_preferences(rule: TrainingPreferences, run: dict, doc: dict) -> list[Violation]:
    """Who judged the preference data of a reward-model or DPO run, against who requests it."""
    reviewers = run.get("preference_reviewers")
    if reviewers is None:
        return []  # not a run that learns from preferences
    out = []
    if len(reviewers) < rule.min_reviewers:
        out.append(
            Violation(
                "reviewers",
                f"the preference data of run {run['name']} carries judgements of {len(reviewers)} "
                f"{'person' if len(reviewers) == 1 else 'people'} ({', '.join(sorted(reviewers))}); "
                f"at least {rule.min_reviewers} needed",
            )
        )
    if rule.separate_requester:
        own = sorted(
            name for name, key in reviewers.items() if name == run["requested_by"] or key == run.get("requested_key")
        )
        if own:
            out.append(
                Violation(
                    "requester",
                    f"run {run['name']} is requested by {run['requested_by']}, who judged preference pairs "
                    f"in its data (as {', '.join(own)}); another person must request it",
                )
            )
    return out


def takedown_tainted_start(rule: TakedownTaintedStart, run: dict, doc: dict) -> list[Violation]:
    return [
        Violation(
            taint["takedown"],
            f"run {run['name']} starts from checkpoint {run['start_checkpoint'][:16]}… of run {taint['run_id']}, "
            f"tainted by takedown {taint['takedown']} (ledger index {taint['ledger_index']})",
        )
        for taint in run.get("start_tainted", [])
    ]


DatasetRule = Callable[[Any, dict, dict], list[Violation]]
DATASET_RULES: dict[str, DatasetRule] = {
    "freshness.current": freshness_current,
    "provenance.required-fields": required_fields,
    "provenance.denied-sources": denied_sources,
    "provenance.reserved": reserved,
    "license.allowed": license_allowed,
    "pii.max-rate": pii_max_rate,
    "pii.max-risk": pii_max_risk,
    "toxicity.max-rate": toxicity_max_rate,
    "findings.failed": findings_failed,
    "findings.review": findings_review,
    "takedown.applied": takedown_applied,
}
RUN_RULES: dict[str, DatasetRule] = {
    "training.budget": training_budget,
    "training.approval": training_approval,
    "training.contamination": training_contamination,
    "training.preferences": training_preferences,
    "takedown.tainted-start": takedown_tainted_start,
    "release.evaluation": release_evaluation,
    "release.contamination": release_contamination,
}


# Dataset rules that judge a run's facts too (the run's subject, beside each dataset's).
ALSO_ON_RUNS: dict[str, DatasetRule] = {"license.allowed": license_allowed_start}


def rule_function(rule_id: str) -> tuple[DatasetRule, bool]:
    """(function, applies to runs) for a rule id."""
    if rule_id in RUN_RULES:
        return RUN_RULES[rule_id], True
    return DATASET_RULES[rule_id], False
