"""A home for the report tests, built once per module: real data, real checks, a gate decision, a
review and a tiny real training run.

mix@1 holds synthetic PII (presidio-research), toxic comments (Jigsaw sample) and some
non-commercial records; a policy sends its PII and toxicity to review and a reviewer approves the
PII finding. shakespeare@1 (Tiny Shakespeare) is prepared, checked, gated and trained on by
`run_spec` with a 12-step spec, so the run's report has datasets, a decision, digests, metrics and
emissions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from custody.checks.catalog import build_check
from custody.checks.pii import PiiCheck
from custody.checks.results import run_check
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.policy.gate import run_gate
from custody.policy.reviews import record_review
from custody.runs.governed import run_spec
from custody.runs.spec import load_spec
from policy_data import REVIEW_POLICY, policy_from
from run_data import POLICY, SPEC
from train_support import register_shakespeare, torch_threads

OWNER, REVIEWER, TRAINER = "registrar", "reviewer", "trainer"
PII_FINDING = "mix@1/pii.max-rate:EMAIL_ADDRESS"


@dataclass(frozen=True)
class ReportHome:
    path: Path
    run_id: str
    decision_index: int
    review_index: int


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build(root: Path, shared_data: Path) -> ReportHome:
    home = Home.init(root / "home", actor=OWNER)
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
    loaded = policy_from(REVIEW_POLICY, root / "review-everything.toml")
    gate = run_gate(home, [mix], loaded, actor=OWNER)
    assert gate.recorded and gate.decision.decision == "needs-review", gate.decision
    review = record_review(home, PII_FINDING, "approve", "addresses are synthetic test data", REVIEWER)

    register_shakespeare(home, root, limit=300, shards=2)
    run_policy = root / "run-policy.toml"
    run_policy.write_text(POLICY.format(approval=""), encoding="utf-8")
    spec = root / "tiny.toml"
    spec.write_text(SPEC.format(name="tiny", kind="pretrain", policy=run_policy, extra=""), encoding="utf-8")
    said: list[str] = []
    with torch_threads(1):
        outcome = run_spec(home, load_spec(spec), actor=TRAINER, say=said.append)
    assert outcome.exit_code == 0 and outcome.run_id, said
    home.close()
    return ReportHome(root / "home", outcome.run_id, gate.ledger_index or 0, review)


_BASE: dict[str, ReportHome] = {}


def report_home(factory, shared_data: Path) -> ReportHome:
    """A private copy of the session's report home (reports append to the ledger)."""
    import shutil

    if "base" not in _BASE:
        _BASE["base"] = build(factory.mktemp("report-base"), shared_data)
    base = _BASE["base"]
    target = factory.mktemp("report-home") / "home"
    shutil.copytree(base.path, target)
    return ReportHome(target, base.run_id, base.decision_index, base.review_index)


if __name__ == "__main__":  # build a home to look at: python tests/report_data.py DIR
    import sys

    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    built = build(Path(sys.argv[1]), shared)
    print(built)
