"""Opt-in recognizers for PII the stock pipeline misses most: street addresses, and (in
custody.pii.names) person names in informal text.

presidio on spaCy's small model finds about one street address in ten: spaCy tags a city or a
country now and then, never "1668 Glyn St" or "Hammarvägen 15". `StreetAddressRecognizer` is a
presidio PatternRecognizer for the shapes addresses take in text:

- US style: a house number, one to four capitalised words and a street suffix (St, Street, Ave,
  Road, Blvd, Lane, Dr, Close, Crossing, ...);
- European style: a street word (Rue, Rua, Calle, Via, ul., ...) or a word ending in a street
  suffix (-vej, -gade, -vägen, -straße, -weg, -straat, -katu, ...) followed by a house number;
- US military mail: `PSC 1234, Box 5678`, `Unit 1234 Box 5678`, `APO AE 12345`.

Each may be led by a second number (faker's "03220 Augsburger Strasse 36") and followed by units
(Apt., Suite, Unit, #) and, on the same line, a city, a state or country and a ZIP code, so that
one span covers the whole address. Scores sit over the check's threshold (0.35); an address
context word (address, street, live, deliver, ...) in the five tokens before raises them.

Opt-in: the recognizer emits its own entity, STREET_ADDRESS, which is not in DEFAULT_ENTITIES.
It is added to the analyzer only when the entities asked for include it
(`ScannerConfig(entities=DEFAULT_ENTITIES + RECALL_ENTITIES)`, or the pii check's `entities`
setting), so default detections are unchanged. Pure regex: nothing is downloaded or loaded.
"""

from __future__ import annotations

import re as stdre
from typing import Any, ClassVar

import regex as re
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer

from custody.pii.names import NAME_ENTITY, InformalNameRecognizer, name_lists
from custody.pii.street_words import JOINED_SUFFIXES, STREET_PREFIXES, STREET_SUFFIXES, SUFFIX_NUMBER_WORDS

ADDRESS_ENTITY = "STREET_ADDRESS"
RECALL_ENTITIES = (ADDRESS_ENTITY, NAME_ENTITY)

_WORD = r"\p{Lu}[\p{L}\p{M}'’.\-]*"
_LOWER_JOIN = r"(?:de|del|della|do|da|dos|das|des|du|di|la|le|van|von|der|den|y|e|i|al|el)"
_NAME = rf"{_WORD}(?:[ \t]+(?:{_LOWER_JOIN}[ \t]+)?{_WORD}){{0,3}}"
_NUMBER = r"\d{1,6}[A-Za-z]?(?:[/\-]\d{1,4}[A-Za-z]?)?"
_LEAD = r"(?:\d{1,6}[ \t]+)?"  # faker's building number before the street
_UNIT = (
    r"(?:[ \t]*[,>]?[ \t]*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|#)\.?[ \t]*#?[ \t]*\d{1,5}[A-Za-z]?)"
)
_TAIL = (
    rf"(?:{_UNIT}{{0,3}})"
    # , City, ST 12345 | >City >Country 12345 (same line, at most three more names and a ZIP)
    rf"(?:(?:[ \t]*[,>][ \t]*|[ \t]{{2,}}){_NAME}){{0,3}}(?:[ \t]*,?[ \t]*(?:[A-Z]{{2}}[ \t]+)?\d{{4,5}}(?:-\d{{4}})?)?"
)


def _literal_words(alternation: str) -> frozenset[str]:
    """The words of a regex alternation of street words, lower-cased, as a letters-only tokenizer
    sees them ("Avda\\.?" -> "avda", "C/" -> "c", "Villages?" -> "village" and "villages")."""
    words: set[str] = set()
    for alternative in alternation.split("|"):
        plain = alternative.replace("\\.?", "").replace("\\.", "").replace("/", "")
        if plain.endswith("?"):
            words.add(plain[:-2].lower())
            plain = plain[:-1]
        words.add(plain.lower())
    return frozenset(words)


class AddressPrefilter:
    """What every match of StreetAddressRecognizer contains, for the fast scanner's prefilter: a
    digit (house, box or unit number) and a street word (a suffix or prefix word, or a word ending
    in a joined suffix), or a military mail word (PSC, Unit, APO, a US Navy ship's prefix). Looking
    words up in a set is five times cheaper than one case-insensitive regex over the alternations,
    and lets through a superset of the texts the patterns can match."""

    _DIGIT = stdre.compile(r"\d")
    _WORD = stdre.compile(r"[^\W\d_]+")
    _MILITARY = stdre.compile(r"\b(?:PSC|Unit|[ADF]PO|USNS|USNV|USS|USCGC)\b", stdre.IGNORECASE)
    WORDS = _literal_words(f"{STREET_SUFFIXES}|{STREET_PREFIXES}|{SUFFIX_NUMBER_WORDS}")
    JOINED = tuple(_literal_words(JOINED_SUFFIXES))

    def search(self, text: str) -> bool:
        if self._DIGIT.search(text):
            words = self._WORD.findall(text.lower())
            if not self.WORDS.isdisjoint(words) or any(word.endswith(self.JOINED) for word in words):
                return True
        return self._MILITARY.search(text) is not None


_B = r"(?<![\w\-])"
_E = r"(?![\w])"


class StreetAddressRecognizer(PatternRecognizer):
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "street_us",
            rf"{_B}{_LEAD}{_NUMBER}[ \t]+(?:[NSEW]\.?[ \t]+)?(?:\d{{1,3}}(?:st|nd|rd|th)?[ \t]+)?"
            rf"(?:{_NAME}[ \t]+)?(?:{STREET_SUFFIXES})\.?{_E}{_TAIL}",
            0.6,
        ),
        Pattern(
            "street_suffix_number",
            rf"{_B}{_LEAD}{_NAME}[ \t]+(?:{STREET_SUFFIXES}|{SUFFIX_NUMBER_WORDS})\.?"
            rf"[ \t]+{_NUMBER}{_E}{_TAIL}",
            0.5,
        ),
        Pattern(
            "street_prefix",
            rf"{_B}{_LEAD}(?:{STREET_PREFIXES})[ \t]+(?:{_LOWER_JOIN}[ \t]+)?{_NAME}[ \t]+{_NUMBER}{_E}{_TAIL}",
            0.5,
        ),
        Pattern(
            "street_joined",
            rf"{_B}{_LEAD}(?:{_WORD}[ \t]+)?\p{{L}}[\p{{L}}\p{{M}}\-]*(?:{JOINED_SUFFIXES})[ \t]+{_NUMBER}{_E}{_TAIL}",
            0.5,
        ),
        Pattern(
            "military",
            r"(?i:"
            rf"{_B}(?:PSC|Unit)[ \t]+\d{{3,5}},?[ \t]+Box[ \t]+\d{{3,5}}(?:,?[ \t]+[ADF]PO[ \t]+A[AEP][ \t]+\d{{5}})?"
            rf"|{_B}[ADF]PO[ \t]+A[AEP][ \t]+\d{{5}}"
            rf"|{_B}(?:USNS|USNV|USS|USCGC)[ \t]+[A-Z][a-z]+(?:,?[ \t]+FPO[ \t]+A[AEP][ \t]+\d{{5}})?"
            r")",
            0.6,
        ),
    ]
    CONTEXT: ClassVar[list[str]] = [
        "address",
        "street",
        "live",
        "lives",
        "living",
        "moved",
        "deliver",
        "delivery",
        "ship",
        "shipping",
        "mail",
        "send",
        "return",
        "located",
        "residence",
        "home",
    ]

    def __init__(self) -> None:
        super().__init__(
            ADDRESS_ENTITY,
            name="CustodyStreetAddressRecognizer",
            patterns=list(self.PATTERNS),
            context=list(self.CONTEXT),
            global_regex_flags=re.MULTILINE,
        )


def recall_recognizers(entities: tuple[str, ...] | None, nlp: Any = None) -> list[EntityRecognizer]:
    """The opt-in recognizers for the entities asked for (none unless one of RECALL_ENTITIES is);
    `nlp` is the spaCy pipeline whose lemma index tells names from English words."""
    if not entities:
        return []
    wanted = set(entities)
    found: list[EntityRecognizer] = [StreetAddressRecognizer()] if ADDRESS_ENTITY in wanted else []
    if NAME_ENTITY in wanted:
        found.append(InformalNameRecognizer(name_lists(nlp)))
    return found
