"""A dataset version's passage index: every record's kept fingerprints, in the artifact store.

One file per dataset version (`.npz`, no pickle, written byte-for-byte deterministically):
the kept hashes sorted, with the ordinal of the record each came from (so a lookup is a binary
search, not a scan), each record's id, the first 8 bytes of its text SHA-256 (for
`find --record-hash`) and its source URL (for `find --url-prefix` and `--domain`). Its digest is
recorded in the ledger as `dataset.indexed/v1`, subject the dataset, with the fingerprint settings,
so an index is reused only for the same bytes and the same settings, and anyone can rebuild it and
compare.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

import numpy as np

from custody.datasets.registry import RegisteredDataset
from custody.home import Home
from custody.ledger import query
from custody.takedown import entry_types  # noqa: F401  registers dataset.indexed/v1
from custody.takedown.fingerprints import NGRAM, WINDOW, batch_fingerprints

FORMAT = "custody-passage-index/3"  # 2: each record's source URL; 3: 32-bit hash keys
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
BATCH = 4096  # records fingerprinted together


def hash_keys(hashes: np.ndarray) -> np.ndarray:
    """The index keeps the top 32 bits of each 64-bit kept hash: half the size, and the extra
    candidates (about one in 4 billion per hash and record) are thrown out by the confirmation."""
    return (hashes >> np.uint64(32)).astype(np.uint32)


@dataclass(frozen=True)
class PassageIndex:
    hashes: np.ndarray  # uint32, sorted: the top 32 bits of each kept hash (KEY_SHIFT)
    ordinals: np.ndarray  # uint32: the record each hash came from
    record_ids: list[str]  # by ordinal
    record_hashes: np.ndarray  # uint64: first 8 bytes of each record's text SHA-256, by ordinal
    source_urls: list[str | None]  # each record's source URL (the dataset's source_url field), by ordinal

    def records_with(self, wanted: np.ndarray) -> np.ndarray:
        """Ordinals of the records holding any of the `wanted` hashes (sorted, unique)."""
        keys = hash_keys(wanted)
        left = np.searchsorted(self.hashes, keys, side="left")
        right = np.searchsorted(self.hashes, keys, side="right")
        hits = [self.ordinals[a:b] for a, b in zip(left, right, strict=True) if b > a]
        return np.unique(np.concatenate(hits)) if hits else np.zeros(0, dtype=np.uint32)

    def records_from(self, matches) -> np.ndarray:
        """Ordinals of the records whose source URL `matches(url)` says yes to."""
        return np.array([i for i, url in enumerate(self.source_urls) if url and matches(url)], dtype=np.uint32)

    def records_hashed(self, record_hash: str) -> np.ndarray:
        prefix = np.uint64(int(record_hash[:16], 16))
        return np.flatnonzero(self.record_hashes == prefix).astype(np.uint32)


def _array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _write(index: PassageIndex, meta: dict) -> bytes:
    members = {
        "hashes.npy": index.hashes,
        "ordinals.npy": index.ordinals,
        "record_hashes.npy": index.record_hashes,
        "meta.npy": np.frombuffer(
            json.dumps({**meta, "ids": index.record_ids, "urls": index.source_urls}, sort_keys=True).encode(), np.uint8
        ),
    }
    buffer = io.BytesIO()
    # Stored, not deflated: the hashes are random and do not compress, and a find reads the whole
    # index, where inflating it cost more than reading it.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, _array_bytes(members[name]))
    return buffer.getvalue()


def _read(data: bytes) -> PassageIndex:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        arrays = {name: np.load(io.BytesIO(archive.read(name)), allow_pickle=False) for name in archive.namelist()}
    meta = json.loads(arrays["meta.npy"].tobytes())
    return PassageIndex(
        arrays["hashes.npy"], arrays["ordinals.npy"], meta["ids"], arrays["record_hashes.npy"], meta["urls"]
    )


def build(dataset: RegisteredDataset, batch: int = BATCH) -> PassageIndex:
    """Fingerprint every record (shards re-hashed against the manifest as they are read), `batch`
    records at a time."""
    hashes, ordinals, ids, record_hashes, urls, pending = [], [], [], [], [], []

    def flush() -> None:
        kept, owners = batch_fingerprints(pending)
        hashes.append(kept)
        ordinals.append(owners + np.uint32(len(ids) - len(pending)))
        pending.clear()

    for _, record in dataset.records():
        pending.append(record.text)
        ids.append(record.id)
        urls.append(record.source_url)
        record_hashes.append(int(record.content_hash[:16], 16))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    flat = hash_keys(np.concatenate(hashes)) if hashes else np.zeros(0, dtype=np.uint32)
    owners = np.concatenate(ordinals) if ordinals else np.zeros(0, dtype=np.uint32)
    order = np.lexsort((owners, flat))
    return PassageIndex(flat[order], owners[order], ids, np.array(record_hashes, dtype=np.uint64), urls)


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
    data = _write(index, {"format": FORMAT, "ngram": NGRAM, "window": WINDOW, "dataset_digest": dataset.digest})
    digest = home.store.put_bytes(data)
    body = {
        "dataset": str(dataset.ref),
        "dataset_digest": dataset.digest,
        "index_digest": digest,
        "format": FORMAT,
        "ngram": NGRAM,
        "window": WINDOW,
        "records": len(index.record_ids),
        "fingerprints": len(index.hashes),
        "bytes": len(data),
    }
    home.record("dataset.indexed/v1", dataset.ref.subject, body, refs=[f"sha256:{digest}"], actor=actor)
    return index, True
