"""py-cpuinfo's answer about this machine's CPU, asked once per machine instead of once per process.

CodeCarbon names the CPU (and picks its TDP) from `cpuinfo.get_cpu_info()`, which starts a fresh
Python interpreter to read CPUID: about 1.1 s, paid by the first tracker of every process, so by
every `custody check`, `prepare` and `run` (docs/benchmarks.md, "Scale (Ray)"). The answer depends
only on the CPU, so it is kept in the user's cache directory, named by a digest of the lines of
/proc/cpuinfo that describe the CPU (not its clock speed), and read back by later processes: the
same dictionary, so the same model name, TDP and energy estimate. Where there is no
/proc/cpuinfo, or the cache cannot be written, py-cpuinfo is asked as before.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

PROC_CPUINFO = Path("/proc/cpuinfo")
# The lines of /proc/cpuinfo that describe the CPU itself ("cpu MHz" and "bogomips" move).
IDENTITY = ("vendor_id", "cpu family", "model", "model name", "stepping", "microcode", "flags", "cpu cores")
FORMAT = 1  # bump to ignore caches written by an earlier layout


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "custody"


def machine_key(proc_cpuinfo: Path = PROC_CPUINFO) -> str | None:
    """A digest of what identifies this machine's CPUs, or None where /proc/cpuinfo is not there."""
    try:
        text = proc_cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    described = sorted(line.strip() for line in text.splitlines() if line.split(":", 1)[0].strip() in IDENTITY)
    import cpuinfo

    scope = {
        "format": FORMAT,
        "cpuinfo": described,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "py_cpuinfo": cpuinfo.CPUINFO_VERSION_STRING,
    }
    return hashlib.sha256(json.dumps(scope, sort_keys=True).encode()).hexdigest()


def cached_cpu_info(ask: Any, directory: Path | None = None, proc_cpuinfo: Path = PROC_CPUINFO) -> dict:
    """`ask()` (py-cpuinfo's get_cpu_info) on this machine's first call, the kept answer after."""
    key = machine_key(proc_cpuinfo)
    if key is None:
        return ask()
    path = (directory or cache_dir()) / f"cpuinfo-{key[:24]}.json"
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(kept, dict) and kept.get("key") == key and isinstance(kept.get("info"), dict):
            return kept["info"]
    except (OSError, ValueError):
        pass  # not there yet, or damaged: ask again and keep the new answer
    info = ask()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"key": key, "info": info}, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)
    except (OSError, TypeError, ValueError):
        pass  # a read-only home: the next process asks again
    return info


def remember_cpu_info() -> None:
    """Make py-cpuinfo answer from the cache in this process (CodeCarbon looks it up per call)."""
    import cpuinfo

    original = cpuinfo.get_cpu_info
    if getattr(original, "custody_cached", False):
        return

    @functools.wraps(original)
    def get_cpu_info() -> dict:
        return cached_cpu_info(original)

    get_cpu_info.custody_cached = True  # type: ignore[attr-defined]
    cpuinfo.get_cpu_info = get_cpu_info
