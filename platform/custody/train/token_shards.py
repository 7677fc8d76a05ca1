"""Token shards: approved datasets tokenized once, kept on disk, read a window at a time.

`prepare_tokens` streams the verified records of the datasets through the tokenizer, one encode
batch at a time, into shard files of at most `shard_tokens` ids each (uint16 when the vocabulary
fits, else uint32, little-endian, records separated by the end-of-text token: the flat layout
`numpy.memmap` opens directly). Each file is hashed while it is written and published in the
artifact store under its SHA-256; the list of shards is recorded as `tokens.prepared/v1`, subject
`tokens:KEY`. KEY names what decides the tokens: the layout version, the tokenizer digest, the
datasets' manifest digests in order and the held-out fraction. A later run with the same KEY
finds that entry, checks every shard against its digest and reuses the shards; nothing is
tokenized and nothing recorded.

`open_tokens` re-hashes each shard (streamed) before anything reads it and refuses one that is
missing or changed with `ShardIntegrityError`, naming the shard and both digests. While hashing it
computes the tokens digest too, and refuses shards whose tokens do not give the entry's digest.

Reading keeps memory flat: a batch maps each shard it draws from in turn, copies its windows out
and unmaps it again (nanoGPT recreates its memmap every batch for the same reason), so resident
memory holds one batch's pages and virtual memory one shard, however large the dataset. Each map
reopens the shard file and checks that it is still the file that was verified (same inode, size
and modification time), so a shard swapped or rewritten after the check stops the run.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger.entry import json_digest
from custody.ledger.log import LedgerRangeError
from custody.ledger.query import body, entries, envelope
from custody.store import ArtifactError, Staged
from custody.train import token_entry  # noqa: F401  registers tokens.prepared/v1
from custody.train.data import (
    DataError,
    ShardIntegrityError,
    TokenData,
    check_val_fraction,
    tokenized,
)
from custody.train.tokenizer import BPETokenizer

ENTRY_TYPE = "tokens.prepared/v1"
LAYOUT = 1  # flat little-endian ids, uint16 or uint32; bump when the file layout changes
SHARD_TOKENS = 1 << 26  # 128 MiB a shard at uint16
READ_CHUNK = 1 << 20  # ids hashed at a time when verifying

Say = Callable[[str], None]


@dataclass
class PreparedTokens:
    data: TokenData  # memory-mapped shards
    entry_index: int  # the tokens.prepared entry (the earlier one when reused)
    key: str
    reused: bool


def tokens_key(tokenizer_digest: str, dataset_digests: Sequence[str], val_fraction: float) -> str:
    """What decides the tokens, hashed: same key, same shards."""
    return json_digest(
        {
            "layout": LAYOUT,
            "tokenizer_digest": tokenizer_digest,
            "datasets": list(dataset_digests),
            "val_fraction": val_fraction,
        }
    )


def shard_dtype(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 65535 else "uint32"


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shard:
    name: str  # train-00000, for messages
    digest: str
    path: Path
    tokens: int
    identity: tuple[int, int, int, int]  # (device, inode, size, mtime_ns) when it was verified


class ShardStream:
    """One split's shards as a single token stream, read through small memory maps."""

    def __init__(self, label: str, dtype: str, shards: list[_Shard]) -> None:
        self.label, self.dtype, self.shards = label, np.dtype(dtype).newbyteorder("<"), shards
        self.offsets = np.cumsum([0] + [s.tokens for s in shards], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def numel(self) -> int:
        return len(self)

    def _open(self, i: int):
        shard = self.shards[i]
        try:
            handle = open(shard.path, "rb")  # noqa: SIM115  the caller closes it
        except FileNotFoundError:
            raise ShardIntegrityError(self.label, shard.name, shard.digest, None, str(shard.path)) from None
        st = os.fstat(handle.fileno())
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != shard.identity:
            handle.close()
            actual = _sha256_path(shard.path)
            raise ShardIntegrityError(
                self.label, shard.name, shard.digest, actual, "the file changed after it was verified"
            )
        return handle

    def _map(self, i: int) -> np.ndarray:
        """Shard i's ids, memory-mapped read-only; unmapped when the array is dropped."""
        with self._open(i) as handle:
            return np.frombuffer(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ), dtype=self.dtype)

    def windows(self, starts: torch.Tensor, length: int) -> torch.Tensor:
        """Each row `tokens[s : s + length]`, a window that may span shards. Each shard a batch
        touches is mapped in turn, its rows copied out, and unmapped before the next: resident
        memory holds the pages of one batch's windows, virtual memory one shard."""
        begin = starts.numpy().astype(np.int64)
        end = begin + length
        out = np.empty((len(begin), length), dtype=np.int64)
        if not len(begin):
            return torch.from_numpy(out)
        if begin.min() < 0 or end.max() > len(self):
            bad = int(begin[(begin < 0) | (end > len(self))][0])
            raise IndexError(f"window [{bad}, {bad + length}) is outside the {len(self)} tokens of {self.label}")
        first = np.searchsorted(self.offsets, begin, side="right") - 1
        last = np.searchsorted(self.offsets, end - 1, side="right") - 1
        for i in sorted({i for a, b in zip(first.tolist(), last.tolist(), strict=True) for i in range(a, b + 1)}):
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            tokens = self._map(i)
            inside = (first == i) & (last == i)  # the usual case: the whole window in this shard
            if inside.any():
                out[inside] = tokens[(begin[inside] - lo)[:, None] + np.arange(length)]
            for row in np.flatnonzero((first <= i) & (last >= i) & ~inside).tolist():
                a, b = max(int(begin[row]), lo), min(int(end[row]), hi)
                out[row, a - int(begin[row]) : b - int(begin[row])] = tokens[a - lo : b - lo]
            del tokens  # unmapped here
        return torch.from_numpy(out)

    def chunks(self) -> Iterator[np.ndarray]:
        for i in range(len(self.shards)):
            with self._open(i) as handle:
                while block := handle.read(READ_CHUNK * self.dtype.itemsize):
                    yield np.frombuffer(block, dtype=self.dtype)


def _sha256_path(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            h = hashlib.sha256()
            while block := handle.read(1 << 20):
                h.update(block)
            return h.hexdigest()
    except FileNotFoundError:
        return None


def _shard_path(home: Home, digest: str) -> Path:
    try:
        return home.store.path_for(digest)
    except ArtifactError:  # a remote store that refuses or lacks it; StoreUnavailable propagates
        return home.store.local_path(digest)


def _verify_shards(home: Home, label: str, body_: dict) -> tuple[ShardStream, ShardStream, str]:
    """Both splits' streams after every shard hashed to its digest, and the tokens digest computed
    in the same pass (each shard read once)."""
    dtype = np.dtype(body_["dtype"]).newbyteorder("<")
    digest = hashlib.sha256()
    streams = {}
    for split, total in (("train", body_["train_tokens"]), ("val", body_["val_tokens"])):
        digest.update(int(total).to_bytes(8, "big"))
        shards = []
        for n, info in enumerate(s for s in body_["shards"] if s["split"] == split):
            name = f"{split}-{n:05d}"
            path = _shard_path(home, info["digest"])
            file_hash = hashlib.sha256()
            try:
                with open(path, "rb") as handle:
                    st = os.fstat(handle.fileno())
                    while block := handle.read(READ_CHUNK * dtype.itemsize):
                        file_hash.update(block)
                        whole = len(block) - len(block) % dtype.itemsize  # a cut file fails the hash below
                        digest.update(np.frombuffer(block[:whole], dtype=dtype).astype("<i4").data)
            except FileNotFoundError:
                raise ShardIntegrityError(label, name, info["digest"], None, "not in the artifact store") from None
            if file_hash.hexdigest() != info["digest"]:
                detail = (
                    "same size, other bytes"
                    if st.st_size == info["bytes"]
                    else f"{st.st_size} bytes, entry says {info['bytes']}"
                )
                raise ShardIntegrityError(label, name, info["digest"], file_hash.hexdigest(), detail)
            shards.append(
                _Shard(name, info["digest"], path, info["tokens"], (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
            )
        streams[split] = ShardStream(label, body_["dtype"], shards)
        if len(streams[split]) != total:
            raise DataError(f"{label}: the {split} shards hold {len(streams[split])} tokens, the entry says {total}")
    return streams["train"], streams["val"], digest.hexdigest()


class TokensDigestMismatch(DataError):
    """Every shard is intact, yet together they are not the tokens the entry recorded."""


def open_tokens(home: Home, entry_index: int, block_size: int) -> TokenData:
    """The tokens a `tokens.prepared/v1` entry names, every shard verified before it is mapped."""
    data = _open_entry(home, entry_index, block_size)
    data.check()
    return data


def _open_entry(home: Home, entry_index: int, block_size: int) -> TokenData:
    try:
        row = home.ledger.entry(entry_index)
    except LedgerRangeError as exc:
        raise DataError(f"no {ENTRY_TYPE} entry at ledger index {entry_index}: {exc}") from None
    if envelope(row)["type"] != ENTRY_TYPE:
        raise DataError(f"ledger index {entry_index} is a {envelope(row)['type']} entry, not {ENTRY_TYPE}")
    recorded = body(row)
    data = _open_body(home, f"tokens at ledger index {entry_index}", recorded, block_size)
    if data.digest != recorded["tokens_digest"]:
        raise TokensDigestMismatch(
            f"tokens at ledger index {entry_index}: the shards' tokens digest {data.digest} is not the "
            f"recorded {recorded['tokens_digest']}"
        )
    return data


def _open_body(home: Home, label: str, body_: dict, block_size: int) -> TokenData:
    train, val, digest = _verify_shards(home, label, body_)
    data = TokenData(train, val, block_size, body_["tokenizer_digest"], body_["sources"], body_["val_fraction"])
    data.__dict__["digest"] = digest  # computed while verifying; TokenData.digest would read it all again
    return data


# -- writing ------------------------------------------------------------------------------------


class _ShardWriter:
    """Appends one split's ids to shard files of `shard_tokens` ids, each hashed while written and
    published in the store when full."""

    def __init__(self, home: Home, split: str, dtype: str, shard_tokens: int) -> None:
        self.home, self.split, self.shard_tokens = home, split, shard_tokens
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.shards: list[dict] = []
        self.total = 0
        self._file = None

    def _start(self) -> None:
        tmp = self.home.store.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp, prefix="tokens-")
        self._file, self._path = os.fdopen(fd, "wb"), Path(name)
        self._hash, self._count = hashlib.sha256(), 0

    def write(self, ids: np.ndarray) -> None:
        while len(ids):
            if self._file is None:
                self._start()
            take = min(len(ids), self.shard_tokens - self._count)
            data = ids[:take].astype(self.dtype).tobytes()
            self._hash.update(data)
            self._file.write(data)
            self._count += take
            self.total += take
            ids = ids[take:]
            if self._count == self.shard_tokens:
                self._finish()

    def _finish(self) -> None:
        self._file.close()
        digest, size = self._hash.hexdigest(), self._count * self.dtype.itemsize
        store = self.home.store
        if store.local_path(digest).exists() and not store.verify(digest):
            store.erase(digest)  # a damaged copy under this name: put the right bytes back
        Staged(store, self._path, digest, size).commit()
        self.shards.append({"split": self.split, "digest": digest, "tokens": self._count, "bytes": size})
        self._file = None

    def close(self) -> list[dict]:
        if self._file is not None:
            if self._count:
                self._finish()
            else:
                self.discard()
        return self.shards

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._path.unlink(missing_ok=True)
            self._file = None


def _find(home: Home, key: str, block_size: int, say: Say) -> tuple[int, TokenData] | None:
    """The newest entry for this key whose shards all verify, opened; None when there is none."""
    for row in entries(home.storage, ENTRY_TYPE, subject=f"tokens:{key}", newest_first=True):
        try:
            data = _open_entry(home, row.idx, block_size)
        except (ShardIntegrityError, TokensDigestMismatch) as exc:
            say(f"tokens: cannot reuse ledger index {row.idx}: {exc}; tokenizing again")
            continue
        data.check()  # too few tokens for this block size: no use tokenizing again
        return row.idx, data
    return None


def prepare_tokens(
    home: Home,
    datasets: Sequence[RegisteredDataset],
    tokenizer: BPETokenizer,
    block_size: int,
    val_fraction: float,
    actor: str,
    say: Say = print,
    shard_tokens: int = SHARD_TOKENS,
) -> PreparedTokens:
    """Token shards for these datasets and this tokenizer: the recorded ones when they are intact,
    else tokenized now (streamed to disk, never all in memory) and recorded as tokens.prepared/v1."""
    check_val_fraction(val_fraction)
    if shard_tokens < 1:
        raise ValueError(f"shard_tokens must be at least 1, not {shard_tokens}")
    key = tokens_key(tokenizer.digest, [d.digest for d in datasets], val_fraction)
    found = _find(home, key, block_size, say)
    if found is not None:
        index, data = found
        say(
            f"tokens: reusing {len(data.train):,} train and {len(data.val):,} held-out tokens prepared at "
            f"ledger index {index} (key {key[:12]}; every shard verified)"
        )
        return PreparedTokens(data, index, key, reused=True)

    dtype = shard_dtype(tokenizer.vocab_size)
    writers = {split: _ShardWriter(home, split, dtype, shard_tokens) for split in ("train", "val")}
    sources: list[dict] = []
    try:
        for train_ids, val_ids in tokenized(datasets, tokenizer, val_fraction, sources):
            writers["train"].write(np.frombuffer(train_ids, dtype=np.int32))
            writers["val"].write(np.frombuffer(val_ids, dtype=np.int32))
        shards = writers["train"].close() + writers["val"].close()
    finally:
        for writer in writers.values():
            writer.discard()
    tokenizer_digest = home.store.put_bytes(tokenizer.data)
    entry = {
        "layout": LAYOUT,
        "tokenizer_digest": tokenizer_digest,
        "datasets": [{"ref": str(d.ref), "digest": d.digest} for d in datasets],
        "val_fraction": val_fraction,
        "dtype": dtype,
        "shard_tokens": shard_tokens,
        "shards": shards,
        "train_tokens": writers["train"].total,
        "val_tokens": writers["val"].total,
        "tokens_digest": "0" * 64,  # filled in below, from the shards as written
        "sources": sources,
    }
    data = _open_body(home, f"tokens:{key[:12]}", entry, block_size)  # re-read: hashed again, digest computed
    data.check()
    entry["tokens_digest"] = data.digest
    refs = [f"sha256:{tokenizer_digest}"] + [f"sha256:{s['digest']}" for s in shards]
    index = home.record(ENTRY_TYPE, f"tokens:{key}", entry, refs=refs, actor=actor)
    say(
        f"tokens: {entry['train_tokens']:,} train and {entry['val_tokens']:,} held-out tokens in "
        f"{len(shards)} {dtype} shards, recorded at ledger index {index} (key {key[:12]})"
    )
    return PreparedTokens(data, index, key, reused=False)
