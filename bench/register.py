"""Dataset registration benchmark: throughput next to `sha256sum`, and peak memory against corpus size.

    python bench/register.py [--gb 1.0] [--small-gb 0.25] [--shard-mb 64] [--dir DIR] [--json OUT]

For each corpus size (`--small-gb`, then `--gb`) it generates JSONL shards of about `--shard-mb`
MiB (records of varying length built from a built-in word list; nothing is read from outside)
and measures, on the same files:
  * `sha256sum` over every shard (the floor: reading and hashing the bytes once), and the same
    through Python's hashlib (OpenSSL), a second reference;
  * copying the shards into another folder and fsyncing them (shutil.copyfile, no hashing): the
    floor for the copy mode, which writes every byte durably where sha256sum only reads;
  * `custody dataset register` copying into the content-addressed store (the default);
  * `custody dataset register --in-place` (hash where the data lies, nothing copied), and the
    same with `--workers 1` (the one-read, orjson path on one core: what the worker pool adds);
both with `--no-index`: registration builds the passage index for `custody find` by default, which
bench/takedown.py measures on its own (index build MB/s); here only the registration proper;
each as wall time and MiB/s, with the ratio of custody's MiB/s to sha256sum's. Registration runs
as a separate `custody` process (the CLI, exactly as a user runs it) in a fresh home, under
`/usr/bin/time -v` when it exists, so its peak RSS is that process's alone; without it, the child
reports its own VmHWM (either way the largest single process). Registration reads shards in
worker processes, so the bench also samples the RSS of the whole process tree, summed, every
10 ms (an upper bound: shared pages count once per process). The baseline is the peak RSS of
`custody version` (imports only).
Peak RSS must not grow with the corpus: the output prints both sizes side by side.

Files are warmed into the page cache before timing (`cat > /dev/null`), so the figures compare
CPU cost, not the disk; a corpus larger than RAM measures the disk too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from _meta import stamp

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[1]

_WORD_TEXT = """
the of and to in a is that for it as was with be by on not he this are or his from at which but have an
they you were her she there been one all we their has would when if so no will more can out who about
them some could him into its then two time only than other new first any very these our may after also
made over did many before must through back years where much way well down should because each just
those people how too little state good very make world still own see men work long get here between both
life being under never day same another know while last might us great old year off come since against
go came right used take three states himself few house use during without again place american around
however home small found thought went say part once general high upon school every don does got united
left number course war until always away something fact though water less public put think almost hand
enough far took head yet government system better set told nothing night end why called didn eyes find
going look asked later knew point next program city business give group toward young days let room
president side social present given several order national possible rather second face per among form
important often things looked early white case john become large big need four within felt along children
saw best church ever least power development light thing seemed family interest want members mind country
area others done turned although open god service problem certain kind different thus began door help
sense means whole matter perhaps itself york times law human line above name example action company hands
local show whether five history gave today either act feet across taken past quite anything having seen
death experience body word half really week free field car words already themselves information tell
together college shall money period held keep sure real probably political seems cannot behind miss
data model training corpus token license source dataset record shard registry ledger custody provenance
"""
WORDS = _WORD_TEXT.split()
DOMAINS = [
    "en.wikipedia.org",
    "www.gutenberg.org",
    "arxiv.org",
    "news.example.com",
    "forum.example.net",
    "docs.python.org",
    "blog.example.org",
    "stackexchange.com",
]
LICENSES = ["CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0", "MIT", "Apache-2.0", None, None]

CARD = """\
[dataset]
title = "Generated benchmark corpus"
description = "Synthetic English-like web text for the registration benchmark."
modality = ["text"]
languages = ["en"]

[[sources]]
name = "bench generator"
kind = "synthetic"
license = "CC0-1.0"
retrieved_at = 2026-11-26

[license]
declared = "CC0-1.0"
"""


# -- corpus ---------------------------------------------------------------------------------------


def _sentences(rng: random.Random, count: int) -> list[str]:
    pool = []
    for _ in range(count):
        words = rng.choices(WORDS, k=rng.randint(5, 28))
        words[0] = words[0].capitalize()
        pool.append(" ".join(words) + rng.choice([".", ".", ".", "?", "!"]))
    return pool


def generate_corpus(directory: Path, gb: float, shard_mb: int, seed: int = 2026) -> tuple[list[Path], int]:
    """JSONL shards of ~shard_mb MiB until `gb` GiB; records from 1 to ~120 sentences (lognormal)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    pool = _sentences(rng, 50_000)
    target = int(gb * 1024 * MiB)
    shard_bytes = shard_mb * MiB
    shards, written, records = [], 0, 0
    while written < target:
        path = directory / f"part-{len(shards):05d}.jsonl"
        size = 0
        with open(path, "wb") as out:
            buffer: list[bytes] = []
            while size < shard_bytes and written + size < target:
                n = max(1, min(400, int(rng.lognormvariate(2.5, 1.0))))
                record = {
                    "id": f"doc-{records:09d}",
                    "text": " ".join(rng.choices(pool, k=n)),
                    "source_url": f"https://{rng.choice(DOMAINS)}/page/{rng.randrange(10**9)}",
                }
                license_ = rng.choice(LICENSES)
                if license_:
                    record["license"] = license_
                line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
                buffer.append(line)
                size += len(line)
                records += 1
                if len(buffer) >= 2048:
                    out.write(b"".join(buffer))
                    buffer.clear()
            out.write(b"".join(buffer))
        shards.append(path)
        written += size
    return shards, records


# -- measuring ------------------------------------------------------------------------------------------

_HASHLIB = (
    "import hashlib, sys\n"
    "for name in sys.argv[1:]:\n"
    "    digest = hashlib.sha256()\n"
    "    with open(name, 'rb') as handle:\n"
    "        while chunk := handle.read(1 << 20):\n"
    "            digest.update(chunk)\n"
    "    print(digest.hexdigest(), name)\n"
)

# The floor for the copy mode: the same bytes copied into another folder and fsynced, nothing else.
_COPY_FSYNC = (
    "import os, shutil, sys\n"
    "target = sys.argv[1]\n"
    "for name in sys.argv[2:]:\n"
    "    copy = os.path.join(target, os.path.basename(name))\n"
    "    shutil.copyfile(name, copy)\n"
    "    with open(copy, 'rb') as handle:\n"
    "        os.fsync(handle.fileno())\n"
)

_HWM_WRAPPER = (
    "import runpy, sys, atexit\n"
    "def report():\n"
    "    with open('/proc/self/status') as f:\n"
    "        hwm = next(int(l.split()[1]) for l in f if l.startswith('VmHWM:'))\n"
    "    sys.stderr.write(f'Maximum resident set size (kbytes): {hwm}\\n')\n"
    "atexit.register(report)\n"
    "sys.argv = ['custody', *sys.argv[1:]]\n"
    "runpy.run_module('custody', run_name='__main__')\n"
)


@dataclass
class Run:
    what: str
    corpus_gb: float
    bytes: int
    seconds: float
    mib_per_s: float
    ratio_to_sha256sum: float | None = None
    peak_rss_mib: float | None = None  # the largest single process (GNU time's figure)
    tree_peak_rss_mib: float | None = None  # all its processes, RSS summed (TreeRss)


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed, proc


class TreeRss:
    """Samples the summed RSS of a process and all its descendants (the registering process, its
    forkserver and its shard workers) every 10 ms. Pages they share (the interpreter, libraries)
    count once per process, so the sum is an upper bound on what the registration holds. (PSS
    would split shared pages, but also with unrelated processes that map the same libraries.)"""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    def watch(self, pid: int) -> threading.Thread:
        import psutil

        def sample() -> None:
            while not self._stop.is_set():
                try:
                    root = psutil.Process(pid)
                    total = 0
                    for proc in [root, *root.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):  # a worker that just ended
                            total += proc.memory_info().rss
                    self.peak = max(self.peak, total)
                except psutil.Error:
                    pass
                self._stop.wait(0.01)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        return thread

    def stop(self, thread: threading.Thread) -> float:
        self._stop.set()
        thread.join()
        return round(self.peak / MiB, 1)


def timed_tree(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess, float]:
    """Like timed, with the process tree's peak summed RSS (TreeRss)."""
    started = time.perf_counter()
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    tree = TreeRss()
    thread = tree.watch(popen.pid)
    out, err = popen.communicate()
    elapsed = time.perf_counter() - started
    peak = tree.stop(thread)
    if popen.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed ({popen.returncode}):\n{err[-2000:]}")
    return elapsed, subprocess.CompletedProcess(cmd, popen.returncode, out, err), peak


def custody_cmd(args: list[str]) -> tuple[list[str], bool]:
    """The custody command line, under /usr/bin/time -v when available (peak RSS of that process only)."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if gnu_time:
        return [gnu_time, "-v", sys.executable, "-m", "custody", *args], True
    return [sys.executable, "-c", _HWM_WRAPPER, *args], False


def peak_rss_mib(stderr: str) -> float | None:
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return int(match.group(1)) / 1024 if match else None


def warm(files: list[Path]) -> None:
    for path in files:
        with open(path, "rb") as handle:
            while handle.read(8 * MiB):
                pass


def make_home(home: Path, keys: Path) -> Path:
    """A fresh home (first admin `admin`) with the engineer `bench` on its roster; returns the
    engineer's key file, which the registering CLI gets as $CUSTODY_KEY (registration is signed
    by an engineer). Not timed: only `custody dataset register` is."""
    from custody.testing.people import Cast

    cast = Cast(keys)
    keys.mkdir(parents=True, exist_ok=True)
    created = cast.init_home(home)
    try:
        cast.enroll(created, "bench", "engineer")
    finally:
        created.close()
    return cast.key_file("bench")


def bench_size(workdir: Path, gb: float, shard_mb: int, env: dict) -> tuple[list[Run], dict]:
    corpus = workdir / f"corpus-{gb:g}gb"
    started = time.perf_counter()
    shards, records = generate_corpus(corpus, gb, shard_mb)
    total = sum(p.stat().st_size for p in shards)
    info = {
        "corpus_gb": gb,
        "shards": len(shards),
        "records": records,
        "bytes": total,
        "generate_s": round(time.perf_counter() - started, 1),
    }
    print(
        f"  generated {len(shards)} shards, {records:,} records, {total / MiB:,.0f} MiB in {info['generate_s']} s",
        flush=True,
    )
    card = workdir / "card.toml"
    card.write_text(CARD, encoding="utf-8")
    runs: list[Run] = []

    warm(shards)
    seconds, _ = timed(["sha256sum", *map(str, shards)])
    base = total / MiB / seconds
    runs.append(Run("sha256sum", gb, total, round(seconds, 2), round(base, 1), 1.0))
    print(f"  sha256sum: {seconds:.2f} s, {base:,.0f} MiB/s", flush=True)
    # A second reference: the same hash through OpenSSL (what custody's hashlib uses), which on
    # CPUs with SHA extensions is several times faster than coreutils' portable code.
    seconds, _ = timed([sys.executable, "-c", _HASHLIB, *map(str, shards)])
    rate = total / MiB / seconds
    runs.append(Run("hashlib sha256 (OpenSSL)", gb, total, round(seconds, 2), round(rate, 1), round(rate / base, 3)))
    print(f"  hashlib sha256: {seconds:.2f} s, {rate:,.0f} MiB/s", flush=True)
    # What copying alone costs: registration's default mode writes every byte into the store.
    copies = workdir / "copies"
    copies.mkdir(exist_ok=True)
    seconds, _ = timed([sys.executable, "-c", _COPY_FSYNC, str(copies), *map(str, shards)])
    shutil.rmtree(copies)
    rate = total / MiB / seconds
    runs.append(Run("copy + fsync (no hashing)", gb, total, round(seconds, 2), round(rate, 1), round(rate / base, 3)))
    print(f"  copy + fsync: {seconds:.2f} s, {rate:,.0f} MiB/s", flush=True)

    for label, extra in (
        ("register (copy into store)", []),
        ("register --in-place", ["--in-place"]),
        # the same fast path on one core: what the worker pool adds
        ("register --in-place --workers 1", ["--in-place", "--workers", "1"]),
    ):
        home = workdir / f"home-{gb:g}-{'-'.join(extra) or 'copy'}"
        shutil.rmtree(home, ignore_errors=True)
        env = {**env, "CUSTODY_KEY": str(make_home(home, workdir / "keys"))}
        warm(shards)
        cmd, _ = custody_cmd(
            [
                "dataset",
                "register",
                str(corpus),
                "--name",
                "bench",
                "--version",
                f"{gb:g}gb",
                "--card",
                str(card),
                "--json",
                "--home",
                str(home),
                "--no-index",  # the passage index has its own benchmark (bench/takedown.py)
                *extra,
            ]
        )
        seconds, proc, tree_peak = timed_tree(cmd, env)
        registered = json.loads(proc.stdout[: proc.stdout.rindex("}") + 1])
        assert registered["records"] == records and registered["bytes"] == total, registered
        rate = total / MiB / seconds
        runs.append(
            Run(
                label,
                gb,
                total,
                round(seconds, 2),
                round(rate, 1),
                round(rate / base, 3),
                peak_rss_mib(proc.stderr),
                tree_peak,
            )
        )
        print(
            f"  {label}: {seconds:.2f} s, {rate:,.0f} MiB/s ({rate / base:.2f}x sha256sum), "
            f"peak RSS {runs[-1].peak_rss_mib:.0f} MiB (all processes summed: {tree_peak:.0f} MiB)",
            flush=True,
        )
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(corpus, ignore_errors=True)
    return runs, info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="corpus size in GiB [1.0]")
    parser.add_argument("--small-gb", type=float, default=0.25, help="smaller corpus for the memory comparison [0.25]")
    parser.add_argument("--shard-mb", type=int, default=64, help="shard size in MiB [64]")
    parser.add_argument("--dir", type=Path, help="work directory [a new temp dir, removed afterwards]")
    parser.add_argument("--json", type=Path, dest="json_out", help="write the results as JSON here")
    args = parser.parse_args()
    if shutil.which("sha256sum") is None:
        parser.error("sha256sum is not on PATH")

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="custody-bench-register-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CUSTODY_ACTOR": os.environ.get("CUSTODY_ACTOR", "bench")}
    try:
        cmd, via_time = custody_cmd(["version"])
        startup_s, proc = timed(cmd, env)
        baseline = peak_rss_mib(proc.stderr)
        print(
            f"custody version: {startup_s:.2f} s, peak RSS {baseline:.0f} MiB (start-up and imports only); "
            f"RSS measured {'by /usr/bin/time -v' if via_time else 'as the process VmHWM'}",
            flush=True,
        )
        runs: list[Run] = []
        corpora = []
        for gb in sorted({args.small_gb, args.gb}):
            print(f"corpus {gb:g} GiB:", flush=True)
            size_runs, info = bench_size(workdir, gb, args.shard_mb, env)
            runs += size_runs
            corpora.append(info)
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    header = (
        f"{'run':<32} {'corpus':>8} {'wall s':>8} {'MiB/s':>9} {'vs sha256sum':>13} {'peak RSS MiB':>13} "
        f"{'all procs MiB':>13}"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        rss = f"{run.peak_rss_mib:.0f}" if run.peak_rss_mib is not None else "-"
        tree = f"{run.tree_peak_rss_mib:.0f}" if run.tree_peak_rss_mib is not None else "-"
        print(
            f"{run.what:<32} {run.corpus_gb:>6g} G {run.seconds:>8.2f} {run.mib_per_s:>9.1f} "
            f"{run.ratio_to_sha256sum:>12.2f}x {rss:>13} {tree:>13}"
        )
    print()
    for label in ("register (copy into store)", "register --in-place"):
        peaks = {
            r.corpus_gb: (r.peak_rss_mib, r.tree_peak_rss_mib)
            for r in sorted(runs, key=lambda r: r.corpus_gb)
            if r.what == label
        }
        print(
            f"peak RSS, {label}: "
            + ", ".join(f"{gb:g} GiB -> {rss:.0f} MiB (all: {tree:.0f})" for gb, (rss, tree) in peaks.items())
            + f" (custody version alone: {baseline:.0f} MiB)"
        )

    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(
            json.dumps(
                stamp(
                    {
                        "benchmark": "dataset registration",
                        "date": datetime.now(UTC).isoformat(timespec="seconds"),
                        "machine": {
                            "platform": platform.platform(),
                            "cpus": os.cpu_count(),
                            "python": platform.python_version(),
                        },
                        "baseline_peak_rss_mib": baseline,
                        "baseline_startup_s": round(startup_s, 2),
                        "rss_measured_by": "/usr/bin/time -v" if via_time else "VmHWM",
                        "corpora": corpora,
                        "runs": [asdict(r) for r in runs],
                    }
                ),
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        print(f"results written to {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
