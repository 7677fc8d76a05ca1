"""The stages custody ships, each declared once, and which belong in language-model pretraining.

Stage classes load on first use, so listing stages does not import presidio, ftfy or datasketch.
A stage's settings are its keyword-only constructor parameters (custody/registry.py checks them).
Third-party packages add stages under the `custody.stages` entry-point group.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from custody.registry import Entry, Registry
from custody.stages.base import StageError

OFF_FOR_PRETRAINING = (
    "off by default for language-model pretraining: {}; ask for it by name when a task needs it (see docs/stages.md)"
)

# In the order a pretraining preparation runs them: repair text first so later hashes and rules
# see clean Unicode, filter, drop copies, then redact and drop toxic text from what is left.
STAGES = Registry(
    "stage",
    group="custody.stages",
    error=StageError,
    built_in=(
        Entry(
            "normalize-unicode",
            "custody.stages.normalize:NormalizeUnicode",
            "repair mojibake and broken Unicode with ftfy, then NFC",
            pretraining=True,
        ),
        Entry(
            "quality-filter",
            "custody.stages.quality:QualityFilter",
            "Gopher quality and repetition rules (Rae et al. 2021); C4 line rules as a setting (Raffel et al. 2020)",
            pretraining=True,
        ),
        Entry(
            "dedup-exact",
            "custody.stages.dedup:DedupExact",
            "drop exact copies (after whitespace/NFC normalization); the first is kept",
            pretraining=True,
        ),
        Entry(
            "dedup-near",
            "custody.stages.near_dedup:DedupNear",
            "drop near-copies by MinHash LSH; first kept",
            pretraining=True,
        ),
        Entry("redact-pii", "custody.stages.redact:RedactPii", "replace detected PII (presidio)", pretraining=True),
        Entry("drop-toxic", "custody.stages.toxic:DropToxic", "drop records scored toxic", pretraining=True),
        Entry(
            "lowercase",
            "custody.stages.classic:Lowercase",
            OFF_FOR_PRETRAINING.format(
                "case carries names, sentence starts, acronyms and code, and the model must learn it"
            ),
        ),
        Entry(
            "remove-stopwords",
            "custody.stages.classic:RemoveStopwords",
            OFF_FOR_PRETRAINING.format(
                "function words carry syntax and meaning ('not'); the result is text no one writes"
            ),
        ),
        Entry(
            "spell-correct",
            "custody.stages.classic:SpellCorrect",
            OFF_FOR_PRETRAINING.format("a dictionary corrector rewrites names, code, jargon and other languages"),
        ),
    ),
)


def available_stages() -> list[str]:
    return STAGES.names()


def stage_options(name: str) -> dict[str, Any]:
    """The stage's settings and their defaults."""
    return STAGES.options(name)


def pretraining_stages() -> list[str]:
    """The stages a language-model pretraining preparation runs by default, in order."""
    return [entry.name for entry in STAGES if entry.pretraining]


def off_by_default() -> dict[str, str]:
    """Stages that are available but not part of pretraining preparation, each with the reason."""
    return {entry.name: STAGES.summary(entry.name) for entry in STAGES if not entry.pretraining}


def check_pretraining_plan(stages: Iterable[str], allow: Iterable[str] = ()) -> None:
    """Refuse unknown stages, and off-by-default ones unless `allow` names them (a run spec's opt-in)."""
    allowed = set(allow)
    for name in stages:
        entry = STAGES.entry(name)
        if not entry.pretraining and name not in allowed:
            raise StageError(f"stage {name} is {STAGES.summary(name)}")


def build_stage(name: str, home: Any, options: dict[str, Any] | None = None) -> Any:
    """The named stage with `options` checked against its settings; errors name the stage and key."""
    return STAGES.build(name, home, options=options)
