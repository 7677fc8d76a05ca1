"""Reading each shard once at registration: hash it, copy it into the store's staging area (or
leave it in place), and count and validate its records from the same bytes, one process per
shard across the machine's cores when there are several large shards.

The counts, digests and errors are exactly those of `read_records` (custody.datasets.readers):
JSON lines are parsed by orjson, and any line orjson refuses or that does not validate at once
(NaN, integers beyond 64 bits, lone surrogates, a wrong type...) is parsed again by the json
module on the reference path, which gives the same record or the same one-line error. A shard
registered in place is checked not to have changed during its one read: the file's size, inode,
modification and change times must be the same before and after (writing a file always moves
its change time, which no program can set back).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO

import orjson

from custody.datasets.readers import (
    DatasetInputError,
    Fields,
    jsonl_record,
    line_too_long,
    open_decompressed,
    read_records,
    txt_record,
)

CHUNK = 1 << 20
JSONL_FORMATS = ("jsonl", "jsonl.gz", "jsonl.zst")
# Below this many bytes in all, the shards are read in this process: a worker pool costs more to start.
PARALLEL_FROM_BYTES = 32 << 20


@dataclass(frozen=True)
class ShardTask:
    name: str  # the shard's name in the manifest
    path: str
    fmt: str
    fields: Fields
    max_record_bytes: int
    copy_to: str | None  # a file in the store's staging area to copy into; None: --in-place


@dataclass(frozen=True)
class ShardScan:
    digest: str
    size: int
    records: int
    # (message, line, field) of the first problem, as DatasetInputError carries them; None: valid
    error: tuple[str, int | None, str | None] | None = None


class _HashingReader(io.RawIOBase):
    """A file read once: every byte read is hashed and, when copying, written to the copy."""

    def __init__(self, source: BinaryIO, copy: BinaryIO | None) -> None:
        self.source, self.copy = source, copy
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size if size is not None and size >= 0 else CHUNK)
        self.digest.update(chunk)
        self.size += len(chunk)
        if self.copy is not None:
            self.copy.write(chunk)
        return chunk

    def readinto(self, buffer) -> int:  # type: ignore[override]  # what gzip and zstd call
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def drain(self) -> None:
        """Read (hash, copy) whatever the parser left, e.g. bytes after the last compressed frame."""
        while self.read(CHUNK):
            pass


def _count_jsonl(path: str, stream: BinaryIO, fields: Fields, max_bytes: int) -> int:
    """The records of a JSONL stream, validated line by line as read_records does."""
    count = number = 0
    carry = b""
    while True:
        try:
            chunk = stream.read(CHUNK)
        except Exception as exc:  # corrupt gzip (OSError, EOFError) or zstd frames (zstandard.ZstdError)
            raise DatasetInputError(path, f"cannot decompress: {exc}", number + 1) from exc
        lines = chunk.split(b"\n") if chunk else [b""]
        lines[0] = carry + lines[0]  # the line the last chunk left unfinished
        carry = lines.pop() if chunk else b""
        count += _count_lines(path, lines, number, fields, max_bytes, newline=bool(chunk))
        number += len(lines)
        if len(carry) > max_bytes:  # a line still without its end: do not hold more of it
            raise line_too_long(path, number + 1, max_bytes)
        if not chunk:
            return count


def _count_lines(path: str, lines: list[bytes], number: int, fields: Fields, max_bytes: int, newline: bool) -> int:
    """How many of these lines are records; the first line is line number + 1. A line that does
    not pass the fast checks goes to the reference path, which accepts it or says why not (given
    its newline back when it had one: json's message for a cut string depends on it)."""
    loads, text_field, id_field = orjson.loads, fields.text, fields.id
    license_field, url_field, quarter = fields.license, fields.source_url, max_bytes // 4
    count = 0
    for line in lines:
        number += 1
        if len(line) > max_bytes:
            raise line_too_long(path, number, max_bytes)
        if not line.strip():
            continue
        count += 1
        try:
            doc = loads(line)
        except orjson.JSONDecodeError:
            doc = None
        if type(doc) is dict:
            text = doc.get(text_field)
            rid = doc.get(id_field) if id_field else "-"
            licence, url = doc.get(license_field), doc.get(url_field)
            if (
                type(text) is str
                and (len(text) <= quarter or len(text.encode("utf-8")) <= max_bytes)
                and ((type(rid) is str and rid != "") or type(rid) is int)
                and (licence is None or type(licence) is str)
                and (url is None or type(url) is str)
            ):
                continue
        # the reference path raises the exact error, or accepts what the fast checks could not
        jsonl_record(path, number, line + b"\n" if newline else line, fields, max_bytes)
    return count


def _unchanged(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns) == (
        after.st_ino,
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    )


def _count(task: ShardTask, reader: _HashingReader) -> int:
    """Read the shard through `reader` (once for JSONL and .txt) and count its records."""
    if task.fmt in JSONL_FORMATS:
        with open_decompressed(task.fmt, reader) as stream:  # type: ignore[arg-type]
            buffered = io.BufferedReader(stream, buffer_size=CHUNK) if task.fmt != "jsonl" else stream
            count = _count_jsonl(task.path, buffered, task.fields, task.max_record_bytes)
        reader.drain()
        return count
    if task.fmt == "txt":
        if os.path.getsize(task.path) > task.max_record_bytes:
            raise DatasetInputError(
                task.path, f"file is larger than {task.max_record_bytes} bytes (raise --max-record-bytes)"
            )
        data = b"".join(iter(lambda: reader.read(CHUNK), b""))
        txt_record(task.path, data, task.fields, task.max_record_bytes, task.name)
        return 1
    # Parquet and CSV: polars reads the file itself, so it is hashed (and copied) first, then
    # parsed from the copy, or in place from the same file, which is checked not to have changed.
    reader.drain()
    if reader.copy is not None:
        reader.copy.flush()
    parsed = task.copy_to or task.path
    records = read_records(Path(parsed), task.fmt, task.fields, task.max_record_bytes, task.name)
    try:
        return sum(1 for _ in records)
    except DatasetInputError as exc:
        raise DatasetInputError(task.path, exc.message, exc.line, exc.field) from None


def scan_shard(task: ShardTask) -> ShardScan:
    """Hash, copy (unless in place) and count one shard; a problem is returned, not raised, so
    that it crosses a process boundary whole."""
    try:
        before = os.stat(task.path)
        with open(task.path, "rb", buffering=0) as source:
            if os.fstat(source.fileno()).st_ino != before.st_ino:
                raise DatasetInputError(task.path, "file changed while it was being registered")
            with open(task.copy_to, "wb") if task.copy_to else nullcontext() as copy:
                reader = _HashingReader(source, copy)
                count = _count(task, reader)
                if copy is not None:
                    copy.flush()
                    os.fsync(copy.fileno())  # here, in parallel, rather than one by one at commit
            if task.copy_to is None and not (
                _unchanged(before, os.fstat(source.fileno()))
                and _unchanged(before, os.stat(task.path))
                and reader.size == before.st_size
            ):
                raise DatasetInputError(task.path, "file changed while it was being registered")
        return ShardScan(reader.digest.hexdigest(), reader.size, count)
    except DatasetInputError as exc:
        return ShardScan("", 0, 0, (exc.message, exc.line, exc.field))


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def scan_shards(
    tasks: list[ShardTask], workers: int | None = None, done: Callable[[ShardTask, ShardScan], None] | None = None
) -> Iterator[ShardScan]:
    """Every shard's scan, in the tasks' order; `done` is called as each arrives (for progress).
    Shards are spread over `workers` processes (default: the usable cores) when there are two or
    more and they are large enough for the pool to pay for itself."""
    workers = default_workers() if workers is None else workers
    total = sum(os.path.getsize(t.path) for t in tasks if os.path.exists(t.path))
    if workers <= 1 or len(tasks) < 2 or total < PARALLEL_FROM_BYTES:
        for task in tasks:
            scan = scan_shard(task)
            if done:
                done(task, scan)
            yield scan
            if scan.error:
                return
        return
    # forkserver: workers start from a small clean process, not a fork of a caller with threads
    context = get_context("forkserver")
    context.set_forkserver_preload(["custody.datasets.shard_scan"])
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
        futures = [pool.submit(scan_shard, task) for task in tasks]
        try:
            for task, future in zip(tasks, futures, strict=True):
                scan = future.result()
                if done:
                    done(task, scan)
                yield scan
                if scan.error:
                    return
        finally:
            for future in futures:
                future.cancel()
