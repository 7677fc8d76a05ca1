"""The stages custody knows by name, their settings, and which belong in language-model pretraining.

Stage classes load on first use (importlib), so listing stages does not import presidio, ftfy or
datasketch. Settings are a stage's keyword-only constructor parameters (see options.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from custody.home import Home
from custody.stages.base import Stage
from custody.stages.options import option_defaults, validate_options
from custody.stages.runner import StageError


@dataclass(frozen=True)
class StageInfo:
    name: str
    target: str  # "module:Class"
    pretraining: bool  # part of the default preparation for language-model pretraining
    summary: str  # what it does, or, when off by default, why

    def load(self) -> type[Stage]:
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)


OFF_FOR_PRETRAINING = (
    "off by default for language-model pretraining: {}; ask for it by name when a task needs it (see docs/stages.md)"
)

# In the order a pretraining preparation runs them: repair text first so later hashes and rules
# see clean Unicode, filter, drop copies, then redact and drop toxic text from what is left.
_CATALOG: dict[str, StageInfo] = {
    info.name: info
    for info in (
        StageInfo(
            "normalize-unicode",
            "custody.stages.normalize:NormalizeUnicode",
            True,
            "repair mojibake and broken Unicode with ftfy, then NFC",
        ),
        StageInfo(
            "quality-filter",
            "custody.stages.quality:QualityFilter",
            True,
            "Gopher quality and repetition rules (Rae et al. 2021); C4 line rules as a setting (Raffel et al. 2020)",
        ),
        StageInfo(
            "dedup-exact",
            "custody.stages.dedup:DedupExact",
            True,
            "drop exact copies (after whitespace/NFC normalization); the first is kept",
        ),
        StageInfo(
            "dedup-near", "custody.stages.near_dedup:DedupNear", True, "drop near-copies by MinHash LSH; first kept"
        ),
        StageInfo("redact-pii", "custody.stages.redact:RedactPii", True, "replace detected PII (presidio)"),
        StageInfo("drop-toxic", "custody.stages.toxic:DropToxic", True, "drop records scored toxic"),
        StageInfo(
            "lowercase",
            "custody.stages.classic:Lowercase",
            False,
            OFF_FOR_PRETRAINING.format(
                "case carries names, sentence starts, acronyms and code, and the model must learn it"
            ),
        ),
        StageInfo(
            "remove-stopwords",
            "custody.stages.classic:RemoveStopwords",
            False,
            OFF_FOR_PRETRAINING.format(
                "function words carry syntax and meaning ('not'); the result is text no one writes"
            ),
        ),
        StageInfo(
            "spell-correct",
            "custody.stages.classic:SpellCorrect",
            False,
            OFF_FOR_PRETRAINING.format("a dictionary corrector rewrites names, code, jargon and other languages"),
        ),
    )
}


def available_stages() -> list[str]:
    return list(_CATALOG)


def stage_info(name: str) -> StageInfo:
    if name not in _CATALOG:
        raise StageError(f"unknown stage '{name}' (available: {', '.join(_CATALOG)})")
    return _CATALOG[name]


def pretraining_stages() -> list[str]:
    """The stages a language-model pretraining preparation runs by default, in order."""
    return [name for name, info in _CATALOG.items() if info.pretraining]


def off_by_default() -> dict[str, str]:
    """Stages that are available but not part of pretraining preparation, each with the reason."""
    return {name: info.summary for name, info in _CATALOG.items() if not info.pretraining}


def check_pretraining_plan(stages: Iterable[str], allow: Iterable[str] = ()) -> None:
    """Refuse unknown stages, and off-by-default ones unless `allow` names them (a run spec's opt-in)."""
    allowed = set(allow)
    for name in stages:
        info = stage_info(name)
        if not info.pretraining and name not in allowed:
            raise StageError(f"stage {name} is {info.summary}")


def stage_options(name: str) -> dict[str, Any]:
    """The stage's settings and their defaults."""
    return option_defaults(stage_info(name).load())


def build_stage(name: str, home: Home, options: dict[str, Any] | None = None) -> Stage:
    """The named stage with `options` checked against its settings; errors name the stage and key."""
    info = stage_info(name)
    cls = info.load()
    values = validate_options(name, cls, options)
    try:
        return cls(home, **values)
    except StageError:
        raise
    except ValueError as exc:  # a value out of range, or a malformed HOME/redaction.toml or toxicity.toml
        raise StageError(f"stage {name}: {exc}") from exc
