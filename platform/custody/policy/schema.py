"""Policy files: TOML with a versioned schema (`schema = 1`), validated strictly.

A policy is a set of rules, each under a stable id (`section.rule`, e.g. `pii.max-rate`), each
with a human `explanation` and an `on_fail` outcome (`deny` or `review`). A rule that is absent
is not enforced. Unknown keys, wrong types and unknown rule ids are errors that name the file,
the line and the key; nothing is ever silently ignored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from custody.checks.catalog import CHECKS
from custody.datasets.card import DatasetCard, SourceKind
from custody.licenses.categories import CATEGORIES
from custody.optout.signals import SIGNALS
from custody.paths import policies_dir
from custody.pii.risk import LEVELS
from custody.tomlconfig import load_model, where

SCHEMA_VERSION = 1
PURPOSES = ("commercial", "research")
Purpose = Literal["commercial", "research"]
OnFail = Literal["deny", "review"]
Category = Literal[CATEGORIES]  # type: ignore[valid-type]  # the license categories, least to most restrictive
RiskLevelName = Literal[tuple(LEVELS.values())]  # type: ignore[valid-type]  # pii-codex's levels, lowest first
EntityName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")]

# Every rule id a policy can define, in evaluation order. `gate.recorded` is the gate's own
# (a decision that could not be written to the ledger); no policy defines or waives it.
RULE_IDS = (
    "freshness.current",
    "provenance.required-fields",
    "provenance.denied-sources",
    "provenance.reserved",
    "license.allowed",
    "pii.max-rate",
    "pii.max-risk",
    "toxicity.max-rate",
    "findings.failed",
    "findings.review",
    "training.budget",
    "training.approval",
    "training.contamination",
    "training.preferences",
    "takedown.applied",
    "takedown.tainted-start",
    "release.evaluation",
    "release.contamination",
)
GATE_RECORDED = "gate.recorded"


class PolicyError(ValueError):
    """A policy file is not valid; the message names the file, line and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Rule(_Strict):
    """What every rule has: why it exists, and what a violation means."""

    explanation: str = Field(min_length=1)
    on_fail: OnFail = "deny"


# -- freshness -------------------------------------------------------------------------------


class FreshnessCurrent(Rule):
    """Check results must describe the dataset's current bytes, from the current check versions."""

    checks: list[str] = Field(default_factory=list)  # checks that must have a current result
    verify_bytes: bool = False  # re-hash every shard at gate time (in-place data can change)

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, value: list[str]) -> list[str]:
        for name in value:
            CHECKS.entry(name)  # a CheckError (a ValueError) names the known checks
        return value


class FreshnessRules(_Strict):
    current: FreshnessCurrent | None = None


# -- provenance ------------------------------------------------------------------------------


def _card_path_ok(path: str) -> bool:
    """True when `path` names a field of the dataset card (nested tables by dots, lists last)."""
    model: type[BaseModel] | None = DatasetCard
    for part in path.split("."):
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        candidates = typing.get_args(annotation) or (annotation,)
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return True


class RequiredFields(Rule):
    fields: list[str] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _card_fields(cls, value: list[str]) -> list[str]:
        bad = [f for f in value if not _card_path_ok(f)]
        if bad:
            raise ValueError(f"'{bad[0]}' is not a dataset card field (see `custody dataset card-template`)")
        return value


class DeniedSources(Rule):
    check_deny_list: bool = True  # deny what the provenance check's deny list found
    names: list[str] = Field(default_factory=list)  # card source names, glob, case-insensitive
    urls: list[str] = Field(default_factory=list)  # card source URIs, glob, case-insensitive
    kinds: list[SourceKind] = Field(default_factory=list)  # card source kinds (scraped, user, ...)


class Reserved(Rule):
    """No record a site reserved from AI training, nor one an imported opt-out registry lists
    (the provenance check's counts; docs/optout.md)."""

    signals: list[Literal[SIGNALS]] = Field(default_factory=lambda: list(SIGNALS))  # type: ignore[valid-type]
    opt_outs: bool = True  # records on the opt-out registries in force (`custody optout import`)


class ProvenanceRules(_Strict):
    required_fields: RequiredFields | None = Field(default=None, alias="required-fields")
    denied_sources: DeniedSources | None = Field(default=None, alias="denied-sources")
    reserved: Reserved | None = None


# -- license ---------------------------------------------------------------------------------


class Allowance(_Strict):
    categories: list[Category] = Field(default_factory=list)
    ids: list[str] = Field(default_factory=list)  # SPDX ids or expressions allowed whatever their category


class LicenseAllowed(Rule):
    commercial: Allowance | None = None
    research: Allowance | None = None


class LicenseRules(_Strict):
    allowed: LicenseAllowed | None = None


# -- PII and toxicity ------------------------------------------------------------------------


class Limit(_Strict):
    max: float = Field(ge=0, le=1)  # share of records
    action: Literal["redact", "drop", "block"]


class PiiMaxRate(Rule):
    default: Limit | None = None  # every scanned entity type not listed below
    entities: dict[EntityName, Limit] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _some_limit(self) -> PiiMaxRate:
        if self.default is None and not self.entities:
            raise ValueError("give a 'default' limit, 'entities' limits, or both")
        return self


class PiiMaxRisk(Rule):
    """No unredacted finding rated at or above a pii-codex level (see custody.pii.risk)."""

    at_or_above: RiskLevelName  # non-identifiable | semi-identifiable | identifiable
    ignore: list[EntityName] = Field(default_factory=list)  # entity types this rule leaves to pii.max-rate


class PiiRules(_Strict):
    max_rate: PiiMaxRate | None = Field(default=None, alias="max-rate")
    max_risk: PiiMaxRisk | None = Field(default=None, alias="max-risk")


class ToxicityMaxRate(Rule):
    threshold: float = Field(gt=0, le=1)  # a record at or above this score counts as toxic
    max_rate: float = Field(ge=0, le=1)
    action: Literal["drop", "block"]


class ToxicityRules(_Strict):
    max_rate: ToxicityMaxRate | None = Field(default=None, alias="max-rate")


# -- check findings --------------------------------------------------------------------------


class FindingsFailed(Rule):
    ignore: list[str] = Field(default_factory=list)  # finding ids (glob) another rule judges


class FindingsReview(Rule):
    on_fail: OnFail = "review"
    match: list[str] = Field(min_length=1)  # finding ids (glob) a person must look at


class FindingsRules(_Strict):
    failed: FindingsFailed | None = None
    review: FindingsReview | None = None


# -- training runs ---------------------------------------------------------------------------


class TrainingBudget(Rule):
    max_kwh: float | None = Field(default=None, gt=0)
    max_kg_co2e: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _some_budget(self) -> TrainingBudget:
        if self.max_kwh is None and self.max_kg_co2e is None:
            raise ValueError("give 'max_kwh', 'max_kg_co2e', or both")
        return self


class TrainingApproval(Rule):
    on_fail: Literal["review"] = "review"  # only a person's approval satisfies it


class TrainingContamination(Rule):
    """`custody run`: at most `max_share` of the judged records of each evaluation set the run spec
    lists share a run of 13 words with the run's prepared training data, measured before the gate
    (evalsets/contamination.py)."""

    max_share: float = Field(default=0.0, ge=0.0, le=1.0)


class TrainingPreferences(Rule):
    """Reward-model and DPO runs (docs/rlhf.md): the preference data carries the judgements of at
    least `min_reviewers` different people, and (with `separate_requester`) none of them is the
    person who requests the run: whoever shapes a model's reward does not also launch its training."""

    min_reviewers: int = Field(default=1, ge=1)
    separate_requester: bool = True


class TrainingRules(_Strict):
    budget: TrainingBudget | None = None
    approval: TrainingApproval | None = None
    contamination: TrainingContamination | None = None
    preferences: TrainingPreferences | None = None


# -- takedowns -------------------------------------------------------------------------------


class TakedownApplied(Rule):
    """Data a takedown removed (custody takedown apply) is not trained on again."""

    explanation: str = Field(
        default="A takedown removed a work from this dataset version and replaced it with a version "
        "without it; train on the new version. Enforced by every policy (a waiver can lift it).",
        min_length=1,
    )


class TakedownTaintedStart(Rule):
    """A run does not start from a checkpoint of a run trained on data a takedown removed."""

    explanation: str = Field(
        default="The checkpoint this run starts from was written by a run a takedown tainted (it trained "
        "on data since removed): start from a checkpoint of a run on the new versions. Enforced by every "
        "policy (a waiver can lift it).",
        min_length=1,
    )


class TakedownRules(_Strict):
    applied: TakedownApplied | None = None
    tainted_start: TakedownTaintedStart | None = Field(default=None, alias="tainted-start")


# -- releases --------------------------------------------------------------------------------


class Requirement(_Strict):
    """One evaluation a release needs: a metric of an evaluation set, in a slice, within a bound."""

    evalset: str = Field(min_length=1)  # NAME (any version) or NAME@VERSION
    metric: str = Field(min_length=1)  # accuracy, accuracy_norm, f1, roc_auc, nll, perplexity, ...
    slice: str = "all"
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Requirement:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError("give exactly one of 'at_least' (accuracy, F1) or 'at_most' (loss, perplexity)")
        return self


class ReleaseEvaluation(Rule):
    """`custody release`: the weights' recorded evaluations meet every requirement."""

    require: list[Requirement] = Field(min_length=1)


class ReleaseContamination(Rule):
    """`custody release`: at most `max_share` of each evaluation set's judged records share a run of
    13 words with the training data (evalsets/contamination.py)."""

    max_share: float = Field(default=0.0, ge=0.0, le=1.0)


class ReleaseRules(_Strict):
    evaluation: ReleaseEvaluation | None = None
    contamination: ReleaseContamination | None = None


# Rules every policy enforces whether it names them or not (`Policy.enforced_rules`): a policy
# that writes one may change its wording or make it a review, not turn it off.
BUILT_IN_RULES: dict[str, Rule] = {
    "takedown.applied": TakedownApplied(),
    "takedown.tainted-start": TakedownTaintedStart(),
}


# -- waivers and the policy ------------------------------------------------------------------


class Waiver(_Strict):
    """A standing exception written into the policy itself (reviewed with the policy change)."""

    rule: str
    datasets: list[str] = Field(min_length=1)  # NAME@VERSION, glob allowed (`web@*`)
    reason: str = Field(min_length=1)
    expires: dt.date  # in force through this day (UTC)
    approved_by: str = Field(min_length=1)

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, value: str) -> str:
        if value not in RULE_IDS:
            raise ValueError(f"unknown rule id '{value}' (known: {', '.join(RULE_IDS)})")
        return value

    @field_validator("expires", mode="before")
    @classmethod
    def _plain_date(cls, value: Any) -> Any:
        if isinstance(value, dt.datetime):  # a TOML datetime is a date subclass: say what is wanted
            raise ValueError("must be a date (YYYY-MM-DD), not a date and time")
        return value


class Policy(_Strict):
    schema_version: int = Field(alias="schema")
    name: str = Field(min_length=1)
    description: str = ""
    purpose: Purpose = "commercial"  # the default when the gate is not given --purpose
    freshness: FreshnessRules = FreshnessRules()
    provenance: ProvenanceRules = ProvenanceRules()
    license: LicenseRules = LicenseRules()
    pii: PiiRules = PiiRules()
    toxicity: ToxicityRules = ToxicityRules()
    findings: FindingsRules = FindingsRules()
    training: TrainingRules = TrainingRules()
    takedown: TakedownRules = TakedownRules()
    release: ReleaseRules = ReleaseRules()
    waivers: list[Waiver] = Field(default_factory=list)

    @field_validator("schema_version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"unsupported policy schema {value} (this custody reads schema {SCHEMA_VERSION})")
        return value

    def rules(self) -> dict[str, Rule]:
        """The rules this policy defines, by id, in evaluation order."""
        defined: dict[str, Rule] = {}
        for rule_id in RULE_IDS:
            section, name = rule_id.split(".")
            rule = getattr(getattr(self, section), name.replace("-", "_"))
            if rule is not None:
                defined[rule_id] = rule
        return defined

    def enforced_rules(self) -> dict[str, Rule]:
        """The rules evaluation applies: those defined here, and the built-in ones it leaves out."""
        defined = self.rules()
        return {
            rule_id: defined.get(rule_id) or BUILT_IN_RULES.get(rule_id)
            for rule_id in RULE_IDS
            if rule_id in defined or rule_id in BUILT_IN_RULES
        }


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy and the exact bytes it came from (their digest goes in the ledger)."""

    path: Path
    raw: bytes
    policy: Policy

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


# -- errors with lines -----------------------------------------------------------------------


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    policy = load_model(text, source, Policy, PolicyError)
    defined = policy.rules()
    for i, waiver in enumerate(policy.waivers):
        if waiver.rule not in defined:
            located = where(text, source, ("waivers", i, "rule"))
            raise PolicyError(f"{located}: key 'waivers.{i}.rule': rule '{waiver.rule}' is not defined in this policy")
    return policy


def resolve_policy_path(name: str | Path) -> Path:
    """A path as given, or a bare name (`default`) from the policies folder."""
    path = Path(name)
    if not path.exists() and path.suffix == "" and path.name == str(name):
        shipped = policies_dir() / f"{name}.toml"
        if shipped.exists():
            return shipped.resolve()
    return path.resolve()


def load_policy(name: str | Path) -> LoadedPolicy:
    path = resolve_policy_path(name)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise PolicyError(f"{name}: policy file not found (shipped: {', '.join(shipped_policies())})") from exc
    except IsADirectoryError as exc:
        raise PolicyError(f"{path}: is a directory, expected a policy file") from exc
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy ({exc.strerror})") from exc
    return LoadedPolicy(path, raw, parse_bytes(raw, str(path)))


def parse_bytes(raw: bytes, source: str) -> Policy:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{source}: policy is not UTF-8 (byte {exc.start})") from exc
    return parse_policy(text, source)


def shipped_policies() -> list[str]:
    return sorted(p.stem for p in policies_dir().glob("*.toml") if p.stem != "sources-deny")
