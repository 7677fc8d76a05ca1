"""Homes for the dashboard tests: one populated home built once per session, copied per module.

The populated home is built like the demo's, from real data with real check results: a mixed
dataset (synthetic PII from presidio-research, toxic comments from the Jigsaw sample, some
non-commercial records) registered by alice, a derived dataset (lineage), a gate decision under
the policy the admin bound to the research purpose (its PII and toxicity rules ask for review),
and a completed run. Then, as in the demo: a dataset whose records all take their license from
the card (the usual case), registered by a person named by email, prepared by a chain of stages
(whose intermediate output stays recorded but hidden) and only partly checked, so some rules
have nothing to judge ("not checked"); a run small enough to measure in Wh; two open takedown
requests (one for a speech, which applies through the stage chain and taints the small run; one
for a mix record, which cannot be applied: mix-clean@1's stage cannot be built again), with every
passage index built; and an entry after the last signed checkpoint. Its people hold real keys (the
session's cast): the admin, alice (engineer and reviewer: she registered the data), bob
(reviewer), vera (reviewer, with a viewer account), erin (an engineer with a reviewer account),
rex (a reviewer whose key was revoked), the web engineer, ann (an approver: she may apply a
takedown) and the dashboard (attestor).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from custody.accounts import Accounts
from custody.checks.catalog import build_check
from custody.checks.pii import PiiCheck
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef, is_intermediate, parse_ref
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.pipeline.chain import run_chain
from custody.pipeline.run_check import run_check
from custody.policy.bindings import bind
from custody.policy.gate import run_gate
from custody.policy.schema import LoadedPolicy
from custody.takedown.requests import affected, request
from custody.testing.people import ADMIN, Cast
from custody.testing.runs import record_run
from policy_data import REVIEW_POLICY, policy_from

OWNER = "alice"  # registers the datasets: may not approve or waive their findings
REVIEWER, VIEWER = "bob", "vera"
ENGINEER = "erin"  # a reviewer account, but the roster says engineer: may not act on findings
REVOKED = "rex"  # a reviewer account whose roster key was revoked
DASHBOARD = "dashboard"  # the dashboard's own roster identity
WEB_OWNER = "engineer@example.org"  # registers the card-licensed data, named by email as in the demo
APPROVER = "ann"  # may apply a takedown (roster role approver)
PEOPLE = {
    OWNER: ("engineer", "reviewer"),
    REVIEWER: ("reviewer",),
    VIEWER: ("reviewer",),
    ENGINEER: ("engineer",),
    REVOKED: ("reviewer",),
    WEB_OWNER: ("engineer",),
    APPROVER: ("approver",),
    DASHBOARD: ("attestor",),
}
ACCOUNTS = {
    OWNER: "reviewer",
    REVIEWER: "reviewer",
    VIEWER: "viewer",
    ENGINEER: "reviewer",
    REVOKED: "reviewer",
    APPROVER: "reviewer",
}
PASSWORDS = {name: f"{name}-password-12" for name in ACCOUNTS}
PII_FINDING = "mix@1/pii.max-rate:EMAIL_ADDRESS"
TOXIC_FINDING = "mix@1/toxicity.max-rate"
PLAYS, PREPARED = "plays@1", "plays@2"  # card-licensed source and its prepared output
PLAY_STAGES = ["normalize-unicode", "dedup-exact"]  # plays@2+1-normalize-unicode is intermediate
PLAY_RECORDS = 24
SMALL_RUN, SMALL_RUN_KWH = "tiny", 0.000317  # shown as 0.317 Wh
TAKEN_RECORD = "play-3"  # the speech a takedown request asks to remove (by its text SHA-256)
PLAY_TAKEDOWN_BY, MIX_TAKEDOWN_BY = "Estate of W. Shakespeare", "the person in mix-0"  # who asks


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
    add_card_licensed(home, root, shared_data, cast)
    home.close()
    return root / "home"


def _plays(shared_data: Path) -> list[dict]:
    """Speeches from tinyshakespeare with no `license` field (they take the card's), one repeated."""
    speeches = (shared_data / "corpus_tinyshakespeare" / "input.txt").read_text(encoding="utf-8").split("\n\n")
    rows = [{"id": f"play-{i}", "text": text.strip()} for i, text in enumerate(speeches[: PLAY_RECORDS - 1])]
    return [*rows, {"id": "play-again", "text": rows[0]["text"]}]  # for dedup-exact to drop


def add_card_licensed(home: Home, root: Path, shared_data: Path, cast: Cast) -> None:
    """The demo's shape: card-licensed data, a stage chain, partial checks, a tiny run, and the head
    one entry past the last signed checkpoint (as after `custody user add`)."""
    registry = DatasetRegistry(home)
    plays, _ = registry.register(
        [_write_jsonl(root / "plays.jsonl", _plays(shared_data))],
        parse_ref(PLAYS),
        parse_card(CARD_TEMPLATE),
        Fields(id="id"),
        actor=WEB_OWNER,
    )
    run_check(home, plays, build_check("license"), actor=WEB_OWNER)  # never checked for provenance, PII, toxicity
    results = run_chain(home, plays, PLAY_STAGES, parse_ref(PREPARED), actor=WEB_OWNER)
    prepared = results[-1].output
    assert is_intermediate(results[0].output.ref) and not is_intermediate(prepared.ref)
    for name in ("provenance", "license", "toxicity"):
        run_check(home, prepared, build_check(name), actor=WEB_OWNER)
    run_check(home, prepared, PiiCheck(processes=1), actor=WEB_OWNER)
    gate = run_gate(home, [prepared], None, "research", actor=cast.person(home, WEB_OWNER))
    record_run(home, SMALL_RUN, gate.ledger_index or 0, [prepared], steps=50, energy_kwh=SMALL_RUN_KWH)
    add_takedown_requests(home, cast)
    # `custody user add` records the account and signs no checkpoint: the head is one entry past it.
    admin = cast.person(home, ADMIN)
    home.record("user.added/v1", f"user:{WEB_OWNER}", {"name": WEB_OWNER, "role": "viewer"}, actor=admin)
    Accounts(home.path).add(WEB_OWNER, "viewer", f"{WEB_OWNER}-password-12")


def takedown_ids(home: Home) -> dict[str, str]:
    """The base home's takedown request ids (random when recorded) by who asked."""
    from custody.takedown.requests import all_requests

    return {r.body["requested_by"]: r.id for r in all_requests(home)}


def add_takedown_requests(home: Home, cast: Cast) -> None:
    """Two open requests by record hash, every passage index built (so viewing a request records
    nothing), and a checkpoint over them."""
    admin = cast.person(home, ADMIN)
    registry = DatasetRegistry(home)
    speech = next(r for _, r in registry.get(PLAYS).records() if r.id == TAKEN_RECORD)
    mixed = next(r for _, r in registry.get("mix@1").records() if r.id == "mix-0")
    for by, reason, record in (
        (PLAY_TAKEDOWN_BY, "copyright", speech),
        (MIX_TAKEDOWN_BY, "personal data", mixed),
    ):
        taken = request(home, by, reason, record_hash=record.content_hash, actor=admin)
        affected(home, taken, ADMIN)
    home.checkpoint()


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
