"""Benchmark input written the same way by every script: texts as numbered JSONL shards."""

from __future__ import annotations

import json
from pathlib import Path


def write_shards(folder: Path, texts: list[str], shards: int, width: int = 6) -> None:
    """`texts` into `shards` files `part-000.jsonl`..., ids `doc-000000`... in order."""
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-len(texts) // shards)
    for s in range(shards):
        with open(folder / f"part-{s:03d}.jsonl", "w", encoding="utf-8") as out:
            for i, text in enumerate(texts[s * per : (s + 1) * per]):
                out.write(json.dumps({"id": f"doc-{s * per + i:0{width}d}", "text": text}) + "\n")
