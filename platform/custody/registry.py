"""The one registry of named units of work: checks, stages and exporters.

Each kind is a `Registry`: its built-in entries, declared once in the kind's own catalog
(`checks/catalog.py`, `stages/catalog.py`, `reports/exports/catalog.py`) as a name, a
`"module:Class"` target and a one-line summary, plus whatever third-party packages add through
Python entry points (`[project.entry-points."custody.checks"]`, `"custody.stages"`,
`"custody.exporters"`). Classes load on first use, so listing names imports no model, and every
question about a name goes through here:

- an unknown name raises the kind's own error with the list of known names;
- a loaded class must carry the name it is registered under (its `name` is what the ledger
  records);
- settings are a class's keyword-only constructor parameters with type hints and defaults
  (`def __init__(self, home, *, threshold: float = 0.8)`, or `@dataclass(kw_only=True)` fields);
  settings that arrive as data (a run spec, a CLI flag) are checked against those hints with
  pydantic in strict mode, so `"0.8"` for a float or `1` for a bool is refused instead of
  silently coerced, and the error names the unit and the key.

This module imports nothing else of custody: the catalogs import it, never the reverse.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import typing
from collections.abc import Iterator
from dataclasses import MISSING, dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

BUILT_IN = "custody"  # the origin of entries custody ships


@dataclass(frozen=True)
class Entry:
    """One registered unit: where its class lives and what it does (or, off by default, why)."""

    name: str
    target: str  # "module:Class", or "module" for a unit that is a module (an exporter)
    summary: str = ""
    pretraining: bool = False  # stages: part of the default preparation for language-model pretraining
    origin: str = BUILT_IN  # the distribution that registered it


class Registry:
    """The entries of one kind, built-in first (in their declared order), then entry points."""

    def __init__(self, kind: str, group: str, error: type[Exception], built_in: tuple[Entry, ...]) -> None:
        self.kind = kind  # "check", "stage": how errors and listings name one unit
        self.group = group  # the entry-point group third parties register under
        self.error = error  # raised for unknown names, bad settings and misdeclared classes
        self._built_in = {entry.name: entry for entry in built_in}
        if len(self._built_in) != len(built_in):
            raise ValueError(f"{kind} registry: a name is declared twice")

    # -- names ------------------------------------------------------------------------------
    def entries(self) -> dict[str, Entry]:
        """Every entry by name; a plug-in cannot take a built-in name."""
        found = dict(self._built_in)
        for point in _entry_points(self.group):
            if point.name not in found:
                dist = point.dist.name if point.dist is not None else "unknown package"
                summary = ""  # read from the class when it loads (see `describe`)
                found[point.name] = Entry(point.name, point.value, summary, origin=dist)
        return found

    def names(self) -> list[str]:
        return list(self.entries())

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries().values())

    def __contains__(self, name: object) -> bool:
        return name in self.entries()

    def entry(self, name: str) -> Entry:
        """The entry registered as `name`; an unknown name is refused with the known ones."""
        known = self.entries()
        if name not in known:
            raise self.error(f"unknown {self.kind} '{name}' (available: {', '.join(known)})")
        return known[name]

    # -- classes ----------------------------------------------------------------------------
    def load(self, name: str) -> type:
        """The class registered as `name`, imported now; it must carry that name."""
        entry = self.entry(name)
        cls = _import(entry.target)
        declared = getattr(cls, "name", None)
        if declared != name:
            raise self.error(f"{self.kind} '{name}' ({entry.target}) declares name {declared!r}; they must agree")
        return cls

    def version(self, name: str) -> str | None:
        """The unit's version (`version` on the class); None for a unit that declares none."""
        version = getattr(self.load(name), "version", None)
        return None if version is None else str(version)

    def summary(self, name: str) -> str:
        entry = self.entry(name)
        return entry.summary or _first_line(self.load(name).__doc__)

    def options(self, name: str) -> dict[str, Any]:
        """The unit's settings and their defaults."""
        return {key: default for key, (_, default) in option_fields(self.load(name)).items()}

    def option_types(self, name: str) -> dict[str, str]:
        """Each setting's type as written in the class (for listings and docs)."""
        return {key: _type_name(hint) for key, (hint, _) in option_fields(self.load(name)).items()}

    def validate(self, name: str, options: dict[str, Any] | None) -> dict[str, Any]:
        """`options` checked against the unit's settings; only the keys given (defaults stay the class's)."""
        cls = self.load(name)
        if not options:
            return {}
        known = option_fields(cls)
        for key in options:
            if not isinstance(key, str) or key not in known:
                listed = ", ".join(sorted(known)) or f"none: this {self.kind} takes no options"
                raise self._option_error(name, str(key), f"unknown option (known: {listed})")
        try:
            model = _options_model(cls).model_validate(options)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = str(error["loc"][0]) if error["loc"] else "?"
            where = "".join(f"[{part!r}]" for part in error["loc"][1:])
            value = options.get(key)
            message = f"{error['msg']}{' at ' + where if where else ''} (got {type(value).__name__} {value!r:.80})"
            raise self._option_error(name, key, message) from None
        return {key: getattr(model, key) for key in options}

    def build(self, name: str, *args: Any, options: dict[str, Any] | None = None) -> Any:
        """The unit named `name`, constructed with `args` and checked `options`.

        A ValueError from the constructor (a value out of range, a malformed settings file) is
        re-raised as the kind's error naming the unit."""
        cls = self.load(name)
        values = self.validate(name, options)
        try:
            return cls(*args, **values)
        except self.error:
            raise
        except ValueError as exc:
            raise self.error(f"{self.kind} {name}: {exc}") from exc

    def _option_error(self, name: str, key: str, message: str) -> Exception:
        return self.error(f"{self.kind} {name}: option '{key}': {message}")


def option_fields(cls: type) -> dict[str, tuple[Any, Any]]:
    """A class's settings: keyword-only constructor parameters, as name -> (type, default).
    A unit that is a module (an exporter) has none."""
    if not isinstance(cls, type):
        return {}
    hints = typing.get_type_hints(cls.__init__)
    # A dataclass field with a default factory shows a placeholder in the signature: make the value.
    factories = {f.name: f.default_factory for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    return {
        p.name: (
            hints.get(p.name, Any),
            p.default if factories.get(p.name, MISSING) is MISSING else factories[p.name](),
        )
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


@cache
def _options_model(cls: type) -> type[BaseModel]:
    fields: dict[str, Any] = dict(option_fields(cls))
    config = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)
    return create_model(f"{cls.__name__}Options", __config__=config, **fields)


def _import(target: str) -> Any:
    """`"module:attribute"`, or a bare `"module"` when the module itself is the unit (an exporter)."""
    module, _, attribute = target.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


def _entry_points(group: str) -> list[Any]:
    return sorted(entry_points(group=group), key=lambda point: point.name)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _type_name(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", str(hint))  # typing.Any -> Any, a.b.C -> C
