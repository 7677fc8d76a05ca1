"""Opt-out registry files: who or what asked to be left out of training, from where, since when.

A file is CSV (a header row naming the columns) or JSONL (one object a line) with exactly four
fields per entry: `kind` (`domain`, `url-prefix`, `author` or `record-hash`), `value`, `source`
(where the opt-out came from: a registry, a form, a letter) and `date` (YYYY-MM-DD, when it was
made). Every line is checked before anything is kept; the first problem is reported as
`FILE:LINE: field 'NAME': what is wrong`.

A record is opted out when its source URL's host is a listed domain or below it, its source URL
starts with a listed URL prefix (scheme and host compared without case), its author field
equals a listed author (Unicode-normalised, case and spacing ignored), or its text's SHA-256 is
a listed record hash.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

KINDS = ("domain", "url-prefix", "author", "record-hash")
COLUMNS = ("kind", "value", "source", "date")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_VALUE = 2000
MAX_SOURCE = 500
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class OptOutFileError(ValueError):
    """An opt-out file that cannot be imported; names the file, the line and the field."""

    def __init__(self, path: Path | str, message: str, line: int | None = None, field: str | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {f'field {field!r}: ' if field else ''}{message}")


@dataclass(frozen=True)
class OptOut:
    kind: str
    value: str  # normalised: a lower-case domain, a prefix with its scheme and host lower-cased, a hex hash
    source: str
    date: str
    line: int  # where it is in the imported file

    @property
    def key(self) -> tuple[str, str]:
        """What it matches: two entries with the same key opt out the same records."""
        return (self.kind, author_key(self.value) if self.kind == "author" else self.value)

    def as_json(self) -> dict:
        return asdict(self)


def author_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def normalize_url(url: str) -> str:
    """Scheme and host in lower case (they are case-insensitive); the rest as given."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, parts.fragment))


def _value(kind: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("is empty")
    if len(value) > MAX_VALUE:
        raise ValueError(f"is longer than {MAX_VALUE} characters")
    if kind == "domain":
        host = value.lower().rstrip(".")
        with contextlib.suppress(UnicodeError):  # a name in Unicode, as its xn-- form
            host = host.encode("idna").decode("ascii")
        if not _DOMAIN.fullmatch(host):
            raise ValueError(f"{value!r} is not a domain name with a dot in it (e.g. example.org)")
        return host
    if kind == "url-prefix":
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL with a host (e.g. https://example.org/blog/)")
        return normalize_url(value)
    if kind == "record-hash":
        digest = value.lower().removeprefix("sha256:")
        if not _HASH.fullmatch(digest):
            raise ValueError(f"{value!r} is not a SHA-256 of a record's text (64 hexadecimal characters)")
        return digest
    return " ".join(value.split())  # an author, as written (compared by author_key)


def _entry(path: Path, line: int, doc: dict[str, object], today: dt.date) -> OptOut:
    for name in COLUMNS:
        if name not in doc or doc[name] is None:
            raise OptOutFileError(path, "is missing", line, name)
        if not isinstance(doc[name], str):
            raise OptOutFileError(path, f"must be a string, not {type(doc[name]).__name__}", line, name)
    kind = str(doc["kind"]).strip()
    if kind not in KINDS:
        raise OptOutFileError(path, f"{kind!r} is not one of {', '.join(KINDS)}", line, "kind")
    try:
        value = _value(kind, str(doc["value"]))
    except ValueError as exc:
        raise OptOutFileError(path, str(exc), line, "value") from None
    source = " ".join(str(doc["source"]).split())
    if not source:
        raise OptOutFileError(path, "is empty: say where the opt-out came from", line, "source")
    if len(source) > MAX_SOURCE:
        raise OptOutFileError(path, f"is longer than {MAX_SOURCE} characters", line, "source")
    date = str(doc["date"]).strip()
    try:
        when = dt.date.fromisoformat(date) if _DATE.fullmatch(date) else None
    except ValueError:
        when = None
    if when is None:
        raise OptOutFileError(path, f"{date!r} is not a date (YYYY-MM-DD)", line, "date")
    if when > today:
        raise OptOutFileError(path, f"{date} is in the future", line, "date")
    return OptOut(kind, value, source, date, line)


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OptOutFileError(path, "an opt-out file is .csv or .jsonl")
    return fmt


def parse(path: Path, data: bytes, today: dt.date | None = None) -> list[OptOut]:
    """Every entry of an opt-out file, checked line by line (OptOutFileError at the first problem)."""
    fmt = file_format(path)
    today = today or (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date()  # a day's grace for time zones
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OptOutFileError(path, f"not UTF-8 (byte {exc.start})") from None
    entries = list(_read_csv(path, text, today) if fmt == "csv" else _read_jsonl(path, text, today))
    if not entries:
        raise OptOutFileError(path, "no opt-out entries")
    return entries


def _read_csv(path: Path, text: str, today: dt.date) -> Iterable[OptOut]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1  # the line the row being read starts on
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [h.strip().lower() for h in header]
        for name in names:
            if name not in COLUMNS:
                raise OptOutFileError(path, f"unknown column (the columns are {', '.join(COLUMNS)})", 1, name)
        for name in COLUMNS:
            if name not in names:
                raise OptOutFileError(path, "column is missing from the header row", 1, name)
        if len(set(names)) != len(names):
            raise OptOutFileError(path, "a column is named twice in the header row", 1)
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                raise OptOutFileError(path, f"has {len(row)} cells, the header has {len(names)}", line)
            yield _entry(path, line, dict(zip(names, row, strict=True)), today)
    except csv.Error as exc:
        raise OptOutFileError(path, f"not valid CSV ({exc})", start) from None


def _read_jsonl(path: Path, text: str, today: dt.date) -> Iterable[OptOut]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise OptOutFileError(path, f"malformed JSON ({exc.msg} at column {exc.colno})", number) from None
        if not isinstance(doc, dict):
            raise OptOutFileError(path, "each line must be a JSON object", number)
        unknown = sorted(set(doc) - set(COLUMNS))
        if unknown:
            raise OptOutFileError(path, f"unknown key (the keys are {', '.join(COLUMNS)})", number, unknown[0])
        yield _entry(path, number, doc, today)


@dataclass(frozen=True)
class Listed:
    """An entry of an imported registry, as a match reports it (its value is not repeated: an
    author's name is personal data; the entry is found again by its registry, import and line)."""

    registry: str
    ledger_index: int
    kind: str
    line: int

    def as_json(self) -> dict:
        return asdict(self)


class Matcher:
    """Which registry entries a record matches, by source URL, author and text hash."""

    def __init__(self, entries: Iterable[tuple[Listed, OptOut]] = ()) -> None:
        self.domains: dict[str, list[Listed]] = {}
        self.prefixes: dict[str, list[tuple[str, Listed]]] = {}  # by the prefix's host
        self.authors: dict[str, list[Listed]] = {}
        self.hashes: dict[str, list[Listed]] = {}
        self.size = 0
        for listed, entry in entries:
            self.size += 1
            if entry.kind == "domain":
                self.domains.setdefault(entry.value, []).append(listed)
            elif entry.kind == "url-prefix":
                host = (urlsplit(entry.value).hostname or "").lower()
                self.prefixes.setdefault(host, []).append((entry.value, listed))
            elif entry.kind == "author":
                self.authors.setdefault(author_key(entry.value), []).append(listed)
            else:
                self.hashes.setdefault(entry.value, []).append(listed)

    def match(self, url: str | None, authors: Iterable[str], text_sha256: str) -> list[Listed]:
        found: list[Listed] = list(self.hashes.get(text_sha256, []))
        if url:
            try:
                host = (urlsplit(url.strip()).hostname or "").lower().rstrip(".")
            except ValueError:
                host = ""
            labels = host.split(".")
            for i in range(len(labels) - 1):
                found += self.domains.get(".".join(labels[i:]), [])
            if host in self.prefixes:
                normalized = normalize_url(url)
                found += [listed for prefix, listed in self.prefixes[host] if normalized.startswith(prefix)]
        for author in authors:
            found += self.authors.get(author_key(author), [])
        return found


def authors_of(value: object) -> list[str]:
    """A record's author field as a list of names (a string, or a list of strings)."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []
