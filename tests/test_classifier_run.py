"""`custody run` with kind = 'classifier': custody trains its toxicity classifier under its own gate.

Labelled sets are registered with their real licenses and checked; the committed policy for a
model custody ships (policies/toxicity-model.toml) allows the MIT-licensed Davidson tweets and
denies the GPL-3.0 ETHOS comments, so a spec naming ETHOS trains nothing. An allowed run records
run.started/v2 and run.finished/v2 (weights digest, held-out scores), writes weights that load
under their digest, and a model card whose every cited entry is the ledger's, with the leaf hash
the run's offline-verifiable report proves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from custody.datasets.card import parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.runs.labelled import LabelError
from custody.runs.spec import SpecError, load_spec
from custody.runs.trainers import run_spec
from custody.toxicity.linear import LinearScorer
from run_data import write

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "policies" / "toxicity-model.toml"

CARD = """\
[dataset]
title = "{title}"
modality = ["text"]
languages = ["en"]

[[sources]]
name = "{title}"
uri = "{uri}"
kind = "public"
license = "{license}"

[license]
declared = "{license}"

[use]
intended = ["training custody's toxicity classifier"]

[governance]
owner = "custody maintainers"
"""

SPEC = """\
schema = 1
name = "{name}"
kind = "classifier"

[policy]
file = "{policy}"
{datasets}
[classifier]
label = "toxic"
c = 4.0
held_out = 0.25

[classifier.card]
title = "tiny toxicity classifier"
intended_use = "a test"
limitations = ["trained on 600 tweets"]
"""


def _register(home: Home, root: Path, name: str, rows: list[dict], license_: str, uri: str) -> None:
    shard = root / f"{name}.jsonl"
    with open(shard, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    card = parse_card(CARD.format(title=name, uri=uri, license=license_))
    DatasetRegistry(home).register([shard], DatasetRef(name, "1"), card, Fields(id="id"))


def _rows(folder: str, limit: int) -> list[dict]:
    with open(SHARED / folder / "data.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line, _ in zip(handle, range(limit), strict=False)]


def _spec(root: Path, name: str, datasets: list[tuple[str, str | None]]) -> Path:
    blocks = "".join(
        f'\n[[datasets]]\nref = "{ref}"\n' + (f'label = "{label}"\n' if label else "") for ref, label in datasets
    )
    return write(root / f"{name}.toml", SPEC.format(name=name, policy=POLICY, datasets=blocks))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cast):
    from custody.policy.bindings import bind
    from custody.policy.schema import load_policy

    root = tmp_path_factory.mktemp("classifier")
    home = cast.init_home(root / "home")
    cast.enroll(home, "trainer", "engineer")
    cast.enroll(home, "dashboard", "attestor")
    bind(home, "commercial", load_policy(str(POLICY)), cast.person(home, "admin"))
    davidson = _rows("toxicity_davidson_hate_offensive", 600)
    _register(
        home,
        root,
        "davidson",
        [{"id": r["id"], "text": r["text"], "toxic": r["toxic"]} for r in davidson],
        "MIT",
        "https://github.com/t-davidson/hate-speech-and-offensive-language",
    )
    ethos = _rows("toxicity_ethos_binary", 120)
    _register(
        home,
        root,
        "ethos",
        [{"id": r["id"], "text": r["text"], "label": r["label"]} for r in ethos],
        "GPL-3.0-only",
        "https://github.com/intelligence-csd-auth-gr/Ethos-Hate-Speech-Dataset",
    )
    _register(home, root, "unlabelled", [{"id": 1, "text": "fine", "toxic": "maybe"}], "MIT", "https://example.org")
    said: list[str] = []
    spec = _spec(root, "tiny-linear", [("davidson@1", None)])
    outcome = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=said.append)
    yield home, root, outcome, said
    home.close()


def _bodies(home: Home, prefix: str) -> list[dict]:
    return [json.loads(row.entry)["body"] for row in home.storage.entries(0, 100_000, type_prefix=prefix)]


def test_an_allowed_classifier_run_records_weights_and_held_out_scores(trained):
    home, _, outcome, said = trained
    assert outcome.exit_code == 0 and outcome.run_id, said
    started = home.storage.entries(0, 100_000, type_prefix="run.started/")[-1]
    assert started.type == "run.started/v2" and json.loads(started.entry)["body"]["kind"] == "classifier"
    finished = _bodies(home, "run.finished/")[-1]
    assert finished["status"] == "completed"
    assert finished["records_trained"] + finished["records_held_out"] == 600
    assert 100 < finished["records_held_out"] < 200  # about a quarter, chosen by text digest
    [held] = finished["held_out"]
    assert held["dataset"] == "davidson@1" and held["roc_auc"] > 0.8  # toxic tweets are easy to tell apart
    weights = outcome.result.weights
    assert finished["model_digest"] == outcome.result.digest
    assert home.store.verify(finished["model_digest"])
    scorer = LinearScorer(weights, finished["model_digest"])  # loads only under its recorded digest
    low, high = scorer.probabilities(["have a lovely day", "shut up you stupid bitch"])
    assert high > low + 0.1  # most of these tweets are toxic, so even a kind one starts high
    assert finished["emissions"]["energy_kwh"] > 0
    assert not home.ledger.verify().problems


def test_the_same_data_and_settings_give_the_same_weights(trained, cast):
    home, root, outcome, _ = trained
    spec = _spec(root, "tiny-linear-again", [("davidson@1", None)])
    again = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    assert again.result.digest == outcome.result.digest


def test_the_model_card_cites_the_ledger_entries_the_report_proves(trained, cast):
    from custody.reports.build import build
    from custody.reports.verify import verify_report

    home, _, outcome, _ = trained
    card = outcome.result.card.read_text(encoding="utf-8")
    cited = re.findall(r"\| `([a-z.]+/v\d+)` \| (\d+) \| `([0-9a-f]{64})` \|", card)
    types = [t for t, _, _ in cited]
    assert types[0] == "run.requested/v1" and types[-2:] == ["run.started/v2", "run.finished/v2"]
    assert any(t.startswith("dataset.registered/") for t in types) and any(
        t.startswith("policy.decision/") for t in types
    )
    assert sum(t.startswith("check.completed/") for t in types) >= 2  # provenance and license at least
    for entry_type, index, leaf in cited:
        row = home.ledger.entry(int(index))
        assert (row.type, row.leaf_hash.hex()) == (entry_type, leaf)
    assert outcome.result.digest in card and "MIT" in card and "trained on 600 tweets" in card

    built = build(home, outcome.run_id, "json", cast.person(home, "trainer"))
    result = verify_report(built.data, home.verifier_key)
    assert result.ok, result.problems
    for fmt in ("md", "html"):
        rendered = build(home, outcome.run_id, fmt, cast.person(home, "trainer")).data.decode()
        assert "Scores on held-out records" in rendered and "requested" in rendered
    anchored = {e["index"]: e["leaf_hash"] for e in json.loads(built.data)["anchors"]["entries"]}
    assert {int(i): leaf for _, i, leaf in cited}.items() <= anchored.items()  # every cited entry is proved


def test_a_set_whose_license_the_policy_denies_trains_nothing(trained, cast):
    home, root, _, _ = trained
    before = len(_bodies(home, "run.started/"))
    spec = _spec(root, "with-ethos", [("davidson@1", None), ("ethos@1", "label")])
    outcome = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    assert outcome.gate.decision.decision == "deny" and outcome.exit_code == 3
    assert any("ethos@1" in r.subject and "GPL" in r.message for r in outcome.gate.decision.reasons), [
        r.as_json() for r in outcome.gate.decision.reasons
    ]
    assert len(_bodies(home, "run.started/")) == before


def test_a_record_without_a_yes_no_label_stops_before_training(trained, cast):
    home, root, _, _ = trained
    before = len(_bodies(home, "run.started/"))
    spec = _spec(root, "bad-label", [("unlabelled@1", None)])
    with pytest.raises(LabelError, match=r"unlabelled@1: unlabelled\.jsonl:1: field 'toxic' must be true/false"):
        run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    assert len(_bodies(home, "run.started/")) == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[model]\nn_layer = 2\n", r"\[model\] is for language-model runs"),
        ("", None),
    ],
)
def test_a_classifier_spec_refuses_language_model_tables(tmp_path, extra, message):
    text = SPEC.format(name="x", policy=POLICY, datasets='\n[[datasets]]\nref = "d@1"\n') + extra
    path = write(tmp_path / "x.toml", text)
    if message is None:
        assert load_spec(path).spec.kind == "classifier"
    else:
        with pytest.raises(SpecError, match=message):
            load_spec(path)


def test_label_is_only_for_classifier_specs(tmp_path):
    text = 'schema = 1\nname = "p"\n[policy]\npurpose = "research"\n[[datasets]]\nref = "d@1"\nlabel = "toxic"\n'
    with pytest.raises(SpecError, match="only for kind = 'classifier'"):
        load_spec(write(tmp_path / "p.toml", text))


def test_cli_runs_a_classifier_spec_and_names_a_bad_label_in_one_line(trained, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, root, _, _ = trained
    env = {"CUSTODY_KEY": str(cast.key_file("trainer"))}
    spec = _spec(root, "cli-linear", [("davidson@1", None)])
    done = CliRunner().invoke(app, ["run", str(spec), "--json", "--home", str(home.path)], env=env)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["held_out"][0]["dataset"] == "davidson@1" and Path(result["model_card"]).is_file()
    assert home.store.verify(result["model_digest"])

    bad = _spec(root, "cli-bad", [("unlabelled@1", None)])
    done = CliRunner().invoke(app, ["run", str(bad), "--home", str(home.path)], env=env)
    assert done.exit_code == 2
    [line] = done.stderr.strip().splitlines()
    assert "unlabelled@1: unlabelled.jsonl:1: field 'toxic'" in line


def test_the_committed_spec_trains_only_what_the_gate_allows_custody_to_ship():
    loaded = load_spec(REPO / "pipelines" / "custody-linear.toml")
    spec = loaded.spec
    assert spec.kind == "classifier" and spec.policy.file == "toxicity-model"
    assert [(d.ref, spec.label_for(d)) for d in spec.datasets] == [("davidson@1", "toxic")]
    assert spec.classifier.card.limitations and spec.classifier.card.bias and spec.classifier.card.intended_use


def test_the_dashboard_shows_a_classifier_runs_held_out_scores(trained, cast, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from custody.views.identity import DASHBOARD_KEY_ENV

    home, _, outcome, _ = trained
    monkeypatch.setenv(DASHBOARD_KEY_ENV, str(cast.key_file("dashboard")))
    monkeypatch.setenv("CUSTODY_HOME", str(home.path))
    at = AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/runs.py").run()
    at.selectbox(key="runs_selected").set_value(outcome.run_id).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Scores on held-out records" in [h.value for h in at.subheader]
    frames = [f.value for f in at.dataframe]
    held = next(f for f in frames if "ROC-AUC" in f.columns)
    assert list(held["dataset"]) == ["davidson@1"] and float(held["ROC-AUC"][0]) > 0.8


def test_custody_eval_scores_a_classifier_run_on_a_labelled_set(trained):
    from sklearn.metrics import f1_score, roc_auc_score

    from custody.evals.run_eval import EvalError, evaluate, resolve
    from custody.toxicity.linear import LinearScorer

    home, _, outcome, _ = trained
    ethos = DatasetRegistry(home).get("ethos@1")
    _, body = evaluate(home, outcome.run_id, ethos, actor="trainer")
    assert body["task"] == "classification" and body["records"] == 120
    weights = resolve(home, outcome.run_id)
    rows = [r for _, r in ethos.records()]
    labels = [
        int(json.loads(line)["label"])
        for line in (Path(ethos.shard_path(ethos.manifest.shards[0]))).read_text().splitlines()
    ]
    probabilities = LinearScorer(weights.path, weights.digest).probabilities([r.text for r in rows])
    predicted = [int(p >= 0.5) for p in probabilities]
    assert body["results"]["all"] == {
        "records": 120,
        "positives": sum(labels),
        "accuracy": round(sum(a == b for a, b in zip(labels, predicted, strict=True)) / 120, 6),
        "f1": round(float(f1_score(labels, predicted, zero_division=0)), 6),
        "roc_auc": round(float(roc_auc_score(labels, probabilities)), 6) if 0 < sum(labels) < 120 else None,
    }
    with pytest.raises(EvalError, match="trained a classifier: it answers classification sets, not loss"):
        evaluate(home, outcome.run_id, ethos, task="loss")
