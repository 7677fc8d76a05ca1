"""Policies: the bindings in force, the files, and which datasets pass or fail each rule, evaluated
now without recording.

The binding (`custody policy bind`, an admin's signed entry) is what makes a policy govern a
purpose: the gate evaluates the bound policy's exact bytes, whatever a file on disk now says, so
the page names policies by digest. The evaluation is the gate's own (`gather` + `evaluate`), so
reviews and waivers count exactly as they would in `custody gate`; nothing is written to the ledger.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.paths import policies_dir
from custody.policy.bindings import Binding, BindingError, current_bindings
from custody.policy.evaluate import evaluate
from custody.policy.inputs import gather
from custody.policy.schema import LoadedPolicy, PolicyError, load_policy, shipped_policies
from custody.store import ArtifactError

PASS, LIFTED = "pass", "lifted"


@dataclass(frozen=True)
class PolicyFile:
    name: str
    path: Path
    text: str
    loaded: LoadedPolicy | None
    error: str | None


def policy_files() -> list[PolicyFile]:
    files = []
    for name in shipped_policies():
        path = policies_dir() / f"{name}.toml"
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            files.append(PolicyFile(name, path, text, load_policy(path), None))
        except PolicyError as exc:
            files.append(PolicyFile(name, path, text, None, str(exc)))
    return files


@dataclass(frozen=True)
class Bindings:
    """The binding in force for each purpose, or why they cannot be read."""

    by_purpose: dict[str, Binding]
    error: str | None = None

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "purpose": purpose,
                "policy": b.loaded.policy.name,
                "sha256": b.digest,
                "bound by": b.bound_by,
                "bound at": b.ts,
                "ledger index": b.index,
            }
            for purpose, b in self.by_purpose.items()
        ]

    def status_of(self, digest: str) -> str:
        """Whether a policy file (by its digest) is the one bound to a purpose."""
        bound = [f"{p} at ledger index {b.index}" for p, b in self.by_purpose.items() if b.digest == digest]
        if bound:
            return "bound to " + ", ".join(bound)
        return "not bound to any purpose: a request naming it can only add reasons to the bound policy's"


def bindings(home: Home) -> Bindings:
    try:
        return Bindings(current_bindings(home))
    except (BindingError, ArtifactError) as exc:  # a bound policy this custody cannot read, or lost bytes
        return Bindings({}, str(exc))


@dataclass(frozen=True)
class RuleMatrix:
    policy: str
    purpose: str
    rules: list[str]
    datasets: list[str]
    cells: dict[tuple[str, str], str]  # (rule, dataset) -> pass | review | deny | lifted
    decisions: dict[str, str]  # dataset -> what the policy decides for it now
    explanations: dict[str, str]

    def rows(self) -> list[dict[str, Any]]:
        """One row per dataset, one column per rule."""
        return [
            {"dataset": ds, "decision": self.decisions[ds], **{rule: self.cells[(rule, ds)] for rule in self.rules}}
            for ds in self.datasets
        ]

    def failing(self, rule: str) -> list[str]:
        return [ds for ds in self.datasets if self.cells[(rule, ds)] in ("deny", "review")]


def rule_matrix(
    home: Home, loaded: LoadedPolicy, datasets: list[RegisteredDataset], now: dt.datetime | None = None
) -> RuleMatrix:
    policy = loaded.policy
    rules = [rule for rule in policy.rules() if not rule.startswith("training.")]  # run rules need a run
    names = sorted(str(d.ref) for d in datasets)
    cells = {(rule, ds): PASS for rule in rules for ds in names}
    decisions = dict.fromkeys(names, "allow")
    if datasets:
        doc = gather(home, datasets, policy.purpose, now or dt.datetime.now(dt.UTC))
        decision = evaluate(policy, doc)
        for item in list(decision.waived) + list(decision.approved):
            subject = item["finding"].split("/", 1)[0]
            if (item["rule"], subject) in cells:
                cells[(item["rule"], subject)] = LIFTED
        for reason in decision.reasons:
            key = (reason.rule, reason.subject)
            if key in cells:
                worse = "deny" if reason.outcome == "deny" or cells[key] == "deny" else "review"
                cells[key] = worse
        for ds in names:
            outcomes = {cells[(rule, ds)] for rule in rules}
            decisions[ds] = "deny" if "deny" in outcomes else "needs-review" if "review" in outcomes else "allow"
    explanations = {rule: obj.explanation for rule, obj in policy.rules().items()}
    return RuleMatrix(policy.name, policy.purpose, rules, names, cells, decisions, explanations)
