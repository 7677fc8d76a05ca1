"""Where the PII scanner's time goes: the profile behind each speed change (issue 23).

    python bench/pii_profile.py [--shared ../shared/data] [--repeats 5] [--perf] [--json FILE]

On the tune half of pii_presidio_synth (bench/pii_recall.py's split; speed work looked at this
half only), one process, CPU time (time.process_time) per document, best of --repeats passes
with the scanners taking turns:

- scan: the whole `FastScanner.scan` of the pii check's default configuration, `before`
  (spaCy's `nlp.pipe` for NER, batches of 64: the scanner before issue 23) and `after` (the
  current defaults, NER stepped by custody.pii.ner);
- stages of each: NER (tokenizing included), presidio's `analyze` (all recognizers, context), and
  each recognizer's own `analyze`;
- batch sizes: the `after` scan with NER batches (and chunks) of 64, 128 and 256 texts;
- NER's parts on the same batches: tokenizer, the NER model's tok2vec, the whole
  `model.predict` (tok2vec and the precomputed first layer), and spaCy's `greedy_parse` against
  custody's `greedy_parse` (both: predict and every transition step);
- --perf: `perf record` of spaCy's `greedy_parse` loop in a child process, and the share of its
  samples in taking and dropping the GIL (the cost custody.pii.ner removes);
- cProfile of the `after` scan, top functions by own time (Cython functions compiled with
  profiling hooks look far costlier under cProfile than they are; the timings above are the
  figures of record);
- the same spans: `after` against `before` on every document of both shared PII sets (dev
  halves, 3,595 documents), and for the `senter` and `parser` sentence settings;
- a NER prefilter considered: documents with no upper-case letter (they would skip NER), how many
  there are and how many PERSON/LOCATION spans NER finds in them (what skipping would lose).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _meta import write_json
from pii_recall import split

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parents[0].parent / "shared" / "data"
GIL_SYMBOLS = re.compile(
    r"take_gil|drop_gil|PyGILState_|pthread_mutex_|pthread_getspecific|pthread_cond_|PyThread_tss_get|"
    r"_PyThreadState_Swap|_PyThreadState_MustExit|PyEval_SaveThread|PyEval_RestoreThread|__errno_location"
)


def _ms(seconds: float, docs: int) -> float:
    return round(seconds / docs * 1e3, 4)


class Stopwatch:
    """CPU seconds spent in wrapped callables, by name."""

    def __init__(self) -> None:
        self.seconds: Counter = Counter()

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                out = fn(*args, **kwargs)
                return list(out) if name == "ner" else out
            finally:
                self.seconds[name] += time.process_time() - start

        return timed


def instrument(scanner) -> Stopwatch:
    watch = Stopwatch()
    scanner._pipe = watch.wrap("ner", scanner._pipe)
    scanner.analyzer.analyze = watch.wrap("analyze", scanner.analyzer.analyze)
    for recognizer in scanner.analyzer.registry.recognizers:
        recognizer.analyze = watch.wrap(f"recognizer {recognizer.name}", recognizer.analyze)
    return watch


def best_of(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - start)
    return best


def scan_stages(scanners: dict[str, Any], texts: list[str], repeats: int) -> dict[str, Any]:
    """scanners: name -> _Chunked(FastScanner)."""
    watches = {name: instrument(s._scanner) for name, s in scanners.items()}
    out: dict[str, Any] = {}
    best = {name: float("inf") for name in scanners}
    stages: dict[str, dict[str, float]] = {name: {} for name in scanners}
    for _ in range(repeats):
        for name, scanner in scanners.items():
            watches[name].seconds.clear()
            start = time.process_time()
            for _spans in scanner.scan(texts):
                pass
            took = time.process_time() - start
            if took < best[name]:
                best[name] = took
                stages[name] = dict(watches[name].seconds)
    for name in scanners:
        s = stages[name]
        recognizers = {k.split(" ", 1)[1]: _ms(v, len(texts)) for k, v in s.items() if k.startswith("recognizer ")}
        out[name] = {
            "scan_ms_per_doc": _ms(best[name], len(texts)),
            "ner_ms_per_doc": _ms(s.get("ner", 0.0), len(texts)),
            "analyze_ms_per_doc": _ms(s.get("analyze", 0.0), len(texts)),
            "other_ms_per_doc": _ms(best[name] - s.get("ner", 0.0) - s.get("analyze", 0.0), len(texts)),
            "ner_share": round(s.get("ner", 0.0) / best[name], 3),
            "recognizers_ms_per_doc": dict(sorted(recognizers.items(), key=lambda kv: -kv[1])),
        }
    return out


def ner_parts(scanner, texts: list[str], repeats: int) -> dict[str, float]:
    from custody.pii.ner import greedy_parse

    nlp = scanner.nlp
    ner = nlp.get_pipe("ner")
    size = scanner.config.batch_size
    docs = [nlp.make_doc(t) for t in texts]
    batches = [sorted(docs[i : i + size], key=len) for i in range(0, len(docs), size)]
    tok2vec = ner.model.get_ref("tok2vec")
    best = best_of(
        {
            "tokenizer": lambda: [nlp.make_doc(t) for t in texts],
            "tok2vec": lambda: [tok2vec.predict(b) for b in batches],
            "model_predict": lambda: [ner.model.predict(b) for b in batches],
            "spacy_greedy_parse": lambda: [ner.greedy_parse(b) for b in batches],
            "custody_greedy_parse": lambda: [greedy_parse(ner, b) for b in batches],
        },
        repeats,
    )
    out = {f"{k}_ms_per_doc": _ms(v, len(texts)) for k, v in best.items()}
    out["transition_steps_ms_per_doc"] = round(
        out["custody_greedy_parse_ms_per_doc"] - out["model_predict_ms_per_doc"], 4
    )
    out["batch_size"] = size
    out["tokens_per_doc"] = round(sum(len(d) for d in docs) / len(docs), 2)
    return out


PERF_CHILD = """
import sys, spacy
sys.path.insert(0, {bench!r})
from custody.pii.evaluate import load_synth
from pathlib import Path
texts = load_synth(Path({shared!r})).texts
nlp = spacy.load({model!r})
ner = nlp.get_pipe("ner")
docs = [nlp.make_doc(t) for t in texts]
batches = [sorted(docs[i:i + 16], key=len) for i in range(0, len(docs), 16)]
for _ in range(8):
    for b in batches:
        ner.greedy_parse(b)
"""


def perf_greedy_parse(shared: Path, model: str) -> dict[str, Any]:
    """`perf record` of spaCy's greedy_parse in a child process; the GIL's share of the samples."""
    perf = shutil.which("perf")
    if perf is None:
        return {"skipped": "perf is not installed"}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        child = PERF_CHILD.format(bench=str(HERE), shared=str(shared), model=model)
        record = [perf, "record", "-F", "999", "-o", str(data), "--", sys.executable, "-c", child]
        done = subprocess.run(record, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return {"skipped": f"perf record failed: {done.stderr.strip()[-300:]}"}
        report = subprocess.run(
            [perf, "report", "-i", str(data), "--no-children", "--sort", "dso,symbol", "-g", "none", "--stdio"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    rows = []
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[\.\]\s+(.+?)\s*$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(3).split()[0]))
    gil = sum(share for share, _, symbol in rows if GIL_SYMBOLS.search(symbol))
    return {
        "what": "spaCy's greedy_parse over pii_presidio_synth (batches of 16, as Parser.pipe cuts 64), 8 passes, "
        "model loading included",
        "gil_share_percent": round(gil, 2),
        "gil_symbols": GIL_SYMBOLS.pattern,
        "top": [{"percent": share, "dso": dso, "symbol": symbol} for share, dso, symbol in rows[:15]],
    }


def cprofile_top(scanner, texts: list[str], n: int = 15) -> list[dict[str, Any]]:
    profile = cProfile.Profile()
    profile.enable()
    for _spans in scanner.scan(texts):
        pass
    profile.disable()
    stats = pstats.Stats(profile, stream=io.StringIO())
    rows = []
    for (path, line, func), (_cc, calls, own, cumulative, _callers) in stats.stats.items():
        where = f"{Path(path).name}:{line}({func})" if path != "~" else func
        rows.append({"function": where, "calls": calls, "own_s": round(own, 4), "cumulative_s": round(cumulative, 4)})
    rows.sort(key=lambda r: -r["own_s"])
    return rows[:n]


def same_spans(shared: Path, model: str) -> dict[str, Any]:
    from custody.pii.evaluate import load_synth, load_wnut
    from custody.pii.fast import FastScanner, ScannerConfig

    texts = load_synth(shared).texts + load_wnut(shared).texts
    out: dict[str, Any] = {"documents": len(texts)}
    for sentences in ("none", "senter", "parser"):
        fast = FastScanner(ScannerConfig(model=model, sentences=sentences))
        slow = FastScanner(fast.config, stepped_ner=False)
        a, b = list(fast.scan(texts)), list(slow.scan(texts))
        out[sentences] = {"identical": a == b, "spans": sum(map(len, a))}
    return out


def uppercase_prefilter(shared: Path, scanner) -> dict[str, Any]:
    """A NER prefilter considered: skip NER for text with no upper-case letter."""
    from custody.pii.evaluate import load_synth, load_wnut

    out: dict[str, Any] = {}
    for gold in (load_synth(shared), load_wnut(shared)):
        _, report = split(gold, "report")
        lower = [t for t in (gold.texts[i] for i in report) if not any(c.isupper() for c in t)]
        spans = [s for spans in scanner.scan(lower) for s in spans if s.entity_type in ("PERSON", "LOCATION")]
        out[gold.name] = {
            "report_documents": len(report),
            "no_upper_case": len(lower),
            "ner_spans_in_them": len(spans),
            "share_of_characters": round(sum(map(len, lower)) / sum(len(gold.texts[i]) for i in report), 4),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--perf", action="store_true", help="also record spaCy's greedy_parse with perf")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from custody.pii.engine import model_digest, select_model
    from custody.pii.evaluate import load_synth
    from custody.pii.fast import FastScanner, ScannerConfig

    model = select_model()
    tune, _ = split(load_synth(args.shared), "tune")
    texts = tune.texts
    load_before = os.getloadavg()
    before = FastScanner(ScannerConfig(model=model, batch_size=64), stepped_ner=False)
    after = FastScanner(ScannerConfig(model=model))
    for scanner in (before, after):
        list(scanner.scan(["Warm up: call John Smith at 212-555-0199."]))
    chunk = {"before": 64, "after": None}

    result: dict[str, Any] = {
        "benchmark": "pii profile: where the fast scanner's time goes",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "model": model,
        "model_digest": model_digest(model),
        "data": {"dataset": tune.name, "half": "tune", "documents": len(texts), "chars": sum(map(len, texts))},
        "repeats": args.repeats,
    }
    stage_scanners = {"before": before, "after": after}
    watches = scan_stages({n: _Chunked(s, chunk[n]) for n, s in stage_scanners.items()}, texts, args.repeats)
    result["scan"] = watches
    sizes = {size: FastScanner(ScannerConfig(model=model, batch_size=size)) for size in (64, 128, 256)}
    swept = scan_stages({str(size): _Chunked(s, size) for size, s in sizes.items()}, texts, args.repeats)
    result["batch_sizes"] = {
        size: {k: v[k] for k in ("scan_ms_per_doc", "ner_ms_per_doc")} for size, v in swept.items()
    }
    result["ner_parts"] = ner_parts(after, texts, args.repeats)
    if args.perf:
        result["perf_spacy_greedy_parse"] = perf_greedy_parse(args.shared, model)
    result["cprofile_after_top_own_time"] = cprofile_top(after, texts)
    result["same_spans_stepped_vs_nlp_pipe"] = same_spans(args.shared, model)
    result["uppercase_prefilter_report_half"] = uppercase_prefilter(args.shared, after)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    print_report(result)
    if args.json:
        write_json(args.json, result)
    return 0


class _Chunked:
    """A scanner whose scan() cuts chunks of `chunk` texts (None: its NER batch size); the rest passes through."""

    def __init__(self, scanner, chunk: int | None) -> None:
        self._scanner, self._chunk = scanner, chunk or scanner.config.batch_size

    def __getattr__(self, name: str):
        return getattr(self._scanner, name)

    def scan(self, texts):
        return self._scanner.scan(texts, chunk_size=self._chunk)


def print_report(r: dict) -> None:
    print(f"PII profile on {r['data']['dataset']} ({r['data']['half']} half, {r['data']['documents']} docs)")
    for name, s in r["scan"].items():
        print(
            f"  {name:<7} scan {s['scan_ms_per_doc']:.3f} ms/doc: NER {s['ner_ms_per_doc']:.3f} "
            f"({s['ner_share']:.0%}), analyze {s['analyze_ms_per_doc']:.3f}, other {s['other_ms_per_doc']:.3f}"
        )
        top = ", ".join(f"{k} {v:.3f}" for k, v in list(s["recognizers_ms_per_doc"].items())[:3])
        print(f"          recognizers: {top}")
    print(
        "  batch sizes (scan ms/doc): " + ", ".join(f"{k}: {v['scan_ms_per_doc']}" for k, v in r["batch_sizes"].items())
    )
    parts = r["ner_parts"]
    print("  NER parts (ms/doc): " + ", ".join(f"{k[:-11]} {v}" for k, v in parts.items() if k.endswith("_ms_per_doc")))
    if "perf_spacy_greedy_parse" in r:
        p = r["perf_spacy_greedy_parse"]
        print(f"  perf, spaCy greedy_parse: {p.get('gil_share_percent', p.get('skipped'))}% of samples on the GIL")
    for k, v in r["same_spans_stepped_vs_nlp_pipe"].items():
        print(f"  same spans ({k}): {v}")
    for k, v in r["uppercase_prefilter_report_half"].items():
        print(f"  no-upper-case prefilter, {k}: {v}")
    print(f"  load average before {r['machine']['load_average_before']}, after {r['machine']['load_average_after']}")


if __name__ == "__main__":
    sys.exit(main())
