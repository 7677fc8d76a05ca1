"""A tiny governed run for tests: a research policy that lets Tiny Shakespeare through, and a
run spec small enough to train in seconds (used by the run and report tests)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

POLICY = """\
schema = 1
name = "test-research"
description = "research use of public texts"
purpose = "research"

[freshness.current]
explanation = "results must describe these bytes"
checks = ["provenance", "license", "pii", "toxicity"]

[provenance.denied-sources]
explanation = "no shadow libraries"
check_deny_list = true

[license.allowed]
explanation = "research may use attribution licenses"

[license.allowed.research]
categories = ["public-domain", "permissive"]

[toxicity.max-rate]
explanation = "little toxicity"
threshold = 0.5
max_rate = 0.2
action = "drop"
{approval}
"""

APPROVAL = """
[training.approval]
explanation = "a person approves every run"
"""

SPEC = """\
schema = 1
name = "{name}"
kind = "{kind}"

[policy]
file = "{policy}"

[[datasets]]
ref = "shakespeare@1"

[prepare]
stages = ["dedup-exact", "drop-toxic"]

[tokenizer]
vocab_size = 300

[model]
n_layer = 2
n_head = 2
n_embd = 32
block_size = 32

[training]
steps = 12
batch_size = 4
warmup = 2
eval_interval = 6
eval_steps = 2
checkpoint_interval = 6
log_interval = 3
{extra}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


PEOPLE = {
    "registrar": ("engineer",),
    "trainer": ("engineer", "approver"),  # may approve others' runs, never the ones they request
    "lead": ("approver",),
}


def people_home(cast, path: Path, database: str | None = None):
    """A home whose admin bound research to POLICY (no run approval), with the run tests' people."""
    from custody.policy.bindings import bind
    from custody.policy.schema import load_policy

    home = cast.init_home(path, database)
    for name, roles in PEOPLE.items():
        cast.enroll(home, name, *roles)
    bound = write(path.parent / "bound-research.toml", POLICY.format(approval=""))
    bind(home, "research", load_policy(bound), cast.person(home, "admin"))
    return home


def bodies(home, prefix: str, subject: str) -> list[dict]:
    """The bodies of a subject's entries of one type, oldest first."""
    from custody.ledger import query

    return [query.body(row) for row in query.entries(home.storage, prefix, subject)]


def losses(home, run_id: str) -> list[float]:
    """A finished run's per-step training loss, from its metrics artifact."""
    import json

    finished = bodies(home, "run.finished/", f"run:{run_id}")[-1]
    return [s["train_loss"] for s in json.loads(home.store.read_bytes(finished["metrics_digest"]))["steps"]]


@contextmanager
def research_home(cast, root: Path):
    """A people_home with 200 Tiny Shakespeare speeches registered (shakespeare@1, research allows
    them), and the trainer's key: what a loop under custody.governed_run starts from."""
    from train_support import register_shakespeare

    home = people_home(cast, root / "home")
    try:
        register_shakespeare(home, root, limit=200, shards=2)
        yield home, root, cast.key_file("trainer")
    finally:
        home.close()
