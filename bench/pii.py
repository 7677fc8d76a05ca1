"""PII speed benchmark: presidio's stock loop against custody's fast scanner, side by side.

    python bench/pii.py [--shared ../shared/data] [--stock-docs 300] [--rounds 3] [--passes 2]
                        [--processes N] [--model NAME] [--sentences parser|senter|none]
                        [--json bench/out/pii.json]

Data: pii_presidio_synth/data.jsonl (the dev half, 750 short documents, ~81 characters each).
Both sides use the same spaCy model (the one `select_model` picks: $CUSTODY_SPACY_MODEL, else the
preferred installed) and run in this one process tree (ours in a pool of child processes).

- stock: presidio's default AnalyzerEngine (conf/default.yaml, all predefined recognizers, no
  threshold), `analyze(text, language="en")` once per document, on the first --stock-docs
  documents (the stock loop is slow; the same subset is used for the F1 comparison).
- batch (reference): presidio's BatchAnalyzerEngine on the same engine and subset.
- ours: custody.pii.fast.ParallelScanner with the pii check's default configuration, over all
  750 documents, --passes times per round; and the same scanner in one process (no pool), to
  show the per-core gain apart from the cores.
- ours before issue 23 (one process): the same scanner with spaCy's own `nlp.pipe` for NER
  (`stepped_ner=False`) in batches and chunks of 64, as it was; same spans (checked every run).

Timings exclude building engines and starting the pool (reported apart as start-up); each side
is timed --rounds times, interleaved, and the median is reported. Wall-clock figures depend on
what else the machine runs; the single-process sides also report throughput per CPU second of
their process, which does not (the per-core speed-up). Speed ratio = ours' chars/s
over stock's chars/s (docs/s ratio beside it). F1 is entity-level with the overlap rule of
custody.pii.evaluate (exact-boundary F1 beside it), on the stock subset for both sides, and on
all 750 documents for ours. Held out: F1 of ours and of ours before on the report half of
bench/pii_recall.py's split of the 750 (the speed work looked at the tune half only).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from _meta import write_json
from custody.pii.engine import model_digest, select_model
from custody.pii.evaluate import GoldSet, load_synth, score
from custody.pii.fast import FastScanner, ParallelScanner, ScannerConfig, default_processes
from custody.pii.stock import StockScanner
from pii_recall import split

DEFAULT_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _subset(gold: GoldSet, n: int) -> GoldSet:
    return GoldSet(gold.name, gold.texts[:n], gold.gold[:n], gold.scored_types, gold.excluded, gold.mapping)


def _timed(fn, texts: list[str]) -> tuple[list, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(texts)
    return out, time.perf_counter() - start, time.process_time() - cpu


def _speed(times: list[float], docs: int, chars: int, cpu: list[float] | None = None) -> dict:
    t = statistics.median(times)
    out = {
        "docs": docs,
        "chars": chars,
        "seconds_median": round(t, 4),
        "seconds_all": [round(x, 4) for x in times],
        "docs_per_s": round(docs / t, 1),
        "chars_per_s": round(chars / t, 1),
    }
    if cpu:  # single-process sides: throughput per CPU second, which other jobs on the machine do not skew
        c = statistics.median(cpu)
        out.update(
            cpu_seconds_median=round(c, 4), chars_per_cpu_s=round(chars / c, 1), docs_per_cpu_s=round(docs / c, 1)
        )
    return out


def run(
    shared: Path,
    stock_docs: int,
    rounds: int,
    passes: int,
    processes: int,
    model: str | None,
    sentences: str | None = None,
) -> dict:
    model = select_model(model)
    synth = load_synth(shared)
    subset = _subset(synth, min(stock_docs, len(synth.texts)))
    texts, sub_texts = synth.texts, subset.texts
    chars, sub_chars = sum(map(len, texts)), sum(map(len, sub_texts))
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    stock = StockScanner(model)
    stock.scan_one("warm up: call John Smith at 212-555-0199")
    stock_start = time.perf_counter() - t0

    from presidio_analyzer import BatchAnalyzerEngine

    batch = BatchAnalyzerEngine(stock.analyzer)

    config = ScannerConfig(model=model) if sentences is None else ScannerConfig(model=model, sentences=sentences)
    t0 = time.perf_counter()
    parallel = ParallelScanner(config, processes=processes)
    parallel.warm()
    ours_start = time.perf_counter() - t0
    single = FastScanner(config) if processes > 1 else parallel.local
    assert single is not None
    single.scan_batch(["warm up: call John Smith at 212-555-0199"])
    before = FastScanner(ScannerConfig(**{**config.__dict__, "batch_size": 64}), stepped_ner=False)
    before.scan_batch(["warm up: call John Smith at 212-555-0199"])

    def run_stock(xs):
        return list(stock.scan(xs))

    def run_batch(xs):
        return [list(r) for r in batch.analyze_iterator(xs, language="en", batch_size=64)]

    def run_ours(xs):
        out = []
        for _ in range(passes):
            out = list(parallel.scan(xs))
        return out

    def run_single(xs):
        return list(single.scan(xs))

    def run_before(xs):
        return list(before.scan(xs, chunk_size=64))

    times: dict[str, list[float]] = {"stock": [], "batch": [], "ours": [], "ours_1process": [], "ours_before": []}
    cpu: dict[str, list[float]] = {"stock": [], "batch": [], "ours_1process": [], "ours_before": []}
    preds: dict[str, list] = {}
    for _ in range(rounds):
        preds["stock"], t, c = _timed(run_stock, sub_texts)
        times["stock"].append(t)
        cpu["stock"].append(c)
        preds["ours"], t, _ = _timed(run_ours, texts)
        times["ours"].append(t)
        _, t, c = _timed(run_batch, sub_texts)
        times["batch"].append(t)
        cpu["batch"].append(c)
        preds["ours_1process"], t, c = _timed(run_single, texts)
        times["ours_1process"].append(t)
        cpu["ours_1process"].append(c)
        preds["ours_before"], t, c = _timed(run_before, texts)
        times["ours_before"].append(t)
        cpu["ours_before"].append(c)
    parallel.close()
    load_after = os.getloadavg()

    if preds["ours"] != preds["ours_1process"]:
        raise SystemExit("ours: the pool's results differ from the single-process results")
    if preds["ours_before"] != preds["ours_1process"]:
        raise SystemExit("ours: the spans differ from those of the scanner before issue 23")

    speed = {
        "stock": _speed(times["stock"], len(sub_texts), sub_chars, cpu["stock"]),
        "batch": _speed(times["batch"], len(sub_texts), sub_chars, cpu["batch"]),
        "ours": _speed(times["ours"], len(texts) * passes, chars * passes),
        "ours_1process": _speed(times["ours_1process"], len(texts), chars, cpu["ours_1process"]),
        "ours_before": _speed(times["ours_before"], len(texts), chars, cpu["ours_before"]),
    }
    held_out, keep = split(synth, "report")
    ours_sub = preds["ours"][: len(sub_texts)]
    quality = {
        "stock_on_subset": score(subset, preds["stock"]),
        "ours_on_subset": score(subset, ours_sub),
        "ours_on_all": score(synth, preds["ours"]),
        "ours_on_report_half": score(held_out, [preds["ours"][i] for i in keep]),
        "ours_before_on_report_half": score(held_out, [preds["ours_before"][i] for i in keep]),
    }
    stock_cps = speed["stock"]["chars_per_s"]
    return {
        "benchmark": "pii speed: presidio stock loop vs custody fast scanner",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": {
            "cpus": os.cpu_count(),
            "usable_cpus": default_processes(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
        },
        "model": model,
        "model_digest": model_digest(model),
        "data": {
            "dataset": synth.name,
            "documents": len(texts),
            "stock_subset": len(sub_texts),
            "chars": chars,
            "report_half": len(keep),
        },
        "settings": {"rounds": rounds, "passes": passes, "processes": processes, "ours_config": config.__dict__},
        "startup_seconds": {"stock": round(stock_start, 2), "ours_pool": round(ours_start, 2)},
        "speed": speed,
        "ratio": {
            "ours_vs_stock_chars_per_s": round(speed["ours"]["chars_per_s"] / stock_cps, 2),
            "ours_vs_stock_docs_per_s": round(speed["ours"]["docs_per_s"] / speed["stock"]["docs_per_s"], 2),
            "ours_1process_vs_stock_chars_per_s": round(speed["ours_1process"]["chars_per_s"] / stock_cps, 2),
            "batch_vs_stock_chars_per_s": round(speed["batch"]["chars_per_s"] / stock_cps, 2),
            "ours_before_vs_stock_chars_per_cpu_s": round(
                speed["ours_before"]["chars_per_cpu_s"] / speed["stock"]["chars_per_cpu_s"], 2
            ),
            "ours_1process_vs_before_chars_per_cpu_s": round(
                speed["ours_1process"]["chars_per_cpu_s"] / speed["ours_before"]["chars_per_cpu_s"], 2
            ),
            "ours_1process_vs_stock_chars_per_cpu_s": round(
                speed["ours_1process"]["chars_per_cpu_s"] / speed["stock"]["chars_per_cpu_s"], 2
            ),
        },
        "quality": {
            name: {"overall": q["overall"], "per_type": {t: v["f1"] for t, v in q["per_type"].items()}}
            for name, q in quality.items()
        },
        "matching_rule": quality["ours_on_all"]["matching_rule"],
        "excluded_gold_spans": quality["ours_on_all"]["excluded_gold_spans"],
    }


def print_report(r: dict) -> None:
    m = r["machine"]
    print(f"PII speed on {r['data']['dataset']} ({r['data']['documents']} docs), model {r['model']}")
    print(
        f"machine: {m['cpus']} CPUs ({m['usable_cpus']} usable), load average before {m['load_average_before']}, "
        f"after {m['load_average_after']}"
    )
    startup = r["startup_seconds"]
    print(f"start-up (not timed): stock {startup['stock']} s, ours pool {startup['ours_pool']} s")
    print(f"{'side':<16}{'docs':>7}{'docs/s':>10}{'chars/s':>11}{'F1 subset':>11}{'exact F1':>10}")
    q = r["quality"]
    rows = [
        ("stock", q["stock_on_subset"]),
        ("batch (ref.)", None),
        ("ours", q["ours_on_subset"]),
        ("ours 1 process", q["ours_on_subset"]),
        ("before, 1 proc.", None),
    ]
    keys = ("stock", "batch", "ours", "ours_1process", "ours_before")
    for (label, quality), key in zip(rows, keys, strict=True):
        s = r["speed"][key]
        f1 = f"{quality['overall']['f1']:.4f}" if quality else "-"
        ef1 = f"{quality['overall']['exact_f1']:.4f}" if quality else "-"
        print(f"{label:<16}{s['docs']:>7}{s['docs_per_s']:>10.1f}{s['chars_per_s']:>11.0f}{f1:>11}{ef1:>10}")
    ratio = r["ratio"]
    print(
        f"ratio ours/stock: {ratio['ours_vs_stock_chars_per_s']}x chars/s, {ratio['ours_vs_stock_docs_per_s']}x docs/s "
        f"(1 process: {ratio['ours_1process_vs_stock_chars_per_s']}x; presidio batch: "
        f"{ratio['batch_vs_stock_chars_per_s']}x)"
    )
    speed = r["speed"]
    print(
        "per CPU second (single-process sides, unaffected by other jobs): "
        f"ours {speed['ours_1process']['chars_per_cpu_s']:.0f} vs stock "
        f"{speed['stock']['chars_per_cpu_s']:.0f} chars/CPU-s = "
        f"{ratio['ours_1process_vs_stock_chars_per_cpu_s']}x per core (before issue 23: "
        f"{ratio['ours_before_vs_stock_chars_per_cpu_s']}x; now {ratio['ours_1process_vs_before_chars_per_cpu_s']}x "
        "the before scanner)"
    )
    a = q["ours_on_all"]["overall"]
    print(
        f"ours on all {r['data']['documents']} docs: P {a['precision']} R {a['recall']} F1 {a['f1']} "
        f"(exact F1 {a['exact_f1']})"
    )
    h, hb = q["ours_on_report_half"]["overall"], q["ours_before_on_report_half"]["overall"]
    print(
        f"held out (report half, {r['data']['report_half']} docs): ours F1 {h['f1']} (P {h['precision']} "
        f"R {h['recall']}), before F1 {hb['f1']}"
    )
    print(f"matching: {r['matching_rule']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--stock-docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passes", type=int, default=2, help="passes over the 750 docs per timed round of ours")
    parser.add_argument("--processes", type=int, default=default_processes())
    parser.add_argument("--model", default=None)
    parser.add_argument(
        "--sentences", choices=("parser", "senter", "none"), default=None, help="override ours' setting"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run(args.shared, args.stock_docs, args.rounds, args.passes, args.processes, args.model, args.sentences)
    print_report(result)
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
