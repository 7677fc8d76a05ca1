"""What every benchmark's raw output says about the run that produced it: machine, date, command.

A figure quoted in docs/ must be reproducible from its raw JSON alone (tests/test_doc_figures.py
checks the numbers against it): which machine measured it, when, and the exact command line to
run it again. Each bench script passes its JSON document through `stamp()` before writing it.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return path


def _python() -> str:
    """The interpreter as the docs write it: `.venv/bin/python` inside the repository, else its path."""
    try:
        return str(Path(sys.executable).absolute().relative_to(REPO))
    except ValueError:
        return Path(sys.executable).name


def command() -> str:
    """This process's command line, relative to the repository root."""
    return shlex.join([_python(), _relative(sys.argv[0]), *sys.argv[1:]])


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_end": load,
    }


def code_version() -> dict[str, Any] | None:
    """The commit measured, and the files under platform/ and bench/ that differed from it."""

    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=30).stdout

    try:
        commit = run("rev-parse", "HEAD").strip()
        modified = [line[3:] for line in run("status", "--porcelain", "--", "platform", "bench").splitlines()]
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "modified": modified}


def stamp(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with `date`, `command`, `machine` and `git` first; keys the script set itself win."""
    own_machine = document.get("machine")
    merged = machine()
    if isinstance(own_machine, dict):
        merged.update(own_machine)
    elif own_machine is not None:
        merged["arch"] = own_machine
    head = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "command": command(), "machine": merged}
    if "git" not in document and (version := code_version()) is not None:
        head["git"] = version
    return {**head, **{k: v for k, v in document.items() if k not in head}, "date": document.get("date", head["date"])}


def log(message: str) -> None:
    """A progress line on stderr, time-stamped; stdout stays the script's result."""
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> float:
    """1-minute load average: on a 2-core machine anything else running skews every figure."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def write_json(path: Path, result: dict[str, Any]) -> None:
    """The raw output, stamped with machine, date, command and commit (what docs/figures/ keeps)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamp(result), indent=2) + "\n")
