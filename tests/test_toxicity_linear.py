"""custody-linear, custody's own toxicity classifier: its pinned weights, its record, when it is the default.

The weights ship in custody/toxicity/data/ with their card, the report of the governed run that
trained them (bench/toxicity_model.py runs pipelines/custody-linear.toml) and the key that
verifies it. A copy whose bytes differ is refused with one line naming the file; the report
verifies offline and names exactly these weights; the held-out Davidson records (the run's own
text-digest rule) keep ROC-AUC >= 0.9; `auto` takes custody-linear only when the shipped
evaluation says it beats profanity-check on every set.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from custody.toxicity import linear
from custody.toxicity.linear import SHA256, WEIGHTS, LinearScorer
from custody.toxicity.scorers import ChecksumError, Scorer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scorer() -> LinearScorer:
    return LinearScorer()


def test_the_shipped_weights_load_under_their_pinned_digest(scorer):
    assert isinstance(scorer, Scorer)
    assert scorer.digest == SHA256
    assert scorer.describe()["sha256"] == SHA256
    assert [s["dataset"] for s in scorer.describe()["trained_on"]] == ["davidson@1"]


def test_a_corrupted_copy_is_refused_in_one_line_naming_the_file(tmp_path):
    data = bytearray(WEIGHTS.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy = tmp_path / "custody-linear-v2.npz"
    copy.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as caught:
        LinearScorer(copy, SHA256)
    message = str(caught.value)
    assert str(copy) in message and "\n" not in message


def test_scores_are_deterministic_and_order_toxic_above_clean(scorer):
    clean = ["Thanks for the help with the report, see you on Monday.", "The weather is lovely today."]
    toxic = ["shut up you stupid bitch", "fuck you, you worthless piece of shit"]
    first = scorer.score_batch(clean + toxic)
    assert first == scorer.score_batch(clean + toxic) == scorer.score_batch(clean) + scorer.score_batch(toxic)
    scores = [row["toxicity"] for row in first]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores[:2]) < 0.5 < min(scores[2:])
    assert scorer.score_batch([]) == []


def test_roc_auc_on_the_held_out_davidson_records(scorer, shared_data):
    from sklearn.metrics import roc_auc_score

    from custody.datasets.readers import content_hash
    from custody.train.data import in_val_split

    fraction = scorer.config["held_out"]
    with open(shared_data / "toxicity_davidson_hate_offensive" / "data.jsonl", encoding="utf-8") as handle:
        held = [r for r in map(json.loads, handle) if in_val_split(content_hash(r["text"]), fraction)]
    [trained] = scorer.config["trained_on"]
    assert len(held) + trained["records"] == 12392  # the run trained on exactly the rest
    auc = roc_auc_score([int(r["toxic"]) for r in held], scorer.probabilities([r["text"] for r in held]))
    assert auc >= 0.9


def test_the_shipped_report_verifies_offline_and_names_these_weights():
    from custody.ledger.verifier import parse_verifier_key
    from custody.reports.verify import verify_report

    data = linear.REPORT.read_bytes()
    key = parse_verifier_key(linear.VERIFIER_KEY.read_text(encoding="utf-8").strip())
    result = verify_report(data, key)
    assert result.ok, result.problems
    report = json.loads(data)
    finished = report["run"]["finished"]
    assert finished["type"] == "run.finished/v2" and finished["model_digest"] == SHA256
    assert [d["ref"] for d in report["run"]["started"]["datasets"]] == ["davidson@1"]
    assert report["decision"]["result"]["decision"] == "allow"
    # the card cites the same entries the report proves, by index and leaf hash
    cited = re.findall(r"\| `([a-z.]+/v\d+)` \| (\d+) \| `([0-9a-f]{64})` \|", linear.CARD.read_text(encoding="utf-8"))
    anchored = {e["index"]: e["leaf_hash"] for e in report["anchors"]["entries"]}
    assert len(cited) >= 6 and {int(i): leaf for _, i, leaf in cited}.items() <= anchored.items()

    tampered = data.replace(SHA256.encode(), ("0" * 64).encode(), 1)
    assert not verify_report(tampered, key).ok


def test_the_default_switches_only_when_the_evaluation_says_so(monkeypatch, tmp_path):
    from custody.toxicity.scorers import ToxicitySettings, select_scorer

    shipped = json.loads(linear.EVALUATION.read_text(encoding="utf-8"))
    wins, why = linear.shipped_verdict()
    assert wins == (shipped["default"] == "custody-linear")
    chosen = select_scorer(ToxicitySettings())
    assert chosen.scorer.name == shipped["default"] and why in chosen.note

    winning = {
        **shipped,
        "sets": {n: {**row, "profanity-check": 0.5, "custody-linear": 0.9} for n, row in shipped["sets"].items()},
    }
    assert linear.default_verdict(winning) == (
        True,
        f"its ROC-AUC is at least profanity-check's on all {len(winning['sets'])} evaluation sets",
    )
    assert linear.default_verdict(winning, "f" * 64)[0] is False  # an evaluation of other weights
    losing = {**winning, "sets": {**winning["sets"], "ethos": {"custody-linear": 0.61, "profanity-check": 0.68}}}
    assert linear.default_verdict(losing) == (False, "it loses to profanity-check on ethos (ROC-AUC 0.61 < 0.68)")

    path = tmp_path / "eval.json"
    path.write_text(json.dumps(winning), encoding="utf-8")
    monkeypatch.setattr(linear, "EVALUATION", path)
    chosen = select_scorer(ToxicitySettings())
    assert chosen.scorer.name == "custody-linear" and "offline default" in chosen.note
    path.write_text("{not json", encoding="utf-8")
    assert select_scorer(ToxicitySettings()).scorer.name == "profanity-check"


def test_the_toxicity_check_runs_custody_linear_when_named(home, tmp_path):
    """Chosen by name; the check records the weights' digest as its model."""
    from custody.checks.toxicity import ToxicityCheck
    from custody.pipeline.run_check import run_check
    from custody.toxicity.scorers import ToxicitySettings
    from test_check_resume import register_shards

    texts = ["have a lovely day, friend", "you stupid worthless idiot, shut up", "the meeting is at noon"]
    dataset = register_shards(home, tmp_path / "data", texts, shards=1)
    result = run_check(home, dataset, ToxicityCheck(settings=ToxicitySettings(scorer="custody-linear")))
    assert result.body["model_digest"] == SHA256
    summary = result.summary(home)
    assert summary["records"] == 3 and "custody-linear" in json.dumps(summary)
