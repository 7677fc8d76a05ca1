"""Policies: the bindings in force, the files, and which datasets pass or fail each rule, evaluated
now without recording.

The binding (`custody policy bind`, an admin's signed entry) is what makes a policy govern a
purpose: the gate evaluates the bound policy's exact bytes, whatever a file on disk now says, so
the page names policies by digest. The evaluation is the gate's own (`gather` + `evaluate`), so
reviews and waivers count exactly as they would in `custody gate`; nothing is written to the ledger.
The input document is `gather`'s, with each dataset's facts carried forward from a summary kept
beside the home (views/gate_facts.py), so a cold page reads only the entries appended since.
A rule whose check never ran on a dataset is shown as "not checked", not as failing: the gate
denies it (fail closed), but nothing was found wrong with the data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.paths import policies_dir
from custody.policy.bindings import Binding, BindingError, current_bindings
from custody.policy.evaluate import evaluate
from custody.policy.rules import MissingResult, rule_function
from custody.policy.schema import LoadedPolicy, Policy, PolicyError, load_policy, shipped_policies
from custody.store import ArtifactError
from custody.views.common import when
from custody.views.gate_facts import gate_input

PASS, LIFTED, NOT_CHECKED = "pass", "lifted", "not checked"


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


def files_key() -> str:
    """A digest of every policy file's name and bytes: what `policy_files()` depends on, cheap to
    read on each rerun (parsing validates each file against the check registry: 0.25 s)."""
    digest = hashlib.sha256()
    for name in shipped_policies():
        digest.update(name.encode() + b"\0" + (policies_dir() / f"{name}.toml").read_bytes() + b"\0")
    return digest.hexdigest()


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
                "bound at": when(b.ts),
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
    cells: dict[tuple[str, str], str]  # (rule, dataset) -> pass | review | deny | lifted | not checked
    decisions: dict[str, str]  # dataset -> allow | needs-review | deny | not checked, evaluated now
    explanations: dict[str, str]

    def rows(self) -> list[dict[str, Any]]:
        """One row per dataset, one column per rule (for export; too wide for a page)."""
        return [
            {"dataset": ds, "decision": self.decisions[ds], **{rule: self.cells[(rule, ds)] for rule in self.rules}}
            for ds in self.datasets
        ]

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per dataset naming only the rules it does not pass: narrow enough to read whole
        (a column per rule does not fit a page once a policy has more than a few rules)."""
        rows = []
        for ds in self.datasets:
            cells = {rule: self.cells[(rule, ds)] for rule in self.rules}
            rows.append(
                {
                    "dataset": ds,
                    "decision": self.decisions[ds],
                    "fails": ", ".join(f"{rule} ({c})" for rule, c in cells.items() if c in ("deny", "review")),
                    NOT_CHECKED: ", ".join(rule for rule, c in cells.items() if c == NOT_CHECKED),
                    LIFTED: ", ".join(rule for rule, c in cells.items() if c == LIFTED),
                }
            )
        return rows

    def failing(self, rule: str) -> list[str]:
        """Datasets the rule found something wrong with (never those it could not judge)."""
        return [ds for ds in self.datasets if self.cells[(rule, ds)] in ("deny", "review")]

    def not_checked(self, rule: str) -> list[str]:
        """Datasets the rule cannot judge yet: the check it reads never ran on them."""
        return [ds for ds in self.datasets if self.cells[(rule, ds)] == NOT_CHECKED]


def unchecked(policy: Policy, doc: dict[str, Any], rules: list[str]) -> set[tuple[str, str]]:
    """(rule, dataset) pairs a rule cannot judge because its check has no result on the dataset,
    asked of the gate's own rule functions (the gate turns these into fail-closed denies)."""
    missing = set()
    for rule_id in rules:
        judge, for_runs = rule_function(rule_id)
        if for_runs:
            continue
        rule = policy.rules()[rule_id]
        for facts in doc["datasets"]:
            try:
                judge(rule, facts, doc)
            except MissingResult:
                missing.add((rule_id, facts["dataset"]))
    return missing


def _overall(outcomes: set[str]) -> str:
    for cell, decision in (("deny", "deny"), ("review", "needs-review"), (NOT_CHECKED, NOT_CHECKED)):
        if cell in outcomes:
            return decision
    return "allow"


def rule_matrix(
    home: Home, loaded: LoadedPolicy, datasets: list[RegisteredDataset], now: dt.datetime | None = None
) -> RuleMatrix:
    policy = loaded.policy
    rules = [rule for rule in policy.rules() if not rule.startswith("training.")]  # run rules need a run
    names = sorted(str(d.ref) for d in datasets)
    cells = {(rule, ds): PASS for rule in rules for ds in names}
    decisions = dict.fromkeys(names, "allow")
    if datasets:
        doc = gate_input(home, datasets, policy.purpose, now or dt.datetime.now(dt.UTC))
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
        for key in unchecked(policy, doc, rules):
            if key in cells and cells[key] != LIFTED:
                cells[key] = NOT_CHECKED
        for ds in names:
            decisions[ds] = _overall({cells[(rule, ds)] for rule in rules})
    explanations = {rule: obj.explanation for rule, obj in policy.rules().items()}
    return RuleMatrix(policy.name, policy.purpose, rules, names, cells, decisions, explanations)
