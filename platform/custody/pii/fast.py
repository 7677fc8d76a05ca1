"""The fast PII scanner: presidio's recognizers, driven the cheap way.

What makes it faster than presidio's stock loop (`AnalyzerEngine.analyze` per document), on the
same spaCy model and the same recognizers:

1. Batched NER. Texts go through the pipeline in batches with every component NER does not need
   disabled (tagger, lemmatizer, attribute ruler, and the shared tok2vec unless NER listens to
   it), NER stepped with the GIL held (custody.pii.ner: same entities as `nlp.pipe`, in less
   than half the time). The parser only matters to NER through sentence boundaries; by default there are none
   (`sentences="none"`: on pii_presidio_synth 2 of 750 documents get different entities, F1 the
   same). "senter" takes them from the model's small sentence recognizer (switched on: models
   ship it disabled), "parser" from the parser, which reproduces the full pipeline's entities
   at about two thirds of the speed.
2. Precomputed NLP artifacts. The spaCy Doc is turned into presidio `NlpArtifacts` once and
   passed to `analyzer.analyze(text, language="en", entities=..., nlp_artifacts=...)`, so
   presidio does not run spaCy again. With the lemmatizer off, the lower-cased token text stands
   in for the lemma in context enhancement (presidio matches context words as substrings of the
   lemma, so "numbers" still supports "number").
3. Prefilters, and a phone recognizer that skips regions that cannot match (`recognizers`).
   Each pattern entity has a cheap regex that any match of its recognizer must
   contain (an '@' for e-mail, a digit run for cards, SSNs and phone numbers, `XX00` for IBAN,
   dotted quads or colons for IP, the literal prefixes of secrets). A recognizer only runs on
   texts where its prefilter fires, and presidio is not called at all for a text with no
   candidate. NER is skipped for text that is not prose for an English model: under 10% letters
   (numbers, tables of punctuation), under half of the letters in Latin script (Arabic,
   Cyrillic, CJK, ...), or over 10% control/replacement characters (binary junk as text).
4. Processes. `ParallelScanner` spreads chunks of texts over a process pool (every core by
   default), keeps input order, and bounds the chunks in flight so memory stays flat on any
   input size. Chunking depends only on the input, so the results are the same for any number
   of processes, and the same as `FastScanner.scan`.

Long texts are cut into windows of at most `window` characters (at a paragraph, line, sentence
or word break when there is one) that overlap by `overlap` characters; a span is kept from the
window its start falls in, with offsets shifted back into the whole text. NER batches hold at
most `batch_size` texts and NER_BATCH_CHARS characters, which bounds the model's working memory.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

from custody.pii.engine import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_ENTITIES,
    DEFAULT_OVERLAP,
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_SENTENCES,
    DEFAULT_WINDOW,
    NER_BATCH_CHARS,
    NER_SCORE,
    PiiSpan,
    build_analyzer,
    known_entities,
    select_model,
    to_spans,
)
from custody.pii.ner import pipe as ner_pipe
from custody.pii.recall import AddressPrefilter
from custody.pii.secrets import PREFILTER as SECRET_PREFILTER

# Entities presidio gets from spaCy NER (SpacyRecognizer).
NER_ENTITY_TYPES = frozenset({"PERSON", "LOCATION", "NRP", "DATE_TIME", "ORGANIZATION"})

# A necessary condition for each recognizer to match (checked against presidio's patterns, which
# compile with IGNORECASE). Entities without one are always candidates.
PREFILTER: dict[str, re.Pattern[str] | AddressPrefilter] = {  # anything with .search(text)
    # EmailRecognizer: ...[@]\w+...
    "EMAIL_ADDRESS": re.compile("@"),
    # CreditCardRecognizer: (4\d{3}|5[0-5]\d{2}|6\d{3}|1\d{3}|3\d{3})[- ]?(\d{3,4})...
    "CREDIT_CARD": re.compile(r"\d{4}[- ]?\d{3}"),
    # UsSsnRecognizer: every pattern starts with 3 digits, an optional separator and 2 digits
    "US_SSN": re.compile(r"\d{3}[- .]?\d{2}"),
    # IbanRecognizer: [A-Z]{2}[0-9]{2}... (case-insensitive)
    "IBAN_CODE": re.compile(r"[A-Z]{2}\d{2}", re.IGNORECASE),
    # IpRecognizer: a dotted quad, or IPv6 (always has '::' or 'hex:hex:')
    "IP_ADDRESS": re.compile(r"\d\.\d{1,3}\.\d|:[0-9A-F]{0,4}:", re.IGNORECASE),
    # PhoneRecognizer (python-phonenumbers, leniency VALID): no valid number in presidio's
    # regions has fewer than 4 digits (German short numbers have 4); digit groups are separated
    # by at most 4 punctuation characters (its punctuation includes 'x').
    "PHONE_NUMBER": re.compile(r"\d(?:[\W_xX]{0,4}\d){3}"),
    # StreetAddressRecognizer (custody.pii.recall, opt-in): a number and a street word, or military mail
    "STREET_ADDRESS": AddressPrefilter(),
    **SECRET_PREFILTER,
}
CHUNK_CHARS = 2_000_000  # a chunk closes at this many characters, bounding memory per chunk
_LETTERS = re.compile(r"[^\W\d_]+")
_BINARY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]+")
MIN_LETTER_SHARE = 0.10  # NER only for text that is at least this share letters,
MIN_LATIN_SHARE = 0.50  # with at least this share of its letters in Latin script (English models),
MAX_BINARY_SHARE = 0.10  # and at most this share control or replacement characters
_SURROGATE = re.compile("[\ud800-\udfff]")  # lone surrogates (from JSON escapes) break spaCy
_BREAKS = ("\n\n", "\n", ". ", " ")


@dataclass(frozen=True)
class ScannerConfig:
    model: str | None = None  # None: select_model() picks (env, then preference order)
    entities: tuple[str, ...] = DEFAULT_ENTITIES
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    batch_size: int = DEFAULT_BATCH_SIZE  # nlp.pipe batch size
    sentences: str = DEFAULT_SENTENCES  # parser | senter | none
    window: int = DEFAULT_WINDOW  # characters of text per NER window
    overlap: int = DEFAULT_OVERLAP  # characters windows share

    def resolved(self) -> ScannerConfig:
        if self.sentences not in ("parser", "senter", "none"):
            raise ValueError(f"sentences must be parser, senter or none, not {self.sentences!r}")
        if not 1000 <= self.window <= NER_BATCH_CHARS or not 0 <= self.overlap < self.window // 2:
            raise ValueError(f"window must be 1,000 to {NER_BATCH_CHARS:,} characters and overlap less than half of it")
        return ScannerConfig(**{**asdict(self), "model": select_model(self.model), "entities": tuple(self.entities)})


def windows(text: str, size: int, overlap: int) -> list[tuple[int, int, int]]:
    """(start, own_end, end) per window: text[start:end] is scanned, spans starting before own_end are kept."""
    n = len(text)
    if n <= size:
        return [(0, n, n)]
    out = []
    start = 0
    step = size - overlap
    while start < n:
        if n - start <= size:
            out.append((start, n, n))
            break
        own_end = start + step
        floor = start + step // 2
        for brk in _BREAKS:  # prefer a natural break in the second half of the step
            at = text.rfind(brk, floor, own_end)
            if at != -1:
                own_end = at + len(brk)
                break
        out.append((start, own_end, min(n, own_end + overlap)))
        start = own_end
    return out


@dataclass
class FastScanner:
    """Single-process scanner; `scan_batch` is what each pool worker runs."""

    config: ScannerConfig = field(default_factory=ScannerConfig)
    # Transition-based components stepped with the GIL held (custody.pii.ner); False: spaCy's
    # own nlp.pipe, which gives the same entities more slowly (kept for the tests' comparison).
    stepped_ner: bool = True

    def __post_init__(self) -> None:
        self.config = self.config.resolved()
        unknown = sorted(set(self.config.entities) - known_entities())
        if unknown:
            raise ValueError(f"no recognizer for entities {unknown}; known: {', '.join(sorted(known_entities()))}")
        self.analyzer = build_analyzer(self.config.model, self.config.entities)
        self.nlp_engine = self.analyzer.nlp_engine
        self.nlp = self.nlp_engine.nlp["en"]
        self.nlp.max_length = max(self.nlp.max_length, self.config.window + 1)
        self.ner_entities = [e for e in self.config.entities if e in NER_ENTITY_TYPES]
        self.pattern_entities = [e for e in self.config.entities if e not in NER_ENTITY_TYPES]
        self.enabled = self._components()
        for name in self.enabled:  # e.g. senter ships disabled; nlp.pipe(disable=...) would not run it
            if name in self.nlp.disabled:
                self.nlp.enable_pipe(name)
        self.disabled = [name for name in self.nlp.component_names if name not in self.enabled]
        self.lemmas = "lemmatizer" in self.enabled

    def _components(self) -> list[str]:
        from spacy.pipeline.tok2vec import Tok2Vec

        wanted = {"ner"}
        if self.config.sentences == "parser" and "parser" in self.nlp.component_names:
            wanted.add("parser")
        elif self.config.sentences == "senter" and "senter" in self.nlp.component_names:
            wanted.add("senter")
        for name in self.nlp.component_names:  # shared embeddings a wanted component listens to
            component = self.nlp.get_pipe(name)
            if isinstance(component, Tok2Vec) and wanted.intersection(component.listening_components):
                wanted.add(name)
        return [name for name in self.nlp.component_names if name in wanted]

    # -- scanning -------------------------------------------------------------------------
    def scan(self, texts: Iterable[str], chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[list[PiiSpan]]:
        """Spans per text, in order (chunks of `chunk_size`, as ParallelScanner cuts them)."""
        for chunk in _chunks(texts, chunk_size):
            yield from self.scan_batch(chunk)

    def scan_batch(self, texts: list[str]) -> list[list[PiiSpan]]:
        results: list[list[PiiSpan]] = [[] for _ in texts]
        need_ner = bool(self.ner_entities)
        jobs = []  # (doc index, window start, own length, window text, run NER)
        for i, text in enumerate(texts):
            if not text or text.isspace():
                continue
            if _SURROGATE.search(text):  # one replacement character each: offsets unchanged
                text = _SURROGATE.sub("\ufffd", text)
            for start, own_end, end in windows(text, self.config.window, self.config.overlap):
                piece = text[start:end]
                jobs.append((i, start, own_end - start, piece, need_ner and _prose(piece)))
        ner_docs = self._ner(job[3] for job in jobs if job[4])
        for i, start, own, piece, ran_ner in jobs:
            entities = [e for e in self.pattern_entities if (p := PREFILTER.get(e)) is None or p.search(piece)]
            doc = next(ner_docs) if ran_ner else None
            artifacts = None
            if doc is not None:
                artifacts = self._artifacts(doc)
                found = {ent.label_ for ent in artifacts.entities}
                entities.extend(e for e in self.ner_entities if e in found)
            if not entities:
                continue
            if artifacts is None:
                artifacts = self._artifacts(self.nlp.make_doc(piece))
            hits = self.analyzer.analyze(
                text=piece,
                language="en",
                entities=entities,
                nlp_artifacts=artifacts,
                score_threshold=self.config.score_threshold,
            )
            results[i].extend(s for s in to_spans(hits, start) if s.start - start < own)
        for spans in results:
            spans.sort(key=lambda s: (s.start, s.end, s.entity_type, -s.score))
        return results

    def _ner(self, pieces: Iterable[str]) -> Iterator:
        """nlp.pipe over batches of at most batch_size texts and NER_BATCH_CHARS characters."""
        batch: list[str] = []
        chars = 0
        for piece in pieces:
            if batch and (len(batch) >= self.config.batch_size or chars + len(piece) > NER_BATCH_CHARS):
                yield from self._pipe(batch)
                batch, chars = [], 0
            batch.append(piece)
            chars += len(piece)
        if batch:
            yield from self._pipe(batch)

    def _pipe(self, batch: list[str]) -> Iterable:
        if self.stepped_ner:  # same docs as nlp.pipe, faster (custody.pii.ner)
            return ner_pipe(self.nlp, batch, self.enabled, len(batch))
        return self.nlp.pipe(batch, batch_size=len(batch), disable=self.disabled)

    def _artifacts(self, doc):
        entities, scores = self.nlp_engine._get_updated_entities(list(doc.ents), [NER_SCORE] * len(doc.ents))
        return _lazy_artifacts()(entities, doc, self.lemmas, self.nlp_engine, "en", scores)


@cache
def _lazy_artifacts() -> type:
    """presidio's NlpArtifacts, with its token offsets, lemmas and `keywords` (the lemmas less stop
    words and punctuation) computed when first read instead of for every text. Only the context
    enhancer reads them, and only for a result whose recognizer has context words; building the
    keywords for every text was about 6% of the scanner's time, the offsets and lemmas another 3%.
    Without the lemmatizer (`lemmatized` false) the lower-cased token stands in for the lemma.
    Same values, same type for presidio."""
    from presidio_analyzer.nlp_engine import NlpArtifacts

    class LazyNlpArtifacts(NlpArtifacts):
        def __init__(self, entities, tokens, lemmatized, nlp_engine, language, scores) -> None:
            self.entities, self.tokens, self._lemmatized = entities, tokens, lemmatized
            self.nlp_engine, self.language = nlp_engine, language
            self.scores = scores if scores else [0.85] * len(entities)
            self._keywords: list[str] | None = None
            self._indices: list[int] | None = None
            self._lemmas: list[str] | None = None

        @property
        def tokens_indices(self) -> list[int]:
            if self._indices is None:
                self._indices = [token.idx for token in self.tokens]
            return self._indices

        @tokens_indices.setter
        def tokens_indices(self, value: list[int]) -> None:
            self._indices = value

        @property
        def lemmas(self) -> list[str]:
            if self._lemmas is None:
                if self._lemmatized:
                    self._lemmas = [token.lemma_ or token.lower_ for token in self.tokens]
                else:
                    self._lemmas = [token.lower_ for token in self.tokens]
            return self._lemmas

        @lemmas.setter
        def lemmas(self, value: list[str]) -> None:
            self._lemmas = value

        @property
        def keywords(self) -> list[str]:
            if self._keywords is None:
                self._keywords = NlpArtifacts.set_keywords(self.nlp_engine, self.lemmas, self.language)
            return self._keywords

        @keywords.setter
        def keywords(self, value: list[str]) -> None:
            self._keywords = value

    return LazyNlpArtifacts


def _prose(piece: str) -> bool:
    """Worth running (English) NER on: enough letters, mostly Latin script, not binary.

    A cheap guard, not a language detector: an English model finds "names" in Arabic, Cyrillic
    or CJK text and in binary junk, so those skip NER (pattern recognizers still run).
    """
    letters = sum(len(run) for run in _LETTERS.findall(piece))
    if letters == 0 or letters < MIN_LETTER_SHARE * len(piece):
        return False
    if sum(len(run) for run in _LATIN.findall(piece)) < MIN_LATIN_SHARE * letters:
        return False
    return len(_BINARY.findall(piece)) <= MAX_BINARY_SHARE * len(piece)


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    for chunk in _chunks_items(((None, text) for text in texts), size):
        yield [text for _, text in chunk]


# -- processes ------------------------------------------------------------------------------
_WORKER: FastScanner | None = None
_PARENT: dict[ScannerConfig, FastScanner] = {}


def get_scanner(config: ScannerConfig | None = None) -> FastScanner:
    """This process's FastScanner for `config`, built once (pool workers forked later inherit it)."""
    config = (config or ScannerConfig()).resolved()
    scanner = _PARENT.get(config)
    if scanner is None:
        scanner = _PARENT[config] = FastScanner(config)
    return scanner


def _init_worker(config: ScannerConfig) -> None:
    global _WORKER
    inherited = _PARENT.get(config)  # fork: the parent's scanner, model already loaded
    _WORKER = inherited if inherited is not None else FastScanner(config)


def _scan_in_worker(texts: list[str]) -> list[list[tuple]]:
    assert _WORKER is not None
    return [[tuple(s) for s in spans] for spans in _WORKER.scan_batch(texts)]


def default_processes() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class ParallelScanner:
    """FastScanner over a process pool; results in input order, equal to the single-process ones.

    With the "fork" start method (the default where available) the workers inherit the parent's
    loaded scanner; with "spawn" each worker builds its own once. A worker is replaced after
    `recycle_after` chunks: spaCy's string store grows with every new token it sees, and a fresh
    worker (forked from the parent's clean copy) keeps memory flat on endless streams.
    """

    def __init__(
        self,
        config: ScannerConfig | None = None,
        processes: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        start_method: str | None = None,
        recycle_after: int | None = 200,
    ) -> None:
        self.config = (config or ScannerConfig()).resolved()
        self.processes = processes if processes is not None else default_processes()
        self.chunk_size = chunk_size
        self.recycle_after = recycle_after
        methods = multiprocessing.get_all_start_methods()
        self.start_method = start_method or ("fork" if "fork" in methods else "spawn")
        self.local: FastScanner | None = None
        self.pool = None
        if self.processes <= 1 or self.start_method == "fork":
            self.local = get_scanner(self.config)

    def __enter__(self) -> ParallelScanner:
        return self

    def __exit__(self, exc_type, *exc: Any) -> None:
        if exc_type is not None and self.pool is not None:
            self.pool.terminate()  # do not wait for chunks nobody will read
        self.close()

    def _start(self):
        if self.pool is None:
            context = multiprocessing.get_context(self.start_method)
            self.pool = context.Pool(
                self.processes,
                initializer=_init_worker,
                initargs=(self.config,),
                maxtasksperchild=self.recycle_after,
            )
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None

    def warm(self) -> None:
        """Start the workers and load the model in each (so timings exclude start-up)."""
        if self.processes > 1:
            pool = self._start()
            pool.map(_scan_in_worker, [["warm up"]] * self.processes, chunksize=1)

    def scan(self, texts: Iterable[str]) -> Iterator[list[PiiSpan]]:
        for _, spans in self.scan_items((None, text) for text in texts):
            yield spans

    def scan_items(self, items: Iterable[tuple[Any, str]]) -> Iterator[tuple[Any, list[PiiSpan]]]:
        """(key, text) in, (key, spans) out, in input order; keys stay in this process."""
        if self.processes <= 1:
            assert self.local is not None
            for chunk in _chunks_items(items, self.chunk_size):
                keys, texts = zip(*chunk, strict=True)
                yield from zip(keys, self.local.scan_batch(list(texts)), strict=True)
            return
        pool = self._start()
        pending: deque = deque()
        limit = 2 * self.processes
        for chunk in _chunks_items(items, self.chunk_size):
            keys, texts = zip(*chunk, strict=True)
            pending.append((keys, pool.apply_async(_scan_in_worker, (list(texts),))))
            while len(pending) >= limit:
                yield from _collect(pending.popleft())
        while pending:
            yield from _collect(pending.popleft())


def _collect(item) -> Iterator[tuple[Any, list[PiiSpan]]]:
    keys, result = item
    for key, spans in zip(keys, result.get(), strict=True):
        yield key, [PiiSpan(*s) for s in spans]


def _chunks_items(items: Iterable[tuple[Any, str]], size: int) -> Iterator[list[tuple[Any, str]]]:
    """Chunks of at most `size` texts and about CHUNK_CHARS characters; depends only on the input."""
    chunk: list[tuple[Any, str]] = []
    chars = 0
    for item in items:
        chunk.append(item)
        chars += len(item[1])
        if len(chunk) >= size or chars >= CHUNK_CHARS:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk
