"""RLHF under the gate: pairs sampled from a recorded model, judgements signed by reviewers on the
roster, their export to a preference dataset with lineage, a reward model (transfer learning with a
scalar head, Bradley-Terry) and DPO, each a governed run; bad preference data refused in one line.

The synthetic task has a known answer: a helpful reply ("glad to help") is preferred to a curt one
("not my problem"). A tiny model pretrained on both kinds of reply learns to say either."""

from __future__ import annotations

import json
import random

import pytest

from custody.datasets.names import DatasetRef
from custody.datasets.registry import DatasetRegistry
from custody.ledger import query
from custody.prefs.collect import PreferenceError, judge, pair_at, sample_pairs
from custody.prefs.export import decide, export
from custody.runs.preference_data import PreferenceDataError
from custody.runs.spec import load_spec
from custody.runs.trainers import run_spec
from custody.train.checkpoint import CheckpointError
from custody.trust.acting import NotPermitted
from prefs_data import SPEC_HEAD, preference_rows, prompt, register
from run_data import POLICY, people_home, write

TOPICS = ["the weather", "my order", "the train", "the meeting", "the garden", "the report", "my bill", "the music"]
HELPFUL = ["glad to help, here it is .", "thank you, happy to help .", "of course, glad to explain ."]
CURT = ["not my problem .", "go away, ask later .", "no idea, not my job ."]

PRETRAIN = """
[tokenizer]
vocab_size = 300

[model]
n_layer = 2
n_head = 2
n_embd = 48
block_size = 32

[training]
steps = 150
batch_size = 16
lr = 0.003
warmup = 10
eval_interval = 0
log_interval = 50
"""

REWARD = """
[reward]
checkpoint = "sha256:{checkpoint}"
add_blocks = 1
held_out = 0.25

[training]
steps = 60
batch_size = 16
lr = 0.003
warmup = 5
eval_interval = 0
"""

DPO = """
[dpo]
checkpoint = "sha256:{checkpoint}"
reward_model = "sha256:{reward}"
beta = 0.5
max_kl = {max_kl}
held_out = 0.25
eval_prompts = 6
samples_per_prompt = 4
max_new_tokens = 10

[training]
steps = 30
batch_size = 8
lr = 0.0002
warmup = 3
eval_interval = 10
"""


PREFERENCES_RULE = """
[training.preferences]
explanation = "whoever judged the pairs does not request the run"
min_reviewers = 1
separate_requester = true
"""


def run(home, root, cast, name: str, kind: str, dataset: str, body: str, who: str = "trainer", rules: str = ""):
    policy = write(root / f"{name}-policy.toml", POLICY.format(approval=rules))
    spec = write(root / f"{name}.toml", SPEC_HEAD.format(name=name, kind=kind, policy=policy, dataset=dataset) + body)
    return run_spec(home, load_spec(spec), actor=cast.person(home, who), say=lambda _: None)


@pytest.fixture(scope="module")
def world(tmp_path_factory, cast):
    root = tmp_path_factory.mktemp("rlhf")
    home = people_home(cast, root / "home")
    for name in ("rita", "ravi"):
        cast.enroll(home, name, "reviewer")
    rng = random.Random(7)
    corpus = [
        {"id": f"c{i}", "text": f"{prompt(rng.choice(TOPICS))} {rng.choice(HELPFUL if i % 2 else CURT)}"}
        for i in range(600)
    ]
    register(home, root, "chat", corpus)
    register(home, root, "prompts", [{"id": f"q{i}", "text": prompt(t)} for i, t in enumerate(TOPICS)])
    base = run(home, root, cast, "chat-base", "pretrain", "chat@1", PRETRAIN)
    assert base.exit_code == 0
    register(home, root, "likes", preference_rows(96, ["rita", "ravi"], TOPICS, HELPFUL, CURT))
    reward = run(
        home, root, cast, "chat-reward", "reward", "likes@1", REWARD.format(checkpoint=base.result.final.digest)
    )
    assert reward.exit_code == 0
    yield home, root, base, reward
    home.close()


def helpful(text: str) -> int:
    return sum(word in text for word in ("glad", "thank", "happy", "course"))


def test_pairs_are_judged_by_signed_reviewers_and_exported_with_lineage(world, cast):
    home, _root, base, _ = world
    registry = DatasetRegistry(home)
    prompts = registry.get("prompts@1")
    pairs = sample_pairs(home, base.run_id, prompts, 6, actor="trainer", seed=3, max_new_tokens=10)
    assert len(pairs) == 6 and all(p.model_digest == base.result.final.digest for p in pairs)
    assert pair_at(home, pairs[0].index).a == pairs[0].a
    for pair in pairs:
        for reviewer in ("rita", "ravi"):  # scripted reviewers: the more helpful completion wins
            score_a, score_b = helpful(pair.a), helpful(pair.b)
            choice = "tie" if score_a == score_b else ("a" if score_a > score_b else "b")
            judge(home, pair.index, choice, [], cast.person(home, reviewer))
    row = query.latest(home.storage, "prefs.judged/")
    who = home.attribute(row)
    assert who.kind == "person" and who.actor == "ravi" and who.key == cast.public("ravi").fingerprint
    with pytest.raises(PreferenceError, match="already judged"):
        judge(home, pairs[0].index, "a", [], cast.person(home, "rita"))
    with pytest.raises(NotPermitted):  # an engineer holds no reviewing role
        judge(home, pairs[0].index, "a", [], cast.person(home, "registrar"))
    decided = [p for p in pairs if decide(p, [(0, "x", {"choice": "a", "harmful": []}, "")])[0]]
    assert decided  # at least one pair can be decided
    judged = {p.index: helpful(p.a) != helpful(p.b) for p in pairs}
    if not any(judged.values()):  # every pair a tie: nothing to export, and the export says so
        with pytest.raises(PreferenceError, match="has a deciding judgement"):
            export(home, base.result.final.digest, prompts, DatasetRef("chat-prefs", "1"), "trainer")
        return
    dataset, index, body = export(home, base.result.final.digest, prompts, DatasetRef("chat-prefs", "1"), "trainer")
    assert body["model_digest"] == base.result.final.digest and body["run_id"] == base.run_id
    assert body["pairs"] == sum(judged.values()) and body["dropped"]["ties"] == 6 - body["pairs"]
    assert body["reviewers"] == ["ravi", "rita"]
    assert [p["dataset"] for p in dataset.parents] == ["prompts@1"]
    ancestors, _ = registry.lineage(dataset.ref)
    assert any(getattr(a, "ref", None) == prompts.ref for _, a in ancestors)
    records = [json.loads(line) for line in _shard_lines(dataset)]
    for record in records:
        assert helpful(record["chosen"]) > helpful(record["rejected"])
        assert record["reviewers"] == ["ravi", "rita"] and len(record["judgements"]) == 2
    exported = query.latest(home.storage, "prefs.exported/", "dataset:chat-prefs@1")
    assert exported.idx == index and f"sha256:{base.result.final.digest}" in query.envelope(exported)["refs"]


def _shard_lines(dataset):
    from custody.train.data import verified_records

    for _, record in verified_records(dataset, extra=("chosen", "rejected", "reviewers", "judgements")):
        yield json.dumps({"text": record.text, **(record.extra or {})})


def test_harm_flags_and_split_votes_decide_pairs():
    pair = None
    vote = lambda choice, harmful=(): (0, "r", {"choice": choice, "harmful": list(harmful)}, "")  # noqa: E731
    assert decide(pair, []) == (None, "unjudged")
    assert decide(pair, [vote("a"), vote("b")]) == (None, "ties")
    assert decide(pair, [vote("a"), vote("a"), vote("b")]) == ("a", None)
    assert decide(pair, [vote("a", ["a"])]) == ("b", None)  # a harmful completion is never chosen
    assert decide(pair, [vote("tie", ["a"]), vote("b", ["b"])]) == (None, "harmful_both")


def test_reward_model_ranks_held_out_preferences_far_better_than_chance(world):
    home, _, base, reward = world
    p = reward.result.outcome
    assert p["method"] == "bradley-terry" and p["pairs_held_out"] >= 10
    assert p["held_out_accuracy"] >= 0.9
    started = query.body(query.latest(home.storage, "run.started/", f"run:{reward.run_id}"))
    assert started["kind"] == "reward" and started["init_checkpoint_digest"] == base.result.final.digest
    finished = query.body(query.latest(home.storage, "run.finished/", f"run:{reward.run_id}"))
    assert finished["preference"]["held_out_accuracy"] == p["held_out_accuracy"]
    assert finished["model_digest"] == reward.result.digest
    from custody.evals.run_eval import EvalError, evaluate

    with pytest.raises(EvalError, match="trained a reward model"):
        evaluate(home, reward.run_id, DatasetRegistry(home).get("prompts@1"), actor="trainer")


def test_dpo_raises_the_reward_on_held_out_prompts_within_the_kl_bound(world, cast):
    home, root, base, reward = world
    body = DPO.format(checkpoint=base.result.final.digest, reward=reward.result.digest, max_kl=10.0)
    outcome = run(home, root, cast, "chat-dpo", "dpo", "likes@1", body)
    p = outcome.result.outcome
    assert p["reward_after"] > p["reward_before"]
    assert 0 <= p["kl"] <= p["max_kl"] and p["reference_digest"] == base.result.final.digest
    finished = query.body(query.latest(home.storage, "run.finished/", f"run:{outcome.run_id}"))
    assert finished["preference"]["reward_model_digest"] == reward.result.digest
    # A tight bound stops training at the last evaluation within it.
    tight = run(home, root, cast, "chat-dpo-tight", "dpo", "likes@1", body.replace("max_kl = 10.0", "max_kl = 0.001"))
    assert tight.result.outcome["stopped"] and tight.result.outcome["kl"] <= 0.001


def test_bad_preference_data_and_checkpoints_are_refused_before_training(world, cast):
    home, root, base, _reward = world
    register(home, root, "stranger-likes", preference_rows(12, ["mallory"], TOPICS, HELPFUL, CURT))
    body = REWARD.format(checkpoint=base.result.final.digest)
    with pytest.raises(PreferenceDataError, match="'mallory' is not on the roster"):
        run(home, root, cast, "stranger-reward", "reward", "stranger-likes@1", body)
    with pytest.raises(CheckpointError, match="not written by a reward run"):
        bad = DPO.format(checkpoint=base.result.final.digest, reward=base.result.final.digest, max_kl=5.0)
        run(home, root, cast, "bad-dpo", "dpo", "likes@1", bad)
    with pytest.raises(CheckpointError, match="not in this home's artifact store"):
        run(home, root, cast, "ghost-reward", "reward", "likes@1", REWARD.format(checkpoint="0" * 64))
    names = {query.body(r)["name"] for r in query.entries(home.storage, "run.started/")}
    assert not names & {"stranger-reward", "bad-dpo", "ghost-reward"}


def test_policy_refuses_a_run_requested_by_someone_who_judged_its_pairs(world, cast):
    home, root, base, _ = world
    register(
        home, root, "own-likes", preference_rows(24, ["trainer"], TOPICS, HELPFUL, CURT)
    )  # trainer approves, so reviews
    body = REWARD.format(checkpoint=base.result.final.digest)
    mine = run(home, root, cast, "own-reward", "reward", "own-likes@1", body, rules=PREFERENCES_RULE)
    assert mine.gate.decision.decision == "deny" and mine.run_id is None
    reasons = [r for r in mine.gate.decision.reasons if "training.preferences" in r.finding]
    assert reasons and "requested by trainer, who judged preference pairs" in reasons[0].message
    # The same rule lets a run through when the requester judged none of the pairs.
    theirs = run(home, root, cast, "their-reward", "reward", "likes@1", body, rules=PREFERENCES_RULE)
    assert theirs.gate.decision.decision == "allow" and theirs.result.outcome["reviewers"] == ["ravi", "rita"]


def test_the_cli_samples_shows_judges_and_exports_and_exits_2_on_bad_input(world, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, root, base, _ = world
    register(home, root, "cli-prompts", [{"id": f"k{i}", "text": prompt(t)} for i, t in enumerate(TOPICS[:3])])
    h = ["--home", str(home.path)]
    as_ = {name: {"CUSTODY_KEY": str(cast.key_file(name))} for name in ("trainer", "rita", "registrar")}
    done = CliRunner().invoke(
        app, ["prefs", "sample", base.run_id, "cli-prompts@1", "--pairs", "3", "--json", *h], env=as_["trainer"]
    )
    assert done.exit_code == 0, done.output
    pairs = [p["pair"] for p in json.loads(done.stdout)]
    shown = CliRunner().invoke(app, ["prefs", "show", str(pairs[0]), "--json", *h])
    assert json.loads(shown.stdout)["prompt"] == prompt(TOPICS[0])
    queue = json.loads(CliRunner().invoke(app, ["prefs", "pending", "--json", *h], env=as_["rita"]).stdout)
    assert set(pairs) <= {p["pair"] for p in queue}
    bad = write(root / "bad-judgements.jsonl", f'{{"pair": {pairs[0]}, "choice": "a"}}\n{{"pair": "x"}}\n')
    size = home.ledger.size
    done = CliRunner().invoke(app, ["prefs", "judge", "--file", str(bad), *h], env=as_["rita"])
    assert done.exit_code == 2 and "bad-judgements.jsonl:2: field 'pair'" in done.stderr, done.output
    assert home.ledger.size == size  # all or none
    good = write(root / "judgements.jsonl", "".join(f'{{"pair": {p}, "choice": "a"}}\n' for p in pairs))
    done = CliRunner().invoke(app, ["prefs", "judge", "--file", str(good), *h], env=as_["rita"])
    assert done.exit_code == 0 and "3 judgements from" in done.stdout, done.output
    assert json.loads(CliRunner().invoke(app, ["prefs", "pending", "--json", *h], env=as_["rita"]).stdout) == [
        p for p in queue if p["pair"] not in pairs
    ]
    size = home.ledger.size
    for args, env, says in (
        (["judge", str(pairs[0]), "--choice", "c"], "rita", "one of a, b or tie"),
        (["judge", str(pairs[0])], "rita", "give PAIR with --choice"),
        (["judge", str(pairs[0]), "--choice", "b"], "rita", "already judged"),
        (["judge", str(pairs[0]), "--choice", "b"], "registrar", "reviewer"),
        (["judge", "1", "--choice", "a"], "rita", "not a sampled preference pair"),
        (["judge", str(pairs[1]), "--choice", "a", "--harmful", "c"], "rita", "a or b"),
        (["sample", base.run_id, "nope@1"], "trainer", "not registered"),
        (["export", base.run_id, "cli-prompts@1", "--name", "bad name"], "trainer", "bad name"),
    ):
        done = CliRunner().invoke(app, ["prefs", *args, *h], env=as_[env])
        assert done.exit_code == 2 and says in done.stderr, (args, done.output)
        assert len(done.stderr.strip().splitlines()) == 1
    assert home.ledger.size == size
    done = CliRunner().invoke(
        app, ["prefs", "export", base.run_id, "cli-prompts@1", "--name", "cli-prefs@1", *h], env=as_["trainer"]
    )
    assert done.exit_code == 0 and "3 preference pairs judged by rita" in done.stdout, done.output
    listed = json.loads(CliRunner().invoke(app, ["prefs", "list", base.run_id, "--json", *h]).stdout)
    assert sum(1 for row in listed if row["prompts"] == "cli-prompts@1" and row["judgements"]) == 3
