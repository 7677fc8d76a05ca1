"""A dataset version's passage index: every record's kept fingerprints, in the artifact store.

One file per dataset version (`.npz`, no pickle, written byte-for-byte deterministically): the
kept hash keys of every record, in record order, with how many each record has (so the record of
a key is found from the running count, without a 4-byte ordinal per key); the first 4 bytes of
each record's text SHA-256 (for `find --record-hash`); and the records that have a source URL,
with it (for `find --url-prefix` and `--domain`; deflated, the one member that compresses). A
lookup compares the few wanted keys with the whole key array (a few milliseconds per million
keys); the confirmation reads the candidate records, and their ids, from the shards. Its digest is
recorded in the ledger as `dataset.indexed/v1`, subject the dataset, with the fingerprint settings,
so an index is reused only for the same bytes and the same settings, and anyone can rebuild it and
compare.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from custody.datasets.manifest import ShardInfo
from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger import query
from custody.takedown import entry_types  # noqa: F401  registers dataset.indexed/v1
from custody.takedown.fingerprints import FINGERPRINT, NGRAM, WINDOW, batch_fingerprints

# 2: each record's source URL; 3: 32-bit hash keys; 4: keys in record order with per-record counts,
# 4-byte record hash prefixes, URLs only where present, no record ids, fingerprints custody-fp/2
FORMAT = "custody-passage-index/4"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
BATCH_CHARS = 1 << 19  # characters fingerprinted together: large enough for numpy, small enough for the cache
CHUNK = 1 << 16  # records handed on at a time


def hash_keys(hashes: np.ndarray) -> np.ndarray:
    """The index keeps the top 32 bits of each 64-bit kept hash: half the size, and the extra
    candidates (about one in 4 billion per hash and record) are thrown out by the confirmation."""
    return (hashes >> np.uint64(32)).astype(np.uint32)


def record_hash_prefix(content_hash: str) -> int:
    return int(content_hash[:8], 16)


@dataclass(frozen=True)
class PassageIndex:
    keys: np.ndarray  # uint32: the top 32 bits of each kept hash, record by record
    counts: np.ndarray  # uint16 (uint32 if a record has more): how many keys each record has
    record_hashes: np.ndarray  # uint32: first 4 bytes of each record's text SHA-256, by ordinal
    url_ordinals: np.ndarray  # uint32: the records that have a source URL ...
    urls: list[str]  # ... and that URL

    @property
    def records(self) -> int:
        return len(self.counts)

    def records_with(self, wanted: np.ndarray) -> np.ndarray:
        """Ordinals of the records holding any of the `wanted` hashes (sorted, unique)."""
        positions = np.flatnonzero(np.isin(self.keys, hash_keys(wanted)))
        if len(positions) == 0:
            return np.zeros(0, dtype=np.uint32)
        ends = np.cumsum(self.counts, dtype=np.int64)
        return np.unique(np.searchsorted(ends, positions, side="right")).astype(np.uint32)

    def records_from(self, matches) -> np.ndarray:
        """Ordinals of the records whose source URL `matches(url)` says yes to."""
        return np.array(
            [o for o, url in zip(self.url_ordinals.tolist(), self.urls, strict=True) if matches(url)], dtype=np.uint32
        )

    def records_hashed(self, record_hash: str) -> np.ndarray:
        prefix = np.uint32(record_hash_prefix(record_hash))
        return np.flatnonzero(self.record_hashes == prefix).astype(np.uint32)


def _array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _write(index: PassageIndex, meta: dict) -> bytes:
    members = {
        "keys.npy": (_array_bytes(index.keys), zipfile.ZIP_STORED),
        "counts.npy": (_array_bytes(index.counts), zipfile.ZIP_STORED),
        "record_hashes.npy": (_array_bytes(index.record_hashes), zipfile.ZIP_STORED),
        "url_ordinals.npy": (_array_bytes(index.url_ordinals), zipfile.ZIP_DEFLATED),
        "meta.json": (json.dumps({**meta, "urls": index.urls}, sort_keys=True).encode(), zipfile.ZIP_DEFLATED),
    }
    buffer = io.BytesIO()
    # The hashes are random and do not compress, and a find reads them whole: stored, not deflated.
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(members):
            data, compression = members[name]
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = compression
            archive.writestr(info, data, compresslevel=6 if compression == zipfile.ZIP_DEFLATED else None)
    return buffer.getvalue()


def _read(data: bytes) -> PassageIndex:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        arrays = {
            name: np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
            for name in archive.namelist()
            if name.endswith(".npy")
        }
        meta = json.loads(archive.read("meta.json"))
    return PassageIndex(
        arrays["keys.npy"], arrays["counts.npy"], arrays["record_hashes.npy"], arrays["url_ordinals.npy"], meta["urls"]
    )


def _shard_rows(dataset: RegisteredDataset, shard: ShardInfo) -> Iterator[tuple[list[str], list[str | None]]]:
    """(texts, source URLs) of a shard's records, in chunks, the shard re-hashed against the manifest
    first. Plain JSONL, the common case, is parsed here line by line from the verified bytes; any
    other format, or a shard this fast path does not read exactly, goes through the dataset's reader."""
    if shard.format == "jsonl":
        data = dataset.verified_bytes(shard)
        parsed = _parse_jsonl(data, dataset.manifest.fields)
        del data
        if parsed is not None and len(parsed[0]) == shard.records:
            for start in range(0, shard.records, CHUNK):
                yield parsed[0][start : start + CHUNK], parsed[1][start : start + CHUNK]
            return
    texts: list[str] = []
    urls: list[str | None] = []
    for record in dataset.shard_records(shard):
        texts.append(record.text)
        urls.append(record.source_url)
        if len(texts) == CHUNK:
            yield texts, urls
            texts, urls = [], []
    if texts:
        yield texts, urls


def _parse_jsonl(data: bytes, fields: dict) -> tuple[list[str], list[str | None]] | None:
    """Texts and source URLs of JSONL bytes (Arrow's JSON reader, only these two fields), or None
    where the shard's own reader must judge them (a line Arrow reads otherwise, another type)."""
    import pyarrow as pa
    import pyarrow.json as pj

    text_key, url_key = fields.get("text", "text"), fields.get("source_url", "source_url")
    schema = pa.schema([(text_key, pa.string()), (url_key, pa.string())])
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(use_threads=False, block_size=max(1 << 20, min(len(data), 1 << 26))),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.column(text_key).null_count:
        return None
    urls = [u or None for u in table.column(url_key).to_pylist()]
    return table.column(text_key).to_pylist(), urls


def build(dataset: RegisteredDataset, batch_chars: int = BATCH_CHARS) -> PassageIndex:
    """Fingerprint every record (shards re-hashed against the manifest as they are read), about
    `batch_chars` characters at a time."""
    keys, counts, record_hashes, url_ordinals, urls = [], [], [], [], []
    ordinal = 0
    for shard in dataset.manifest.shards:
        for texts, sources in _shard_rows(dataset, shard):
            digests = b"".join([hashlib.sha256(t.encode("utf-8")).digest()[:4] for t in texts])
            record_hashes.append(np.frombuffer(digests, dtype=">u4").astype(np.uint32))
            url_ordinals += itertools.compress(range(ordinal, ordinal + len(texts)), sources)
            urls += filter(None, sources)
            ordinal += len(texts)
            ends = list(itertools.accumulate(map(len, texts)))
            first = 0
            while first < len(texts):  # batches of about batch_chars characters
                last = bisect.bisect_left(ends, (ends[first - 1] if first else 0) + batch_chars, lo=first) + 1
                kept, owners = batch_fingerprints(texts[first:last])
                keys.append(hash_keys(kept))
                counts.append(np.bincount(owners, minlength=min(last, len(texts)) - first))
                first = last
    per_record = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
    wide = len(per_record) and per_record.max() > np.iinfo(np.uint16).max
    return PassageIndex(
        np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint32),
        per_record.astype(np.uint32 if wide else np.uint16),
        np.concatenate(record_hashes) if record_hashes else np.zeros(0, dtype=np.uint32),
        np.array(url_ordinals, dtype=np.uint32),
        urls,
    )


def recorded(home: Home, dataset: RegisteredDataset) -> dict | None:
    """The newest dataset.indexed body for exactly these bytes and today's settings, if any."""
    for row in query.entries(home.storage, "dataset.indexed/", dataset.ref.subject, newest_first=True):
        found = query.body(row)
        current = (found["dataset_digest"], found["format"], found["ngram"], found["window"])
        if current == (dataset.digest, FORMAT, NGRAM, WINDOW) and home.store.exists(found["index_digest"]):
            return found
    return None


def index_for(home: Home, dataset: RegisteredDataset, actor: str | None = None) -> tuple[PassageIndex, bool]:
    """The dataset's index, from the store when recorded, else built and recorded; (index, built now)."""
    found = recorded(home, dataset)
    if found is not None:
        return _read(home.store.read_bytes(found["index_digest"])), False
    index = build(dataset)
    meta = {"format": FORMAT, "fingerprint": FINGERPRINT, "ngram": NGRAM, "window": WINDOW}
    data = _write(index, {**meta, "dataset_digest": dataset.digest})
    digest = home.store.put_bytes(data)
    body = {
        "dataset": str(dataset.ref),
        "dataset_digest": dataset.digest,
        "index_digest": digest,
        "format": FORMAT,
        "ngram": NGRAM,
        "window": WINDOW,
        "records": index.records,
        "fingerprints": len(index.keys),
        "bytes": len(data),
    }
    home.record("dataset.indexed/v1", dataset.ref.subject, body, refs=[f"sha256:{digest}"], actor=actor)
    return index, True
