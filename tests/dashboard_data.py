"""Homes for the dashboard tests: one populated home built once per session, copied per module.

The populated home holds real data and real check results: a mixed dataset (synthetic PII from
presidio-research, toxic comments from the Jigsaw sample, some non-commercial records) registered
by alice, a derived dataset (lineage), a gate decision under the policy the admin bound to the
research purpose (its PII and toxicity rules ask for review), and a completed run. Its people
hold real keys (the session's cast): the admin, alice (engineer and reviewer: she registered the
data), bob (reviewer), vera (reviewer, with a viewer account), erin (an engineer with a
reviewer account), rex (a reviewer whose key was revoked) and the dashboard (attestor).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from custody.accounts import Accounts
from custody.checks.catalog import build_check
from custody.checks.pii import PiiCheck
from custody.checks.results import run_check
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.policy.bindings import bind
from custody.policy.gate import run_gate
from custody.policy.schema import LoadedPolicy
from custody.testing.people import ADMIN, Cast
from custody.testing.runs import record_run
from policy_data import REVIEW_POLICY, policy_from

OWNER = "alice"  # registers the datasets: may not approve or waive their findings
REVIEWER, VIEWER = "bob", "vera"
ENGINEER = "erin"  # a reviewer account, but the roster says engineer: may not act on findings
REVOKED = "rex"  # a reviewer account whose roster key was revoked
DASHBOARD = "dashboard"  # the dashboard's own roster identity
PEOPLE = {
    OWNER: ("engineer", "reviewer"),
    REVIEWER: ("reviewer",),
    VIEWER: ("reviewer",),
    ENGINEER: ("engineer",),
    REVOKED: ("reviewer",),
    DASHBOARD: ("attestor",),
}
ACCOUNTS = {OWNER: "reviewer", REVIEWER: "reviewer", VIEWER: "viewer", ENGINEER: "reviewer", REVOKED: "reviewer"}
PASSWORDS = {name: f"{name}-password-12" for name in ACCOUNTS}
PII_FINDING = "mix@1/pii.max-rate:EMAIL_ADDRESS"
TOXIC_FINDING = "mix@1/toxicity.max-rate"


_BASE: dict[str, Path] = {}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def review_policy(root: Path) -> LoadedPolicy:
    return policy_from(REVIEW_POLICY, root / "review-everything.toml")


def add_people(home: Home, cast: Cast) -> None:
    """The roster (rex enrolled, then revoked) and the dashboard accounts (files only, no entries)."""
    for name, roles in PEOPLE.items():
        cast.enroll(home, name, *roles)
    key = cast.public(REVOKED)
    home.record(
        "people.revoked/v1",
        f"person:{REVOKED}",
        {"name": REVOKED, "fingerprint": key.fingerprint, "reason": "left the team"},
        actor=cast.person(home, ADMIN),
    )
    accounts = Accounts(home.path)
    for name, role in ACCOUNTS.items():
        accounts.add(name, role, PASSWORDS[name])


def build(root: Path, shared_data: Path, cast: Cast) -> Path:
    home = cast.init_home(root / "home")
    add_people(home, cast)
    loaded = review_policy(root)
    bind(home, "research", loaded, cast.person(home, ADMIN))
    registry = DatasetRegistry(home)
    pii = _read_jsonl(shared_data / "pii_presidio_synth" / "data.jsonl")
    with_email = [d for d in pii if any(s["entity_type"] == "EMAIL_ADDRESS" for s in d["spans"])][:8]
    toxic = _read_jsonl(shared_data / "toxicity_jigsaw_sample" / "data.jsonl")[:30]
    rows = [{"id": f"mix-{i}", "text": d["text"]} for i, d in enumerate(with_email + pii[200:212] + toxic)]
    for row in rows[-8:]:
        row["license"] = "CC-BY-NC-4.0"
    mix, _ = registry.register(
        [_write_jsonl(root / "mix.jsonl", rows)],
        DatasetRef("mix", "1"),
        parse_card(CARD_TEMPLATE),
        Fields(id="id"),
        actor=OWNER,
    )
    for name in ("provenance", "license", "toxicity"):
        run_check(home, mix, build_check(name), actor=OWNER)
    run_check(home, mix, PiiCheck(processes=1), actor=OWNER)
    clean, _ = registry.register_derived(
        DatasetRef("mix-clean", "1"),
        [mix],
        "drop-toxic",
        {"threshold": 0.5},
        [{"id": r["id"], "text": r["text"]} for r in rows[:20]],
        actor=OWNER,
    )
    run_check(home, clean, build_check("provenance"), actor=OWNER)
    gate = run_gate(home, [mix], None, "research", actor=cast.person(home, OWNER))
    assert gate.recorded and gate.decision.decision == "needs-review", gate.decision
    record_run(home, "r1", gate.ledger_index or 0, [clean])
    home.close()
    return root / "home"


def base_home(factory, shared_data: Path, cast: Cast) -> Path:
    if "home" not in _BASE:
        _BASE["home"] = build(factory.mktemp("dashboard-base"), shared_data, cast)
    return _BASE["home"]


def copy_home(base: Path, target: Path) -> Path:
    shutil.copytree(base, target)
    return target


def empty_home(target: Path, cast: Cast) -> Path:
    home = cast.init_home(target)
    add_people(home, cast)
    home.close()
    return target
