"""The demo's duration: `custody demo` end to end, as the README's first command runs it.

    python bench/demo.py [--out bench/out/demo.json]

Runs `python -m custody demo --home DIR` in a fresh temporary folder as its own process, and
records its wall time, the CPU time of that process and its children (user + system), the
machine's load average before and after, and whether it finished ("demo complete", "ledger
intact" in its output). The demo's target is under 5 minutes on 2 idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _meta import stamp

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 300.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "demo.json")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="custody-bench-demo-") as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "custody", "demo", "--home", str(Path(tmp) / "home")],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    complete = proc.returncode == 0 and "demo complete" in proc.stdout and "ledger intact" in proc.stdout
    print(f"custody demo: {wall:.1f} s wall, {cpu:.1f} CPU-s, exit {proc.returncode}, complete: {complete}")
    print(f"target < {TARGET_S:.0f} s: {'met' if wall < TARGET_S else 'missed'}")
    document = {
        "benchmark": "custody demo, end to end",
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "target_s": TARGET_S,
        "complete": complete,
        "exit_code": proc.returncode,
        "load_average_before": load_before,
        "output_lines": len(proc.stdout.splitlines()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(stamp(document), indent=2) + "\n", encoding="utf-8")
    if not complete:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
