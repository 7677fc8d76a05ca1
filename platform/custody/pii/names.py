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

The name lists are the US Census Bureau's 1990 lists and Faker's Latin-script person providers
(custody.pii.name_sources). "English word" (custody.pii.words) means a stop word, or a WordNet
lemma from the spaCy model's lemmatizer tables that is also common in pyspellchecker's frequency
list, so "Will" and "Grace" are words and "Lindsay" and "George" are names. Cues besides the lists
(a title, a handle that spells a full name) are in custody.pii.name_cues; a word inside a spaCy
entity that is not a person ("Sunday", DATE) is not taken. docs/pii.md has the measured recall
and precision.

Opt-in like the address recognizer: it emits its own entity, PERSON_NAME (a person's name, rated
like PERSON), and is added only when the entities asked for include it.
"""

from __future__ import annotations

import re as stdre
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import regex as re
from presidio_analyzer import EntityRecognizer, RecognizerResult

from custody.pii.name_cues import handles, titled
from custody.pii.name_sources import all_names, name_key
from custody.pii.street_words import STREET_SUFFIXES
from custody.pii.words import EnglishWords, english_words

NAME_ENTITY = "PERSON_NAME"

FULL_NAME_SCORE = 0.6
FIRST_NAME_SCORE = 0.45
LOWER_FULL_NAME_SCORE = 0.4
LOWER_NAME_SCORE = 0.4
SURNAME_SCORE = 0.4
TITLED_SCORE = 0.6  # "Dr. Cox", "Lil Yachty"
HANDLE_SCORE = 0.5  # "@EmmaWillis"
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


# spaCy entity labels that say a word is not a person's name ("Sunday", "Ireland", "Christmas"):
# WordNet lists them, and they are too rare in the frequency list to count as English words.
NOT_A_PERSON = frozenset({"DATE", "TIME", "GPE", "LOC", "FAC", "NORP", "EVENT", "LANGUAGE"})


def _other_entities(nlp_artifacts: Any) -> list[tuple[int, int]]:
    """The character ranges of the spaCy entities (NER already ran) that are not people."""
    ents = getattr(getattr(nlp_artifacts, "tokens", None), "ents", ())
    return [(ent.start_char, ent.end_char) for ent in ents if ent.label_ in NOT_A_PERSON]


def _inside(token: Any, ranges: list[tuple[int, int]]) -> bool:
    return any(start < token.end() and token.start() < end for start, end in ranges)


@dataclass(frozen=True)
class NameLists:
    first: frozenset[str]
    last: frozenset[str]
    words: EnglishWords  # a name that is also an English word is not a name on its own

    def is_word(self, key: str) -> bool:
        return key in self.words


@lru_cache(maxsize=4)
def _model_words(model: str) -> EnglishWords:
    import spacy

    return english_words(spacy.load(model, exclude=["ner", "parser", "senter"]))


def name_lists(nlp: Any = None, model: str | None = None) -> NameLists:
    """The name lists (custody.pii.name_sources), and the English words of the spaCy pipeline
    `nlp` (or of `model`, loaded)."""
    first, last = all_names()
    if nlp is None:
        if model is None:
            raise ValueError("name_lists needs a spaCy pipeline or a model name to tell names from words")
        return NameLists(first, last, _model_words(model))
    return NameLists(first, last, english_words(nlp))


_key = name_key


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
        # "Scooter Braun", "Levin Smith"; after a first name that is also a word only a second word
        # that is none ("Lindsay Lohan", not "My Way", "Will Be" or "Long Island")
        surname = not self.lists.is_word(b) or (b in self.lists.last and not self.lists.is_word(a))
        if surname and _cased(first) and _cased(second):
            return FULL_NAME_SCORE
        lower = first.islower() and second.islower() and b in self.lists.last
        if lower and not self.lists.is_word(a) and not self.lists.is_word(b):
            return LOWER_FULL_NAME_SCORE
        return None

    def _single(self, word: str) -> float | None:
        """A name alone, if it is not also an English word: a first name written as a name, or in
        lower case ("with brittany"); a surname in title case ("Nadal and Novak"). (Letting English
        words through inside sentences, "with Mike", cost more precision than it gained recall on
        the tune halves: +0.007 PERSON recall, -0.04 precision on WNUT.)"""
        key = _key(word)
        if self.lists.is_word(key) or len(word) < MIN_FIRST_NAME:
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
        taken = _other_entities(nlp_artifacts) if tokens else []
        results, i = [], 0
        first, last = self.lists.first, self.lists.last
        while i < len(tokens):
            word = tokens[i].group()
            key = _key(word)
            if key not in first and key not in last:  # most words: nothing to look at
                i += 1
                continue
            if taken and _inside(tokens[i], taken):  # spaCy says a date, a place, ...: not a name
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
        return self._cued(text, results)

    def _cued(self, text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
        """`results` and the names custody.pii.name_cues finds (a title before a word, a handle
        that spells a full name) where they add a span."""
        cued = [(start, end, TITLED_SCORE) for start, end in titled(text, self.lists.words.stop)]
        if "@" in text:
            found = handles(text, self.lists.first, self.lists.last, self.lists.words, self._full)
            cued += [(start, end, HANDLE_SCORE) for start, end in found]
        for start, end, score in cued:
            if not any(r.start < end and start < r.end for r in results):
                results.append(RecognizerResult(NAME_ENTITY, start, end, score))
        return results
