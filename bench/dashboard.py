"""Dashboard benchmark: every page's render time on a home with 100,000 ledger entries and 100 datasets.

    python bench/dashboard.py [--entries 100000] [--datasets 100] [--home DIR] [--out bench/out/dashboard.json]

The home is built for real where it matters to the pages: small datasets from shared/data are
registered, checked (provenance, license, toxicity with profanity-check, PII with spaCy), gated
under a policy that sends PII and toxicity to review, some findings reviewed, and a few runs
recorded. The rest of the ledger is filled, in batched appends, with what a long-lived home
accumulates: repeated check results on the same datasets, the checkpoints of long training runs,
and operator notes. Each page is then rendered with streamlit.testing's AppTest, cold (caches
cleared) and warm, and printed next to the 2 s target. `--home` reuses a home built before.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _meta import stamp

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
APP = REPO / "dashboards" / "app.py"
PAGES = ["overview", "datasets", "review", "runs", "ledger", "policies"]
TARGET_S = 2.0
BATCH = 5_000


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build(root: Path, datasets: int, entries: int) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from custody.checks.catalog import build_check
    from custody.checks.pii import PiiCheck
    from custody.datasets.card import CARD_TEMPLATE, parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields
    from custody.datasets.registry import DatasetRegistry
    from custody.ledger import query
    from custody.pipeline.run_check import run_check
    from custody.policy.bindings import bind
    from custody.policy.gate import run_gate
    from custody.policy.reviews import open_findings, record_review
    from custody.testing.people import ADMIN, Cast
    from custody.testing.runs import record_run, run_entries
    from dashboard_data import OWNER, REVIEWER, add_people, review_policy

    started = time.perf_counter()
    cast = Cast()  # in-memory keys: the benchmark needs people who sign, not key files
    home = cast.init_home(root / "home")
    add_people(home, cast)  # the dashboard tests' roster and accounts
    bind(home, "research", review_policy(root), cast.person(home, ADMIN))
    owner, reviewer = cast.person(home, OWNER), cast.person(home, REVIEWER)
    registry = DatasetRegistry(home)
    pii = _jsonl(DATA / "pii_presidio_synth" / "data.jsonl")
    toxic = _jsonl(DATA / "toxicity_jigsaw_sample" / "data.jsonl")
    card = parse_card(CARD_TEMPLATE)
    pii_check, checks = PiiCheck(processes=1), [build_check(n) for n in ("provenance", "license", "toxicity")]
    registered = []
    for i in range(datasets):
        texts = [d["text"] for d in pii[(i * 7) % 700 :][:12]] + [d["text"] for d in toxic[(i * 3) % 140 :][:8]]
        rows = [{"id": f"d{i}-{j}", "text": t} for j, t in enumerate(texts)]
        if i % 4 == 0:
            for row in rows[:5]:
                row["license"] = "CC-BY-NC-4.0"
        shard = root / f"d{i}.jsonl"
        shard.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        dataset, _ = registry.register([shard], DatasetRef(f"set-{i:03d}", "1"), card, Fields(id="id"), actor=OWNER)
        for check in [*checks, pii_check]:
            run_check(home, dataset, check, actor=OWNER)
        run_gate(home, [dataset], None, "research", actor=owner)
        registered.append(dataset)
    print(f"  {datasets} datasets registered, checked and gated in {time.perf_counter() - started:.0f} s")
    for finding in open_findings(home)[: datasets // 2]:  # half the queue reviewed, with the reviewer's key
        record_review(home, finding.finding, "approve", "benchmark review", reviewer, "2099-12-31")
    decision = open_findings(home)[0].decision_index if open_findings(home) else 0
    for r in range(10):
        record_run(home, f"run-{r}", decision, registered[r : r + 2])

    # Fill to the target size with what a long-lived home accumulates, signed as the CLI would.
    check_rows = query.window(home.storage, 100_000, "check.completed/")
    remaining = entries - home.ledger.size
    pending = []
    long_runs = 5
    for r in range(long_runs):  # long runs: about a third of the filler as checkpoints
        run = run_entries(home, f"long-{r}", decision, registered[:1], steps=remaining // 3 // long_runs)
        pending += run
    reruns = remaining // 3
    for k in range(reruns):  # repeated check results on the same datasets
        row = check_rows[k % len(check_rows)]
        envelope = query.envelope(row)
        pending.append(home.entry(row.type, row.subject, envelope["body"], envelope["refs"], actor=row.actor))
    notes = entries - home.ledger.size - len(pending)
    pending += [
        home.entry("ledger.note/v1", "ops", {"text": f"operator note {n}"}, actor=owner) for n in range(max(notes, 0))
    ]
    for start in range(0, len(pending), BATCH):
        home.append(pending[start : start + BATCH])
    home.checkpoint()
    print(f"  ledger filled to {home.ledger.size:,} entries in {time.perf_counter() - started:.0f} s")
    home.close()
    return root / "home"


def render_times(home: Path) -> list[dict]:
    import os

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["CUSTODY_HOME"] = str(home)
    warmup = AppTest.from_file(str(APP), default_timeout=300)
    warmup.run()  # imports, once per process, as a running server has them already
    results = []
    for page in PAGES:
        st.cache_resource.clear()
        at = AppTest.from_file(str(APP), default_timeout=300)
        if page != "overview":
            at.run()  # registers the pages so switch_page can find this one
            st.cache_resource.clear()
            at.switch_page(f"app_pages/{page}.py")
        t0 = time.perf_counter()
        at.run()
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        at.run()
        warm = time.perf_counter() - t0
        problems = [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]
        results.append({"page": page, "cold_s": round(cold, 3), "warm_s": round(warm, 3), "problems": problems})
    from custody.home import Home
    from custody.views.ledger import verify

    opened = Home.open(home)
    v = verify(opened)
    results.append({"page": "ledger: full verification (button)", "cold_s": round(v.seconds, 3), "warm_s": None})
    opened.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--home", type=Path, help="reuse a home built by an earlier run")
    parser.add_argument("--keep", type=Path, help="build the home here and keep it")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "dashboard.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="custody-bench-dashboard-"))
    build_s = None
    try:
        if args.home:
            home = args.home
        else:
            root = args.keep or workdir
            root.mkdir(parents=True, exist_ok=True)
            print(f"building a home with {args.datasets} datasets and {args.entries:,} entries ...")
            started = time.perf_counter()
            home = build(root, args.datasets, args.entries)
            build_s = round(time.perf_counter() - started, 1)
        results = render_times(home)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'page':<38} {'cold':>8} {'warm':>8}   target")
    for r in results:
        warm = f"{r['warm_s']:.2f} s" if r["warm_s"] is not None else "—"
        verdict = "" if r["page"].startswith("ledger: full") else ("ok" if r["cold_s"] < TARGET_S else "SLOW")
        target = "on demand" if not verdict else f"< {TARGET_S:.0f} s {verdict}"
        print(f"{r['page']:<38} {r['cold_s']:>6.2f} s {warm:>8}   {target}")
        for problem in r.get("problems") or []:
            print(f"    problem: {problem}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {"entries": args.entries, "datasets": args.datasets, "build_s": build_s, "pages": results}
    args.out.write_text(json.dumps(stamp(document), indent=2) + "\n")


if __name__ == "__main__":
    main()
