"""Toxicity quality benchmark: ROC-AUC and F1 of each available scorer on the shared toxicity sets.

    python bench/quality_toxicity.py [--shared ../shared/data] [--threshold 0.5] [--limit N]
                                     [--scale N ...] [--json bench/out/quality_toxicity.json]

Scorers: profanity-check always; detoxify too when a local checkpoint is configured through
CUSTODY_DETOXIFY_CHECKPOINT, CUSTODY_DETOXIFY_HF_CONFIG and CUSTODY_DETOXIFY_SHA256 (nothing is
downloaded). Each text's score is what the toxicity check records: the highest category
probability. F1 is at the configured threshold (CUSTODY_TOXICITY_THRESHOLD, default 0.5, or
--threshold).

Sets (the dev halves in ../shared/data) and what counts as positive:
- davidson: `hate_speech` or `offensive_language` (the set's `toxic` flag); davidson-hate:
  `hate_speech` only, against both other classes;
- ethos: `label` 1 (isHate >= 0.5);
- jigsaw: any of toxic, severe_toxic, obscene, threat, insult, identity_hate.

Peers, measured in the same run on the same texts: a keyword list (the 100 words with the
largest weights in profanity-check's own linear model; score = share of a text's words on the
list, positive when any is), and the majority class (ROC-AUC 0.5 by construction).
`toxicity_quality()` returns the figures as a dict (bench/quality.py imports it). With --scale N,
the whole check also runs through run_check on N records (davidson tweets, repeated) in a
temporary home: docs/s and resident memory before and at peak, to show memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _meta import stamp

DEFAULT_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
JIGSAW_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
KEYWORDS = 100
SETS = {
    "davidson": "hate_speech or offensive_language",
    "davidson-hate": "hate_speech (against offensive_language and neither)",
    "ethos": "label 1 (isHate >= 0.5)",
    "jigsaw": "any of the 6 Jigsaw labels",
}
_WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern, as profanity-check uses


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_sets(shared: Path, limit: int | None = None) -> dict[str, tuple[list[str], list[int]]]:
    """{set: (texts, 0/1 labels)}; with `limit`, a seeded random sample of each."""
    davidson = _jsonl(shared / "toxicity_davidson_hate_offensive" / "data.jsonl")
    ethos = _jsonl(shared / "toxicity_ethos_binary" / "data.jsonl")
    jigsaw = _jsonl(shared / "toxicity_jigsaw_sample" / "data.jsonl")
    sets = {
        "davidson": (davidson, lambda r: int(r["label"] in ("hate_speech", "offensive_language"))),
        "davidson-hate": (davidson, lambda r: int(r["label"] == "hate_speech")),
        "ethos": (ethos, lambda r: int(r["label"] == 1)),
        "jigsaw": (jigsaw, lambda r: int(any(r[name] for name in JIGSAW_LABELS))),
    }
    out = {}
    for name, (rows, positive) in sets.items():
        if limit is not None and len(rows) > limit:
            rows = random.Random(20261126).sample(rows, limit)
        out[name] = ([r["text"] for r in rows], [positive(r) for r in rows])
    return out


def metrics(labels: list[int], scores: list[float], predicted: list[int]) -> dict[str, float | None]:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    both = len(set(labels)) == 2
    return {
        "roc_auc": round(float(roc_auc_score(labels, scores)), 4) if both else None,
        "f1": round(float(f1_score(labels, predicted, zero_division=0)), 4),
        "precision": round(float(precision_score(labels, predicted, zero_division=0)), 4),
        "recall": round(float(recall_score(labels, predicted, zero_division=0)), 4),
    }


# ---------------------------------------------------------------------------------------------
# scorers and peers


def available_scorers(threshold: float) -> list[Any]:
    """profanity-check, and detoxify when a local checkpoint is configured in the environment."""
    from custody.toxicity import DetoxifyScorer, ProfanityScorer

    scorers: list[Any] = [ProfanityScorer()]
    checkpoint = os.environ.get("CUSTODY_DETOXIFY_CHECKPOINT")
    hf_config = os.environ.get("CUSTODY_DETOXIFY_HF_CONFIG")
    sha256 = os.environ.get("CUSTODY_DETOXIFY_SHA256")
    if checkpoint and hf_config and sha256:
        batch = int(os.environ.get("CUSTODY_TOXICITY_BATCH_SIZE", "32"))
        scorers.append(DetoxifyScorer(checkpoint, sha256, hf_config, batch_size=batch))
    return scorers


def profanity_keywords(count: int = KEYWORDS) -> set[str]:
    """The words profanity-check's linear model weighs most towards 'profane' (averaged over folds)."""
    import numpy as np
    from profanity_check import profanity_check as module

    coefs = np.mean([c.estimator.coef_[0] for c in module.model.calibrated_classifiers_], axis=0)
    vocabulary = module.vectorizer.get_feature_names_out()
    return {str(vocabulary[i]) for i in np.argsort(coefs)[::-1][:count]}


def keyword_scores(texts: list[str], keywords: set[str]) -> tuple[list[float], list[int]]:
    shares, hits = [], []
    for text in texts:
        words = _WORD.findall(text.lower())
        found = sum(1 for word in words if word in keywords)
        shares.append(found / len(words) if words else 0.0)
        hits.append(int(found > 0))
    return shares, hits


def _score(scorer: Any, texts: list[str], batch: int = 256) -> tuple[list[float], float]:
    scores: list[float] = []
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        todo = [t if t.strip() else "" for t in chunk]
        for text, row in zip(todo, scorer.score_batch(todo), strict=True):
            scores.append(max(row.values()) if text else 0.0)
    return scores, time.perf_counter() - started


def _ratio(ours: float | None, peer: float | None) -> float | None:
    if ours is None or peer is None or peer == 0:
        return None
    return round(ours / peer, 2)


def toxicity_quality(shared: Path | None = None, threshold: float | None = None, limit: int | None = None) -> dict:
    """Every figure of this benchmark, as a dict."""
    from custody.toxicity import ToxicitySettings

    shared = Path(shared or DEFAULT_SHARED)
    threshold = ToxicitySettings.load(threshold=threshold).threshold
    sets = load_sets(shared, limit)
    started = time.perf_counter()
    scorers = available_scorers(threshold)
    load_s = time.perf_counter() - started
    figures: dict[str, Any] = {
        "threshold": threshold,
        "limit": limit,
        "sets": {
            name: {"records": len(labels), "positives": sum(labels), "positive": SETS[name]}
            for name, (_, labels) in sets.items()
        },
        "scorers": {},
        "peers": {},
        "ratios": {},
        "scorer_load_s": round(load_s, 2),
    }
    for scorer in scorers:
        entry: dict[str, Any] = {"digest": scorer.digest, "categories": list(scorer.categories), "sets": {}}
        if scorer.name == "detoxify":
            entry["device"] = scorer.device
        for name, (texts, labels) in sets.items():
            scores, seconds = _score(scorer, texts)
            result = metrics(labels, scores, [int(s >= threshold) for s in scores])
            result["docs_per_s"] = round(len(texts) / seconds, 1) if seconds > 0 else None
            entry["sets"][name] = result
        figures["scorers"][scorer.name] = entry

    keywords = profanity_keywords()
    figures["peers"]["keywords"] = {"words": len(keywords), "sets": {}}
    figures["peers"]["majority"] = {"sets": {}}
    for name, (texts, labels) in sets.items():
        started = time.perf_counter()
        shares, hits = keyword_scores(texts, keywords)
        seconds = time.perf_counter() - started
        result = metrics(labels, shares, hits)
        result["docs_per_s"] = round(len(texts) / seconds, 1) if seconds > 0 else None
        figures["peers"]["keywords"]["sets"][name] = result
        majority = int(sum(labels) * 2 > len(labels))
        figures["peers"]["majority"]["sets"][name] = {
            **metrics(labels, [0.5] * len(labels), [majority] * len(labels)),
            "predicts": majority,
        }
    for scorer_name, entry in figures["scorers"].items():
        for peer in ("keywords", "majority"):
            figures["ratios"][f"{scorer_name}/{peer}"] = {
                name: {
                    metric: _ratio(result[metric], figures["peers"][peer]["sets"][name][metric])
                    for metric in ("roc_auc", "f1")
                }
                for name, result in entry["sets"].items()
            }
    return figures


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def check_at_scale(shared: Path | None = None, records: int = 100_000, shards: int = 4) -> dict:
    """The whole check (profanity-check) via run_check on `records` davidson tweets, repeated, in `shards`.

    Memory: resident size before the run and its peak during it (sampled every 0.05 s).
    """
    import tempfile
    import threading

    from custody.checks.toxicity import ToxicityCheck
    from custody.datasets.card import CARD_TEMPLATE, parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields
    from custody.datasets.registry import DatasetRegistry
    from custody.home import Home
    from custody.pipeline.run_check import run_check
    from custody.toxicity import ToxicitySettings

    shared = Path(shared or DEFAULT_SHARED)
    texts = [r["text"] for r in _jsonl(shared / "toxicity_davidson_hate_offensive" / "data.jsonl")]
    with tempfile.TemporaryDirectory(prefix="custody-tox-scale-") as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        per_shard = -(-records // shards)
        for shard in range(shards):
            with open(folder / f"part-{shard:03d}.jsonl", "w", encoding="utf-8") as out:
                for i in range(shard * per_shard, min(records, (shard + 1) * per_shard)):
                    out.write(json.dumps({"id": i, "text": texts[i % len(texts)]}) + "\n")
        home = Home.init(Path(tmp) / "home", actor="bench")
        try:
            dataset, _ = DatasetRegistry(home).register(
                [folder], DatasetRef("scale", "1"), parse_card(CARD_TEMPLATE), Fields(id="id"), actor="bench"
            )
            check = ToxicityCheck(settings=ToxicitySettings(scorer="profanity-check"))
            check.config()  # load the scorer before timing
            before = _rss_mib()
            peak = [before]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.05):
                    peak[0] = max(peak[0], _rss_mib())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            result = run_check(home, dataset, check, actor="bench")
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
        finally:
            home.close()
    return {
        "records": result.records,
        "shards": shards,
        "seconds": round(seconds, 2),
        "docs_per_s": round(result.records / seconds, 1),
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(max(peak[0], _rss_mib()), 1),
    }


def print_report(figures: dict) -> None:
    threshold = figures["threshold"]
    print(f"Toxicity quality (score = max category probability; F1 at threshold {threshold})\n")
    for name, info in figures["sets"].items():
        print(f"  {name:<14} {info['records']:>6} records, {info['positives']:>6} positive ({info['positive']})")
    rows = [(scorer, entry["sets"]) for scorer, entry in figures["scorers"].items()]
    rows += [(f"peer: {peer}", entry["sets"]) for peer, entry in figures["peers"].items()]
    header = f"\n  {'scorer':<22} {'set':<14} {'ROC-AUC':>8} {'F1':>7} {'prec':>7} {'recall':>7} {'docs/s':>10}"
    print(header)
    print("  " + "-" * (len(header) - 3))

    def fmt(value, spec):
        return format(value, spec) if value is not None else "-"

    def times(ratio):
        return f"{ratio:.2f}x" if ratio is not None else "n/a"

    for scorer, per_set in rows:
        for name, r in per_set.items():
            print(
                f"  {scorer:<22} {name:<14} {fmt(r['roc_auc'], '8.4f'):>8} {fmt(r['f1'], '7.4f'):>7} "
                f"{fmt(r['precision'], '7.4f'):>7} {fmt(r['recall'], '7.4f'):>7} "
                f"{fmt(r.get('docs_per_s'), '10,.0f'):>10}"
            )
    print()
    for pair, per_set in figures["ratios"].items():
        parts = ", ".join(f"{name} AUC {times(r['roc_auc'])} F1 {times(r['f1'])}" for name, r in per_set.items())
        print(f"  ratio {pair}: {parts}")
    print(f"\n  scorer load: {figures['scorer_load_s']} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    parser.add_argument("--threshold", type=float, help="flag threshold [default: the configured one, 0.5]")
    parser.add_argument("--limit", type=int, help="score at most N records per set (seeded sample)")
    parser.add_argument("--scale", type=int, nargs="*", help="also run the whole check on N records (several N ok)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not args.shared.is_dir():
        parser.error(f"shared data not found at {args.shared}")
    figures = toxicity_quality(args.shared, args.threshold, args.limit)
    print_report(figures)
    if args.scale:
        figures["scale"] = []
        for records in args.scale:
            run = check_at_scale(args.shared, records)
            figures["scale"].append(run)
            print(
                f"  check at scale (profanity-check, run_check): {run['records']:,} records in {run['shards']} shards, "
                f"{run['seconds']} s, {run['docs_per_s']:,.0f} docs/s; RSS {run['rss_before_mib']} MiB before, "
                f"peak {run['rss_peak_mib']} MiB"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            **figures,
        }
        args.json.write_text(json.dumps(stamp(figures), indent=2) + "\n", encoding="utf-8")
        print(f"  figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
