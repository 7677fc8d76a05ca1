"""Streaming readers for dataset shards: JSONL (plain, .gz, .zst), Parquet, CSV and .txt files.

Every reader yields records one at a time from a bounded buffer, so memory stays flat however
large a shard is. Tabular formats stream through polars' batched collection. Errors name the
file, the line (or row) and the field.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

DEFAULT_MAX_RECORD_BYTES = 32 << 20
TABULAR_BATCH = 10_000
DOC_NAMES = ("license", "licence", "copying", "readme", "notice")
RESERVATION_FOLDER = "reservations"
RESERVATION_FILES = ("robots.txt", "tdmrep.json")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:[0-9]{1,5})?$", re.I)


class DatasetInputError(ValueError):
    """A shard cannot be read as records; names the file, line and field."""

    def __init__(self, path: Path | str, message: str, line: int | None = None, field: str | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")
        self.path, self.line, self.field, self.message = str(path), line, field, message


@dataclass(frozen=True)
class Record:
    position: int  # 1-based line (JSONL, CSV data row) or row (Parquet); 1 for a .txt file
    id: str
    text: str
    content_hash: str
    license: str | None = None
    source_url: str | None = None
    # Other fields a reader was asked for (`Fields.extra`), e.g. a classifier's label; absent: None.
    extra: dict[str, object] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Fields:
    text: str = "text"
    id: str | None = None
    license: str = "license"
    source_url: str = "source_url"
    extra: tuple[str, ...] = ()  # more fields to carry on each Record, as stored (not validated)


def shard_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in (
        (".jsonl.gz", "jsonl.gz"),
        (".ndjson.gz", "jsonl.gz"),
        (".jsonl.zst", "jsonl.zst"),
        (".ndjson.zst", "jsonl.zst"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".parquet", "parquet"),
        (".csv", "csv"),
        (".txt", "txt"),
    ):
        if name.endswith(suffix):
            return fmt
    return None


def is_document(path: Path) -> bool:
    """LICENSE, COPYING, README and NOTICE files travel with the data as documents, not records."""
    return path.name.lower().split(".")[0] in DOC_NAMES


def in_reservation_folder(name: str) -> bool:
    """True for a file under `reservations/HOST/` of a dataset folder (HOST a host name, e.g.
    example.org or example.org:8080): a site's reservation snapshots, kept with the data as
    documents (docs/optout.md). Other files under `reservations/` are data as usual."""
    parts = name.split("/")
    return len(parts) >= 3 and parts[0] == RESERVATION_FOLDER and bool(_HOST.fullmatch(parts[1]))


def reservation_host(name: str) -> str | None:
    """`reservations/HOST/robots.txt` or `reservations/HOST/tdmrep.json` -> HOST in lower case;
    None for any other document name."""
    parts = name.split("/")
    if len(parts) == 3 and in_reservation_folder(name) and parts[2] in RESERVATION_FILES:
        return parts[1].lower()
    return None


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _make_record(
    path: Path | str,
    position: int,
    text: object,
    rid: object,
    license_: object,
    url: object,
    fields: Fields,
    max_bytes: int,
    extra: dict[str, object] | None = None,
) -> Record:
    if text is None:
        raise DatasetInputError(path, "is missing", position, fields.text)
    if not isinstance(text, str):
        raise DatasetInputError(path, f"must be a string, not {type(text).__name__}", position, fields.text)
    if len(text) > max_bytes // 4 and len(text.encode("utf-8")) > max_bytes:
        raise DatasetInputError(
            path, f"record is larger than {max_bytes} bytes (raise --max-record-bytes)", position, fields.text
        )
    try:
        digest = content_hash(text)
    except UnicodeEncodeError as exc:  # a lone surrogate from a JSON escape such as "\ud800"
        raise DatasetInputError(
            path, f"is not valid Unicode (lone surrogate at character {exc.start})", position, fields.text
        ) from exc
    if fields.id is not None:
        if rid is None or isinstance(rid, bool) or not isinstance(rid, str | int) or str(rid) == "":
            raise DatasetInputError(path, "is missing or not a string/integer", position, fields.id)
        rid = str(rid)
    else:
        rid = digest
    for name, value in ((fields.license, license_), (fields.source_url, url)):
        if value is not None and not isinstance(value, str):
            raise DatasetInputError(path, "must be a string", position, name)
    return Record(position, rid, text, digest, license_ or None, url or None, extra)


def _jsonl_record(path: Path | str, number: int, doc: object, fields: Fields, max_bytes: int) -> Record:
    """One JSONL line's parsed object as a Record (an error naming the line if it is not an object)."""
    if not isinstance(doc, dict):
        raise DatasetInputError(path, "each line must be a JSON object", number)
    return _make_record(
        path,
        number,
        doc.get(fields.text),
        doc.get(fields.id) if fields.id else None,
        doc.get(fields.license),
        doc.get(fields.source_url),
        fields,
        max_bytes,
        {name: doc.get(name) for name in fields.extra} if fields.extra else None,
    )


def open_decompressed(fmt: str, raw: BinaryIO) -> BinaryIO:
    """The JSONL bytes of a plain, .gz or .zst shard opened as `raw`."""
    if fmt == "jsonl.gz":
        return gzip.GzipFile(fileobj=raw)
    if fmt == "jsonl.zst":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw


def _read_jsonl(path: Path, fmt: str, fields: Fields, max_bytes: int) -> Iterator[Record]:
    with open(path, "rb") as raw, open_decompressed(fmt, raw) as stream:
        buffered = io.BufferedReader(stream, buffer_size=1 << 20) if fmt != "jsonl" else stream
        number = 0
        while True:
            try:
                line = buffered.readline(max_bytes + 1)
            except Exception as exc:  # corrupt gzip (OSError, EOFError) or zstd frames (zstandard.ZstdError)
                raise DatasetInputError(path, f"cannot decompress: {exc}", number + 1) from exc
            if not line:
                return
            number += 1
            if len(line) > max_bytes and not line.endswith(b"\n"):
                raise line_too_long(path, number, max_bytes)
            if not line.strip():
                continue
            yield _jsonl_record(path, number, parse_jsonl_line(path, number, line), fields, max_bytes)


def line_too_long(path: Path | str, number: int, max_bytes: int) -> DatasetInputError:
    return DatasetInputError(path, f"line is longer than {max_bytes} bytes (raise --max-record-bytes)", number)


def parse_jsonl_line(path: Path | str, number: int, line: bytes) -> object:
    """One JSONL line parsed by the json module, or the error that names its line and column."""
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DatasetInputError(path, f"invalid UTF-8 at byte {exc.start}", number) from exc
    except json.JSONDecodeError as exc:
        # json's own message may end in "at" ("Unterminated string starting at"): say it once
        where = "column" if exc.msg.endswith(" at") else "at column"
        raise DatasetInputError(path, f"malformed JSON ({exc.msg} {where} {exc.colno})", number) from exc


def jsonl_record(path: Path | str, number: int, line: bytes, fields: Fields, max_bytes: int) -> Record:
    """One JSONL line as a Record, exactly as read_records makes it (errors name line and field)."""
    return _jsonl_record(path, number, parse_jsonl_line(path, number, line), fields, max_bytes)


def jsonl_records_at(path: Path, data: bytes, positions: set[int], fields: Fields = Fields()) -> dict[int, Record]:
    """The records at these 0-based positions of a plain JSONL shard given as bytes, the others
    skipped unparsed (position = the record's place among the shard's non-blank lines, as
    read_records yields them). For looking up a few records of a large shard."""
    found: dict[int, Record] = {}
    position = -1
    last = max(positions, default=-1)
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        position += 1
        if position in positions:
            try:
                doc = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DatasetInputError(path, f"not a JSON record ({exc})", number) from exc
            found[position] = _jsonl_record(path, number, doc, fields, 1 << 62)
        if position >= last:
            break
    return found


def _read_tabular(path: Path, fmt: str, fields: Fields, max_bytes: int) -> Iterator[Record]:
    import polars as pl

    try:
        frame = pl.scan_parquet(path) if fmt == "parquet" else pl.scan_csv(path, infer_schema=False, encoding="utf8")
        schema = frame.collect_schema()
    except Exception as exc:  # polars raises many types for unreadable files
        raise DatasetInputError(path, f"not a readable {fmt} file ({str(exc).splitlines()[0]})") from exc
    wanted = [fields.text] + [c for c in (fields.id, fields.license, fields.source_url) if c and c in schema]
    wanted += [c for c in fields.extra if c in schema and c not in wanted]
    if fields.text not in schema:
        raise DatasetInputError(path, f"column not found (columns: {', '.join(list(schema)[:10])})", field=fields.text)
    if fields.id and fields.id not in schema:
        raise DatasetInputError(path, "column not found", field=fields.id)
    # CSV rows are numbered as lines (header is line 1); Parquet rows from 1.
    position = 1 if fmt == "csv" else 0
    try:
        for batch in frame.select(wanted).collect_batches(chunk_size=TABULAR_BATCH):
            columns = {name: batch.get_column(name).to_list() for name in wanted}
            for i in range(batch.height):
                position += 1
                yield _make_record(
                    path,
                    position,
                    columns[fields.text][i],
                    columns[fields.id][i] if fields.id else None,
                    columns[fields.license][i] if fields.license in columns else None,
                    columns[fields.source_url][i] if fields.source_url in columns else None,
                    fields,
                    max_bytes,
                    {name: columns[name][i] if name in columns else None for name in fields.extra}
                    if fields.extra
                    else None,
                )
    except DatasetInputError:
        raise
    except Exception as exc:
        raise DatasetInputError(path, f"cannot read {fmt} ({str(exc).splitlines()[0]})", position + 1) from exc


def _read_txt(path: Path, fields: Fields, max_bytes: int, name: str | None = None) -> Iterator[Record]:
    size = path.stat().st_size
    if size > max_bytes:
        raise DatasetInputError(path, f"file is larger than {max_bytes} bytes (raise --max-record-bytes)")
    yield txt_record(path, path.read_bytes(), fields, max_bytes, name)


def txt_record(path: Path | str, data: bytes, fields: Fields, max_bytes: int, name: str | None = None) -> Record:
    """A .txt file's bytes as its one record (its id, when ids are asked for, is the file's stem)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetInputError(path, f"invalid UTF-8 at byte {exc.start}") from exc
    rid = Path(name or path).stem if fields.id else None
    return _make_record(path, 1, text, rid, None, None, fields, max_bytes)


def read_records(
    path: Path,
    fmt: str,
    fields: Fields = Fields(),
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    name: str | None = None,
) -> Iterator[Record]:
    """Records of one shard, streamed."""
    if fmt in ("jsonl", "jsonl.gz", "jsonl.zst"):
        return _read_jsonl(path, fmt, fields, max_record_bytes)
    if fmt in ("parquet", "csv"):
        return _read_tabular(path, fmt, fields, max_record_bytes)
    if fmt == "txt":
        return _read_txt(path, fields, max_record_bytes, name)
    raise DatasetInputError(path, f"unsupported format {fmt!r}")
