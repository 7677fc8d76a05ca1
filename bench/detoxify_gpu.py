"""Throughput of a detoxify-architecture model: docs/s at batch sizes 1, 32 and 256, GPU next to CPU.

    python bench/detoxify_gpu.py                      # CPU and, when present, CUDA (fp32, fp16, bf16)
    python bench/detoxify_gpu.py --cpu-only --quick   # a fast smoke run

Self-contained: torch and transformers only (no custody imports); nothing is downloaded. The model is
detoxify `original`'s architecture, BertForSequenceClassification at bert-base-uncased size (12
layers, hidden 768, 12 heads, 30,522-token vocabulary, 6 sigmoid outputs), with random weights:
throughput does not depend on the weights. The tokenizer is a BertTokenizerFast over a generated
WordPiece vocabulary of the same size. Each document is ~60 words of generated text (some words
outside the vocabulary, so they split into pieces, as real text does): ~80 tokens.

Timed per batch, end to end as detoxify's predict() does it: tokenize (truncation at 512, padding),
copy to the device, forward under torch.inference_mode (and autocast for fp16/bf16 on the GPU),
sigmoid, copy back. On the GPU the forward pass alone (inputs already on the device) is timed too.
Writes a table to stdout and the raw figures to --json (or, when $OUT is set, $OUT/detoxify_gpu.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import transformers
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from _meta import stamp

VOCAB_SIZE = 30522
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ONSETS = ["", "b", "br", "c", "ch", "d", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "pr", "r", "s"]
ONSETS += ["sh", "st", "t", "th", "tr", "v", "w", "y", "z"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
CODAS = ["", "n", "r", "s", "t", "l", "nd", "st"]


def build_vocab(size: int = VOCAB_SIZE, seed: int = 0) -> tuple[list[str], list[str]]:
    """A WordPiece vocabulary of `size` tokens, and the whole words in it."""
    rng = random.Random(seed)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    syllables = [o + v + c for o in ONSETS for v in VOWELS for c in CODAS]
    base = SPECIALS + list(".,!?'") + letters + [f"##{c}" for c in letters] + [f"##{s}" for s in syllables]
    tokens = list(dict.fromkeys(base))  # unique, in order
    seen = set(tokens)
    words: list[str] = []
    while len(tokens) < size:
        word = "".join(rng.choice(syllables) for _ in range(rng.choice((1, 2, 2, 3))))
        if word and word not in seen:
            seen.add(word)
            tokens.append(word)
            words.append(word)
    return tokens[:size], words


def build_tokenizer(folder: Path) -> tuple[BertTokenizerFast, list[str]]:
    vocab, words = build_vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = {"do_lower_case": True, "model_max_length": 512}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), local_files_only=True)  # as a bert-base folder loads
    probe = tokenizer(make_texts(words, 8))["input_ids"]
    unknown = sum(ids.count(tokenizer.unk_token_id) for ids in probe) / sum(len(ids) for ids in probe)
    assert len(tokenizer) == VOCAB_SIZE and unknown < 0.01, (len(tokenizer), unknown)
    return tokenizer, words


def make_texts(words: list[str], count: int, n_words: int = 60, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    syllables = [o + v for o in ONSETS for v in VOWELS]
    texts = []
    for _ in range(count):
        out = []
        for _ in range(n_words + rng.randint(-5, 5)):
            if rng.random() < 0.9:
                out.append(rng.choice(words))
            else:  # a word outside the vocabulary: several pieces
                out.append("".join(rng.choice(syllables) for _ in range(rng.randint(3, 5))))
        texts.append(" ".join(out).capitalize() + ".")
    return texts


def build_model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB_SIZE, num_labels=6, problem_type="multi_label_classification")
    return BertForSequenceClassification(config).eval()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _autocast(device: str, dtype: str):
    if dtype == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=torch.float16 if dtype == "fp16" else torch.bfloat16)


def measure(model, tokenizer, texts, device, dtype, batch_size, batches, warmup, budget_s, forward=False) -> dict:
    """docs/s end to end (and forward only on the GPU) over `batches` batches, within budget_s."""
    chunks = [[texts[(i * batch_size + j) % len(texts)] for j in range(batch_size)] for i in range(batches + warmup)]
    times, forward_times, tokens = [], [], []
    started = time.perf_counter()
    for i, chunk in enumerate(chunks):
        _sync(device)
        t0 = time.perf_counter()
        encoded = tokenizer(chunk, truncation=True, max_length=512, padding=True, return_tensors="pt")
        encoded = {k: v.to(device, non_blocking=True) for k, v in encoded.items()}
        with torch.inference_mode(), _autocast(device, dtype):
            logits = model(**encoded).logits
            probabilities = torch.sigmoid(logits.float()).cpu()
        _sync(device)
        elapsed = time.perf_counter() - t0
        assert probabilities.shape == (len(chunk), 6)
        if i >= warmup:
            times.append(elapsed)
            tokens.append(int(encoded["attention_mask"].sum()) / len(chunk))
            if forward:
                _sync(device)
                t1 = time.perf_counter()
                with torch.inference_mode(), _autocast(device, dtype):
                    model(**encoded)
                _sync(device)
                forward_times.append(time.perf_counter() - t1)
        if i >= warmup and time.perf_counter() - started > budget_s:
            break
    docs = len(times) * batch_size
    result = {
        "device": device.split(":")[0],
        "dtype": dtype,
        "batch_size": batch_size,
        "docs": docs,
        "docs_per_s": round(docs / sum(times), 1),
        "ms_per_batch_median": round(statistics.median(times) * 1e3, 2),
        "tokens_per_doc": round(statistics.mean(tokens), 1),
    }
    if forward_times:
        result["forward_docs_per_s"] = round(docs / sum(forward_times), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-only", action="store_true", help="skip the GPU even if one is present")
    parser.add_argument("--quick", action="store_true", help="fewer batches (a smoke run)")
    parser.add_argument("--batch-sizes", default="1,32,256")
    parser.add_argument("--words", type=int, default=60, help="words per document")
    parser.add_argument("--threads", type=int, help="torch CPU threads [default: torch's choice]")
    parser.add_argument("--json", type=Path, help="raw figures to this file [default: $OUT/detoxify_gpu.json if $OUT]")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    use_cuda = torch.cuda.is_available() and not args.cpu_only

    total_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="detoxify-bench-") as tmp:
        tokenizer, words = build_tokenizer(Path(tmp))
    texts = make_texts(words, 1024, args.words)
    model = build_model()
    params = sum(p.numel() for p in model.parameters())
    info = {
        "model": "BertForSequenceClassification (bert-base-uncased size, random weights, 6 outputs)",
        "parameters": params,
        "attention": getattr(model.config, "_attn_implementation", None),
        "words_per_doc": args.words,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if use_cuda else None,
        "gpu": torch.cuda.get_device_name(0) if use_cuda else None,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if use_cuda else None,
        "quick": args.quick,
    }
    print(f"model: {params / 1e6:.1f}M parameters, attention {info['attention']}; torch {torch.__version__}")
    print(f"CPU: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; GPU: {info['gpu'] or 'none'}")

    results = []
    # CPU: few batches, it is slow. (batch size -> batches)
    cpu_batches = {1: 2, 32: 1} if args.quick else {1: 16, 32: 2}
    for size in sizes:
        batches = cpu_batches.get(size, 1)
        warmup = 1 if size == 1 or (size < 256 and not args.quick) else 0
        results.append(measure(model, tokenizer, texts, "cpu", "fp32", size, batches, warmup, 30))
        print_row(results[-1])
    if use_cuda:
        model = model.to("cuda")
        gpu_batches = {1: 50, 32: 10, 256: 4} if args.quick else {1: 300, 32: 60, 256: 20}
        for dtype in ("fp32", "fp16", "bf16"):
            for size in sizes:
                torch.cuda.reset_peak_memory_stats()
                batches = gpu_batches.get(size, 10)
                result = measure(model, tokenizer, texts, "cuda", dtype, size, batches, 3, 15, forward=True)
                result["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
                results.append(result)
                print_row(result)
    info["total_s"] = round(time.perf_counter() - total_started, 1)
    print_table(results)
    print(f"\ntotal {info['total_s']} s")
    out = os.environ.get("OUT")
    path = args.json or (Path(out) / "detoxify_gpu.json" if out else None)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stamp({"info": info, "results": results}), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


def print_row(r: dict) -> None:
    forward = f", forward only {r['forward_docs_per_s']:,.0f}" if "forward_docs_per_s" in r else ""
    print(
        f"  {r['device']:<4} {r['dtype']:<4} batch {r['batch_size']:>3}: {r['docs_per_s']:>9,.1f} docs/s{forward} "
        f"({r['docs']} docs, {r['tokens_per_doc']} tokens/doc)",
        flush=True,
    )


def print_table(results: list[dict]) -> None:
    print("\n| device | dtype | batch | docs/s end to end | docs/s forward only | ms/batch (median) | docs timed |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        forward = f"{r['forward_docs_per_s']:,.0f}" if "forward_docs_per_s" in r else "-"
        print(
            f"| {r['device']} | {r['dtype']} | {r['batch_size']} | {r['docs_per_s']:,.1f} | {forward} | "
            f"{r['ms_per_batch_median']:,.1f} | {r['docs']} |"
        )


if __name__ == "__main__":
    sys.exit(main())
