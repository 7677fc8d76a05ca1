"""Ledger entry schema for token shards: a tokenizer's output over approved datasets, made once.

`tokens.prepared/v1`, subject `tokens:KEY`, where KEY is the SHA-256 of what decides the tokens
(the shard layout version, the tokenizer digest, the datasets' manifest digests in order and the
held-out fraction; see `custody.train.token_shards.tokens_key`). Each shard is a flat file of
little-endian uint16 (or uint32) token ids in the artifact store, named by its SHA-256; the entry
lists them in order per split, so the tokens are exactly the concatenation of the shard files.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.ledger.entry import EntryBody, entry_type

DIGEST = r"^[0-9a-f]{64}$"


class TokenDataset(EntryBody):
    ref: str  # NAME@VERSION of a dataset the tokens were made from
    digest: str = Field(pattern=DIGEST)  # its manifest digest


class TokenShard(EntryBody):
    split: Literal["train", "val"]
    digest: str = Field(pattern=DIGEST)  # SHA-256 of the shard file, its name in the artifact store
    tokens: int = Field(ge=1)
    bytes: int = Field(ge=1)


class TokenSource(EntryBody):
    dataset: str
    digest: str = Field(pattern=DIGEST)
    train_records: int = Field(ge=0)
    val_records: int = Field(ge=0)


@entry_type("tokens.prepared/v1")
class TokensPrepared(EntryBody):
    layout: int = Field(ge=1)  # the shard file layout (1: flat little-endian ids, records end with EOT)
    tokenizer_digest: str = Field(pattern=DIGEST)
    datasets: list[TokenDataset] = Field(min_length=1)
    val_fraction: float = Field(gt=0.0, lt=1.0)
    dtype: Literal["uint16", "uint32"]
    shard_tokens: int = Field(ge=1)  # every shard but the last of a split holds exactly this many
    shards: list[TokenShard]
    train_tokens: int = Field(ge=0)
    val_tokens: int = Field(ge=0)
    tokens_digest: str = Field(pattern=DIGEST)  # TokenData.digest: the same value the run records
    sources: list[TokenSource]
