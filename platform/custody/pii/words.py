"""Which words are English words, for the opt-in name recognizer (custody.pii.names).

A name that is also a common English word ("Will", "May", "Grace", "Hope") is not taken as a name
on its own. Two sources decide, both already installed:

- the spaCy pipeline's lemmatizer tables (WordNet's lemmas, irregular forms such as "been" and
  "women", and the suffix rules that take "walls" to "wall" and "doing" to "do") and spaCy's
  English stop words ("from", "than", "my");
- how often the word is used: the English word-frequency list pyspellchecker ships (MIT; counted
  by its authors over the OpenSubtitles2018 corpus from OPUS, lower-cased).

WordNet also lists people and places ("lohan", "braun", "lindsay", "jordan", "madison"), so a
lemma alone does not make a word: it must also be used at least COMMON times in the frequency
list ("george" 2,069, "lindsay" 718: names; "mike" 10,596, "grace" 24,102: words). Stop words
always count, whatever their frequency. COMMON was chosen on the tune halves of the gold sets
(bench/pii_recall.py --part tune).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata, resources
from typing import Any

COMMON = 5_000  # uses in the frequency list from which a WordNet lemma counts as an English word
# The lemmatizer's suffix rules for plurals and verb forms; its adjective rules (-er, -est) would
# make "Walker", "Parker" and "Turner" inflected words.
_RULE_KINDS = ("noun", "verb")


@dataclass(frozen=True)
class EnglishWords:
    lemmas: frozenset[str]  # WordNet lemmas and irregular forms, used at least COMMON times
    stop: frozenset[str]  # stop words: always words
    rules: tuple[tuple[str, str], ...] = ()  # (ending, replacement): inflected form -> lemma

    def __contains__(self, key: object) -> bool:
        """`key` (lower case) is an English word: a stop word, a common lemma or irregular form, or
        an inflected form of a common lemma by the lemmatizer's rules ("walls" -> "wall")."""
        if not isinstance(key, str):
            return False
        if key in self.stop or key in self.lemmas:
            return True
        return any(key.endswith(old) and key[: len(key) - len(old)] + new in self.lemmas for old, new in self.rules)


@lru_cache(maxsize=1)
def frequencies() -> dict[str, int]:
    """pyspellchecker's English word frequencies (lower-cased word -> count)."""
    raw = (resources.files("spellchecker") / "resources" / "en.json.gz").read_bytes()
    return json.loads(gzip.decompress(raw))


def english_words(nlp: Any, common: int = COMMON) -> EnglishWords:
    """The English words of the spaCy pipeline `nlp`'s lemmatizer tables (only the stop words if it
    has no lemmatizer), keeping the lemmas used at least `common` times."""
    from spacy.lang.en.stop_words import STOP_WORDS

    stop = frozenset(STOP_WORDS)
    try:
        lookups = nlp.get_pipe("lemmatizer").lookups
    except (KeyError, ValueError):
        return EnglishWords(frozenset(), stop)
    lemmas: set[str] = set()
    for part in lookups.get_table("lemma_index", {}).values():
        lemmas.update(part)
    for part in lookups.get_table("lemma_exc", {}).values():
        for form, forms_lemmas in part.items():
            lemmas.add(form)
            lemmas.update(forms_lemmas)
    counts = frequencies()
    common_lemmas = frozenset(word for word in lemmas if counts.get(word, 0) >= common)
    rules_table = lookups.get_table("lemma_rules", {})
    rules = {(old, new) for kind in _RULE_KINDS for old, new in rules_table.get(kind, []) if old}
    return EnglishWords(common_lemmas, stop, tuple(sorted(rules)))


def source() -> str:
    """The frequency list's package and version, for benchmarks and configs."""
    return f"pyspellchecker/{metadata.version('pyspellchecker')}"
