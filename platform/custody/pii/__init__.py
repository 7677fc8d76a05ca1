"""PII detection for training data: presidio recognizers on a spaCy NER pipeline, plus secrets.

- `imports`: presidio and spaCy imported without torch and transformers (neither is used).
- `engine`: which spaCy model (a setting), offline presidio construction, the model's digest.
- `secrets`: pattern recognizers for credentials that leak into web and code data.
- `fast`: the scanner the `pii` check uses (batched NER, prefilters, a process pool).
- `stock`: presidio's stock loop, `AnalyzerEngine.analyze` once per document, for comparison.
- `evaluate`: entity-level scoring against the shared gold sets.

Results are spans `(entity_type, start, end, score)` only: the matched value never leaves the
scanner.
"""

from __future__ import annotations

from custody.pii.imports import import_presidio

import_presidio()  # before any module below imports presidio: see custody.pii.imports

from custody.pii.engine import DEFAULT_ENTITIES, PiiSpan, model_digest, select_model  # noqa: E402

__all__ = ["DEFAULT_ENTITIES", "PiiSpan", "model_digest", "select_model"]
