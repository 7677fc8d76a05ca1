"""presidio and spaCy without torch and transformers, which the PII check never uses.

Importing presidio_analyzer imports transformers (for its optional Hugging Face NER engine) and,
through presidio's device detection and thinc's optional PyTorch support, torch: about half of
what it costs to open the scanner, paid again in every process that scans (each pool worker,
each Ray actor) before a document is read. spaCy's small CPU pipelines need neither. So the first
import of presidio (and with it spaCy and thinc) runs with both names marked absent in
sys.modules, which Python's import system answers with ImportError: the path presidio and thinc
already take where those packages are not installed. Only names not yet imported are hidden,
and only during that import: a process that already holds torch (a training run) keeps using it
everywhere, and one that imports torch or transformers afterwards gets the real packages.
"""

from __future__ import annotations

import sys

UNUSED = ("torch", "transformers")


def import_presidio() -> None:
    """Import presidio_analyzer and spaCy once, without the packages in UNUSED."""
    if "presidio_analyzer" in sys.modules:
        return
    hidden = [name for name in UNUSED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # "import NAME" raises ImportError
    try:
        import presidio_analyzer  # noqa: F401
        import spacy  # noqa: F401
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
