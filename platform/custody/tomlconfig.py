"""TOML files checked against a pydantic model, with errors that name the file, line and key.

Cards, policies and run specs are all read this way, so a user sees one style of message:
`FILE:LINE: unknown key 'x'`, `FILE: required key 'x' is missing`, `FILE:LINE: key 'x': ...`,
`FILE:LINE: not valid TOML: ...`.
"""

from __future__ import annotations

import re
import tomllib
from typing import TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)

_HEADER = re.compile(r"^(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r'^("?)([^"=\s]+)\1\s*=')


def key_line(text: str, loc: tuple) -> int | None:
    """The line of the key at pydantic location `loc` (tables, arrays of tables, dotted keys);
    failing that, the line of the longest enclosing table or key that exists."""
    names = [str(p) for p in loc]
    if not names:
        return None
    table: list[str] = []
    counts: dict[tuple[str, ...], int] = {}
    best: tuple[int, int] | None = None  # (length of the matched prefix, line)
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = _HEADER.match(stripped)
        if header:
            table = [part.strip().strip('"') for part in header.group(2).split(".")]
            if header.group(1) == "[[":  # pydantic numbers the elements of an array of tables from 0
                counts[tuple(table)] = counts.get(tuple(table), -1) + 1
                table = [*table, str(counts[tuple(table)])]
            path = table
        else:
            key = _KEY.match(stripped)
            if not key:
                continue
            path = table + [part.strip().strip('"') for part in key.group(2).split(".")]
        if path[: len(names)] == names:
            return number
        if names[: len(path)] == path and (best is None or len(path) > best[0]):
            best = (len(path), number)
    return best[1] if best else None


def where(text: str, source: str, loc: tuple) -> str:
    line = key_line(text, loc)
    return f"{source}:{line}" if line else source


def parse_toml(text: str, source: str, error: type[Exception]) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        located = f"{source}:{match.group(1)}" if match else source
        raise error(f"{located}: not valid TOML: {message}") from exc


def validate(data: dict, text: str, source: str, model: type[Model], error: type[Exception]) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key is also a missing one: name the misspelling, it is what to fix.
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = tuple(first["loc"])
        key = ".".join(str(p) for p in loc)
        if first["type"] == "extra_forbidden":
            raise error(f"{where(text, source, loc)}: unknown key '{key}'") from exc
        if first["type"] == "missing":
            raise error(f"{where(text, source, loc)}: required key '{key}' is missing") from exc
        message = first["msg"].removeprefix("Value error, ")
        raise error(f"{where(text, source, loc)}: key '{key}': {message}") from exc


def load_model(text: str, source: str, model: type[Model], error: type[Exception]) -> Model:
    """Parse TOML text and validate it; every failure is `error` with file, line and key."""
    return validate(parse_toml(text, source, error), text, source, model, error)
