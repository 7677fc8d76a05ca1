"""Token streams from registered datasets, read only after their bytes are proven to be the approved ones.

The loader never trusts a path: each shard is copied into a private temporary file while being
hashed, the digest is compared with the manifest's, and only that private copy is parsed. So the
bytes that become tokens are exactly the bytes that were hashed (no window in which the file can be
swapped between the check and the read), and a changed shard stops the run with
`ShardIntegrityError` naming the dataset, the shard, and both digests.

Records are tokenized in manifest order, each followed by the end-of-text token. A record goes to
the held-out split when the hash of its text falls under `val_fraction`: deterministic, stable when
a dataset grows, and exact duplicates can never straddle the split. Batches are a pure function of
(seed, split, step): resuming needs no loader state, and under data parallelism rank r takes rows
[r·B/W, (r+1)·B/W) of the same global batch a single process would draw.

`TokenData` reads its tokens through a `TokenStream`: the in-memory int32 tensors of
`from_datasets`, or the memory-mapped token shards of `custody.train.token_shards`, from which a
batch reads only the windows it draws. Both give the same batches, digest and description for the
same tokens.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from custody.datasets.manifest import ShardInfo
from custody.datasets.readers import Fields, Record, read_records
from custody.datasets.registry import IntegrityError, RegisteredDataset
from custody.train.tokenizer import BPETokenizer

CHUNK = 1 << 20
ENCODE_BATCH = 1024  # records per encode_batch call: enough to keep the tokenizer's threads busy


class ShardIntegrityError(IntegrityError):
    """The bytes read for a shard are not the bytes its manifest approved."""

    def __init__(self, dataset: str, shard: str, expected: str, actual: str | None, detail: str = "") -> None:
        self.dataset, self.shard, self.expected, self.actual = dataset, shard, expected, actual
        found = f"actual sha256 {actual}" if actual else "shard missing"
        super().__init__(
            f"{dataset}: shard {shard} is not the approved data: expected sha256 {expected}, {found}"
            f"{f' ({detail})' if detail else ''}; training stopped"
        )


class DataError(ValueError):
    """The data cannot make a training set (too few tokens, an empty split)."""


@contextmanager
def verified_copy(dataset: RegisteredDataset, shard: ShardInfo) -> Iterator[Path]:
    """A private copy of the shard whose bytes hashed to the manifest digest, removed afterwards."""
    source = dataset.shard_path(shard)
    fd, name = tempfile.mkstemp(prefix="custody-shard-")
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            try:
                with open(source, "rb") as handle:
                    while chunk := handle.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
            except FileNotFoundError:
                raise ShardIntegrityError(str(dataset.ref), shard.name, shard.digest, None, str(source)) from None
        actual = digest.hexdigest()
        if actual != shard.digest:
            detail = f"{size} bytes, manifest says {shard.bytes}" if size != shard.bytes else "same size, other bytes"
            raise ShardIntegrityError(str(dataset.ref), shard.name, shard.digest, actual, detail)
        yield Path(name)
    finally:
        os.unlink(name)


def verified_records(dataset: RegisteredDataset, extra: tuple[str, ...] = ()) -> Iterator[tuple[ShardInfo, Record]]:
    """Every record of the dataset, each shard parsed from bytes that were verified against the manifest;
    `extra` names more fields to carry on each record (a classifier's label)."""
    fields = Fields(
        **{k: v for k, v in dataset.manifest.fields.items() if k in ("text", "id", "license", "source_url")},
        extra=extra,
    )
    for shard in dataset.manifest.shards:
        with verified_copy(dataset, shard) as path:
            for record in read_records(path, shard.format, fields, max_record_bytes=1 << 62, name=shard.name):
                yield shard, record


def verified_texts(datasets: Sequence[RegisteredDataset]) -> Iterator[str]:
    """Texts of every record, verified; for training a tokenizer on exactly the approved data."""
    for dataset in datasets:
        for _, record in verified_records(dataset):
            yield record.text


def in_val_split(content_hash: str, val_fraction: float) -> bool:
    """Held out when the text's SHA-256, read as a fraction of 2^64, falls under val_fraction."""
    return int(content_hash[:16], 16) / 2.0**64 < val_fraction


def _encode(tokenizer: BPETokenizer, pending: list[tuple[str, bool]]) -> tuple[array, array]:
    train, val = array("i"), array("i")  # 4 bytes a token, not a Python int's 28
    for ids, (_, held_out) in zip(tokenizer.encode_batch([text for text, _ in pending]), pending, strict=True):
        out = val if held_out else train
        out.extend(ids)
        out.append(tokenizer.eot_id)
    pending.clear()
    return train, val


def check_val_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be between 0 and 1 (exclusive), not {val_fraction}")


def tokenized(
    datasets: Sequence[RegisteredDataset], tokenizer: BPETokenizer, val_fraction: float, sources: list[dict]
) -> Iterator[tuple[array, array]]:
    """(train ids, held-out ids) of one encode batch of records at a time, int32, in manifest order,
    each record followed by the end-of-text token; after each dataset, its record counts are
    appended to `sources`. Memory holds one batch, however large the datasets."""
    check_val_fraction(val_fraction)
    for dataset in datasets:
        counts = {"train": 0, "val": 0}
        pending: list[tuple[str, bool]] = []
        for _, record in verified_records(dataset):
            held_out = in_val_split(record.content_hash, val_fraction)
            counts["val" if held_out else "train"] += 1
            pending.append((record.text, held_out))
            if len(pending) >= ENCODE_BATCH:
                yield _encode(tokenizer, pending)
        if pending:
            yield _encode(tokenizer, pending)
        sources.append(
            {
                "dataset": str(dataset.ref),
                "digest": dataset.digest,
                "train_records": counts["train"],
                "val_records": counts["val"],
            }
        )


def _tensor(tokens: array) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(tokens, dtype=np.int32).copy())


@runtime_checkable
class TokenStream(Protocol):
    """A 1-D run of token ids that need not be in memory: its length, the windows a batch draws,
    and its ids as int32 chunks in order (what the digest hashes)."""

    def __len__(self) -> int: ...

    def numel(self) -> int: ...

    def windows(self, starts: torch.Tensor, length: int) -> torch.Tensor:
        """int64 rows `tokens[s : s + length]` for each start."""
        ...

    def chunks(self) -> Iterator[np.ndarray]: ...


class TensorStream:
    """The in-memory stream: a 1-D int32 tensor."""

    def __init__(self, tokens: torch.Tensor) -> None:
        self.tokens = tokens

    def __len__(self) -> int:
        return len(self.tokens)

    def numel(self) -> int:
        return self.tokens.numel()

    def windows(self, starts: torch.Tensor, length: int) -> torch.Tensor:
        return self.tokens[starts[:, None] + torch.arange(length)].long()

    def chunks(self) -> Iterator[np.ndarray]:
        yield self.tokens.numpy()


def as_stream(tokens: torch.Tensor | TokenStream) -> TokenStream:
    return TensorStream(tokens) if isinstance(tokens, torch.Tensor) else tokens


def tokens_digest(train: torch.Tensor | TokenStream, val: torch.Tensor | TokenStream) -> str:
    """SHA-256 over both streams: for each, its length (8 bytes, big-endian), then its ids as
    little-endian int32, whatever they are stored as; read chunk by chunk."""
    h = hashlib.sha256()
    for tokens in (as_stream(train), as_stream(val)):
        h.update(len(tokens).to_bytes(8, "big"))
        for chunk in tokens.chunks():
            h.update(np.ascontiguousarray(chunk, dtype="<i4").data)
    return h.hexdigest()


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from several parts; a hash, so nearby seeds give unrelated streams."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big") >> 1


@dataclass
class TokenData:
    """Train and held-out token streams, and what they were made from."""

    # 1-D int32 tensors of tokens, records separated by the end-of-text token, or streams of them
    # (memory-mapped token shards; see custody.train.token_shards)
    train: torch.Tensor | TokenStream
    val: torch.Tensor | TokenStream
    block_size: int
    tokenizer_digest: str
    sources: list[dict] = field(default_factory=list)  # per dataset: ref, manifest digest, record counts
    val_fraction: float = 0.1

    @classmethod
    def from_datasets(
        cls,
        datasets: Sequence[RegisteredDataset],
        tokenizer: BPETokenizer,
        block_size: int,
        val_fraction: float = 0.1,
    ) -> TokenData:
        """All tokens in memory (4 bytes each); `token_shards.prepare_tokens` keeps them on disk."""
        train, val = array("i"), array("i")
        sources: list[dict] = []
        for train_ids, val_ids in tokenized(datasets, tokenizer, val_fraction, sources):
            train.extend(train_ids)
            val.extend(val_ids)
        data = cls(_tensor(train), _tensor(val), block_size, tokenizer.digest, sources, val_fraction)
        data.check()
        return data

    def check(self) -> None:
        for split, tokens in (("train", self.train), ("held-out", self.val)):
            if tokens.numel() <= self.block_size + 1:
                raise DataError(
                    f"the {split} split has {tokens.numel()} tokens, fewer than block_size + 2 "
                    f"({self.block_size + 2}); add data, lower block_size, or change val_fraction"
                )

    @cached_property
    def digest(self) -> str:
        """SHA-256 over both token streams: what was actually trained and evaluated on."""
        return tokens_digest(self.train, self.val)

    def describe(self) -> dict:
        return {
            "sources": self.sources,
            "tokenizer_digest": self.tokenizer_digest,
            "tokens_digest": self.digest,
            "train_tokens": int(self.train.numel()),
            "val_tokens": int(self.val.numel()),
            "val_fraction": self.val_fraction,
            "block_size": self.block_size,
        }

    def batch(
        self, split: str, step: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of the global batch for (seed, split, step): inputs and next-token targets."""
        if batch_size % world_size:
            raise DataError(f"batch_size {batch_size} is not divisible by the {world_size} data-parallel ranks")
        tokens = self.train if split == "train" else self.val
        generator = torch.Generator().manual_seed(derive_seed(seed, split, step))
        starts = torch.randint(len(tokens) - self.block_size - 1, (batch_size,), generator=generator)
        per_rank = batch_size // world_size
        starts = starts[rank * per_rank : (rank + 1) * per_rank]
        window = as_stream(tokens).windows(starts, self.block_size + 1)  # only the rows drawn are read
        return window[:, :-1], window[:, 1:]
