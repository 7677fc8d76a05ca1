"""Opt-in recognizers for PII the stock pipeline misses most: street addresses (phase 1).

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

from typing import ClassVar

import regex as re
from presidio_analyzer import Pattern, PatternRecognizer

ADDRESS_ENTITY = "STREET_ADDRESS"
RECALL_ENTITIES = (ADDRESS_ENTITY,)

# USPS street suffixes and the ones faker's street names use (Crossing, Pass, Union, ...).
_SUFFIXES = (
    "Alley|Allee|Ave|Avenue|Bend|Blvd|Boulevard|Bypass|Causeway|Cir|Circle|Close|Common|Corner|"
    "Court|Courts|Cove|Cres|Crescent|Crossing|Ct|Dale|Dr|Drive|Estates|Expressway|Extension|Fort|"
    "Freeway|Gardens|Gate|Glen|Green|Grove|Harbor|Heights|Highway|Hill|Hills|Hwy|Junction|Lane|"
    "Ln|Loop|Mall|Manor|Meadow|Meadows|Mews|Mission|Motorway|Parade|Park|Parkway|Pass|Path|Pike|"
    "Pkwy|Pl|Place|Plaza|Point|Port|Rd|Ridge|Road|Route|Row|Sq|Square|St|Str|Street|Stravenue|"
    "Summit|Ter|Terrace|Trace|Trafficway|Trail|Trl|Tunnel|Turnpike|Union|Valley|View|Villages?|"
    "Ville|Vista|Walk|Way|Wharf"
)
# Words that open a street name in Romance and Slavic languages (Rue de ..., Calle ..., ul. ...).
_PREFIXES = (
    r"Rue|Rua|Rúa|Calle|C/|Carrer|Avenida|Avda\.?|Av\.|Avenue|Via|Viale|Vicolo|Piazza|Piazzale|"
    r"Largo|Corso|Strada|Travessa|Praça|Place|Boulevard|Chemin|Allée|Impasse|Quai|Ulica|ul\.|"
    r"Odos|Rruga|Straße|Strasse|Calea|Str\.|Sokak|Cadde"
)
# Suffixes of one-word street names (Hammarvägen, Præstevænget, Augsburger Strasse, Harjukuja).
_JOINED = (
    r"vej|vænget|gade|stræde|gatan|gata|vägen|väg|veien|vegen|gaten|straße|strasse|str\.|weg|"
    r"laan|straat|dreef|plein|gracht|kade|steeg|katu|kuja|tie|polku|utca|út|ulica|aleja|ring|"
    r"gasse|platz|allee|damm|pfad|ufer|berg|graben|park|markt|hof|tee|puiestee|iela|gatve|"
    r"caddesi|sokak|sokağı"
)
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
_B = r"(?<![\w\-])"
_E = r"(?![\w])"


class StreetAddressRecognizer(PatternRecognizer):
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "street_us",
            rf"{_B}{_LEAD}{_NUMBER}[ \t]+(?:[NSEW]\.?[ \t]+)?(?:\d{{1,3}}(?:st|nd|rd|th)?[ \t]+)?"
            rf"(?:{_NAME}[ \t]+)?(?:{_SUFFIXES})\.?{_E}{_TAIL}",
            0.6,
        ),
        Pattern(
            "street_suffix_number",
            rf"{_B}{_LEAD}{_NAME}[ \t]+(?:{_SUFFIXES}|Strasse|Straße|Gasse|Weg|Allee|Platz|Straat|Laan)\.?"
            rf"[ \t]+{_NUMBER}{_E}{_TAIL}",
            0.5,
        ),
        Pattern(
            "street_prefix",
            rf"{_B}{_LEAD}(?:{_PREFIXES})[ \t]+(?:{_LOWER_JOIN}[ \t]+)?{_NAME}[ \t]+{_NUMBER}{_E}{_TAIL}",
            0.5,
        ),
        Pattern(
            "street_joined",
            rf"{_B}{_LEAD}(?:{_WORD}[ \t]+)?\p{{L}}[\p{{L}}\p{{M}}\-]*(?:{_JOINED})[ \t]+{_NUMBER}{_E}{_TAIL}",
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


def recall_recognizers(entities: tuple[str, ...] | None) -> list[PatternRecognizer]:
    """The opt-in recognizers for the entities asked for (none unless one of RECALL_ENTITIES is)."""
    if not entities:
        return []
    wanted = set(entities)
    return [StreetAddressRecognizer()] if ADDRESS_ENTITY in wanted else []
