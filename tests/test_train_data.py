"""The training data loader: verified bytes only (a swapped or missing shard stops it, naming shard
and digests), a deterministic held-out split by content, and batches that are a pure function of
(seed, split, step) with disjoint rank slices of one global batch."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch

import custody.train.data as data_module
from custody.datasets.registry import IntegrityError
from custody.train.data import DataError, ShardIntegrityError, TokenData, in_val_split, verified_records
from train_support import register_shakespeare, speeches, tokenizer_for, torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture
def dataset(home, tmp_path):
    return register_shakespeare(home, tmp_path, limit=600, shards=2)


@pytest.fixture
def tok(dataset):
    return tokenizer_for(dataset)


def _overwrite(path, data: bytes) -> None:
    os.chmod(path, 0o644)  # the store keeps artifacts read-only
    path.write_bytes(data)


def test_tokens_cover_every_record_once_with_an_end_of_text_each(dataset, tok) -> None:
    data = TokenData.from_datasets([dataset], tok, block_size=32, val_fraction=0.2)
    (source,) = data.sources
    assert source["train_records"] + source["val_records"] == 600 and source["digest"] == dataset.digest
    assert 60 < source["val_records"] < 180
    eots = int((data.train == tok.eot_id).sum() + (data.val == tok.eot_id).sum())
    assert eots == 600
    held_out = {t for t in speeches(600) if in_val_split(hashlib.sha256(t.encode()).hexdigest(), 0.2)}
    assert len(held_out) == source["val_records"]
    val_text = tok.decode(data.val.tolist())
    assert all(t in val_text for t in list(held_out)[:20])
    assert data.describe()["tokens_digest"] == data.digest and data.tokenizer_digest == tok.digest


def test_the_split_is_deterministic_and_by_content(dataset, tok) -> None:
    a = TokenData.from_datasets([dataset], tok, block_size=32)
    b = TokenData.from_datasets([dataset], tok, block_size=32)
    assert a.digest == b.digest and torch.equal(a.val, b.val)
    text_hash = hashlib.sha256(b"Exeunt.").hexdigest()
    assert in_val_split(text_hash, 0.1) == in_val_split(text_hash, 0.1)  # duplicates land together


def test_batches_are_a_function_of_seed_split_and_step(dataset, tok) -> None:
    data = TokenData.from_datasets([dataset], tok, block_size=32)
    x, y = data.batch("train", 5, 8, seed=1)
    assert x.shape == y.shape == (8, 32) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    again = data.batch("train", 5, 8, seed=1)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    assert not torch.equal(x, data.batch("train", 6, 8, seed=1)[0])
    assert not torch.equal(x, data.batch("train", 5, 8, seed=2)[0])
    halves = [data.batch("train", 5, 8, seed=1, rank=r, world_size=2) for r in range(2)]
    assert torch.equal(torch.cat([h[0] for h in halves]), x)  # ranks take disjoint rows of one global batch
    with pytest.raises(DataError, match="divisible"):
        data.batch("train", 0, 7, seed=1, world_size=2)


def test_a_swapped_shard_stops_the_loader_naming_shard_and_digests(dataset, tok) -> None:
    second = dataset.manifest.shards[1]
    path = dataset.shard_path(second)
    original = path.read_bytes()
    swapped = original.replace(b"CORIOLANUS", b"CORIOLANVS")  # same size, other bytes
    assert swapped != original and len(swapped) == len(original)
    _overwrite(path, swapped)
    with pytest.raises(ShardIntegrityError) as caught:
        TokenData.from_datasets([dataset], tok, block_size=32)
    error = caught.value
    assert isinstance(error, IntegrityError)  # the CLI maps it to exit 1, like other integrity failures
    assert error.shard == second.name and error.expected == second.digest
    assert error.actual == hashlib.sha256(swapped).hexdigest()
    assert second.name in str(error) and second.digest in str(error) and error.actual in str(error)
    assert "shakespeare@1" in str(error)


def test_a_shorter_or_missing_shard_is_refused(home, tmp_path) -> None:
    dataset = register_shakespeare(home, tmp_path, limit=300, shards=2, in_place=True)
    first = dataset.manifest.shards[0]
    path = dataset.shard_path(first)
    _overwrite(path, path.read_bytes()[:-10])
    with pytest.raises(ShardIntegrityError, match=r"bytes, manifest says"):
        list(verified_records(dataset))
    path.unlink()
    with pytest.raises(ShardIntegrityError, match="shard missing"):
        list(verified_records(dataset))


def test_records_are_parsed_from_the_verified_private_copy(dataset, monkeypatch) -> None:
    parsed = []
    real = data_module.read_records

    def spy(path, *args, **kwargs):
        parsed.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data_module, "read_records", spy)
    assert sum(1 for _ in verified_records(dataset)) == 600
    originals = {dataset.shard_path(s) for s in dataset.manifest.shards}
    assert len(parsed) == 2 and not originals & set(parsed)
    assert not any(p.exists() for p in parsed)  # private copies are removed afterwards


def test_too_little_data_is_a_clear_error(home, tmp_path) -> None:
    dataset = register_shakespeare(home, tmp_path, limit=40, shards=1)
    tok = tokenizer_for(dataset, vocab=300)
    with pytest.raises(DataError, match="held-out split has"):
        TokenData.from_datasets([dataset], tok, block_size=256, val_fraction=0.05)
    with pytest.raises(DataError, match="val_fraction"):
        TokenData.from_datasets([dataset], tok, block_size=8, val_fraction=1.0)
