"""A home for the preference dashboard and report tests, built once per session and copied per module.

A tiny language model is pretrained on short chat replies (seconds), so pairs can be sampled from
its recorded weights; a prompt set; a preference dataset registered directly (`likes@1`, its
reviewers on the roster) that trains a reward model and then DPO, each a few steps (the measures
are recorded, their quality is tests/test_rlhf.py's business); three pairs sampled from the base
model, each judged by ravi with his own key and exported as `chat-prefs@1` (`prefs.exported/v1`).
rita (a reviewer) has judged none: the dashboard offers her the first. erin holds a reviewer
account but the roster says engineer: she sees the pairs, read-only. trainer (engineer, approver)
may ask for new pairs. The dashboard holds its own attestor key.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from custody.accounts import Accounts
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.prefs.collect import judge, sample_pairs
from custody.prefs.export import export
from custody.runs.spec import load_spec
from custody.runs.trainers import run_spec
from custody.testing.people import Cast
from run_data import POLICY, people_home, write

REVIEWER, JUDGE, ENGINEER, TRAINER, DASHBOARD = "rita", "ravi", "erin", "trainer", "dashboard"
PEOPLE = {REVIEWER: ("reviewer",), JUDGE: ("reviewer",), ENGINEER: ("engineer",), DASHBOARD: ("attestor",)}
ACCOUNTS = {REVIEWER: "reviewer", JUDGE: "reviewer", ENGINEER: "reviewer", TRAINER: "reviewer"}
PASSWORDS = {name: f"{name}-password-12" for name in ACCOUNTS}
EXPORTED = "chat-prefs@1"
SAMPLED = 3  # pairs sampled from the base model (of len(TOPICS) prompts)

TOPICS = ["the weather", "my order", "the train", "the meeting", "the garden", "the report"]
HELPFUL = ["glad to help, here it is .", "thank you, happy to help ."]
CURT = ["not my problem .", "no idea, not my job ."]

SPEC_HEAD = """\
schema = 1
name = "{name}"
kind = "{kind}"

[policy]
file = "{policy}"

[[datasets]]
ref = "{dataset}"
"""

PRETRAIN = """
[tokenizer]
vocab_size = 280

[model]
n_layer = 1
n_head = 2
n_embd = 32
block_size = 32

[training]
steps = 20
batch_size = 8
lr = 0.003
warmup = 2
eval_interval = 0
log_interval = 10
"""

REWARD = """
[reward]
checkpoint = "sha256:{checkpoint}"
add_blocks = 1
held_out = 0.25

[training]
steps = 6
batch_size = 8
lr = 0.003
warmup = 1
eval_interval = 0
"""

DPO = """
[dpo]
checkpoint = "sha256:{checkpoint}"
reward_model = "sha256:{reward}"
beta = 0.5
max_kl = 10.0
held_out = 0.25
eval_prompts = 2
samples_per_prompt = 2
max_new_tokens = 6

[training]
steps = 4
batch_size = 4
lr = 0.0002
warmup = 1
eval_interval = 2
"""


@dataclass(frozen=True)
class PrefsHome:
    path: Path
    base_run: str
    base_digest: str
    reward_run: str
    reward_digest: str
    dpo_run: str
    pairs: tuple[int, ...]  # ledger indices of the sampled pairs, oldest first
    export_index: int  # the prefs.exported entry of chat-prefs@1


_BASE: dict[str, PrefsHome] = {}


def prompt(topic: str) -> str:
    return f"Q: about {topic} ? A:"


def register(home, root: Path, name: str, rows: list[dict]):
    """Rows as a one-shard JSONL dataset NAME@1 with the template card."""
    folder = root / name
    folder.mkdir(exist_ok=True)
    (folder / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    dataset, _ = DatasetRegistry(home).register(
        [folder], DatasetRef(name, "1"), parse_card(CARD_TEMPLATE), Fields(id="id")
    )
    return dataset


def preference_rows(
    count: int, reviewers: list[str], topics=TOPICS, helpful=HELPFUL, curt=CURT, seed: int = 0
) -> list[dict]:
    """The known answer: the helpful reply is chosen over the curt one."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        p, c, r = prompt(rng.choice(topics)), f" {rng.choice(helpful)}", f" {rng.choice(curt)}"
        rows.append(
            {
                "id": f"p{i}",
                "text": f"{p}\n\n{c}\n\n{r}",
                "prompt": p,
                "chosen": c,
                "rejected": r,
                "reviewers": reviewers,
            }
        )
    return rows


def _run(home, root: Path, cast: Cast, name: str, kind: str, dataset: str, body: str):
    policy = write(root / "policy.toml", POLICY.format(approval=""))
    spec = write(root / f"{name}.toml", SPEC_HEAD.format(name=name, kind=kind, policy=policy, dataset=dataset) + body)
    outcome = run_spec(home, load_spec(spec), actor=cast.person(home, TRAINER), say=lambda _: None)
    assert outcome.exit_code == 0, outcome
    return outcome


def build(root: Path, cast: Cast) -> PrefsHome:
    home = people_home(cast, root / "home")
    try:
        for name, roles in PEOPLE.items():
            cast.enroll(home, name, *roles)
        accounts = Accounts(home.path)
        for name, role in ACCOUNTS.items():
            accounts.add(name, role, PASSWORDS[name])
        rng = random.Random(7)
        corpus = [
            {"id": f"c{i}", "text": f"{prompt(rng.choice(TOPICS))} {rng.choice(HELPFUL if i % 2 else CURT)}"}
            for i in range(200)
        ]
        register(home, root, "chat", corpus)
        register(home, root, "prompts", [{"id": f"q{i}", "text": prompt(t)} for i, t in enumerate(TOPICS)])
        register(home, root, "likes", preference_rows(32, [REVIEWER, JUDGE]))
        base = _run(home, root, cast, "chat-base", "pretrain", "chat@1", PRETRAIN)
        base_digest = base.result.final.digest
        reward = _run(home, root, cast, "chat-reward", "reward", "likes@1", REWARD.format(checkpoint=base_digest))
        dpo_body = DPO.format(checkpoint=base_digest, reward=reward.result.digest)
        dpo = _run(home, root, cast, "chat-dpo", "dpo", "likes@1", dpo_body)
        prompts = DatasetRegistry(home).get("prompts@1")
        pairs = sample_pairs(home, base.run_id, prompts, SAMPLED, actor=TRAINER, seed=1, max_new_tokens=6)
        for pair in pairs:
            judge(home, pair.index, "a", [], cast.person(home, JUDGE))
        _, export_index, _ = export(home, base_digest, prompts, DatasetRef("chat-prefs", "1"), TRAINER)
        home.checkpoint()
        return PrefsHome(
            root / "home",
            base.run_id,
            base_digest,
            reward.run_id,
            reward.result.digest,
            dpo.run_id,
            tuple(p.index for p in pairs),
            export_index,
        )
    finally:
        home.close()


def base_home(factory, cast: Cast) -> PrefsHome:
    if "home" not in _BASE:
        _BASE["home"] = build(factory.mktemp("prefs-base"), cast)
    return _BASE["home"]


def copy_home(base: PrefsHome, target: Path) -> PrefsHome:
    shutil.copytree(base.path, target)
    return PrefsHome(target, *(getattr(base, f) for f in list(PrefsHome.__dataclass_fields__)[1:]))
