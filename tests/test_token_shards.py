"""Token shards: tokenized once into digest-named files, recorded, reused, verified before they are
read, and giving exactly the batches, digest and description of the in-memory TokenData."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

from custody.ledger.query import body
from custody.train.data import DataError, ShardIntegrityError, TokenData
from custody.train.token_shards import (
    ENTRY_TYPE,
    ShardStream,
    open_tokens,
    prepare_tokens,
    shard_dtype,
    tokens_key,
)
from custody.train.tokenizer import BPETokenizer
from train_support import BLOCK, register_shakespeare, tokenizer_for, torch_threads

SHARD = 1500  # tiny shards, so the data spans many and windows cross their boundaries
VAL = 0.1


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def world(cast, tmp_path_factory):
    """One home with 600 speeches registered, a tokenizer, the in-memory tokens, and the first
    prepare_tokens; tests that damage a shard put its bytes back."""
    workdir = tmp_path_factory.mktemp("token-shards")
    home = cast.init_home(workdir / "home")
    dataset = register_shakespeare(home, workdir, limit=600, shards=2)
    tokenizer = tokenizer_for(dataset)
    memory = TokenData.from_datasets([dataset], tokenizer, block_size=BLOCK, val_fraction=VAL)
    said: list[str] = []
    prepared = prepare_tokens(home, [dataset], tokenizer, BLOCK, VAL, "tester", say=said.append, shard_tokens=SHARD)
    yield {"home": home, "dataset": dataset, "tokenizer": tokenizer, "memory": memory, "prepared": prepared}
    home.close()


def _recorded(world) -> dict:
    return body(world["home"].ledger.entry(world["prepared"].entry_index))


def _shard_file(world, split: str = "train", n: int = 1):
    shard = [s for s in _recorded(world)["shards"] if s["split"] == split][n]
    return shard, world["home"].store.path_for(shard["digest"])


def test_memmap_batches_are_the_in_memory_batches(world) -> None:
    memory, data = world["memory"], world["prepared"].data
    assert isinstance(data.train, ShardStream) and not world["prepared"].reused
    assert len(data.train.shards) > 3 and len(data.val.shards) >= 2  # several shards each
    for split in ("train", "val"):
        for step in (0, 1, 17):
            for rank, world_size in ((0, 1), (0, 2), (1, 2), (3, 4)):
                x, y = data.batch(split, step, 8, seed=5, rank=rank, world_size=world_size)
                ex, ey = memory.batch(split, step, 8, seed=5, rank=rank, world_size=world_size)
                assert x.dtype == ex.dtype == torch.int64
                assert torch.equal(x, ex) and torch.equal(y, ey)


def test_digest_and_description_are_those_of_the_in_memory_tokens(world) -> None:
    memory, data = world["memory"], world["prepared"].data
    assert data.digest == memory.digest
    data.__dict__.pop("digest")  # the value open_tokens computed while verifying; now streamed anew
    assert data.digest == memory.digest
    assert data.describe() == memory.describe()
    assert data.train.numel() == memory.train.numel() and len(data.val) == len(memory.val)
    recorded = _recorded(world)
    assert recorded["tokens_digest"] == memory.digest and recorded["dtype"] == "uint16"
    assert recorded["sources"] == memory.sources and recorded["tokenizer_digest"] == world["tokenizer"].digest
    assert recorded["train_tokens"] == memory.train.numel() and recorded["shard_tokens"] == SHARD
    assert [s["tokens"] for s in recorded["shards"] if s["split"] == "train"][:-1] == [SHARD] * (
        len(data.train.shards) - 1
    )
    assert recorded["datasets"] == [{"ref": "shakespeare@1", "digest": world["dataset"].digest}]
    row = world["home"].ledger.entry(world["prepared"].entry_index)
    assert row.subject == f"tokens:{world['prepared'].key}"


def test_a_window_across_a_shard_boundary(world) -> None:
    stream, tokens = world["prepared"].data.train, world["memory"].train
    boundary = int(stream.offsets[2])
    starts = torch.tensor([boundary - 5, boundary - 1, boundary, 0, len(tokens) - 40])
    got = stream.windows(starts, 33)
    want = torch.stack([tokens[s : s + 33] for s in starts.tolist()]).long()
    assert torch.equal(got, want)
    # a window longer than a shard spans three of them
    long = stream.windows(torch.tensor([boundary - 10]), SHARD + 20)
    assert torch.equal(long[0], tokens[boundary - 10 : boundary + SHARD + 10].long())
    with pytest.raises(IndexError):
        stream.windows(torch.tensor([len(tokens) - 10]), 33)


def test_a_second_prepare_reuses_the_shards_without_tokenizing(world, monkeypatch) -> None:
    home, first = world["home"], world["prepared"]
    size = home.ledger.size

    def refuse(*args, **kwargs):
        raise AssertionError("the tokenizer was called")

    monkeypatch.setattr(BPETokenizer, "encode_batch", refuse)
    said: list[str] = []
    again = prepare_tokens(
        home, [world["dataset"]], world["tokenizer"], BLOCK, VAL, "tester", say=said.append, shard_tokens=SHARD * 2
    )
    assert again.reused and again.entry_index == first.entry_index and again.key == first.key
    assert home.ledger.size == size
    assert again.data.digest == world["memory"].digest
    assert "reusing" in said[-1] and f"ledger index {first.entry_index}" in said[-1]
    x, _ = again.data.batch("train", 3, 4, seed=1)
    assert torch.equal(x, world["memory"].batch("train", 3, 4, seed=1)[0])


def test_a_changed_shard_is_refused_naming_it_and_both_digests(world) -> None:
    home, index = world["home"], world["prepared"].entry_index
    shard, path = _shard_file(world, "train", 1)
    original = path.read_bytes()
    size = home.ledger.size
    os.chmod(path, 0o644)
    try:
        path.write_bytes(original[:-2] + bytes([original[-2] ^ 1, original[-1]]))
        with pytest.raises(ShardIntegrityError) as caught:
            open_tokens(home, index, BLOCK)
        error = caught.value
        assert error.shard == "train-00001" and error.expected == shard["digest"]
        assert error.actual is not None and error.actual != shard["digest"]
        assert shard["digest"] in str(error) and error.actual in str(error) and "same size" in str(error)
        assert home.ledger.size == size
    finally:
        path.write_bytes(original)
        os.chmod(path, 0o444)
    assert open_tokens(home, index, BLOCK).digest == world["memory"].digest


def test_a_missing_shard_is_refused_and_prepare_makes_it_again(world) -> None:
    home, index = world["home"], world["prepared"].entry_index
    shard, path = _shard_file(world, "val", 0)
    size = home.ledger.size
    path.unlink()
    with pytest.raises(ShardIntegrityError) as caught:
        open_tokens(home, index, BLOCK)
    assert caught.value.shard == "val-00000" and caught.value.actual is None
    assert "shard missing" in str(caught.value) and shard["digest"] in str(caught.value)
    assert home.ledger.size == size
    said: list[str] = []
    again = prepare_tokens(
        home, [world["dataset"]], world["tokenizer"], BLOCK, VAL, "tester", say=said.append, shard_tokens=SHARD
    )
    assert not again.reused and again.entry_index == size and again.key == world["prepared"].key
    assert any("cannot reuse" in line for line in said)
    assert body(home.ledger.entry(again.entry_index))["shards"] == _recorded(world)["shards"]  # same bytes again
    assert home.store.verify(shard["digest"]) and again.data.digest == world["memory"].digest


def test_a_shard_changed_after_it_was_verified_stops_the_batch(world) -> None:
    data = open_tokens(world["home"], world["prepared"].entry_index, BLOCK)
    _, path = _shard_file(world, "train", 0)
    original = path.read_bytes()
    os.chmod(path, 0o644)
    try:
        path.write_bytes(original[:-2])
        with pytest.raises(ShardIntegrityError, match="changed after it was verified"):
            data.train.windows(torch.tensor([0]), 8)
    finally:
        path.write_bytes(original)
        os.chmod(path, 0o444)


def test_another_val_fraction_or_tokenizer_is_another_key(world) -> None:
    tokenizer, dataset, home = world["tokenizer"], world["dataset"], world["home"]
    first = world["prepared"]
    assert tokens_key(tokenizer.digest, [dataset.digest], VAL) == first.key
    assert tokens_key(tokenizer.digest, [dataset.digest], 0.2) != first.key
    other = tokenizer_for(dataset, vocab=300)
    assert tokens_key(other.digest, [dataset.digest], VAL) != first.key
    prepared = prepare_tokens(home, [dataset], other, BLOCK, 0.2, "tester", say=lambda _: None, shard_tokens=SHARD)
    assert not prepared.reused and prepared.entry_index != first.entry_index
    assert prepared.key == tokens_key(other.digest, [dataset.digest], 0.2)
    memory = TokenData.from_datasets([dataset], other, block_size=BLOCK, val_fraction=0.2)
    assert prepared.data.digest == memory.digest and prepared.data.describe() == memory.describe()


def test_open_tokens_refuses_an_entry_of_another_type(world) -> None:
    with pytest.raises(DataError, match=re.escape(f"not {ENTRY_TYPE}")):
        open_tokens(world["home"], 0, BLOCK)
    with pytest.raises(DataError, match=r"no tokens\.prepared"):
        open_tokens(world["home"], 10**6, BLOCK)
    with pytest.raises(DataError, match="fewer than block_size"):
        open_tokens(world["home"], world["prepared"].entry_index, 10**7)


def test_ids_of_a_large_vocabulary_are_stored_as_uint32() -> None:
    assert shard_dtype(512) == "uint16" and shard_dtype(65535) == "uint16" and shard_dtype(65536) == "uint32"
    assert np.dtype(shard_dtype(200_000)).itemsize == 4


def test_uint32_shards_keep_ids_above_65535(world) -> None:
    from custody.train.token_shards import _ShardWriter, _verify_shards

    ids = np.arange(65_000, 75_000, dtype=np.int32)
    writers = {split: _ShardWriter(world["home"], split, "uint32", 3000) for split in ("train", "val")}
    writers["train"].write(ids)
    writers["val"].write(ids[:500])
    shards = writers["train"].close() + writers["val"].close()
    assert [s["bytes"] for s in shards] == [12000, 12000, 12000, 4000, 2000]
    recorded = {"dtype": "uint32", "shards": shards, "train_tokens": len(ids), "val_tokens": 500}
    train, val, digest = _verify_shards(world["home"], "uint32 test", recorded)
    assert len(val) == 500 and val.dtype.itemsize == 4
    starts = torch.tensor([0, 2990, 9000])
    want = torch.stack([torch.from_numpy(ids[s : s + 20]).long() for s in starts.tolist()])
    assert torch.equal(train.windows(starts, 20), want)
    memory = TokenData(torch.from_numpy(ids), torch.from_numpy(ids[:500].copy()), 8, "t")
    assert digest == memory.digest
