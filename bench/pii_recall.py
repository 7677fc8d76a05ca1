"""Opt-in PII recall (custody.pii.recall) against the pii check's default, on held-out halves.

    python bench/pii_recall.py [--part report|tune] [--shared ../shared/data] [--json FILE]

Each shared gold set is split once, deterministically (indices shuffled with random.Random(SEED),
first half "tune", second half "report"). Patterns were tuned on the tune half only; the figures
in docs come from the report half (`--part report`, the default), with the default scanner
(`ScannerConfig()`, what the pii check runs) and the opt-in one
(`entities=DEFAULT_ENTITIES + RECALL_ENTITIES`) measured in the same run, one process each.

Scoring is custody.pii.evaluate's (overlap, micro-averaged); the opt-in STREET_ADDRESS
predictions count as LOCATION, the type the gold's STREET_ADDRESS and GPE map to. Besides the
per-type rows, the LOCATION gold is split back into its two sources: `address_recall` (gold
STREET_ADDRESS spans found by a LOCATION prediction) and `gpe_recall` (gold GPE spans found).
Throughput: characters scanned per CPU second of this process (time.process_time), NER included,
the best of REPEATS passes over both halves' texts with the scanners taking turns; `before` is the
pii check's scanner as it was before this work (default entities, presidio's own context
enhancer), so `opt_in_vs_before` says what turning the opt-in on costs against the old default.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from _meta import write_json

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parents[0].parent / "shared" / "data"
SEED = 20240618
REPEATS = 7  # timed passes per scanner (best of)


def split(gold, part: str):
    """The `part` half of `gold` (tune: first half of a seeded shuffle, report: the rest)."""
    from custody.pii.evaluate import GoldSet

    order = list(range(len(gold.texts)))
    random.Random(SEED).shuffle(order)
    half = len(order) // 2
    keep = sorted(order[:half] if part == "tune" else order[half:])
    return GoldSet(
        gold.name,
        [gold.texts[i] for i in keep],
        [gold.gold[i] for i in keep],
        gold.scored_types,
        gold.excluded,
        gold.mapping,
    ), keep


SCORED_AS = {"STREET_ADDRESS": "LOCATION", "PERSON_NAME": "PERSON"}  # the opt-in types, as the gold names them


def as_scored(spans) -> list[tuple[str, int, int]]:
    return [(SCORED_AS.get(s[0], s[0]), s[1], s[2]) for s in spans]


def run(scanner, texts: list[str]) -> list:
    return [as_scored(spans) for spans in scanner.scan(texts)]


def throughput(scanners: dict[str, Any], texts: list[str], repeats: int = REPEATS) -> dict[str, float]:
    """CPU seconds per scanner over `texts`: the best of `repeats` passes, the scanners taking turns
    (so that a slow spell of the machine hits each of them alike)."""
    best = {name: float("inf") for name in scanners}
    for _ in range(repeats):
        for name, scanner in scanners.items():
            start = time.process_time()
            for _spans in scanner.scan(texts):
                pass
            best[name] = min(best[name], time.process_time() - start)
    return best


def before_scanner(model: str):
    """The pii check's scanner as it was before this work: default entities, presidio's own
    context enhancer, NlpArtifacts with their keywords built for every text, and the phone matcher
    run for every region (custody now skips the enhancer's deep copy, builds keywords only when the
    enhancer reads them, and runs the +1 matcher once for US and CA). Same detections."""
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NlpArtifacts

    from custody.pii import engine
    from custody.pii.fast import FastScanner, ScannerConfig
    from custody.pii.recognizers import RegionSkippingPhoneRecognizer

    class BeforeScanner(FastScanner):
        def _artifacts(self, doc):
            lazy = super()._artifacts(doc)
            return NlpArtifacts(
                lazy.entities, lazy.tokens, lazy.tokens_indices, lazy.lemmas, lazy.nlp_engine, "en", lazy.scores
            )

    swapped = engine._context_enhancer
    engine._context_enhancer = LemmaContextAwareEnhancer
    try:
        scanner = BeforeScanner(ScannerConfig(model=model))
    finally:
        engine._context_enhancer = swapped
    for recognizer in scanner.analyzer.registry.recognizers:
        if isinstance(recognizer, RegionSkippingPhoneRecognizer):  # every region, +1 twice (US and CA)
            recognizer.distinct_regions = recognizer.all_regions
    return scanner


def subset_recall(path: Path, mapping: dict, keep: list[int], preds: list) -> float:
    from custody.pii.evaluate import load_gold, score

    full = load_gold(path, mapping)
    gold = type(full)(
        full.name, [full.texts[i] for i in keep], [full.gold[i] for i in keep], full.scored_types, full.excluded
    )
    return score(gold, [[p for p in doc if p[0] == "LOCATION"] for doc in preds])["per_type"]["LOCATION"]["recall"]


def measure(shared: Path, part: str) -> dict[str, Any]:
    from custody.pii.engine import DEFAULT_ENTITIES, model_digest, select_model
    from custody.pii.evaluate import load_synth, load_wnut, score
    from custody.pii.fast import FastScanner, ScannerConfig
    from custody.pii.recall import RECALL_ENTITIES

    model = select_model()
    scanners = {
        "default": FastScanner(ScannerConfig(model=model)),
        "opt_in": FastScanner(ScannerConfig(model=model, entities=DEFAULT_ENTITIES + RECALL_ENTITIES)),
    }
    before = before_scanner(model)
    for scanner in [*scanners.values(), before]:  # warm up (first-call costs out of the timings)
        list(scanner.scan(["Warm up at 12 Main Street with John Smith."]))
    out: dict[str, Any] = {
        "part": part,
        "seed": SEED,
        "split": "indices shuffled with random.Random(seed); tune = first half, report = second half",
        "model": model,
        "model_digest": model_digest(model),
        "opt_in_entities": list(DEFAULT_ENTITIES + RECALL_ENTITIES),
        "datasets": {},
        "throughput": {},
    }
    all_texts: list[str] = []
    synth_path = shared / "pii_presidio_synth" / "data.jsonl"
    for loader in (load_synth, load_wnut):
        gold, keep = split(loader(shared), part)
        all_texts += gold.texts
        entry: dict[str, Any] = {"documents": len(gold.texts)}
        for name, scanner in scanners.items():
            preds = run(scanner, gold.texts)
            result = score(gold, preds)
            figures = {"overall": result["overall"], "per_type": result["per_type"]}
            if gold.name == "pii_presidio_synth":
                figures["address_recall"] = subset_recall(synth_path, {"STREET_ADDRESS": "LOCATION"}, keep, preds)
                figures["gpe_recall"] = subset_recall(synth_path, {"GPE": "LOCATION"}, keep, preds)
                only = [[p for p in doc if p[3] == "STREET_ADDRESS"] for doc in _raw(scanner, gold.texts)]
                figures["address_predictions"] = sum(len(d) for d in only)
                figures["address_precision"] = score(gold, [as_scored(d) for d in only])["per_type"]["LOCATION"][
                    "precision"
                ]
            entry[name] = figures
        out["datasets"][gold.name] = entry
    if list(before.scan(all_texts)) != list(scanners["default"].scan(all_texts)):
        raise SystemExit("the scanner before and the default find different spans: the speed-ups changed results")
    cpu = throughput({"before": before, **scanners}, all_texts)
    chars = sum(len(t) for t in all_texts)
    out["throughput"] = {
        "characters": chars,
        "repeats": REPEATS,
        **{f"{name}_cpu_s": round(s, 2) for name, s in cpu.items()},
        **{f"{name}_chars_per_cpu_s": round(chars / s) for name, s in cpu.items()},
        "opt_in_vs_default": round(cpu["default"] / cpu["opt_in"], 3),
        "opt_in_vs_before": round(cpu["before"] / cpu["opt_in"], 3),
        "default_vs_before": round(cpu["before"] / cpu["default"], 3),
    }
    return out


def _raw(scanner, texts):
    return [[(s.entity_type, s.start, s.end, s.entity_type) for s in spans] for spans in scanner.scan(texts)]


def report(out: dict) -> None:
    print(f"== opt-in recall, {out['part']} half (model {out['model']})")
    for name, data in out["datasets"].items():
        print(f"-- {name}: {data['documents']} docs")
        for label in ("overall", *data["default"]["per_type"]):
            rows = []
            for side in ("default", "opt_in"):
                t = data[side]["overall"] if label == "overall" else data[side]["per_type"][label]
                rows.append(f"P {t['precision']:.3f} R {t['recall']:.3f} F1 {t['f1']:.3f}")
            print(f"   {label:<14} default {rows[0]} | opt-in {rows[1]}")
        if "address_recall" in data["default"]:
            for key in ("address_recall", "gpe_recall", "address_precision", "address_predictions"):
                print(f"   {key:<20} default {data['default'][key]} | opt-in {data['opt_in'][key]}")
    print(f"   throughput: {json.dumps(out['throughput'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("report", "tune"), default="report")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    out = measure(args.shared, args.part)
    report(out)
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
