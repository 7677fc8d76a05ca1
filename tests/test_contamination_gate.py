"""Contamination before training: `custody run` measures how much of each evaluation set its spec
lists the prepared training data holds (shared runs of 13 words), records it as
`eval.contamination/v2` (stage `before-training`), and the gate's `training.contamination` rule
denies a run whose evaluation data leaked; the run report shows the figure per evaluation set.
Real components throughout: a home, Tiny Shakespeare registered, the checks, the gate, a tiny run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.ledger import query
from custody.policy.rules import training_contamination
from custody.policy.schema import TrainingContamination
from run_data import POLICY, SPEC, people_home, write
from test_eval import register
from train_support import register_shakespeare, speeches

CONTAMINATION = """
[training.contamination]
explanation = "evaluation data must not be in the data a run trains on"
max_share = {max_share}
"""


def fresh(i: int) -> dict:
    return {"id": f"fresh{i}", "text": f"an utterly new sentence number {i} that no play of the bard has ever held"}


def leaked(i: int, prefix: str = "leak") -> dict:
    """Twenty words from inside a long speech of the training data, case changed."""
    long_ones = [s for s in speeches(300) if len(s.split()) >= 40]
    return {"id": f"{prefix}{i}", "text": " ".join(long_ones[i * 5].split()[10:30]).upper()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, cast):
    root = tmp_path_factory.mktemp("contamination")
    home = people_home(cast, root / "home")
    register_shakespeare(home, root, limit=300, shards=2)
    register(home, root, "planted", [leaked(i) for i in range(4)])
    register(home, root, "clean", [fresh(i) for i in range(4)])
    register(home, root, "partly", [leaked(0, "part"), *(fresh(i) for i in range(3))])
    register(home, root, "unlabelled", [fresh(i) for i in range(2)])
    yield home, root, {"CUSTODY_KEY": str(cast.key_file("trainer"))}
    home.close()


def run(setup, name: str, evaluations: list[tuple[str, str]], max_share: float = 0.0, json_out: bool = True):
    """`custody run` of a tiny spec listing these (evaluation set, task) pairs, under a policy with
    training.contamination at `max_share`."""
    home, root, env = setup
    policy = write(root / f"{name}-policy.toml", POLICY.format(approval="") + CONTAMINATION.format(max_share=max_share))
    extra = "".join(f'\n[[evaluations]]\nevalset = "{ref}"\ntask = "{task}"\n' for ref, task in evaluations)
    spec = write(root / f"{name}.toml", SPEC.format(name=name, kind="pretrain", policy=policy, extra=extra))
    args = ["run", str(spec), "--home", str(home.path), *(["--json"] if json_out else [])]
    return CliRunner().invoke(app, args, env=env)


def measured(home, subject: str) -> list[dict]:
    return [query.body(row) for row in query.entries(home.storage, "eval.contamination/", subject)]


def test_a_run_whose_evaluation_set_leaked_is_denied_before_it_starts(setup):
    home = setup[0]
    done = run(setup, "leaky", [("planted@1", "auto")])
    assert done.exit_code == 3, done.output
    result = json.loads(done.stdout)
    assert result["decision"] == "deny" and result["run_id"] is None
    [reason] = [r for r in result["reasons"] if r["rule"] == "training.contamination"]
    assert reason["finding"] == "run:leaky/training.contamination:planted@1"
    assert "4 of 4 records of planted@1 share a run of 13 words" in reason["message"]
    assert "100.00%, at most 0.00% allowed" in reason["message"]
    assert query.first(home.storage, "run.started/", "run:leaky") is None
    [body] = measured(home, "run:leaky")
    requested = query.latest(home.storage, "run.requested/", "run:leaky")
    assert body["stage"] == "before-training" and body["request_index"] == requested.idx
    assert (body["judged"], body["contaminated"], body["share"], body["ngram"]) == (4, 4, 1.0, 13)
    assert "model_digest" not in body
    assert [t["dataset"] for t in body["training"]] == [d["ref"] for d in result["datasets"]]
    # The gate judged the recorded figure: its input document holds it, and the decision cites its entry.
    decision = query.envelope(query.at(home.storage, result["decision_index"]))
    document = json.loads(home.store.read_bytes(decision["body"]["input"]["digest"]["sha256"]))
    [fact] = document["run"]["contamination"]
    assert fact["evalset"] == "planted@1" and fact["share"] == 1.0
    assert query.envelope(query.at(home.storage, fact["ledger_index"]))["type"] == "eval.contamination/v2"
    assert f"ledger:{fact['ledger_index']}" in decision["refs"]


def test_clean_evaluation_sets_let_the_run_train_and_the_report_shows_the_overlap(setup, tmp_path):
    home, _, env = setup
    done = run(setup, "clean", [("clean@1", "auto"), ("partly@1", "loss")], max_share=0.3)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert not [r for r in result["reasons"] if r["rule"] == "training.contamination"]
    figures = {b["evalset"]: (b["contaminated"], b["judged"]) for b in measured(home, "run:clean")}
    assert figures == {"clean@1": (0, 4), "partly@1": (1, 4)}
    # A release-time measurement of the old version (v1) is still read and shown beside them.
    run_id = result["run_id"]
    old = {
        "run_id": run_id,
        "model_digest": result["model_digest"],
        "evalset": "clean@1",
        "evalset_digest": measured(home, "run:clean")[0]["evalset_digest"],
        "training": measured(home, "run:clean")[0]["training"],
        "ngram": 13,
        "records": 4,
        "judged": 4,
        "contaminated": 0,
        "share": 0.0,
    }
    home.record("eval.contamination/v1", f"run:{run_id}", old, actor="trainer")
    out = tmp_path / "run.md"
    done = CliRunner().invoke(app, ["report", run_id, "--out", str(out), "--home", str(home.path)], env=env)
    assert done.exit_code == 0, done.output
    section = out.read_text(encoding="utf-8").split("## Evaluation data in the training data", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "@1" in line]
    assert any("clean@1" in r and "before training" in r and "0.00%" in r for r in rows), rows
    assert any("partly@1" in r and "before training" in r and "25.00%" in r for r in rows), rows
    assert any("clean@1" in r and "at release" in r for r in rows), rows
    pubkey = CliRunner().invoke(app, ["ledger", "pubkey", "--home", str(home.path)], env=env).stdout.strip()
    assert CliRunner().invoke(app, ["verify-report", str(out), "--key", pubkey]).exit_code == 0
    assert CliRunner().invoke(app, ["ledger", "verify", "--home", str(home.path)], env=env).exit_code == 0


@pytest.mark.parametrize(
    ("evaluation", "says"),
    [
        (("nope@1", "auto"), "dataset nope@1 is not registered"),
        (("unlabelled@1", "classification"), "field 'label' is missing"),
    ],
)
def test_a_bad_evaluation_set_is_refused_in_one_line_before_anything_is_recorded(setup, evaluation, says):
    home = setup[0]
    size = home.ledger.size
    done = run(setup, "bad-evals", [evaluation], json_out=False)
    assert done.exit_code == 2, done.output
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert home.ledger.size == size


def test_the_rule_judges_each_set_against_max_share_and_leaves_releases_alone():
    rule = TrainingContamination(explanation="no leaks", max_share=0.1)
    facts = [
        {"ledger_index": 7, "evalset": "a@1", "evalset_digest": "0" * 64, "ngram": 13, "judged": 10, "contaminated": 2,
         "share": 0.2},
        {"ledger_index": 8, "evalset": "b@1", "evalset_digest": "1" * 64, "ngram": 13, "judged": 10, "contaminated": 1,
         "share": 0.1},
    ]  # fmt: skip
    [violation] = training_contamination(rule, {"name": "r", "contamination": facts}, {})
    assert violation.qualifier == "a@1" and "2 of 10 records of a@1" in violation.message
    assert "ledger index 7" in violation.message and "at most 10.00% allowed" in violation.message
    assert training_contamination(rule, {"name": "r"}, {}) == []
    assert training_contamination(rule, {"name": "r", "contamination": facts, "release": {}}, {}) == []
