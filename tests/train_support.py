"""Shared pieces of the training tests: Tiny Shakespeare registered as a dataset, a tokenizer, a tiny GPT."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import Fields
from custody.datasets.registry import DatasetRegistry, RegisteredDataset
from custody.home import Home
from custody.train.data import TokenData
from custody.train.model import GPT, GPTConfig
from custody.train.tokenizer import BPETokenizer, train_tokenizer

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus_tinyshakespeare" / "input.txt"
VOCAB = 512
BLOCK = 32


def speeches(limit: int | None = None) -> list[str]:
    """Tiny Shakespeare split into speeches (blank-line separated), in order."""
    text = CORPUS.read_text(encoding="utf-8")
    found = [p.strip() for p in text.split("\n\n") if p.strip()]
    return found[:limit] if limit else found


def write_jsonl(path: Path, texts: list[str], start: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        for i, text in enumerate(texts, start):
            out.write(json.dumps({"id": f"tinyshakespeare-{i:05d}", "text": text}) + "\n")
    return path


def register_shakespeare(
    home: Home, workdir: Path, limit: int | None = 2000, shards: int = 2, in_place: bool = False
) -> RegisteredDataset:
    """The first `limit` speeches in `shards` JSONL shards, registered as shakespeare@1."""
    texts = speeches(limit)
    folder = workdir / "shakespeare"
    per = -(-len(texts) // shards)
    for s in range(shards):
        write_jsonl(folder / f"part-{s}.jsonl", texts[s * per : (s + 1) * per], s * per)
    card = parse_card(CARD_TEMPLATE)
    dataset, _ = DatasetRegistry(home).register(
        [folder], DatasetRef("shakespeare", "1"), card, Fields(id="id"), in_place=in_place
    )
    return dataset


def tokenizer_for(dataset: RegisteredDataset, vocab: int = VOCAB) -> BPETokenizer:
    from custody.train.data import verified_texts

    return train_tokenizer(verified_texts([dataset]), vocab_size=vocab)


def token_data(home: Home, workdir: Path, limit: int | None = 2000, block: int = BLOCK) -> TokenData:
    dataset = register_shakespeare(home, workdir, limit)
    return TokenData.from_datasets([dataset], tokenizer_for(dataset), block_size=block, val_fraction=0.1)


def tiny_gpt(vocab: int = VOCAB, block: int = BLOCK, seed: int = 0, **overrides) -> GPT:
    settings = dict(vocab_size=vocab, block_size=block, n_layer=2, n_head=2, n_embd=64, dropout=0.0)
    settings.update(overrides)
    torch.manual_seed(seed)
    return GPT(GPTConfig(**settings))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Tiny models on shared cores run 2-5x faster on one thread: OpenMP threads stop waiting on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
