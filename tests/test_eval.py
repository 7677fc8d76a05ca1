"""`custody eval`: each task shape scored against values computed by hand (token by token, with a
growing context) on a tiny governed run's model; `eval.completed` recorded for exactly those
weights; bad evaluation sets refused in one line with nothing recorded."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.evals.run_eval import EvalError, evaluate, evaluations_of, resolve
from custody.runs.spec import load_spec
from custody.runs.trainers import run_spec
from custody.train.checkpoint import load_checkpoint
from custody.train.tokenizer import load_tokenizer
from run_data import POLICY, SPEC, people_home, write
from train_support import register_shakespeare

LOSS_SET = [
    {"id": "l0", "text": "To be, or not to be", "slice": "verse"},
    {"id": "l1", "text": "First Citizen: Before we proceed", "slice": "prose"},
    {"id": "l2", "text": "What light through yonder window", "slice": "verse"},
]
MC_SET = [
    {"id": "m0", "text": "First Citizen:", "choices": [" Before we proceed", " zzqx qqq"], "answer": 0, "slice": "a"},
    {"id": "m1", "text": "All:", "choices": [" Speak, speak.", " xqz zq"], "answer": 0, "slice": "a"},
    {"id": "m2", "text": "You are all resolved", "choices": [" qzx", " rather to die"], "answer": 1, "slice": "b"},
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cast):
    root = tmp_path_factory.mktemp("eval")
    home = people_home(cast, root / "home")
    register_shakespeare(home, root, limit=400, shards=2)
    policy = write(root / "policy.toml", POLICY.format(approval=""))
    spec = write(root / "pretrain.toml", SPEC.format(name="tiny", kind="pretrain", policy=policy, extra=""))
    outcome = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    yield home, root, outcome
    home.close()


def register(home, root, name: str, rows: list[dict]):
    folder = root / name
    folder.mkdir(exist_ok=True)
    (folder / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    dataset, _ = DatasetRegistry(home).register(
        [folder], DatasetRef(name, "1"), parse_card(CARD_TEMPLATE), Fields(id="id")
    )
    return dataset


def model_and_tokenizer(home, digest: str):
    checkpoint = load_checkpoint(home.store.path_for(digest), digest)
    tokenizer_digest = checkpoint.state["meta"]["tokenizer_digest"]
    return checkpoint.build_model().eval(), load_tokenizer(home.store.path_for(tokenizer_digest), tokenizer_digest)


def next_token_log_probs(model, ids: list[int]) -> list[float]:
    """log P(ids[t+1] | ids[:t+1]) one position at a time: a separate path from the batched one."""
    out = []
    with torch.no_grad():
        for t in range(len(ids) - 1):
            logits, _ = model(torch.tensor([ids[: t + 1]]))
            out.append(float(F.log_softmax(logits[0, -1], dim=-1)[ids[t + 1]]))
    return out


def test_loss_per_slice_matches_a_hand_computation(trained):
    home, root, outcome = trained
    dataset = register(home, root, "loss-set", LOSS_SET)
    index, body = evaluate(home, outcome.run_id, dataset, actor="trainer")
    model, tokenizer = model_and_tokenizer(home, body["model_digest"])
    expected = {}
    for row in LOSS_SET:
        ids = [tokenizer.eot_id, *tokenizer.encode(row["text"])]
        assert len(ids) <= model.config.block_size + 1  # one window: the hand computation is exact
        for name in ("all", row["slice"]):
            nll, tokens = expected.get(name, (0.0, 0))
            expected[name] = (nll - sum(next_token_log_probs(model, ids)), tokens + len(ids) - 1)
    assert body["task"] == "loss" and set(body["results"]) == {"all", "prose", "verse"}
    for name, (nll, tokens) in expected.items():
        got = body["results"][name]
        assert got["tokens"] == tokens
        assert got["nll"] == pytest.approx(nll / tokens, abs=1e-5)
        assert got["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-4)
    assert body["results"]["verse"]["records"] == 2
    assert evaluations_of(home, body["model_digest"])[-1] == (index, body)
    assert body["emissions"]["energy_kwh"] >= 0 and body["run_id"] == outcome.run_id


def test_multiple_choice_matches_a_hand_computation(trained):
    home, root, _ = trained
    dataset = register(home, root, "mc-set", MC_SET)
    checkpoint = json.loads(next(iter(home.storage.entries(0, 100_000, type_prefix="run.checkpoint/"))).entry)["body"][
        "checkpoint_digest"
    ]
    _, body = evaluate(home, f"sha256:{checkpoint}", dataset, actor="trainer")
    assert body["model_digest"] == checkpoint and body["task"] == "multiple-choice"
    model, tokenizer = model_and_tokenizer_at(home, resolve(home, f"sha256:{checkpoint}"))
    right = {"all": 0, "a": 0, "b": 0}
    right_norm = dict(right)
    for row in MC_SET:
        context = [tokenizer.eot_id, *tokenizer.encode(row["text"])]
        scores = []
        for choice in row["choices"]:
            continuation = tokenizer.encode(choice)
            scores.append(sum(next_token_log_probs(model, context + continuation)[-len(continuation) :]))
        normalised = [s / len(c) for s, c in zip(scores, row["choices"], strict=True)]
        for name in ("all", row["slice"]):
            right[name] += scores.index(max(scores)) == row["answer"]
            right_norm[name] += normalised.index(max(normalised)) == row["answer"]
    for name, n in (("all", 3), ("a", 2), ("b", 1)):
        assert body["results"][name] == {
            "records": n,
            "accuracy": round(right[name] / n, 6),
            "accuracy_norm": round(right_norm[name] / n, 6),
        }


def model_and_tokenizer_at(home, weights):
    checkpoint = load_checkpoint(weights.path, weights.digest)
    tokenizer_digest = checkpoint.state["meta"]["tokenizer_digest"]
    return checkpoint.build_model().eval(), load_tokenizer(home.store.path_for(tokenizer_digest), tokenizer_digest)


@pytest.mark.parametrize(
    ("rows", "task", "message"),
    [
        ([{"id": "x", "text": "a", "choices": ["a", "b"], "answer": 2}], "auto", "'answer': 2 is out of range"),
        ([{"id": "x", "text": "a", "choices": ["a"], "answer": 0}], "auto", "'choices' must be a list of at least two"),
        ([{"id": "x", "text": "a", "choices": ["a", "b"], "answer": "0"}], "auto", "'answer' must be the index"),
        ([{"id": "x", "text": "a"}], "classification", "'label' is missing"),
        ([{"id": "x", "text": "a", "label": 3}], "auto", "'label' must be 0 or 1"),
        ([{"id": "x", "text": "a", "label": 1}], "auto", "has no classification head"),
        ([{"id": "x", "text": "a", "slice": ""}], "auto", "'slice' must be a non-empty string"),
    ],
)
def test_bad_evaluation_sets_are_refused_and_nothing_is_recorded(trained, rows, task, message):
    home, root, outcome = trained
    name = f"bad-{abs(hash(json.dumps(rows) + task)) % 10**8}"
    dataset = register(home, root, name, rows)
    size = home.ledger.size
    with pytest.raises(EvalError, match=message):
        evaluate(home, outcome.run_id, dataset, task=task, actor="trainer")
    assert home.ledger.size == size


def test_unknown_weights_and_changed_bytes_are_refused(trained):
    home, root, outcome = trained
    dataset = register(home, root, "loss-set-2", LOSS_SET)
    with pytest.raises(EvalError, match="no recorded run wrote"):
        evaluate(home, "sha256:" + "0" * 64, dataset)
    with pytest.raises(EvalError, match="neither a finished run"):
        evaluate(home, "no-such-run", dataset)
    weights = resolve(home, outcome.run_id)
    original = weights.path.read_bytes()
    weights.path.chmod(0o644)
    weights.path.write_bytes(original + b"tampered")
    try:
        with pytest.raises(EvalError, match="refusing to load it"):
            evaluate(home, outcome.run_id, dataset)
    finally:
        weights.path.write_bytes(original)


def test_the_cli_prints_the_table_and_exits_2_on_bad_input(trained, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, root, outcome = trained
    register(home, root, "cli-set", LOSS_SET)
    env = {"CUSTODY_KEY": str(cast.key_file("trainer"))}
    h = ["--home", str(home.path)]
    done = CliRunner().invoke(app, ["eval", outcome.run_id, "cli-set@1", *h], env=env)
    assert done.exit_code == 0, done.output
    assert "loss evaluation of sha256" in done.stdout and "perplexity" in done.stdout and "verse" in done.stdout
    done = CliRunner().invoke(app, ["eval", outcome.run_id, "cli-set@1", "--json", *h], env=env)
    assert json.loads(done.stdout)["results"]["all"]["records"] == 3
    size = home.ledger.size
    for args, says in (
        ([outcome.run_id, "nope@1"], "not registered"),
        ([outcome.run_id, "cli-set@1", "--task", "classification"], "'label' is missing"),
        (["sha256:" + "1" * 64, "cli-set@1"], "no recorded run wrote"),
    ):
        done = CliRunner().invoke(app, ["eval", *args, *h], env=env)
        assert done.exit_code == 2 and says in done.stderr, done.output
        assert len(done.stderr.strip().splitlines()) == 1
    assert home.ledger.size == size


RELEASE_POLICY = """\
schema = 1
name = "release-bar"
purpose = "research"

[release.evaluation]
explanation = "released only with a good enough loss on the held-out set"
require = [{{ evalset = "{evalset}", metric = "perplexity", at_most = {bound} }}]
"""


def test_a_release_needs_its_evaluation_within_the_bound(trained, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, root, outcome = trained
    dataset = register(home, root, "release-set", LOSS_SET)
    env = {"CUSTODY_KEY": str(cast.key_file("trainer"))}
    h = ["--home", str(home.path)]

    def release(evalset: str, bound: float):
        policy = write(root / f"bar-{evalset}-{bound}.toml", RELEASE_POLICY.format(evalset=evalset, bound=bound))
        done = CliRunner().invoke(app, ["release", outcome.run_id, "--policy", str(policy), "--json", *h], env=env)
        return done.exit_code, json.loads(done.stdout)

    code, result = release("release-set", 1e9)
    assert code == 3 and result["released_at"] is None
    [reason] = [r for r in result["reasons"] if r["rule"] == "release.evaluation"]
    assert "no evaluation on release-set is recorded" in reason["message"] and "custody eval" in reason["message"]
    _, body = evaluate(home, outcome.run_id, dataset, actor="trainer")
    perplexity = body["results"]["all"]["perplexity"]
    code, result = release("release-set", perplexity / 2)
    assert code == 3 and f"is {perplexity}; a release needs at most" in json.dumps(result["reasons"])
    code, result = release("release-set", perplexity * 2)
    assert code == 0, result["reasons"]
    released = json.loads(home.ledger.entry(result["released_at"]).entry)
    assert released["type"] == "model.released/v1" and released["subject"] == f"model:{body['model_digest']}"
    assert released["body"]["decision_index"] == result["ledger_index"]
    assert evaluations_of(home, body["model_digest"])[-1][0] in released["body"]["evaluations"]


def test_contamination_is_found_when_an_evaluation_set_was_trained_on_and_not_otherwise(trained):
    from custody.evalsets.contamination import measure
    from custody.evalsets.records import load_records
    from train_support import speeches

    home, root, _ = trained
    long_ones = [s for s in speeches(400) if len(s.split()) >= 40]
    leaked = [{"id": f"in{i}", "text": " ".join(long_ones[i * 7].split()[5:25]).upper()} for i in range(5)]
    clean = [
        {"id": f"out{i}", "text": f"entirely new words number {i} that no play of shakespeare holds anywhere here"}
        for i in range(5)
    ]
    short = [{"id": "short", "text": "to be or not"}]
    mixed = register(home, root, "mixed-eval", leaked[:2] + clean + short)
    fresh = register(home, root, "fresh-eval", clean)
    training = [DatasetRegistry(home).get("shakespeare@1")]
    sets = [(d, load_records(d, "loss")[1]) for d in (mixed, fresh)]
    first, second = measure(sets, training)
    assert sorted(first.contaminated) == ["in0", "in1"] and first.judged == 7 and first.records == 8
    assert second.contaminated == [] and second.as_json()["share"] == 0.0


def test_a_release_is_denied_when_its_evaluation_set_leaked(trained, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app
    from train_support import speeches

    home, root, outcome = trained
    long_ones = [s for s in speeches(400) if len(s.split()) >= 40]
    leaked = [{"id": f"leak{i}", "text": " ".join(long_ones[i * 11].split()[:25])} for i in range(4)]
    dataset = register(home, root, "leaky-set", leaked)
    evaluate(home, outcome.run_id, dataset, actor="trainer")
    text = RELEASE_POLICY.format(evalset="leaky-set", bound=1e9) + CONTAMINATION
    policy = write(root / "bar-leaky.toml", text)
    env = {"CUSTODY_KEY": str(cast.key_file("trainer"))}
    args = ["release", outcome.run_id, "--policy", str(policy), "--json", "--home", str(home.path)]
    done = CliRunner().invoke(app, args, env=env)
    assert done.exit_code == 3, done.output
    [reason] = [r for r in json.loads(done.stdout)["reasons"] if r["rule"] == "release.contamination"]
    assert reason["finding"].endswith("release.contamination:leaky-set@1")
    assert "4 of 4 records of leaky-set@1 share a run of 13 words" in reason["message"]
    measured = [
        json.loads(r.entry)["body"] for r in home.storage.entries(0, 100_000, type_prefix="eval.contamination/")
    ]
    assert {m["evalset"]: m["contaminated"] for m in measured}["leaky-set@1"] == 4


CONTAMINATION = """
[release.contamination]
explanation = "evaluation data must not be in the training data"
max_share = 0.0
"""


def test_the_run_report_shows_evaluations_and_overlap_and_verifies(trained, cast, tmp_path):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, _, outcome = trained
    env = {"CUSTODY_KEY": str(cast.key_file("trainer"))}
    out = tmp_path / "run.md"
    done = CliRunner().invoke(app, ["report", outcome.run_id, "--out", str(out), "--home", str(home.path)], env=env)
    assert done.exit_code == 0, done.output
    text = out.read_text(encoding="utf-8")
    assert "## Evaluations of the final model" in text and "loss-set@1" in text and "perplexity" in text
    assert "## Evaluation data in the training data" in text and "leaky-set@1" in text and "100.00%" in text
    pubkey = CliRunner().invoke(app, ["ledger", "pubkey", "--home", str(home.path)], env=env).stdout.strip()
    done = CliRunner().invoke(app, ["verify-report", str(out), "--key", pubkey])
    assert done.exit_code == 0, done.output


def test_a_run_spec_lists_evaluations_run_on_the_final_model(trained, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, root, _ = trained
    register(home, root, "spec-set", LOSS_SET)
    policy = write(root / "policy-spec.toml", POLICY.format(approval=""))
    extra = '\n[[evaluations]]\nevalset = "spec-set@1"\n'
    spec = write(root / "with-evals.toml", SPEC.format(name="tiny-evals", kind="pretrain", policy=policy, extra=extra))
    env = {"CUSTODY_KEY": str(cast.key_file("trainer"))}
    done = CliRunner().invoke(app, ["run", str(spec), "--json", "--home", str(home.path)], env=env)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    [evaluation] = result["evaluations"]
    assert evaluation["evalset"] == "spec-set@1" and evaluation["results"]["all"]["records"] == 3
    assert evaluations_of(home, result["model_digest"])[-1][0] == evaluation["ledger_index"]
    bad = write(
        root / "bad-evals.toml",
        SPEC.format(name="x", kind="pretrain", policy=policy, extra='\n[[evaluations]]\nevalset = "no at sign"\n'),
    )
    done = CliRunner().invoke(app, ["run", str(bad), "--home", str(home.path)], env=env)
    assert done.exit_code == 2 and "evaluations" in done.stderr
