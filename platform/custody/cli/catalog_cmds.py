"""`custody catalog`: the checks, stages and exporters this installation knows, with their
versions, settings and the package each came from (custody or a plug-in's entry point)."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

import typer

from custody.cli.common import JsonOption, console, fail, print_json
from custody.registry import Registry

KINDS = ("checks", "stages", "exporters")


def _registries() -> dict[str, Registry]:
    from custody.checks.catalog import CHECKS
    from custody.reports.exports.catalog import EXPORTERS
    from custody.stages.catalog import STAGES

    return {"checks": CHECKS, "stages": STAGES, "exporters": EXPORTERS}


def _plain(value: Any) -> Any:
    """A setting's default as JSON can carry it (tuples as lists, dataclasses as objects)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if value is None or isinstance(value, str | int | float | bool) else repr(value)


def _shown(default: Any) -> str:
    """A default as a run spec would write it (TOML and JSON agree on these), cut to one short line."""
    if default is None:
        return "(unset)"
    text = json.dumps(default, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def describe(registry: Registry) -> list[dict[str, Any]]:
    """Every entry of one kind, loaded: name, version, origin, summary and settings."""
    described = []
    for entry in registry:
        types = registry.option_types(entry.name)
        defaults = registry.options(entry.name)
        item: dict[str, Any] = {
            "name": entry.name,
            "version": registry.version(entry.name),
            "origin": entry.origin,
            "summary": registry.summary(entry.name),
            "settings": [{"name": k, "type": types[k], "default": _plain(defaults[k])} for k in types],
        }
        if registry.kind == "stage":
            item["pretraining"] = entry.pretraining
        described.append(item)
    return described


def catalog(
    kind: Annotated[str | None, typer.Argument(help="checks, stages or exporters [default: all three]")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the checks, stages and exporters this installation knows: versions, settings, origin."""
    if kind is not None and kind not in KINDS:
        fail(f"KIND {kind!r}: choose {', '.join(KINDS)}")
    registries = _registries()
    chosen = {k: describe(registries[k]) for k in KINDS if kind in (None, k)}
    if as_json:
        print_json(chosen)
        return
    for position, (name, items) in enumerate(chosen.items()):
        if position:
            console.print()
        console.print(name)
        for item in items:
            version = f" {item['version']}" if item["version"] else ""
            origin = "" if item["origin"] == "custody" else f" (from {item['origin']})"
            console.print(f"  {item['name']}{version}{origin}: {item['summary']}")
            for setting in item["settings"]:
                shown = _shown(setting["default"])
                console.print(f"      {setting['name']}: {setting['type']} = {shown}")
