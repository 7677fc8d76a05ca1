"""Recognizers custody adds to presidio's, or runs in place of one, for the entities it covers.

RegionSkippingPhoneRecognizer (PHONE_NUMBER): presidio's PhoneRecognizer, same regions, same
leniency, same results, minus wasted work. Presidio runs python-phonenumbers' matcher once per
region (8 by default) over the whole text, and that is most of the cost of the pattern
recognizers. A region's matcher can only return a number whose national part is at least as long
as the shortest valid number of that region's country code (US/CA 7 or 10 digits, FR 9, DE 4,
...), and a candidate never has more digits than the longest run of digits joined by at most 4
punctuation characters. So a region is skipped when no run in the text is long enough, unless
the text has a '+' or a run starting with 0 (international and trunk prefixes, where the number
may belong to another country and be shorter).

CustodyPanRecognizer (CREDIT_CARD): payment card numbers are 12 to 19 digits (ISO/IEC 7812), but
presidio's CreditCardRecognizer only matches 13-17 digit numbers with Visa/Mastercard/Amex-like
prefixes, so 12-digit Maestro, 19-digit Visa and 2-series Mastercard numbers go unseen. This one
takes any 12-19 digit number (contiguous, or in the printed groupings 4-4-4[-4][-1..3] and
4-6-4/5) whose Luhn check digit is right. A random number passes Luhn one time in ten, so the
base score (0.3) stays under the check's default threshold (0.35) unless a card context word
(card, credit, visa, cc, ...) precedes it, which lifts it to 0.65.
"""

from __future__ import annotations

import re as stdre
import unicodedata
from functools import cache
from typing import ClassVar

import regex as re
from presidio_analyzer import Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

PAN_CONTEXT = [
    "credit",
    "card",
    "debit",
    "visa",
    "mastercard",
    "cc",
    "amex",
    "discover",
    "jcb",
    "diners",
    "maestro",
    "instapayment",
    "pan",
]


def luhn_ok(number: str) -> bool:
    digits = [ord(c) - 48 for c in number if "0" <= c <= "9"]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return bool(digits) and total % 10 == 0


class CustodyPanRecognizer(PatternRecognizer):
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("pan_contiguous", r"(?<![0-9\-])[0-9]{12,19}(?![0-9]|-[0-9])", 0.3),
        Pattern(
            "pan_groups_4",
            r"(?<![0-9\-])[0-9]{4}(?:([ \-])[0-9]{4}){2}(?:\1[0-9]{4})?(?:\1[0-9]{1,3})?"
            r"(?![0-9]|[ \-][0-9])",
            0.3,
        ),
        Pattern("pan_groups_4_6", r"(?<![0-9\-])[0-9]{4}([ \-])[0-9]{6}\1[0-9]{4,5}(?![0-9]|[ \-][0-9])", 0.3),
    ]

    def __init__(self) -> None:
        super().__init__(
            "CREDIT_CARD",
            name="CustodyPanRecognizer",
            patterns=list(self.PATTERNS),
            context=list(PAN_CONTEXT),
            global_regex_flags=re.DOTALL | re.MULTILINE,
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        digits = sum(c.isdigit() for c in pattern_text)
        if not 12 <= digits <= 19 or not luhn_ok(pattern_text):
            return False
        return None  # keep the pattern's score: a valid check digit alone is weak evidence


# Digit runs as python-phonenumbers' matcher sees candidates: digits joined by at most 4
# punctuation characters (its punctuation includes 'x'; \W covers the rest), optionally led by '+'.
_DIGIT_RUN = stdre.compile(r"\d(?:[\W_xX]{0,4}\d)*")
_PLUS = stdre.compile("[+\uff0b]")


@cache
def _min_national_length(region: str) -> int:
    """The shortest valid national number among the regions sharing `region`'s country code."""
    import phonenumbers
    from phonenumbers import PhoneMetadata

    code = phonenumbers.country_code_for_region(region)
    lengths = []
    for other in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, (region,)):
        metadata = PhoneMetadata.metadata_for_region(other)
        if metadata is not None:
            lengths.extend(n for n in metadata.general_desc.possible_length if n > 0)
    return min(lengths, default=1)


def _one_per_country_code(regions: tuple[str, ...]) -> tuple[str, ...]:
    """The first region of each country code: the matcher for CA finds exactly the numbers the one
    for US finds (one numbering plan, +1: a national number parses to the same number in either,
    and whether it is valid depends on the number, not on the region asked), so presidio's
    default regions (US ... CA) run the +1 matcher once, not twice."""
    import phonenumbers

    seen: set[int] = set()
    kept = []
    for region in regions:
        code = phonenumbers.country_code_for_region(region)
        if code == 0 or code not in seen:
            kept.append(region)
            seen.add(code)
    return tuple(kept)


class RegionSkippingPhoneRecognizer(PhoneRecognizer):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.all_regions = tuple(self.supported_regions)
        self.distinct_regions = _one_per_country_code(self.all_regions)

    def regions_for(self, text: str) -> tuple[str, ...]:
        if _PLUS.search(text):
            return self.distinct_regions
        longest = 0
        for run in _DIGIT_RUN.finditer(text):
            found = run.group()
            if unicodedata.digit(found[0], None) == 0:
                return self.distinct_regions
            longest = max(longest, sum(c.isdigit() for c in found))
        return tuple(r for r in self.distinct_regions if longest >= _min_national_length(r))

    def analyze(self, text, entities, nlp_artifacts=None):
        regions = self.regions_for(text)
        if not regions:
            return []
        self.supported_regions = regions
        try:
            return super().analyze(text, entities, nlp_artifacts)
        finally:
            self.supported_regions = self.all_regions


def extra_recognizers() -> list[PatternRecognizer]:
    return [CustodyPanRecognizer()]


def faster_equivalent(recognizer):
    """The drop-in replacement for one of presidio's recognizers, or the recognizer itself."""
    if type(recognizer) is PhoneRecognizer:
        return RegionSkippingPhoneRecognizer(
            context=recognizer.context,
            supported_language=recognizer.supported_language,
            supported_entity=recognizer.supported_entities[0],
            supported_regions=recognizer.supported_regions,
            leniency=recognizer.leniency,
            name="CustodyPhoneRecognizer",
        )
    return recognizer
