"""A home for the report tests, built once per session: real data, real checks, a gate decision,
two approvals and a tiny real training run, by people holding real keys.

mix@1 holds synthetic PII (presidio-research), toxic comments (Jigsaw sample) and some
non-commercial records; the policy the admin bound to research sends its PII and toxicity to
review. The reviewer approves the PII finding with their own key; a second reviewer approves the
toxicity finding through the dashboard, which signs the approval attesting them. The admin then
binds research to the run policy, and shakespeare@1 (Tiny Shakespeare) is prepared, checked,
gated and trained on by `run_spec` with a 12-step spec, so the run's report has datasets, a
decision, digests, metrics and emissions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from custody.checks.catalog import build_check
from custody.checks.pii import PiiCheck
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.pipeline.run_check import run_check
from custody.policy.bindings import bind
from custody.policy.gate import run_gate
from custody.policy.reviews import record_review
from custody.runs.spec import load_spec
from custody.runs.trainers import run_spec
from custody.testing.people import ADMIN, Cast
from policy_data import REVIEW_POLICY, policy_from
from run_data import POLICY, SPEC
from train_support import register_shakespeare, torch_threads

OWNER, REVIEWER, TRAINER = "registrar", "reviewer", "trainer"
SIGNED_IN, DASHBOARD = "privacy", "dashboard"  # a reviewer who approves through the dashboard, and it
PEOPLE = {
    OWNER: ("engineer",),
    TRAINER: ("engineer",),
    REVIEWER: ("reviewer",),
    SIGNED_IN: ("reviewer",),
    DASHBOARD: ("attestor",),
}
PII_FINDING = "mix@1/pii.max-rate:EMAIL_ADDRESS"
TOXIC_FINDING = "mix@1/toxicity.max-rate"


@dataclass(frozen=True)
class ReportHome:
    path: Path
    run_id: str
    decision_index: int
    review_index: int  # the reviewer's own, signed with their key
    attested_index: int  # the dashboard's, attesting SIGNED_IN


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build(root: Path, shared_data: Path, cast: Cast) -> ReportHome:
    home = cast.init_home(root / "home")
    for name, roles in PEOPLE.items():
        cast.enroll(home, name, *roles)
    admin = cast.person(home, ADMIN)
    bind(home, "research", policy_from(REVIEW_POLICY, root / "review-everything.toml"), admin)
    pii = _read_jsonl(shared_data / "pii_presidio_synth" / "data.jsonl")
    with_email = [d for d in pii if any(s["entity_type"] == "EMAIL_ADDRESS" for s in d["spans"])][:8]
    toxic = _read_jsonl(shared_data / "toxicity_jigsaw_sample" / "data.jsonl")[:30]
    rows = [{"id": f"mix-{i}", "text": d["text"]} for i, d in enumerate(with_email + pii[200:212] + toxic)]
    for row in rows[-8:]:
        row["license"] = "CC-BY-NC-4.0"
    (root / "mix").mkdir()
    (root / "mix" / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    registry = DatasetRegistry(home)
    mix, _ = registry.register(
        [root / "mix"], DatasetRef("mix", "1"), parse_card(CARD_TEMPLATE), Fields(id="id"), actor=OWNER
    )
    for name in ("provenance", "license", "toxicity"):
        run_check(home, mix, build_check(name), actor=OWNER)
    run_check(home, mix, PiiCheck(processes=1), actor=OWNER)
    gate = run_gate(home, [mix], None, "research", actor=cast.person(home, OWNER))
    assert gate.recorded and gate.decision.decision == "needs-review", gate.decision
    review = record_review(
        home, PII_FINDING, "approve", "addresses are synthetic test data", cast.person(home, REVIEWER)
    )
    attested = record_review(
        home, TOXIC_FINDING, "approve", "flagged lines are quoted insults, kept", cast.attested(home, SIGNED_IN)
    )

    register_shakespeare(home, root, limit=300, shards=2)
    run_policy = root / "run-policy.toml"
    bind(home, "research", policy_from(POLICY.format(approval=""), run_policy), admin)  # the admin moves research on
    spec = root / "tiny.toml"
    spec.write_text(SPEC.format(name="tiny", kind="pretrain", policy=run_policy, extra=""), encoding="utf-8")
    said: list[str] = []
    with torch_threads(1):
        outcome = run_spec(home, load_spec(spec), actor=cast.person(home, TRAINER), say=said.append)
    assert outcome.exit_code == 0 and outcome.run_id, said
    home.close()
    return ReportHome(root / "home", outcome.run_id, gate.ledger_index or 0, review, attested)


_BASE: dict[str, ReportHome] = {}


def report_home(factory, shared_data: Path, cast: Cast) -> ReportHome:
    """A private copy of the session's report home (reports append to the ledger)."""
    import shutil

    if "base" not in _BASE:
        _BASE["base"] = build(factory.mktemp("report-base"), shared_data, cast)
    base = _BASE["base"]
    target = factory.mktemp("report-home") / "home"
    shutil.copytree(base.path, target)
    return ReportHome(target, base.run_id, base.decision_index, base.review_index, base.attested_index)


if __name__ == "__main__":  # build a home to look at: python tests/report_data.py DIR (keys in DIR/keys)
    import sys

    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    out = Path(sys.argv[1])
    built = build(out, shared, Cast(out / "keys"))
    print(built)
