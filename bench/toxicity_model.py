"""custody's own toxicity classifier: trained as a governed custody run, then evaluated.

    python bench/toxicity_model.py [--shared ../shared/data] [--write-weights]
                                   [--json docs/figures/toxicity_model.json]

1. Register each labelled dev half in ../shared/data (Davidson, ETHOS, the Jigsaw sample) in a
   fresh home (keys from custody.testing.people.Cast; the admin binds policies/toxicity-model.toml
   to purpose `commercial`) with a card naming its real license, and label field `toxic`.
2. Ask custody whether a model custody ships may be trained on each: provenance and license
   checks, then the gate, one set at a time. A set the gate does not allow is dropped, never
   waived; the spec (pipelines/custody-linear.toml) must list exactly the allowed sets.
3. `custody run pipelines/custody-linear.toml`: checks, the gate on exactly those bytes, and the
   training (custody.runs.classifier), all in the ledger; records whose text SHA-256 falls under
   the spec's held_out fraction are never trained on. The run's report (JSON) is written and
   verified offline.
4. Evaluate on data the model never saw, against alt-profanity-check on the same texts in the
   same run, on one core (BLAS and OpenMP threads set to 1 before numpy loads): Davidson's
   held-out records (toxic vs not; hate vs neither), all of ETHOS and all of the Jigsaw sample
   (both denied, so never trained on). ROC-AUC, F1 at 0.5, docs/s. The offline default rule
   (custody.toxicity.linear.default_verdict) is applied to the result.

With --write-weights the weights, model card, run report, verifier key and evaluation go to
platform/custody/toxicity/data/ (only when the gate's allows equal the spec's datasets); without
it they stay in a temporary folder and only digests are reported (`pinned`: whether the weights
equal custody.toxicity.linear.SHA256: training is deterministic).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _meta import stamp  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared" / "data"
POLICY = REPO / "policies" / "toxicity-model.toml"
SPEC = REPO / "pipelines" / "custody-linear.toml"
THRESHOLD = 0.5
GOALS = {"ethos_roc_auc": 0.85, "davidson_roc_auc": 0.95, "docs_per_s_one_core": 5000}
JIGSAW_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")

# Each set: its folder, what makes a record toxic, and the card custody registers it with
# (licenses as each set's README states them).
SETS: dict[str, dict[str, Any]] = {
    "davidson": {
        "folder": "toxicity_davidson_hate_offensive",
        "toxic": lambda r: int(r["label"] in ("hate_speech", "offensive_language")),
        "license": "MIT",
        "sources": [
            (
                "Davidson et al. 2017, hate-speech-and-offensive-language (tweets labelled on CrowdFlower)",
                "https://github.com/t-davidson/hate-speech-and-offensive-language",
                "scraped",
                "MIT",
            )
        ],
        "title": "Davidson et al. (2017) hate speech and offensive language tweets",
    },
    "ethos": {
        "folder": "toxicity_ethos_binary",
        "toxic": lambda r: int(r["label"] == 1),
        "license": "GPL-3.0-only",
        "sources": [
            (
                "ETHOS binary hate speech dataset (YouTube and Reddit comments)",
                "https://github.com/intelligence-csd-auth-gr/Ethos-Hate-Speech-Dataset",
                "public",
                "GPL-3.0-only",
            )
        ],
        "title": "ETHOS binary hate speech (Mollas et al. 2022)",
    },
    "jigsaw": {
        "folder": "toxicity_jigsaw_sample",
        "toxic": lambda r: int(any(r[name] for name in JIGSAW_LABELS)),
        "license": "CC0-1.0 AND CC-BY-SA-3.0",
        "sources": [
            (
                "Jigsaw Toxic Comment Classification labels (Kaggle), sample from detoxify's test fixtures",
                "https://www.kaggle.com/c/jigsaw-toxic-comment-classification-challenge",
                "public",
                "CC0-1.0",
            ),
            (
                "Wikipedia talk page comments (the comment text)",
                "https://en.wikipedia.org/",
                "user",
                "CC-BY-SA-3.0",
            ),
        ],
        "title": "Jigsaw Toxic Comment Classification, small sample",
    },
}


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# What each set's README says about how it was collected (the default policy's card fields).
COLLECTION = {
    "davidson": ("tweets matching a hate-speech lexicon, labelled by CrowdFlower workers", "2017-01-01", "2017-03-31"),
    "ethos": ("YouTube and Reddit comments, labelled by Figure Eight workers", "2019-01-01", "2020-06-30"),
    "jigsaw": ("Wikipedia talk page comments, labelled by crowd raters", "2017-01-01", "2018-03-31"),
}


def card_text(name: str) -> str:
    """The set's card: everything provenance asks for, as far as the set's own README says it."""
    spec = SETS[name]
    sources = "".join(
        f'\n[[sources]]\nname = "{title}"\nuri = "{uri}"\nkind = "{kind}"\nlicense = "{license}"\n'
        f'retrieved_at = "2024-09-17"\n'  # when the shared data were split from the source commit
        for title, uri, kind, license in spec["sources"]
    )
    process, start, end = COLLECTION[name]
    return (
        f'[dataset]\ntitle = "{spec["title"]}"\nmodality = ["text"]\nlanguages = ["en"]\n{sources}\n'
        f'[collection]\nprocess = "{process}"\n'
        f'time_frame = {{ start = "{start}", end = "{end}" }}\n\n'
        '[personal_data]\npresent = "yes"\ncategories = ["user handles", "names of public figures"]\n\n'
        f'[license]\ndeclared = "{spec["license"]}"\n\n'
        '[use]\nintended = ["training custody\'s toxicity classifier"]\n'
        'out_of_scope = ["decisions about the people who wrote or are named in the texts"]\n\n'
        '[governance]\nowner = "custody maintainers"\nsteward = "custody maintainers"\n'
    )


def register_sets(home, rows: dict[str, list[dict]], folder: Path) -> dict[str, Any]:
    """Each set registered as NAME@1 with fields id, text and toxic (0/1)."""
    from custody.datasets.card import parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields
    from custody.datasets.registry import DatasetRegistry

    registered = {}
    for name, records in rows.items():
        shard = folder / f"{name}.jsonl"
        with open(shard, "w", encoding="utf-8") as handle:
            for row in records:
                handle.write(json.dumps({"id": str(row["id"]), "text": row["text"], "toxic": SETS[name]["toxic"](row)}))
                handle.write("\n")
        registered[name], _ = DatasetRegistry(home).register(
            [shard], DatasetRef(name, "1"), parse_card(card_text(name)), Fields(id="id")
        )
    return registered


def gate_sets(home, registered: dict[str, Any], admin) -> dict[str, Any]:
    """Provenance and license checks, then the gate, one set at a time: one decision per set."""
    from custody.checks.catalog import build_check
    from custody.pipeline.run_check import run_check
    from custody.policy.gate import run_gate

    out = {}
    for name, dataset in registered.items():
        for check in ("provenance", "license"):
            run_check(home, dataset, build_check(check))
        result = run_gate(home, [dataset], None, "commercial", actor=admin)
        out[name] = {
            "dataset": str(dataset.ref),
            "records": dataset.manifest.records,
            "declared_license": SETS[name]["license"],
            "source_licenses": [source[3] for source in SETS[name]["sources"]],
            "decision": result.decision.decision,
            "ledger_index": result.ledger_index,
            "reasons": [
                {"rule": r.rule, "outcome": r.outcome, "finding": r.finding, "message": r.message}
                for r in result.decision.reasons
            ],
        }
    return out


def eval_sets(rows: dict[str, list[dict]], held_out: float) -> dict[str, tuple[list[str], list[int], str]]:
    """What the model never saw: Davidson's held-out records (the run's own rule), all of the denied sets."""
    from custody.datasets.readers import content_hash
    from custody.train.data import in_val_split

    davidson = [r for r in rows["davidson"] if in_val_split(content_hash(r["text"]), held_out)]
    not_offensive = [r for r in davidson if r["label"] != "offensive_language"]
    return {
        "davidson": (
            [r["text"] for r in davidson],
            [SETS["davidson"]["toxic"](r) for r in davidson],
            "hate or offensive vs neither",
        ),
        "davidson-hate": (
            [r["text"] for r in not_offensive],
            [int(r["label"] == "hate_speech") for r in not_offensive],
            "hate_speech vs neither (offensive left out)",
        ),
        "ethos": (
            [r["text"] for r in rows["ethos"]],
            [SETS["ethos"]["toxic"](r) for r in rows["ethos"]],
            "label 1 (isHate >= 0.5)",
        ),
        "jigsaw": (
            [r["text"] for r in rows["jigsaw"]],
            [SETS["jigsaw"]["toxic"](r) for r in rows["jigsaw"]],
            "any of the 6 Jigsaw labels",
        ),
    }


def _timed(score, texts: list[str], repeats: int = 3) -> tuple[list[float], float]:
    """Scores, and docs/s: the best of `repeats` timed passes after one warm-up pass."""
    scores = [float(s) for s in score(texts)]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        score(texts)
        best = min(best, time.perf_counter() - started)
    return scores, len(texts) / best


def metrics(labels: list[int], scores: list[float]) -> dict[str, float | None]:
    from sklearn.metrics import f1_score, roc_auc_score

    return {
        "roc_auc": round(float(roc_auc_score(labels, scores)), 4) if len(set(labels)) == 2 else None,
        "f1": round(float(f1_score(labels, [int(s >= THRESHOLD) for s in scores], zero_division=0)), 4),
    }


EVALUATION_SECTION = """
## Evaluation against alt-profanity-check (data the model never saw)

Measured by `{command}` on {date} ({cpu}), one core, both scorers on the same texts in the same
run; raw figures in `docs/figures/toxicity_model.json`. ETHOS and the Jigsaw sample were denied
by the gate, so every record of theirs is unseen; Davidson's are its held-out records.

| evaluation set | records | ROC-AUC ours | ROC-AUC profanity-check | docs/s ours | docs/s profanity-check |
|---|---|---|---|---|---|
{rows}

Offline default: **{default}**. The rule (custody.toxicity.linear.default_verdict): custody-linear
becomes the offline default only when its ROC-AUC is at least profanity-check's on every set above.
{verdict}

## How the license question was decided

Each candidate set was registered with its real license and gated alone under
`policies/toxicity-model.toml` (purpose commercial: public-domain and permissive only):

| set | licenses | gate | ledger index |
|---|---|---|---|
{gate_rows}

A denied set was dropped, not waived. Verify this model's record offline with
`custody verify-report custody-linear-v2.report.json --key "$(cat custody-linear-v2.pub)"`.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--write-weights", action="store_true", help="write the model files into the package")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)

    from profanity_check import predict_prob

    from _meta import cpu_model
    from custody.policy.bindings import bind
    from custody.policy.schema import load_policy
    from custody.reports.build import build
    from custody.reports.verify import verify_report
    from custody.runs.spec import load_spec
    from custody.runs.trainers import run_spec
    from custody.testing.people import ADMIN, Cast
    from custody.toxicity import linear

    rows = {name: _jsonl(args.shared / spec["folder"] / "data.jsonl") for name, spec in SETS.items()}
    loaded_spec = load_spec(SPEC)
    work = Path(tempfile.mkdtemp(prefix="custody-tox-model-"))
    cast = Cast(work / "keys")
    home = cast.init_home(work / "home")
    try:
        cast.enroll(home, "trainer", "engineer")
        bind(home, "commercial", load_policy(str(POLICY)), cast.person(home, ADMIN))
        registered = register_sets(home, rows, work)
        gate = gate_sets(home, registered, cast.person(home, ADMIN))
        allowed = [name for name, result in gate.items() if result["decision"] == "allow"]
        for name, result in gate.items():
            why = "; ".join(r["message"] for r in result["reasons"]) or "no rule objected"
            print(f"  gate {name:<9} {result['declared_license']:<26} {result['decision']:<6} {why}")
        in_spec = sorted(item.ref.split("@")[0] for item in loaded_spec.spec.datasets)
        if in_spec != sorted(allowed):
            print(f"  {SPEC.name} lists {in_spec}, the gate allows {sorted(allowed)}: not training", file=sys.stderr)
            return 1

        outcome = run_spec(home, loaded_spec, actor=cast.person(home, "trainer"), say=lambda line: print(f"  {line}"))
        if outcome.exit_code != 0 or outcome.result is None:
            print(f"  the run did not train: {outcome.gate.decision.decision}", file=sys.stderr)
            return 1
        result = outcome.result
        report = build(home, outcome.run_id, "json", cast.person(home, "trainer"))
        verified = verify_report(report.data, home.verifier_key)
        if not verified.ok:
            print(f"  the run's report does not verify: {verified.problems}", file=sys.stderr)
            return 1
        verifier_key = str(home.verifier_key)
        entries = dict(outcome.entries)
    finally:
        home.close()

    scorer = linear.LinearScorer(result.weights, result.digest)
    held_out = loaded_spec.spec.classifier.held_out
    sets: dict[str, Any] = {}
    for name, (texts, labels, positive) in eval_sets(rows, held_out).items():
        ours, ours_rate = _timed(scorer.probabilities, texts)
        peer, peer_rate = _timed(predict_prob, texts)
        sets[name] = {
            "records": len(texts),
            "positives": sum(labels),
            "positive": positive,
            "seen_in_training": False,
            linear.NAME: {**metrics(labels, ours), "docs_per_s": round(ours_rate, 1)},
            "profanity-check": {**metrics(labels, peer), "docs_per_s": round(peer_rate, 1)},
        }
    evaluation = {
        "weights_sha256": result.digest,
        "rule": linear.DEFAULT_RULE,
        "sets": {
            name: {"records": row["records"], linear.NAME: row[linear.NAME]["roc_auc"],
                   "profanity-check": row["profanity-check"]["roc_auc"]}
            for name, row in sets.items()
        },
    }  # fmt: skip
    wins, verdict = linear.default_verdict(evaluation, result.digest)
    evaluation["default"] = linear.NAME if wins else "profanity-check"
    figures: dict[str, Any] = {
        "threshold": THRESHOLD,
        "goals": GOALS,
        "policy": {"path": str(POLICY.relative_to(REPO)), "purpose": "commercial"},
        "spec": {"path": str(SPEC.relative_to(REPO)), "sha256": loaded_spec.digest},
        "gate": gate,
        "allowed": allowed,
        "run": {
            "run_id": outcome.run_id,
            "entries": entries,
            "held_out_fraction": held_out,
            "held_out": result.held_out,
            "report_verified": verified.ok,
            "report_entries_proved": verified.entries_verified,
        },
        "model": {
            "name": linear.NAME,
            "features": linear.FEATURES,
            "sha256": result.digest,
            "bytes": result.weights.stat().st_size,
            "pinned": result.digest == linear.SHA256,
            "trained_on": scorer.config["trained_on"],
        },
        "sets": sets,
        "default": {"scorer": evaluation["default"], "verdict": verdict},
    }
    figures["goals_met"] = {
        "ethos_roc_auc": sets["ethos"][linear.NAME]["roc_auc"] >= GOALS["ethos_roc_auc"],
        "davidson_roc_auc": sets["davidson"][linear.NAME]["roc_auc"] >= GOALS["davidson_roc_auc"],
        "docs_per_s_one_core": sets["davidson"][linear.NAME]["docs_per_s"] >= GOALS["docs_per_s_one_core"],
    }

    print(f"\n  run {outcome.run_id}: weights sha256 {result.digest} (pinned: {figures['model']['pinned']})")
    print(f"  {'eval set':<14} {'records':>7} {'AUC ours':>9} {'AUC p-c':>8} {'docs/s ours':>12} {'docs/s p-c':>11}")
    for name, row in sets.items():
        a, b = row[linear.NAME], row["profanity-check"]
        print(
            f"  {name:<14} {row['records']:>7} {a['roc_auc']:>9} {b['roc_auc']:>8} "
            f"{a['docs_per_s']:>12,.0f} {b['docs_per_s']:>11,.0f}"
        )
    print(f"  offline default: {evaluation['default']} ({verdict})")
    print(f"  goals met: {figures['goals_met']}")

    document = stamp(figures)
    if args.write_weights:
        target = linear.WEIGHTS.parent
        shutil.copyfile(result.weights, linear.WEIGHTS)
        section = EVALUATION_SECTION.format(
            command=document["command"],
            date=document["date"],
            cpu=cpu_model(),
            rows="\n".join(
                f"| {name} ({row['positive']}) | {row['records']:,} | {row[linear.NAME]['roc_auc']} | "
                f"{row['profanity-check']['roc_auc']} | {row[linear.NAME]['docs_per_s']:,.0f} | "
                f"{row['profanity-check']['docs_per_s']:,.0f} |"
                for name, row in sets.items()
            ),
            default=evaluation["default"],
            verdict=verdict,
            gate_rows="\n".join(
                f"| {name} | {r['declared_license']} | {r['decision']}"
                + (f": {'; '.join(x['message'] for x in r['reasons'])}" if r["reasons"] else "")
                + f" | {r['ledger_index']} |"
                for name, r in gate.items()
            ),
        )
        card = result.card.read_text(encoding="utf-8") + section
        linear.CARD.write_text(card, encoding="utf-8")
        linear.REPORT.write_bytes(report.data)
        linear.VERIFIER_KEY.write_text(verifier_key + "\n", encoding="utf-8")
        linear.EVALUATION.write_text(json.dumps(evaluation, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"  model files written to {target.relative_to(REPO)}")
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"  figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
