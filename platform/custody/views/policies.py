"""Policies: the files, and which datasets pass or fail each rule, evaluated now without recording.

The evaluation is the gate's own (`gather` + `evaluate`), so reviews and waivers count exactly as
they would in `custody gate`; nothing is written to the ledger.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.paths import policies_dir
from custody.policy.evaluate import evaluate
from custody.policy.inputs import gather
from custody.policy.schema import LoadedPolicy, PolicyError, load_policy, shipped_policies

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
