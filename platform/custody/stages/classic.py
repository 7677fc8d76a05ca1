"""The classic text-cleaning steps: `lowercase`, `remove-stopwords`, `spell-correct`.

Available because people ask for them (bag-of-words classifiers, search indexes, topic models
benefit), but OFF by default for language-model pretraining — the catalog lists them apart and a
run spec has to ask for them by name. They destroy what a language model is trained to learn:
case carries names, sentence starts, acronyms and code identifiers; function words ("the", "of",
"not") carry syntax and meaning, so removing them leaves text no one writes; a spelling
"corrector" guesses from a dictionary and rewrites names, code, jargon and every other language
(pyspellchecker turns "Haskell" into "gaskell"). See docs/stages.md.

None of them records words in its details: a corrected word may be a person's name.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

from custody.datasets.readers import Record
from custody.home import Home
from custody.stages.base import Decision, Stage

_STOP_TOKEN = re.compile(r"(\w+(?:['’]\w+)*)([ \t]*)")
_SPELL_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


class Lowercase(Stage):
    name = "lowercase"
    parallel = True  # per record: shards can run on separate workers
    version = "1.0.0"

    def __init__(self, home: Home, *, casefold: bool = False) -> None:
        super().__init__(home)
        self.casefold = casefold  # casefold also folds "ß" to "ss" and "ﬁ" to "fi": for matching, not reading

    def config(self) -> dict[str, Any]:
        return {"method": "str.casefold" if self.casefold else "str.lower"}

    def process(self, records: Iterable[Record]) -> Iterator[Decision]:
        for record in records:
            lowered = record.text.casefold() if self.casefold else record.text.lower()
            if lowered == record.text:
                yield Decision(record, "keep")
            else:
                yield Decision(record, "modify", "case:lowered", text=lowered)


def spacy_stop_words(language: str) -> frozenset[str]:
    """spaCy's stop-word list for `language`; it ships with spaCy, no model needed."""
    if not re.fullmatch(r"[a-z]{2,3}", language):
        raise ValueError(f"option 'language' must be a language code such as 'en', not {language!r}")
    try:
        module = importlib.import_module(f"spacy.lang.{language}.stop_words")
    except ModuleNotFoundError:
        raise ValueError(f"option 'language': spaCy has no stop-word list for {language!r}") from None
    return frozenset(module.STOP_WORDS)


class RemoveStopwords(Stage):
    name = "remove-stopwords"
    parallel = True  # per record: shards can run on separate workers
    version = "1.0.0"

    def __init__(self, home: Home, *, language: str = "en", stop_words: list[str] | None = None) -> None:
        super().__init__(home)
        self.language = language
        words = spacy_stop_words(language) if stop_words is None else stop_words
        self.stop_words = frozenset(w.lower() for w in words)
        self.source = "spacy" if stop_words is None else "option"

    def config(self) -> dict[str, Any]:
        import spacy

        source = {"source": f"spacy {spacy.__version__}"} if self.source == "spacy" else {"source": "option"}
        return {"language": self.language, **source, "stop_words": sorted(self.stop_words)}

    def strip(self, text: str) -> tuple[str, int]:
        """The text without its stop words (and the spaces after them), and how many went."""
        removed = 0

        def drop(match: re.Match[str]) -> str:
            nonlocal removed
            if match.group(1).lower() in self.stop_words:
                removed += 1
                return ""
            return match.group(0)

        return _STOP_TOKEN.sub(drop, text), removed

    def process(self, records: Iterable[Record]) -> Iterator[Decision]:
        for record in records:
            text, removed = self.strip(record.text)
            if not removed:
                yield Decision(record, "keep")
            else:
                yield Decision(
                    record, "modify", "stopwords:removed", text=text, details=json.dumps({"removed": removed})
                )


class SpellCorrect(Stage):
    name = "spell-correct"
    parallel = True  # per record: shards can run on separate workers
    version = "1.0.0"

    def __init__(
        self,
        home: Home,
        *,
        language: str = "en",
        distance: int = 1,
        max_words_per_record: int = 5_000,
        cache_size: int = 100_000,
        min_word_length: int = 3,
        skip_capitalized: bool = True,
    ) -> None:
        super().__init__(home)
        if distance not in (1, 2):
            # Distance 2 is pyspellchecker's default but checks ~n² candidates per word; 1 keeps it usable.
            raise ValueError(f"option 'distance' must be 1 or 2, not {distance}")
        for option, value in (("max_words_per_record", max_words_per_record), ("cache_size", cache_size)):
            if value < 1:
                raise ValueError(f"option '{option}' must be at least 1, not {value}")
        from spellchecker import SpellChecker

        try:
            self.checker = SpellChecker(language=language, distance=distance)
        except ValueError:
            raise ValueError(f"option 'language': pyspellchecker has no dictionary for {language!r}") from None
        self.language, self.distance = language, distance
        self.max_words, self.cache_size = max_words_per_record, cache_size
        self.min_word_length, self.skip_capitalized = min_word_length, skip_capitalized
        # One correction per distinct lower-case word: misspellings repeat across a corpus.
        self._cached_lookup = lru_cache(maxsize=cache_size)(self._lookup)

    def config(self) -> dict[str, Any]:
        import spellchecker

        return {
            "language": self.language,
            "distance": self.distance,
            "max_words_per_record": self.max_words,
            "min_word_length": self.min_word_length,
            "skip_capitalized": self.skip_capitalized,
            "pyspellchecker_version": getattr(spellchecker, "__version__", "unknown"),
            "dictionary_words": len(self.checker.word_frequency.dictionary),
        }

    def _lookup(self, word: str) -> str | None:
        if word in self.checker:
            return None
        return self.checker.correction(word)

    def _fix(self, word: str) -> str | None:
        if len(word) < self.min_word_length or "'" in word or "’" in word:
            return None
        if not word.islower() and (self.skip_capitalized or not (word.istitle() or word.isupper())):
            return None  # names, acronyms, camelCase identifiers
        fixed = self._cached_lookup(word.lower())
        if fixed is None or fixed == word.lower():
            return None
        return fixed.upper() if word.isupper() else fixed.capitalize() if word.istitle() else fixed

    def correct(self, text: str) -> tuple[str, int]:
        """The text with unknown words replaced by pyspellchecker's best candidate, and how many were."""
        corrected = 0

        def fix(match: re.Match[str]) -> str:
            nonlocal corrected
            fixed = self._fix(match.group(0))
            if fixed is None:
                return match.group(0)
            corrected += 1
            return fixed

        return _SPELL_TOKEN.sub(fix, text), corrected

    def process(self, records: Iterable[Record]) -> Iterator[Decision]:
        for record in records:
            words = _SPELL_TOKEN.findall(record.text)
            if len(words) > self.max_words:
                details = json.dumps({"words": len(words), "limit": self.max_words})
                yield Decision(record, "keep", "spell:skipped_too_long", details=details)
                continue
            text, corrected = self.correct(record.text)
            if not corrected:
                yield Decision(record, "keep")
                continue
            details = json.dumps({"words": len(words), "corrected": corrected})
            yield Decision(
                record, "modify", "spell:corrected", text=text, score=corrected / len(words), details=details
            )
