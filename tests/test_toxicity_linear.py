"""custody-linear, custody's own toxicity classifier: its pinned weights, determinism, quality.

The weights ship in custody/toxicity/data/ (trained by bench/toxicity_model.py on the Davidson
train part only). A copy whose bytes differ is refused with one line naming the file; the
held-out Davidson eval part (the same seeded split the bench uses) must keep ROC-AUC >= 0.9.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

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
    assert [s["set"] for s in scorer.describe()["trained_on"]] == ["davidson"]


def test_a_corrupted_copy_is_refused_in_one_line_naming_the_file(tmp_path):
    data = bytearray(WEIGHTS.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy = tmp_path / "custody-linear-v1.npz"
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


def test_roc_auc_on_the_held_out_davidson_part(scorer, shared_data):
    from sklearn.metrics import roc_auc_score

    spec = importlib.util.spec_from_file_location("toxicity_model", REPO / "bench" / "toxicity_model.py")
    sys.path.insert(0, str(REPO / "bench"))
    saved = dict(os.environ)  # the bench pins BLAS threads to 1 on import: not for the rest of the tests
    try:
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(REPO / "bench"))
        os.environ.clear()
        os.environ.update(saved)
    with open(shared_data / "toxicity_davidson_hate_offensive" / "data.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    train, held = bench.split(rows, bench.SETS["davidson"]["stratum"])
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    labels = [bench.SETS["davidson"]["toxic"](r) for r in held]
    auc = roc_auc_score(labels, scorer.probabilities([r["text"] for r in held]))
    assert auc >= 0.9


def test_the_toxicity_check_runs_custody_linear_when_named(home, tmp_path):
    """Chosen by name only (auto keeps profanity-check until the evaluation says otherwise); the
    check records the weights' digest as its model."""
    from custody.checks.toxicity import ToxicityCheck
    from custody.pipeline.run_check import run_check
    from custody.toxicity.scorers import ToxicitySettings, select_scorer
    from test_check_resume import register_shards

    assert select_scorer(ToxicitySettings(), home).scorer.name != "custody-linear"
    texts = ["have a lovely day, friend", "you stupid worthless idiot, shut up", "the meeting is at noon"]
    dataset = register_shards(home, tmp_path / "data", texts, shards=1)
    result = run_check(home, dataset, ToxicityCheck(settings=ToxicitySettings(scorer="custody-linear")))
    assert result.body["model_digest"] == SHA256
    summary = result.summary(home)
    assert summary["records"] == 3 and "custody-linear" in json.dumps(summary)
