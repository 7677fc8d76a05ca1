"""Quality benchmarks of the content checks, one section per check.

    python bench/quality.py [--sections pii,toxicity] [--shared ../shared/data] [--limit N]
                            [--json bench/out/quality.json]

Sections:

- pii: custody's PII scanner (the pii check's default configuration) and presidio's stock
  configuration (conf/default.yaml, all recognizers, no threshold), same spaCy model, same texts.
  * pii_presidio_synth (750 docs): precision, recall and F1 per entity type and overall;
  * pii_wnut17_emerging_entities (2845 posts): PERSON and LOCATION recall (precision and F1
    beside it).
  Matching rule (custody.pii.evaluate): a prediction is correct when its character range
  overlaps a gold span of the same type; a gold span is found when a same-type prediction
  overlaps it; micro-averaged. Exact-boundary figures (type, start, end all equal) beside it.
  Gold types are mapped to ours (GPE and STREET_ADDRESS -> LOCATION, ...); gold types we do not
  detect are dropped and listed, and predictions of types with no gold are ignored (counted).
- toxicity: filled by bench/quality_toxicity.py when that file is present (its
  `toxicity_quality()` and `print_report()`); skipped otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _meta import write_json

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parents[0].parent / "shared" / "data"


# -- pii -----------------------------------------------------------------------------------------


def pii_quality(shared: Path | None = None, limit: int | None = None) -> dict:
    """Ours and presidio's stock configuration on both PII sets; returns the figures."""
    from custody.pii.engine import model_digest, select_model
    from custody.pii.evaluate import load_synth, load_wnut, score
    from custody.pii.fast import ParallelScanner, ScannerConfig
    from custody.pii.stock import StockScanner

    shared = shared or DEFAULT_SHARED
    model = select_model()
    config = ScannerConfig(model=model)
    stock = StockScanner(model)
    sets = {"pii_presidio_synth": load_synth(shared, limit), "pii_wnut17_emerging_entities": load_wnut(shared, limit)}
    figures: dict[str, Any] = {
        "section": "pii",
        "model": model,
        "model_digest": model_digest(model),
        "ours_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.resolved().__dict__.items()},
        "stock_config": "presidio conf/default.yaml (all predefined English recognizers, no score threshold)",
        "datasets": {},
    }
    with ParallelScanner(config) as ours:
        for name, gold in sets.items():
            start = time.perf_counter()
            ours_preds = list(ours.scan(gold.texts))
            ours_s = time.perf_counter() - start
            start = time.perf_counter()
            stock_preds = list(stock.scan(gold.texts))
            stock_s = time.perf_counter() - start
            ours_score, stock_score = score(gold, ours_preds), score(gold, stock_preds)
            figures["datasets"][name] = {
                "documents": len(gold.texts),
                "matching_rule": ours_score["matching_rule"],
                "type_mapping": ours_score["type_mapping"],
                "excluded_gold_spans": ours_score["excluded_gold_spans"],
                "ours": {k: ours_score[k] for k in ("overall", "per_type", "ignored_predictions")},
                "stock": {k: stock_score[k] for k in ("overall", "per_type", "ignored_predictions")},
                "seconds": {"ours": round(ours_s, 2), "stock": round(stock_s, 2)},
            }
    return figures


def print_pii(figures: dict) -> None:
    print(f"== pii (model {figures['model']}; ours vs presidio stock, same model and texts)")
    for name, data in figures["datasets"].items():
        print(f"-- {name}: {data['documents']} docs; excluded gold types: {data['excluded_gold_spans'] or 'none'}")
        head = f"   {'type':<15}{'gold':>6} | {'ours P':>7}{'R':>7}{'F1':>7}{'exF1':>7}"
        print(head + f" | {'stock P':>8}{'R':>7}{'F1':>7}{'exF1':>7}")
        rows = [*data["ours"]["per_type"].items(), ("overall", data["ours"]["overall"])]
        for label, ours in rows:
            stock = data["stock"]["overall"] if label == "overall" else data["stock"]["per_type"][label]
            print(
                f"   {label:<15}{ours['gold']:>6} | {ours['precision']:>7.3f}{ours['recall']:>7.3f}{ours['f1']:>7.3f}"
                f"{ours['exact_f1']:>7.3f} | {stock['precision']:>8.3f}{stock['recall']:>7.3f}{stock['f1']:>7.3f}"
                f"{stock['exact_f1']:>7.3f}"
            )
        print(f"   time: ours {data['seconds']['ours']} s, stock {data['seconds']['stock']} s")
    first = next(iter(figures["datasets"].values()))
    print(f"   matching: {first['matching_rule']}")


# -- toxicity (bench/quality_toxicity.py, written separately) -------------------------------------


def _toxicity_module():
    path = HERE / "quality_toxicity.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("quality_toxicity", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def toxicity_quality(shared: Path | None = None, limit: int | None = None) -> dict | None:
    """Hook for the toxicity section: bench/quality_toxicity.py's figures, or None without it."""
    module = _toxicity_module()
    if module is None or not hasattr(module, "toxicity_quality"):
        return None
    return module.toxicity_quality(shared=shared or DEFAULT_SHARED, limit=limit)


def print_toxicity(figures: dict) -> None:
    module = _toxicity_module()
    print("== toxicity")
    if module is not None and hasattr(module, "print_report"):
        module.print_report(figures)
    else:
        print(json.dumps(figures, indent=2))


# -- driver --------------------------------------------------------------------------------------

Section = tuple[str, Callable[..., dict | None], Callable[[dict], None]]
SECTIONS: list[Section] = [
    ("pii", pii_quality, print_pii),
    ("toxicity", toxicity_quality, print_toxicity),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(name for name, *_ in SECTIONS))
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--limit", type=int, default=None, help="first N documents of each set")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - {name for name, *_ in SECTIONS})
    if unknown:
        parser.error(f"unknown sections {unknown}")
    out: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "sections": {},
    }
    for name, compute, report in SECTIONS:
        if name not in wanted:
            continue
        figures = compute(shared=args.shared, limit=args.limit)
        if figures is None:
            print(f"== {name}: skipped (not available)")
            continue
        report(figures)
        out["sections"][name] = figures
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
