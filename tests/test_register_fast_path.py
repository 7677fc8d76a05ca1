"""Registration's fast path (custody.datasets.shard_scan) gives the bytes the reference path gave.

- A fixed corpus in every format (tests/data/register_corpus) registers to the manifest, card and
  entry body recorded before the fast path existed, in one process and across workers.
- Line by line, orjson's path and the json module's reference path (read_records) agree on every
  count and every error (message, line, field), plain and compressed.
- A worker pool gives the same manifest as one process; an error in a later shard names that
  shard and leaves the ledger and the store as they were.
- `--in-place` reads each shard once and still notices a change made during that read.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import zstandard

from custody.datasets import shard_scan
from custody.datasets.card import CARD_TEMPLATE, parse_card
from custody.datasets.names import DatasetRef
from custody.datasets.readers import DatasetInputError, Fields, read_records
from custody.datasets.registry import DatasetRegistry
from custody.datasets.shard_scan import ShardTask, scan_shard

CORPUS = Path(__file__).parent / "data" / "register_corpus"
CARD = parse_card(CARD_TEMPLATE)
# Recorded with the registration code before shard_scan (commit cb4eda4): the same bytes today.
BEFORE = {
    False: "40a0edc210aa6cbd86da59b93cfdb9650bd6f553f58e3b57f0fcaf6a1f529130",  # fixed@copy
    True: "806aee14dc7f177132d5eb84a69e06466f73e8a334f50f96c48347abbc40e9d5",  # fixed@ip, in place
}
CARD_DIGEST = "f5503d5043dde04b59cf827649b12c7c32d67da7e6d669ce361a5a1e28415fe0"
SHARDS = [
    ("notes.txt", "843924f5ce00", 1),
    ("part-0.jsonl", "cdfdfc8b66e1", 40),
    ("part-1.jsonl.gz", "a851dea41ca3", 30),
    ("part-2.jsonl.zst", "85e5656e4a91", 30),
    ("part-3.csv", "a118715d822b", 20),
    ("part-4.parquet", "1dcfa67f481e", 20),
]


@pytest.fixture
def pool_always(monkeypatch) -> None:
    """Use the worker pool however small the input (it normally starts from 32 MiB)."""
    monkeypatch.setattr(shard_scan, "PARALLEL_FROM_BYTES", 0)


def store_tmp(home) -> list[str]:
    tmp = home.store.root / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("in_place", [False, True])
def test_a_fixed_corpus_registers_to_the_digests_it_had_before(home, in_place: bool, workers: int, pool_always) -> None:
    ref = DatasetRef("fixed", "ip" if in_place else "copy")
    ds, created = DatasetRegistry(home).register(
        [CORPUS], ref, CARD, Fields(id="id"), in_place=in_place, workers=workers
    )
    assert created
    assert ds.digest == BEFORE[in_place]
    assert [(s.name, s.digest[:12], s.records) for s in ds.manifest.shards] == SHARDS
    expected = {
        "name": "fixed",
        "version": ref.version,
        "manifest_digest": BEFORE[in_place],
        "card_digest": CARD_DIGEST,
        "records": 141,
        "bytes": 17771,
        "shards": 6,
        "in_place": in_place,
        "parents": [],
    }
    assert {k: v for k, v in ds.body.items() if k != "locations"} == expected
    assert set(ds.body["locations"]) == ({s[0] for s in SHARDS} if in_place else set())
    assert ds.verify_shards() == []
    assert store_tmp(home) == []


# -- line by line: the fast path and the reference path agree ------------------------------------------

GOOD = b'{"id": "g", "text": "a good record", "license": "MIT"}'
LINES = [
    b'{"id": "a", "text": "plain"}',
    b'{"id": 7, "text": "an integer id"}',
    b'{"id": 123456789012345678901234567890, "text": "an id beyond 64 bits"}',  # orjson: float
    b'{"id": "n", "text": "json takes NaN", "score": NaN}',
    b'{"id": "s", "text": "\\ud800 a lone surrogate"}',
    b'{"id": "s2", "text": "\\ud83d\\ude42 a pair"}',
    b'\xef\xbb\xbf{"id": "bom", "text": "x"}',
    b"[1, 2]",
    b'"just a string"',
    b'{"id": "m"}',
    b'{"id": "t", "text": 5}',
    b'{"id": "l", "text": "x", "license": 5}',
    b'{"id": "u", "text": "x", "source_url": ["a"]}',
    b'{"id": "", "text": "empty id"}',
    b'{"id": true, "text": "boolean id"}',
    b'{"id": null, "text": "null id"}',
    b'{"text": "no id at all"}',
    b'{"id": "bad", "text": "\xff\xfe"}',
    b'{"id": "cut", "text": "unterminated',
    b'{"id": "tail", "text": "x"} trailing',
    b'{"id": "ctl", "text": "a\tb"}',
    b'{"id": "crlf", "text": "windows"}\r',
    b"   ",
    b"",
    b'{"id": "long", "text": "' + b"x" * 300 + b'"}',
    b'{"id": "wide", "text": "' + "\U0001f642".encode() * 60 + b'"}',
    b'{"id": "dup", "text": "first", "text": "second"}',
]
MAX = 256  # small enough for the long and wide lines to be refused


def reference(path: Path, fmt: str, fields: Fields) -> tuple:
    try:
        return ("ok", sum(1 for _ in read_records(path, fmt, fields, MAX, path.name)))
    except DatasetInputError as exc:
        return ("error", exc.message, exc.line, exc.field)


def fast(path: Path, fmt: str, fields: Fields) -> tuple:
    scan = scan_shard(ShardTask(path.name, str(path), fmt, fields, MAX, None))
    return ("ok", scan.records) if scan.error is None else ("error", *scan.error)


def write_shard(path: Path, fmt: str, data: bytes) -> Path:
    if fmt == "jsonl.gz":
        data = gzip.compress(data, mtime=0)
    elif fmt == "jsonl.zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "jsonl.zst"])
@pytest.mark.parametrize("id_field", [None, "id"])
def test_every_line_gets_the_reference_count_or_error(tmp_path: Path, fmt: str, id_field: str | None) -> None:
    fields = Fields(id=id_field)
    outcomes = set()
    for i, line in enumerate(LINES):
        # the line between two good ones, and last without its newline
        for where, data in (("mid", GOOD + b"\n" + line + b"\n" + GOOD + b"\n"), ("end", GOOD + b"\n" + line)):
            path = write_shard(tmp_path / f"case-{i}-{where}.{fmt}", fmt, data)
            expected = reference(path, fmt, fields)
            assert fast(path, fmt, fields) == expected, (line[:60], expected)
            outcomes.add(expected[0])
    assert outcomes == {"ok", "error"}


def test_a_line_longer_than_the_limit_is_refused_without_holding_it(tmp_path: Path) -> None:
    # Longer than a read chunk and than the limit, without a newline: refused at its line number.
    path = tmp_path / "long.jsonl"
    path.write_bytes(GOOD + b"\n" + GOOD + b"\n" + b'{"text": "' + b"y" * (3 << 20))
    task = ShardTask(path.name, str(path), "jsonl", Fields(), 1 << 20, None)
    assert scan_shard(task).error == ("line is longer than 1048576 bytes (raise --max-record-bytes)", 3, None)
    assert reference_error(path, 1 << 20) == scan_shard(task).error


def reference_error(path: Path, max_bytes: int) -> tuple:
    with pytest.raises(DatasetInputError) as caught:
        list(read_records(path, "jsonl", Fields(), max_bytes))
    return (caught.value.message, caught.value.line, caught.value.field)


def test_a_corrupt_compressed_shard_says_it_cannot_be_decompressed(tmp_path: Path) -> None:
    data = gzip.compress(GOOD + b"\n" * 1000, mtime=0)
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(data[: len(data) // 2] + b"\x00" * 64 + data[len(data) // 2 :])
    scan = scan_shard(ShardTask(path.name, str(path), "jsonl.gz", Fields(), MAX, None))
    assert scan.error is not None and scan.error[0].startswith("cannot decompress: ")


# -- a pool of workers ---------------------------------------------------------------------------------


def corpus(directory: Path, shards: int, records: int) -> Path:
    directory.mkdir()
    for s in range(shards):
        with open(directory / f"part-{s:03d}.jsonl", "w", encoding="utf-8") as out:
            for r in range(records):
                text = f"record {r} of shard {s}: " + "lorem ipsum dolor " * (1 + (r * 7) % 40)
                out.write(json.dumps({"id": f"{s}-{r}", "text": text, "license": "CC0-1.0"}) + "\n")
    return directory


@pytest.mark.parametrize("in_place", [False, True])
def test_a_pool_registers_what_one_process_does(home, tmp_path: Path, in_place: bool, pool_always) -> None:
    data = corpus(tmp_path / "data", shards=5, records=400)
    registry = DatasetRegistry(home)
    one, _ = registry.register([data], DatasetRef("pool", "1"), CARD, Fields(id="id"), in_place=in_place, workers=1)
    many, _ = registry.register([data], DatasetRef("pool", "2"), CARD, Fields(id="id"), in_place=in_place, workers=2)
    assert [(s.name, s.digest, s.bytes, s.records) for s in one.manifest.shards] == [
        (s.name, s.digest, s.bytes, s.records) for s in many.manifest.shards
    ]
    assert one.manifest.records == 2000
    assert [r.id for _, r in one.records()] == [r.id for _, r in many.records()]
    assert store_tmp(home) == []


def test_an_error_in_a_later_shard_names_it_and_records_nothing(home, tmp_path: Path, pool_always) -> None:
    data = corpus(tmp_path / "data", shards=4, records=200)
    bad = data / "part-002.jsonl"
    lines = bad.read_bytes().split(b"\n")
    lines[150] = b'{"id": "x", "text": 42}'
    bad.write_bytes(b"\n".join(lines))
    size, stored = home.ledger.size, sorted((home.store.root / "sha256").rglob("*"))
    with pytest.raises(DatasetInputError) as caught:
        DatasetRegistry(home).register([data], DatasetRef("broken", "1"), CARD, Fields(id="id"), workers=2)
    assert str(caught.value) == f"{bad}:151: field 'text': must be a string, not int"
    assert home.ledger.size == size
    assert sorted((home.store.root / "sha256").rglob("*")) == stored
    assert store_tmp(home) == []


# -- in place: one read, and a change during it is noticed ---------------------------------------------


def test_in_place_reads_each_shard_once(home, tmp_path: Path, monkeypatch) -> None:
    data = corpus(tmp_path / "data", shards=2, records=600)
    read: dict[str, int] = {}
    original = shard_scan._HashingReader.read

    def counting(self, size: int = -1) -> bytes:
        chunk = original(self, size)
        read[self.source.name] = read.get(self.source.name, 0) + len(chunk)
        return chunk

    monkeypatch.setattr(shard_scan._HashingReader, "read", counting)
    ds, _ = DatasetRegistry(home).register([data], DatasetRef("once", "1"), CARD, in_place=True, workers=1)
    assert read == {str(p): p.stat().st_size for p in sorted(data.iterdir())}
    assert ds.manifest.records == 1200


def test_in_place_notices_a_change_during_its_read(home, tmp_path: Path, monkeypatch) -> None:
    data = corpus(tmp_path / "data", shards=1, records=6000)
    (shard,) = data.iterdir()
    assert shard.stat().st_size > 2 * shard_scan.CHUNK
    later = shard.read_bytes().index(b"lorem", 2 * shard_scan.CHUNK)  # still valid JSON once edited
    original = shard_scan._HashingReader.read

    def edit_after_first_chunk(self, size: int = -1) -> bytes:
        chunk = original(self, size)
        if self.size == len(chunk):  # the first chunk read: someone rewrites a letter further on
            with open(shard, "r+b") as other:
                other.seek(later)
                other.write(b"L")
        return chunk

    monkeypatch.setattr(shard_scan._HashingReader, "read", edit_after_first_chunk)
    size = home.ledger.size
    with pytest.raises(DatasetInputError, match="file changed while it was being registered"):
        DatasetRegistry(home).register([data], DatasetRef("moving", "1"), CARD, in_place=True, workers=1)
    assert home.ledger.size == size
