"""Evaluation throughput beside a bare forward loop, and the contamination check's time per GB of
training text beside a plain read of the same records.

    python bench/evaluation.py [--train-mb 100] [--json docs/figures/evaluation.json]

Generates `--train-mb` MB of training records (Zipf-distributed words from a 50,000-word
vocabulary, as bench/takedown.py) and registers them in a fresh home, then measures in one process:

- **contamination**: `custody.evalsets.contamination.measure` of an evaluation set of 400 records
  (200 of them 20-word spans copied from training records, case changed; 200 fresh) against the
  training data (every 13-gram hashed by the passage index's compiled loop), CPU seconds per GB
  of training text; beside it the floor any check must pay,
  reading every training record (shards re-hashed against the manifest) and nothing else. The
  planted records must all be found and no fresh one.
- **evaluation**: `custody.evals.tasks.lm_loss` over 200 records with a small GPT (4 layers,
  256-wide, block 256, random weights: throughput does not depend on what the weights know),
  tokens per second; beside it the bare loop: the same forward passes on the same token windows,
  already tokenized, no bookkeeping. And `multiple_choice` over 200 four-choice items, items per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _meta import log, write_json

SEED = 20261206
VOCAB = 50_000
PLANTED = 200
FRESH = 200


def generate(folder: Path, megabytes: float) -> tuple[int, list[str]]:
    import numpy as np

    rng = np.random.default_rng(SEED)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, size=int(n))) for n in rng.integers(2, 11, VOCAB)])
    weights = 1.0 / np.arange(1, VOCAB + 1)
    weights /= weights.sum()
    folder.mkdir(parents=True)
    total, texts, i = 0, [], 0
    with open(folder / "part-000.jsonl", "w", encoding="utf-8") as out:
        while total < megabytes * 1e6:
            words = vocab[rng.choice(VOCAB, size=int(rng.integers(40, 160)), p=weights)]
            text = " ".join(words)
            out.write(json.dumps({"id": f"t{i}", "text": text}) + "\n")
            total += len(text)
            if len(texts) < 5000:
                texts.append(text)
            i += 1
    return total, texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-mb", type=float, default=100.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import torch

    from custody.datasets.card import CARD_TEMPLATE, parse_card
    from custody.datasets.names import DatasetRef
    from custody.datasets.readers import Fields
    from custody.datasets.registry import DatasetRegistry
    from custody.evals.tasks import EvalRecord, lm_loss, multiple_choice
    from custody.evalsets.contamination import measure
    from custody.home import Home
    from custody.train.data import verified_records
    from custody.train.model import GPT, GPTConfig
    from custody.train.tokenizer import train_tokenizer

    torch.manual_seed(0)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="custody-eval-bench-") as tmp:
        text_bytes, sample = generate(Path(tmp) / "train", args.train_mb)
        log(f"generated {text_bytes / 1e6:.1f} MB of training text")
        home = Home.init(Path(tmp) / "home")
        try:
            training, _ = DatasetRegistry(home).register(
                [Path(tmp) / "train"], DatasetRef("train", "1"), parse_card(CARD_TEMPLATE), Fields(id="id")
            )
            planted = [
                EvalRecord(f"p{i}", " ".join(sample[i * 7 % len(sample)].split()[10:30]).upper(), "planted")
                for i in range(PLANTED)
            ]
            fresh = [EvalRecord(f"f{i}", " ".join(f"unseen{i}x{j}" for j in range(20)), "fresh") for i in range(FRESH)]
            from custody.takedown.fingerprints import batch_fingerprints

            batch_fingerprints(["compiled and tables built once per installation, not part of a check"] * 2, 13, 1)
            started = time.process_time()
            [overlap] = measure([(training, planted + fresh)], [training])
            contamination_s = time.process_time() - started
            found_right = sorted(overlap.contaminated) == sorted(r.id for r in planted)
            started = time.process_time()
            read = sum(len(record.text) for _, record in verified_records(training))
            read_s = time.process_time() - started
            log(f"contamination: {contamination_s:.2f} CPU s; reading alone {read_s:.2f} CPU s ({read:,} characters)")
        finally:
            home.close()

    tokenizer = train_tokenizer(sample[:2000], vocab_size=4096)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=256, n_layer=4, n_head=4, n_embd=256)).eval()
    records = [EvalRecord(f"e{i}", sample[i], "all") for i in range(200)]
    lm_loss(model, tokenizer, records[:5])  # warm up
    started = time.perf_counter()
    scored = lm_loss(model, tokenizer, records)["all"]
    eval_s = time.perf_counter() - started
    windows = []
    for record in records:
        ids = [tokenizer.eot_id, *tokenizer.encode(record.text)]
        windows += [torch.tensor(ids[s : s + 257]).unsqueeze(0) for s in range(0, len(ids) - 1, 256)]
    started = time.perf_counter()
    with torch.no_grad():
        for window in windows:
            model(window[:, :-1])
    bare_s = time.perf_counter() - started
    items = [
        EvalRecord(
            f"m{i}", " ".join(sample[i].split()[:30]), "all", tuple(" " + w for w in sample[i + 1].split()[:4]), 0
        )
        for i in range(200)
    ]
    started = time.perf_counter()
    multiple_choice(model, tokenizer, items)
    mc_s = time.perf_counter() - started

    figures = {
        "train_text_bytes": text_bytes,
        "contamination": {
            "evalset_records": PLANTED + FRESH,
            "planted": PLANTED,
            "found": len(overlap.contaminated),
            "found_exactly_the_planted": found_right,
            "cpu_s": round(contamination_s, 2),
            "cpu_s_per_gb": round(contamination_s / (text_bytes / 1e9), 1),
            "read_only_cpu_s": round(read_s, 2),
            "ratio_to_read_only": round(contamination_s / read_s, 2),
        },
        "evaluation": {
            "model": {"n_layer": 4, "n_embd": 256, "block_size": 256, "vocab_size": tokenizer.vocab_size},
            "records": len(records),
            "tokens": scored["tokens"],
            "loss_tokens_per_s": round(scored["tokens"] / eval_s, 1),
            "bare_forward_tokens_per_s": round(scored["tokens"] / bare_s, 1),
            "ratio_to_bare": round(bare_s / eval_s, 3),
            "multiple_choice_items": len(items),
            "multiple_choice_items_per_s": round(len(items) / mc_s, 2),
        },
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        write_json(args.json, figures)
    return 0 if found_right else 1


if __name__ == "__main__":
    sys.exit(main())
