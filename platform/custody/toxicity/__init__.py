"""Toxicity scoring: detoxify where its weights are available, alt-profanity-check otherwise,
or Google's Perspective API when configured (`custody.toxicity.perspective`).

See `custody.toxicity.scorers` for the scorers and how one is chosen, and docs/toxicity.md.
"""

from custody.toxicity.perspective import PerspectiveError, PerspectiveKeyMissing, PerspectiveScorer
from custody.toxicity.scorers import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_THRESHOLD,
    RELEASED,
    ChecksumError,
    DetoxifyScorer,
    OfflineError,
    ProfanityScorer,
    Scorer,
    ScorerUnavailable,
    Selection,
    ToxicitySettings,
    UnpinnedCheckpoint,
    released_checkpoint,
    select_scorer,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_THRESHOLD",
    "RELEASED",
    "ChecksumError",
    "DetoxifyScorer",
    "OfflineError",
    "PerspectiveError",
    "PerspectiveKeyMissing",
    "PerspectiveScorer",
    "ProfanityScorer",
    "Scorer",
    "ScorerUnavailable",
    "Selection",
    "ToxicitySettings",
    "UnpinnedCheckpoint",
    "released_checkpoint",
    "select_scorer",
]
