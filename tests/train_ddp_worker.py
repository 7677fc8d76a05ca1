"""One training run for tests/test_train_ddp.py: under torchrun (WORLD_SIZE > 1) or as a single process.

    python tests/train_ddp_worker.py HOME TOKENIZER TOKENIZER_DIGEST OUT_DIR RESULT_JSON [--carbon] [--grad-accum N]

Every rank opens the home, verifies the dataset's shards and tokenizes them itself, as a real
data-parallel run does; rank 0 writes the result.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from custody.datasets.registry import DatasetRegistry
from custody.home import Home
from custody.train.carbon import CarbonConfig
from custody.train.data import TokenData
from custody.train.distributed import exit_rank, setup_distributed, shutdown_distributed
from custody.train.loop import TrainConfig, train
from custody.train.model import GPT, GPTConfig
from custody.train.tokenizer import load_tokenizer

CONFIG = TrainConfig(
    seed=3, steps=16, batch_size=8, lr=3e-3, min_lr=3e-4, warmup=4, eval_interval=8, eval_steps=2, log_interval=4
)


def main() -> None:
    home_path, tok_path, tok_digest, out_dir, result_path = sys.argv[1:6]
    carbon = CarbonConfig(measure_power_secs=1) if "--carbon" in sys.argv else None
    torch.set_num_threads(1)
    dist = setup_distributed()
    home = Home.open(home_path)
    try:
        dataset = DatasetRegistry(home).get("shakespeare@1")
        tokenizer = load_tokenizer(Path(tok_path), tok_digest)
        data = TokenData.from_datasets([dataset], tokenizer, block_size=32)
    finally:
        home.close()
    torch.manual_seed(0)  # the same init on every rank (DDP also broadcasts rank 0's weights)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=64))
    accum = int(sys.argv[sys.argv.index("--grad-accum") + 1]) if "--grad-accum" in sys.argv else 1
    result = train(model, data, replace(CONFIG, grad_accum=accum), Path(out_dir), carbon=carbon)
    if dist.is_main:
        Path(result_path).write_text(
            json.dumps(
                {
                    "world_size": dist.world_size,
                    "losses": result.losses,
                    "evals": result.evals,
                    "final": result.final.as_json(),
                    "emissions": result.emissions.as_json() if result.emissions else None,
                }
            )
        )
    shutdown_distributed()


if __name__ == "__main__":
    main()
    exit_rank(0)  # as custody's own ranks end (runs/distributed_run.py)
