"""custody's own toxicity classifier: which sets it may be trained on, training, and evaluation.

    python bench/toxicity_model.py [--shared ../shared/data] [--write-weights]
                                   [--json docs/figures/toxicity_model.json]

1. Split each labelled dev half in ../shared/data 80/20 (stratified, seed SEED): train / held-out
   eval. The model never sees an eval part.
2. Ask custody whether a model custody ships may be trained on each train part: register it in a
   throwaway home (keys from custody.testing.people.Cast) with a card naming its real license,
   run the provenance and license checks, and gate it under policies/toxicity-model.toml (bound
   to purpose `commercial` by the home's admin). A set the gate does not allow is dropped, never
   waived.
3. Train custody.toxicity.linear on the allowed train parts (label: toxic or not), and score
   every eval part with it and with alt-profanity-check in the same run, on one core (BLAS and
   OpenMP threads set to 1 before numpy loads; one process): ROC-AUC, F1 at 0.5, docs/s.

With --write-weights the weights and their model card go to platform/custody/toxicity/data/, and
only when every set trained on was allowed; otherwise they go to a temporary folder and only the
digest is reported (`pinned`: whether it equals custody.toxicity.linear.SHA256).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _meta import stamp  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared" / "data"
POLICY = REPO / "policies" / "toxicity-model.toml"
SEED = 20261127
EVAL_SHARE = 0.2
THRESHOLD = 0.5
GOALS = {"ethos_roc_auc": 0.85, "davidson_roc_auc": 0.95, "docs_per_s_one_core": 5000}
JIGSAW_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")

# Each set: its folder, what makes a record toxic, what the split is stratified by, and the card
# custody registers it with (licenses as each set's README states them).
SETS: dict[str, dict[str, Any]] = {
    "davidson": {
        "folder": "toxicity_davidson_hate_offensive",
        "toxic": lambda r: int(r["label"] in ("hate_speech", "offensive_language")),
        "stratum": lambda r: r["label"],
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
        "stratum": lambda r: r["label"],
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
        "stratum": lambda r: int(any(r[name] for name in JIGSAW_LABELS)),
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


def split(rows: list[dict], stratum, seed: int = SEED, share: float = EVAL_SHARE) -> tuple[list[dict], list[dict]]:
    """(train, eval): per stratum, records sorted by id, shuffled with `seed`, the first `share` to eval."""
    strata: dict[str, list[dict]] = {}
    for row in rows:
        strata.setdefault(str(stratum(row)), []).append(row)
    train, held = [], []
    for key in sorted(strata):
        group = sorted(strata[key], key=lambda r: str(r["id"]))
        random.Random(f"{seed}:{key}").shuffle(group)
        cut = round(len(group) * share)
        held += group[:cut]
        train += group[cut:]
    return train, held


def card_text(name: str) -> str:
    spec = SETS[name]
    sources = "".join(
        f'\n[[sources]]\nname = "{title}"\nuri = "{uri}"\nkind = "{kind}"\nlicense = "{license}"\n'
        for title, uri, kind, license in spec["sources"]
    )
    return (
        f'[dataset]\ntitle = "{spec["title"]}"\nmodality = ["text"]\nlanguages = ["en"]\n{sources}\n'
        f'[license]\ndeclared = "{spec["license"]}"\n\n'
        '[use]\nintended = ["training custody\'s toxicity classifier"]\n\n'
        '[governance]\nowner = "custody maintainers"\n'
    )


def gate_sets(train: dict[str, list[dict]]) -> dict[str, Any]:
    """Register each train part in a throwaway home, check it, gate it under POLICY: one decision per set."""
    from custody.checks.catalog import build_check
    from custody.datasets.card import parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields
    from custody.datasets.registry import DatasetRegistry
    from custody.pipeline.run_check import run_check
    from custody.policy.bindings import bind
    from custody.policy.gate import run_gate
    from custody.policy.schema import load_policy
    from custody.testing.people import ADMIN, Cast

    loaded = load_policy(str(POLICY))
    cast = Cast()
    out: dict[str, Any] = {
        "policy": {"path": str(POLICY.relative_to(REPO)), "name": loaded.policy.name, "sha256": loaded.digest},
        "purpose": loaded.policy.purpose,
        "sets": {},
    }
    with tempfile.TemporaryDirectory(prefix="custody-tox-model-") as tmp:
        home = cast.init_home(Path(tmp) / "home")
        try:
            bind(home, loaded.policy.purpose, loaded, cast.person(home, ADMIN))
            registry = DatasetRegistry(home)
            for name, rows in train.items():
                shard = Path(tmp) / f"{name}-train.jsonl"
                with open(shard, "w", encoding="utf-8") as handle:
                    for row in rows:
                        handle.write(json.dumps({"id": str(row["id"]), "text": row["text"]}) + "\n")
                dataset, _ = registry.register(
                    [shard], DatasetRef(f"{name}-train", "1"), parse_card(card_text(name)), Fields(id="id")
                )
                for check in ("provenance", "license"):
                    run_check(home, dataset, build_check(check))
                result = run_gate(home, [dataset], None, loaded.policy.purpose, actor=cast.person(home, ADMIN))
                out["sets"][name] = {
                    "dataset": str(dataset.ref),
                    "records": len(rows),
                    "declared_license": SETS[name]["license"],
                    "source_licenses": [source[3] for source in SETS[name]["sources"]],
                    "decision": result.decision.decision,
                    "recorded": result.recorded,
                    "reasons": [
                        {"rule": r.rule, "outcome": r.outcome, "finding": r.finding, "message": r.message}
                        for r in result.decision.reasons
                    ],
                }
        finally:
            home.close()
    return out


def eval_sets(held: dict[str, list[dict]]) -> dict[str, tuple[list[str], list[int], str]]:
    davidson = held["davidson"]
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
            [r["text"] for r in held["ethos"]],
            [SETS["ethos"]["toxic"](r) for r in held["ethos"]],
            "label 1 (isHate >= 0.5)",
        ),
        "jigsaw": (
            [r["text"] for r in held["jigsaw"]],
            [SETS["jigsaw"]["toxic"](r) for r in held["jigsaw"]],
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


MODEL_CARD = """# custody-linear v1: custody's own toxicity classifier (in progress)

Weights: `custody-linear-v1.npz`, SHA-256 `{sha256}` (pinned in `custody/toxicity/linear.py`).
Written by `{command}` on {date}; raw figures in `docs/figures/toxicity_model.json`.

## Model

Logistic regression (liblinear, C = {c}) over hashed features: word 1-2-grams and character 3-5-grams
(`char_wb`), 2^20 columns each, no vocabulary; HTML entities decoded, URLs, @mentions and "RT"
removed first; 1 + log tf, rows L2-normalised. {nonzero:,} non-zero weights. One output:
`toxicity`, a probability. English only.

## Data, and the license decision

Each set's dev half in the shared data was split 80/20 (stratified, seed {seed}); the model saw
only the 80% train parts of the sets custody's gate allowed under `policies/toxicity-model.toml`
(purpose commercial: public-domain and permissive licenses only, since the weights ship with
custody under Apache-2.0). A set the gate did not allow was dropped, not waived.

| set | licenses | gate | trained on |
|---|---|---|---|
{set_rows}

## Metrics (held-out 20% eval parts; alt-profanity-check on the same texts, same run)

| eval part | records | ROC-AUC custody-linear | ROC-AUC profanity-check |
|---|---|---|---|
{metric_rows}

Throughput on one core: {ours_rate:,.0f} docs/s (profanity-check {peer_rate:,.0f} docs/s) on the Davidson eval tweets.

## Intended use

Scoring text for toxicity (offensive language, slurs, abuse) in custody's toxicity check, as a
fast offline scorer; a first-pass filter and a review queue, not a final judge.

## Limitations

- Trained on {trained_records:,} English tweets from 2017 only: it learns offensive *words*; hate
  phrased politely (ETHOS) scores low (ROC-AUC above). It does not replace detoxify where that matters.
- The Davidson labels are one CrowdFlower majority vote; "offensive" covers casual slurs and
  swearing, so reclaimed or quoted use of a slur scores as toxic.
- The MIT license is the Davidson repository's; the tweets are third-party Twitter content.
- alt-profanity-check's own training data includes Davidson's tweets, so its Davidson figures
  may include tweets it was trained on.

## Bias

Sap et al. (2019) and Davidson et al. (2019) found that tweets in African-American English are
far more often labelled, and then predicted, offensive in this set; a model trained on its labels
inherits that. Identity terms that co-occur with slurs (e.g. "gay", "black") can raise a score on
their own. Check flagged records per group before using the scores to drop data.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--write-weights", action="store_true", help="write the weights into the package")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--c", type=float, default=10.0, help="inverse regularisation strength [10]")
    args = parser.parse_args(argv)

    import numpy as np
    from profanity_check import predict_prob

    from custody.toxicity import linear

    train: dict[str, list[dict]] = {}
    held: dict[str, list[dict]] = {}
    for name, spec in SETS.items():
        train[name], held[name] = split(_jsonl(args.shared / spec["folder"] / "data.jsonl"), spec["stratum"])
    gate = gate_sets(train)
    allowed = [name for name, result in gate["sets"].items() if result["decision"] == "allow"]
    for name, result in gate["sets"].items():
        why = "; ".join(r["message"] for r in result["reasons"]) or "no rule objected"
        print(f"  gate {name:<9} {result['declared_license']:<26} {result['decision']:<6} {why}")
    if not allowed:
        print("  no training set is allowed: nothing to train", file=sys.stderr)
        return 1

    texts = [r["text"] for name in allowed for r in train[name]]
    labels = [SETS[name]["toxic"](r) for name in allowed for r in train[name]]
    started = time.perf_counter()
    model = linear.fit(texts, labels, c=args.c)
    fit_s = time.perf_counter() - started
    trained_on = [{"set": name, "records": len(train[name]), "license": SETS[name]["license"]} for name in allowed]
    meta = {"trained_on": trained_on, "C": args.c, "seed": SEED, "eval_share": EVAL_SHARE}
    target = (
        linear.WEIGHTS if args.write_weights else Path(tempfile.mkdtemp(prefix="custody-linear-")) / linear.WEIGHTS.name
    )
    sha256 = linear.save(target, model["coef"], model["intercept"], meta)
    scorer = linear.LinearScorer(target, sha256)

    figures: dict[str, Any] = {
        "seed": SEED,
        "eval_share": EVAL_SHARE,
        "threshold": THRESHOLD,
        "goals": GOALS,
        "gate": gate,
        "allowed": allowed,
        "model": {
            "name": linear.NAME,
            "features": linear.FEATURES,
            "C": args.c,
            "train_records": len(texts),
            "train_positives": sum(labels),
            "trained_on": trained_on,
            "nonzero_weights": int(np.count_nonzero(model["coef"])),
            "fit_s": round(fit_s, 2),
            "sha256": sha256,
            "bytes": target.stat().st_size,
            "pinned": sha256 == linear.SHA256,
            "written": str(target.relative_to(REPO)) if args.write_weights else None,
        },
        "sets": {},
    }
    for name, (eval_texts, eval_labels, positive) in eval_sets(held).items():
        ours, ours_rate = _timed(scorer.probabilities, eval_texts)
        peer, peer_rate = _timed(predict_prob, eval_texts)
        figures["sets"][name] = {
            "records": len(eval_texts),
            "positives": sum(eval_labels),
            "positive": positive,
            "trained_on_its_train_part": name.split("-")[0] in allowed,
            linear.NAME: {**metrics(eval_labels, ours), "docs_per_s": round(ours_rate, 1)},
            "profanity-check": {**metrics(eval_labels, peer), "docs_per_s": round(peer_rate, 1)},
        }
    sets = figures["sets"]
    figures["goals_met"] = {
        "ethos_roc_auc": sets["ethos"][linear.NAME]["roc_auc"] >= GOALS["ethos_roc_auc"],
        "davidson_roc_auc": sets["davidson"][linear.NAME]["roc_auc"] >= GOALS["davidson_roc_auc"],
        "docs_per_s_one_core": sets["davidson"][linear.NAME]["docs_per_s"] >= GOALS["docs_per_s_one_core"],
    }

    print(f"\n  trained on {', '.join(allowed)}: {len(texts):,} records, {fit_s:.1f} s; sha256 {sha256}")
    print(f"  {'eval part':<14} {'records':>7} {'AUC ours':>9} {'AUC p-c':>8} {'docs/s ours':>12} {'docs/s p-c':>11}")
    for name, row in sets.items():
        a, b = row[linear.NAME], row["profanity-check"]
        print(
            f"  {name:<14} {row['records']:>7} {a['roc_auc']:>9} {b['roc_auc']:>8} "
            f"{a['docs_per_s']:>12,.0f} {b['docs_per_s']:>11,.0f}"
        )
    print(f"  goals met: {figures['goals_met']}")

    document = stamp(figures)
    if args.write_weights:
        set_rows = "\n".join(
            f"| {name} | {r['declared_license']} | {r['decision']}"
            + (f": {'; '.join(x['message'] for x in r['reasons'])}" if r["reasons"] else "")
            + f" | {'yes, ' + format(r['records'], ',') + ' records' if name in allowed else 'no'} |"
            for name, r in gate["sets"].items()
        )
        metric_rows = "\n".join(
            f"| {name} ({row['positive']}) | {row['records']} | {row[linear.NAME]['roc_auc']} | "
            f"{row['profanity-check']['roc_auc']} |"
            for name, row in sets.items()
        )
        card = MODEL_CARD.format(
            sha256=sha256,
            command=document["command"],
            date=document["date"],
            c=args.c,
            nonzero=figures["model"]["nonzero_weights"],
            seed=SEED,
            set_rows=set_rows,
            metric_rows=metric_rows,
            ours_rate=sets["davidson"][linear.NAME]["docs_per_s"],
            peer_rate=sets["davidson"]["profanity-check"]["docs_per_s"],
            trained_records=len(texts),
        )
        target.with_suffix(".md").write_text(card, encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"  figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
