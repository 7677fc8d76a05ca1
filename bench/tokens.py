"""Token shards benchmark: peak memory against corpus size, tokens on disk next to tokens in memory.

    python bench/tokens.py [--sizes-mb 32,128,512] [--peer-max-mb 512] [--limited-mb 512]
                           [--limit-data-mb 384] [--batches 500] [--dir DIR] [--json OUT]

For each corpus size it generates JSONL shards of English-like text (bench/register.py's
generator; nothing is read from outside), registers them in place in a fresh home, and runs, each
in a child process of its own so that its peak RSS (`ru_maxrss`) is that path's alone:
  * `shards`: `prepare_tokens` (tokenize, stream the ids into uint16 shard files in the store,
    record tokens.prepared/v1), then `--batches` training batches read through the memory-mapped
    TokenData: tokenize throughput, peak RSS after preparing and after reading;
  * `reuse`: a later run's view, `prepare_tokens` again (finds the entry, re-hashes every shard,
    tokenizes nothing), then the same batches;
  * `memory` (the peer, on sizes up to `--peer-max-mb`): `TokenData.from_datasets`, all ids in
    int32 tensors, then the same batches.
Each child also reports VmPeak (its largest virtual size) and checks that its batches are the
ones the other paths drew (a digest of every batch read).

Then the memory limit: on the `--limited-mb` corpus, in a new home, the `shards` and `memory`
children run again with `RLIMIT_DATA` set to `--limit-data-mb` (`prlimit --data`, the limit on
private writable memory: heap, anonymous maps and thread stacks, since Linux 4.7), smaller than
the corpus. Read-only file maps do not count against RLIMIT_DATA, and a batch maps only the pages
of the windows it reads, so the shards path fits; the in-memory path must hold every id and runs
out of memory (MemoryError inside the tokenizer, after which its threads hang: it is killed after
1.5 times the shards path's wall time). RLIMIT_AS (`ulimit -v`) counts file maps and the ~0.7 GiB
of shared libraries that importing torch maps, so it cannot go below a corpus this size here.

The tokenizer (vocab `--vocab`) is trained once on a sample of the smallest corpus and used for all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _meta import load_average, log, write_json

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20


def _status(field: str) -> int | None:
    """A /proc/self/status figure in KiB (VmHWM, VmPeak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


# -- the child: one path, one process ------------------------------------------------------------


def child(args: argparse.Namespace) -> dict:
    import torch

    from custody.datasets.registry import DatasetRegistry
    from custody.home import Home
    from custody.train.data import TokenData
    from custody.train.token_shards import prepare_tokens
    from custody.train.tokenizer import load_tokenizer

    torch.set_num_threads(1)
    home = Home.open(args.home)
    dataset = DatasetRegistry(home).get(args.dataset)
    tokenizer = load_tokenizer(Path(args.tokenizer))
    out: dict = {"mode": args.child, "baseline_rss_mib": _mib(_status("VmHWM"))}
    said: list[str] = []
    started = time.perf_counter()
    try:
        if args.child == "memory":
            data = TokenData.from_datasets([dataset], tokenizer, args.block, args.val_fraction)
        else:
            prepared = prepare_tokens(
                home, [dataset], tokenizer, args.block, args.val_fraction, "bench",
                say=said.append, shard_tokens=args.shard_tokens,
            )  # fmt: skip
            data = prepared.data
            out.update(reused=prepared.reused, entry_index=prepared.entry_index, said=said)
            out["shards"] = len(data.train.shards) + len(data.val.shards)
            out["shard_mib"] = round((len(data.train) + len(data.val)) * data.train.dtype.itemsize / MiB, 1)
    except BaseException as exc:  # under the memory limit: what failed, and how far it got
        out.update(
            error=f"{type(exc).__name__}: {str(exc)[:300]}",
            seconds=round(time.perf_counter() - started, 2),
            peak_rss_mib=_mib(_status("VmHWM")),
        )
        return out
    prepare_s = time.perf_counter() - started
    out.update(
        prepare_seconds=round(prepare_s, 2),
        train_tokens=len(data.train),
        val_tokens=len(data.val),
        tokens_digest=data.digest,
        int32_mib=round((len(data.train) + len(data.val)) * 4 / MiB, 1),
        rss_after_prepare_mib=_mib(_status("VmHWM")),
    )
    batches = hashlib.sha256()
    started = time.perf_counter()
    for step in range(args.batches):
        x, _ = data.batch("train" if step % 10 else "val", step, args.batch, seed=7)
        batches.update(x.numpy().tobytes())
    read_s = time.perf_counter() - started
    out.update(
        batches=args.batches,
        batch_size=args.batch,
        block_size=args.block,
        batches_per_s=round(args.batches / read_s, 1),
        batches_digest=batches.hexdigest(),
        peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        vm_peak_mib=_mib(_status("VmPeak")),
    )
    home.close()
    return out


def run_child(
    args: argparse.Namespace,
    mode: str,
    home: Path,
    ref: str,
    tokenizer: Path,
    limit_mb: int | None,
    timeout: float | None = None,
) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--home", str(home)]
    cmd += ["--dataset", ref, "--tokenizer", str(tokenizer), "--block", str(args.block), "--batch", str(args.batch)]
    cmd += ["--batches", str(args.batches), "--shard-tokens", str(args.shard_tokens)]
    cmd += ["--val-fraction", str(args.val_fraction)]
    if limit_mb is not None:
        cmd = ["prlimit", f"--data={limit_mb * MiB}", *cmd]
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform"), "CUSTODY_ACTOR": "bench"}
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:  # killed (SIGKILL): what it printed until then
        stdout, stderr, code = _text(exc.stdout), _text(exc.stderr), None
    wall = round(time.perf_counter() - started, 2)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        ended = f"exit {code}" if code is not None else f"no result after {wall} s, killed (timeout {timeout:.0f} s)"
        result = {"mode": mode, "error": f"{ended}; its stderr ends: {stderr.strip()[-400:]}", "wall_seconds": wall}
    else:
        result = json.loads(lines[-1])
        result.update(wall_seconds=wall, exit_code=code)
    if limit_mb is not None:
        result["limit"] = f"prlimit --data={limit_mb * MiB} (RLIMIT_DATA {limit_mb} MiB)"
    return result


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


# -- the parent: corpora, homes, children ----------------------------------------------------------


def make_home(path: Path, keys: Path):
    from custody.testing.people import Cast

    keys.mkdir(parents=True, exist_ok=True)
    return Cast(keys).init_home(path)


def register(home_path: Path, keys: Path, corpus: Path, name: str) -> str:
    from custody.datasets.card import parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields
    from custody.datasets.registry import DatasetRegistry
    from register import CARD

    home = make_home(home_path, keys)
    try:
        DatasetRegistry(home).register(
            [corpus], DatasetRef(name, "1"), parse_card(CARD), Fields(id="id"), in_place=True, actor="bench"
        )
    finally:
        home.close()
    return f"{name}@1"


def train_bench_tokenizer(corpus: Path, out: Path, vocab: int) -> str:
    from custody.train.tokenizer import train_tokenizer

    texts = []
    with open(sorted(corpus.glob("*.jsonl"))[0], encoding="utf-8") as handle:
        for line in handle:
            texts.append(json.loads(line)["text"])
            if len(texts) >= 4000:
                break
    tokenizer = train_tokenizer(texts, vocab_size=vocab)
    tokenizer.save(out)
    return tokenizer.digest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mb", default="32,128,512", help="corpus sizes in MiB of JSONL")
    parser.add_argument("--peer-max-mb", type=int, default=512, help="largest corpus the in-memory peer runs on")
    parser.add_argument("--limited-mb", type=int, default=512, help="corpus for the run under the memory limit")
    parser.add_argument("--limit-data-mb", type=int, default=384, help="RLIMIT_DATA for that run, MiB")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--val-fraction", type=float, default=0.01)
    parser.add_argument("--shard-tokens", type=int, default=1 << 26)
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one, removed)")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "figures" / "tokens.json")
    parser.add_argument("--child", choices=["shards", "reuse", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return 0

    sys.path.insert(0, str(REPO / "platform"))
    from register import generate_corpus

    sizes = [int(s) for s in args.sizes_mb.split(",")]
    with tempfile.TemporaryDirectory(prefix="custody-tokens-", dir=args.dir) as tmp:
        work = Path(tmp)
        keys = work / "keys"
        corpora: dict[int, Path] = {}
        results = []
        tokenizer = work / "tokenizer.json"
        for size in sorted(set(sizes) | {args.limited_mb}):
            folder = work / f"corpus-{size}mb"
            files, records = generate_corpus(folder, size / 1024, shard_mb=max(1, min(64, size // 4)))
            corpora[size] = folder
            if not tokenizer.exists():
                log(f"tokenizer: vocab {args.vocab} from a sample of the {size} MiB corpus")
                train_bench_tokenizer(folder, tokenizer, args.vocab)
            if size not in sizes:
                continue
            text_bytes = sum(p.stat().st_size for p in files)
            log(f"{size} MiB corpus: {len(files)} files, {records:,} records; registering")
            home = work / f"home-{size}mb"
            ref = register(home, keys, folder, f"corpus{size}")
            row = {"corpus_mib": size, "bytes": text_bytes, "records": records, "runs": {}}
            modes = ["shards", "reuse"] + (["memory"] if size <= args.peer_max_mb else [])
            for mode in modes:
                log(f"{size} MiB: {mode} (load {load_average()})")
                found = run_child(args, mode, home, ref, tokenizer, None)
                if mode == "shards" and "prepare_seconds" in found:
                    found["tokenize_mib_per_s"] = round(text_bytes / MiB / found["prepare_seconds"], 2)
                    found["tokens_per_s"] = round(
                        (found["train_tokens"] + found["val_tokens"]) / found["prepare_seconds"]
                    )
                row["runs"][mode] = found
                log(f"  {json.dumps({k: v for k, v in found.items() if k != 'said'})[:400]}")
            runs = row["runs"]
            if "memory" in runs and "peak_rss_mib" in runs["memory"] and "peak_rss_mib" in runs["shards"]:
                row["memory_over_shards_rss"] = round(
                    runs["memory"]["peak_rss_mib"] / runs["shards"]["peak_rss_mib"], 2
                )
                row["same_batches"] = len({r.get("batches_digest") for r in runs.values()}) == 1
                row["same_tokens_digest"] = len({r.get("tokens_digest") for r in runs.values()}) == 1
            results.append(row)

        size = args.limited_mb
        folder = corpora[size]
        log(f"under RLIMIT_DATA {args.limit_data_mb} MiB: the {size} MiB corpus in a new home")
        home = work / f"home-limited-{size}mb"
        ref = register(home, keys, folder, f"limited{size}")
        limited = {
            "corpus_mib": size,
            "bytes": sum(p.stat().st_size for p in folder.glob("*.jsonl")),
            "limit_data_mib": args.limit_data_mb,
            "runs": {},
        }
        # Under the limit the in-memory path raises MemoryError inside the tokenizer, whose Rust
        # threads then cannot allocate either and the process hangs: it gets 1.5 times the
        # shards path's wall time under the same limit, then is killed.
        timeout = None
        for mode in ("shards", "memory"):
            found = run_child(args, mode, home, ref, tokenizer, args.limit_data_mb, timeout)
            limited["runs"][mode] = found
            timeout = max(60.0, 1.5 * found["wall_seconds"])
            log(f"  limited {mode}: {json.dumps({k: v for k, v in found.items() if k != 'said'})[:400]}")

    document = {
        "benchmark": "token shards: peak RSS against corpus size, memory-mapped shards next to in-memory tokens",
        "settings": {
            "vocab": args.vocab,
            "block_size": args.block,
            "batch_size": args.batch,
            "batches": args.batches,
            "val_fraction": args.val_fraction,
            "shard_tokens": args.shard_tokens,
            "torch_threads": 1,
        },
        "sizes": results,
        "limited": limited,
        "load_average_at_end": load_average(),
    }
    write_json(args.json, document)
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
