"""Which license is this text? Matching LICENSE / COPYING / README files against reference texts.

A declared license can disagree with the license text shipped next to the data; this module
finds the text's license so that the two can be compared.

Method. Both the text and every reference are normalized: copyright statements ("Copyright (c)
2019 Jane Doe", "Copyright <year> <owner>"), template placeholders ("<year>", "[name of
copyright owner]") and "All rights reserved" dropped; lower case; "licence" -> "license";
punctuation to spaces. Each becomes the set of its word 4-grams (shingles). For a reference R and
a text T:

* containment = |T ∩ R| / |T|: how much of the text the reference explains;
* coverage = how much of R the text carries: |T ∩ R| / |R|, or, for a text shorter than R, the
  share of the shingles in R's first len(T) words that T has, whichever is larger (a truncated
  copy is a full match for what it has);
* score = harmonic mean of containment and coverage, times (|T ∩ R| / |R|) ** 0.1 so that a
  complete text beats a truncated reading of a longer license that begins the same way;
* halved when the text uses a restriction term the reference never uses (noncommercial,
  noderivatives, sharealike: a CC BY-NC text is not CC BY, however much else they share), and
  halved when the text's heading states a version the reference's heading does not
  ("Version 1.2" is not GFDL 1.3).

Near-variants (MIT / MIT-0 / 0BSD, BSD-2 / BSD-3, CC-BY / CC-BY-SA / CC-BY-NC, GPL-2 / GPL-3,
LGPL / GPL) differ by whole clauses, which changes dozens of shingles, while reflowed whitespace
changes none and a new copyright line at most a few. References whose normalized texts are
identical (GPL-2.0-only and GPL-2.0-or-later: the choice is made in the notice, not in the text)
form one group: a match names the group's first id and lists the others in `equivalents`.
Candidates are picked through an inverted index (on every shingle of a short text, on a fixed
1-in-8 sample of a long one) and only the best few are scored exactly: about 0.4 ms for a short
LICENSE file, a few ms for the GPL.

`DEFAULT_MIN_SCORE` (0.8) keeps every reference text detected when reflowed, given a new
copyright line or cut to its first half (the lowest such score is about 0.83), and claims one of
the 59 for about 7.5% of the other 600 SPDX license texts, almost all close relatives of a
reference (CPL-1.0 -> EPL-1.0, BSD variants), none of another category. See
bench/license_quality.py.

Fallback: a text that is not a license text (a README) is read for what it declares: an
`SPDX-License-Identifier:` line, a `license: <name>` field (dataset-card front matter), a
"License" heading followed by a name, or a "licensed/released/distributed under the X license"
sentence, mapped with `license_name_to_spdx`. Prose mentions are ignored in texts that keep
saying "this License" / "this Agreement": those are licenses themselves, and the licenses they
name ("may be distributed under the CeCILL-C license") are not their own.

`LicenseDetector.default()` uses the 59 common SPDX texts shipped with this package
(`data/reference_texts.jsonl.gz`, SPDX License List 3.26.0); it reads nothing else.
"""

from __future__ import annotations

import bisect
import functools
import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources

from custody.licenses.categories import license_name_to_spdx
from custody.licenses.spdx import parse_expression

SHINGLE = 4
DEFAULT_MIN_SCORE = 0.8
TRUNCATION_WEIGHT = 0.1
# Words that change a license's category. A text that uses one its reference never uses (a
# non-commercial or no-derivatives or share-alike variant of it, say) is not that license, however
# much of the rest they share: its score is multiplied by RESTRICTION_PENALTY.
RESTRICTION_TERMS = (
    "noncommercial",
    "non commercial",
    "noderivatives",
    "noderivs",
    "no derivatives",
    "sharealike",
    "share alike",
)
RESTRICTION_PENALTY = 0.5
# A text whose heading states a version (“Version 1.2”, “v1.1”, “3.0 Unported”) that the
# reference's heading does not state is another version of the license: same penalty.
VERSION_PENALTY = 0.5
_HEADING_CHARS = 600
_EXACT_UP_TO = 1000  # longer texts pick their candidates by a 1-in-8 sample of their shingles
_RESCORE = 4  # the best this many by estimated F1 and by estimated containment are scored exactly
# Scores given to declarations found by the fallback (they are not text similarities).
IDENTIFIER_SCORE = 1.0
NAME_MENTION_SCORE = 0.9

# A copyright statement: a line that starts "Copyright", "(c)" or "©" followed by a year or a
# placeholder ("Copyright (c) 2019 Jane Doe", "Copyright <YEAR> <COPYRIGHT HOLDER>"), but not a
# reflowed line that merely starts with the word ("copyright notice and this permission ...").
_COPYRIGHT = re.compile(
    r"(?im)^[ \t>*#/-]*(?:copyright\b[ \t]*(?:\(c\)|©)?|\(c\)|©)[ \t]*(?:\d{4}|<|\[|\{|year\b)[^\n]*$"
)
_PLACEHOLDER = re.compile(r"<[^<>\n]{1,60}>|\[[^\[\]\n]{1,40}\]|\{[^{}\n]{1,40}\}")
_RIGHTS = re.compile(r"(?i)all rights reserved\.?")
_WORD = re.compile(r"[a-z0-9]+")
_VERSION_STATED = re.compile(
    r"\bversion\s+(\d+(?:\.\d+)*)|\bv\.?\s?(\d+(?:\.\d+)+)|\b(\d+\.\d+)\s+(?:international|unported|generic)\b",
    re.IGNORECASE,
)


def stated_versions(text: str) -> frozenset[str]:
    """Version numbers stated in the heading (first 600 characters) of a license text, without
    trailing ".0" ("Version 2.0" and "Version 2" are the same)."""
    heading = _PLACEHOLDER.sub(" ", _COPYRIGHT.sub(" ", text[: _HEADING_CHARS * 2]))[:_HEADING_CHARS]
    found = set()
    for m in _VERSION_STATED.finditer(heading):
        version = next(group for group in m.groups() if group)
        while version.endswith(".0"):
            version = version[:-2]
        found.add(version)
    return frozenset(found)


def normalize(text: str) -> list[str]:
    """The words of `text` after dropping copyright statements and template placeholders."""
    text = _COPYRIGHT.sub(" ", text)
    text = _PLACEHOLDER.sub(" ", text)
    text = _RIGHTS.sub(" ", text)
    text = text.lower().replace("licence", "license").replace("&", " and ")
    return _WORD.findall(text)


def _shingle_list(words: list[str], n: int = SHINGLE) -> list[int]:
    """Hashes of the word n-grams of `words`, in order (one for a text shorter than n words)."""
    if len(words) < n:
        return [hash(tuple(words))] if words else []
    return list(map(hash, zip(*(words[i:] for i in range(n)), strict=False)))


def _sketch(shingles: Iterable[int]) -> Iterator[int]:
    """A fixed 1-in-8 sample of shingle hashes (the same shingles are kept in every text)."""
    return (value for value in shingles if not value & 7)


def _terms(words: Iterable[str]) -> frozenset[str]:
    """The RESTRICTION_TERMS that occur in a normalized text."""
    joined = " " + " ".join(words) + " "
    return frozenset(term for term in RESTRICTION_TERMS if f" {term} " in joined)


@dataclass(frozen=True)
class Match:
    """One candidate license for a text.

    `score` is in [0, 1]; `method` is "text" (similarity to a reference text), "spdx-identifier"
    (an SPDX-License-Identifier line) or "name-mention" (a license named in prose or a
    `license:` field). `equivalents` are other ids whose reference text is identical.
    """

    license_id: str
    score: float
    method: str = "text"
    equivalents: tuple[str, ...] = ()
    containment: float | None = field(default=None, compare=False)
    coverage: float | None = field(default=None, compare=False)

    @property
    def ids(self) -> tuple[str, ...]:
        """The matched id and its equivalents."""
        return (self.license_id, *self.equivalents)


@dataclass
class _Reference:
    ids: tuple[str, ...]
    words: int
    shingles: frozenset[int]
    sketch: frozenset[int]
    first_seen: dict[int, int]  # shingle -> index of the first word of its first occurrence
    first_seen_sorted: list[int]  # the values of first_seen, sorted
    terms: frozenset[str]  # the RESTRICTION_TERMS it contains
    versions: frozenset[str]  # the versions its heading states

    def prefix_size(self, words: int) -> int:
        """How many distinct shingles start within the first `words` words."""
        return bisect.bisect_left(self.first_seen_sorted, words)


class LicenseDetector:
    """Detects which of a set of reference licenses a text is (see the module docstring)."""

    def __init__(self, references: Mapping[str, str], *, shingle: int = SHINGLE):
        self.shingle = shingle
        self._digest = _digest(references, shingle)
        groups: dict[tuple[str, ...], list[str]] = {}
        versions: dict[tuple[str, ...], frozenset[str]] = {}
        for license_id in sorted(references):
            words = tuple(normalize(references[license_id]))
            groups.setdefault(words, []).append(license_id)
            versions.setdefault(words, stated_versions(references[license_id]))
        self._references: list[_Reference] = []
        for words, ids in groups.items():
            first_seen: dict[int, int] = {}
            for position, value in enumerate(_shingle_list(list(words), shingle)):
                first_seen.setdefault(value, position)
            shingles = frozenset(first_seen)
            self._references.append(
                _Reference(
                    ids=tuple(sorted(ids, key=_preference)),
                    words=len(words),
                    shingles=shingles,
                    sketch=frozenset(_sketch(shingles)),
                    first_seen=first_seen,
                    first_seen_sorted=sorted(first_seen.values()),
                    terms=_terms(words),
                    versions=versions[words],
                )
            )
        # Inverted index: shingle -> the references that contain it.
        postings: dict[int, list[int]] = {}
        for number, reference in enumerate(self._references):
            for value in reference.shingles:
                postings.setdefault(value, []).append(number)
        self._postings = {value: tuple(numbers) for value, numbers in postings.items()}

    @classmethod
    def default(cls) -> LicenseDetector:
        """A detector over the 59 common SPDX license texts shipped with this package."""
        return _default_detector()

    @property
    def license_ids(self) -> list[str]:
        return [license_id for reference in self._references for license_id in reference.ids]

    @property
    def groups(self) -> list[tuple[str, ...]]:
        """Groups of ids with identical normalized reference texts (singletons included)."""
        return [reference.ids for reference in self._references]

    def equivalents(self, license_id: str) -> tuple[str, ...]:
        """`license_id` and every id whose reference text is identical to its own (just
        `(license_id,)` for an id with no reference here)."""
        for reference in self._references:
            if license_id in reference.ids:
                return reference.ids
        return (license_id,)

    def digest(self) -> str:
        """sha256 (hex) of the reference texts and the method's parameters: two detectors with the
        same digest give the same answers."""
        return self._digest

    def similarity(self, text: str, top: int = 5) -> list[Match]:
        """Text-similarity matches only, best first (no fallback), at most `top`."""
        words = normalize(text)
        if not words:
            return []
        shingles = set(_shingle_list(words, self.shingle))
        candidates = self._candidates(shingles, max(top, _RESCORE))
        terms = _terms(words)
        versions = stated_versions(text)
        matches = [m for r in candidates if (m := self._score(words, shingles, terms, versions, r)) is not None]
        matches.sort(key=lambda m: (-m.score, m.license_id))
        return matches[:top]

    def _candidates(self, shingles: set[int], keep: int) -> list[_Reference]:
        """The references worth scoring exactly: the best `keep` by estimated containment and the
        best `keep` by estimated F1, counted through the inverted index on all shingles of a
        short text or on the 1-in-8 sketch of a long one."""
        sampled = len(shingles) > _EXACT_UP_TO
        probe = set(_sketch(shingles)) if sampled else shingles
        if not probe:
            return []
        counts = [0] * len(self._references)
        postings = self._postings
        for value in probe:
            for number in postings.get(value, ()):
                counts[number] += 1
        estimates = []
        for number, count in enumerate(counts):
            if not count:
                continue
            reference = self._references[number]
            size = len(reference.sketch) if sampled else len(reference.shingles)
            containment = count / len(probe)
            coverage = count / max(size, 1)
            estimates.append((containment, 2 * containment * coverage / (containment + coverage), number))
        by_f1 = sorted(estimates, key=lambda e: -e[1])[:keep]
        by_containment = sorted(estimates, key=lambda e: -e[0])[:keep]
        chosen = sorted({e[2] for e in by_f1} | {e[2] for e in by_containment})
        return [self._references[number] for number in chosen]

    def _score(
        self,
        words: list[str],
        shingles: set[int],
        terms: frozenset[str],
        versions: frozenset[str],
        reference: _Reference,
    ) -> Match | None:
        common = shingles & reference.shingles
        if not common:
            return None
        containment = len(common) / len(shingles)
        full = len(common) / len(reference.shingles)
        coverage = full
        if len(words) < reference.words and containment >= 0.5:
            # A text shorter than the reference: coverage of the reference's prefix of the text's
            # length, so that a truncated copy is a full match for what it has.
            limit = len(words)
            inside = sum(1 for value in common if reference.first_seen[value] < limit)
            coverage = max(full, inside / max(reference.prefix_size(limit), 1))
        score = 2 * containment * coverage / (containment + coverage) * full**TRUNCATION_WEIGHT
        if terms - reference.terms:
            score *= RESTRICTION_PENALTY
        if versions and reference.versions and not versions & reference.versions:
            score *= VERSION_PENALTY
        return Match(
            reference.ids[0], round(score, 4), "text", reference.ids[1:], round(containment, 4), round(coverage, 4)
        )

    def detect(self, text: str, top: int = 5, min_score: float = DEFAULT_MIN_SCORE) -> list[Match]:
        """Candidate licenses for `text`, best first.

        Text matches scoring at least `min_score` come first; then licenses the text declares
        (SPDX-License-Identifier lines, `license:` fields, "licensed under the X license"
        sentences); then weaker text matches. At most `top` text matches are listed.
        """
        similar = self.similarity(text, top)
        strong = [m for m in similar if m.score >= min_score]
        weak = [m for m in similar if m.score < min_score]
        declared = [m for m in declared_licenses(text) if not any(m.license_id in s.ids for s in strong)]
        return strong + declared + weak

    def best(self, text: str, min_score: float = DEFAULT_MIN_SCORE) -> Match | None:
        """The best text match if it scores at least `min_score`, else the first declared
        license (fallback), else None."""
        similar = self.similarity(text, 1)
        if similar and similar[0].score >= min_score:
            return similar[0]
        declared = declared_licenses(text)
        return declared[0] if declared else None


def _digest(references: Mapping[str, str], shingle: int) -> str:
    parameters = {
        "method": "shingle-containment-coverage/1",
        "shingle": shingle,
        "truncation_weight": TRUNCATION_WEIGHT,
        "restriction_terms": RESTRICTION_TERMS,
        "restriction_penalty": RESTRICTION_PENALTY,
        "version_penalty": VERSION_PENALTY,
    }
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode())
    for license_id in sorted(references):
        digest.update(json.dumps([license_id, references[license_id]]).encode())
    return digest.hexdigest()


def _preference(license_id: str) -> tuple[int, str]:
    """Within a group of identical texts, name the "-only" id first, then the shortest."""
    return (0 if license_id.endswith("-only") else 1, len(license_id), license_id)


@functools.cache
def _default_references() -> dict[str, str]:
    raw = resources.files("custody.licenses").joinpath("data", "reference_texts.jsonl.gz").read_bytes()
    references = {}
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            references[record["id"]] = record["text"]
    return references


@functools.cache
def _default_detector() -> LicenseDetector:
    return LicenseDetector(_default_references())


def default_references() -> dict[str, str]:
    """The shipped reference texts, SPDX id -> text (a copy)."""
    return dict(_default_references())


# ---------------------------------------------------------------------------------------------
# Fallback: what a README declares

_IDENTIFIER = re.compile(r"SPDX-License-Identifier:\s*(.+?)\s*(?:\*/|-->|$)", re.IGNORECASE | re.MULTILINE)
_FIELD = re.compile(
    r"^\s*[-*]?\s*licen[sc]e\s*(?:name)?\s*[:=]\s*[\"']?([^\"'\n]+?)[\"']?\s*$", re.IGNORECASE | re.MULTILINE
)
_SENTENCE = re.compile(
    r"\b(?:licen[sc]ed|released|distributed|made available|available|published|provided|shared|covered)\s+"
    r"(?:\w+\s+)?under\s+(?:the\s+)?(?:terms\s+(?:and\s+conditions\s+)?of\s+(?:the\s+)?)?"
    r"(?P<name>[^\n;()\[\]]{2,120}?)(?=[.;:!]\s|[.;:!]?[ \t]*$|[()\[\]\n])",
    re.IGNORECASE | re.MULTILINE,
)
# A "License" heading (Markdown or underlined) followed by a short line naming the license.
_HEADING = re.compile(
    r"^[ \t]*(?:#+[ \t]*)?licen[sc]e[ \t]*:?[ \t]*\n"
    r"(?:[ \t]*[-=]{3,}[ \t]*\n)?(?:[ \t]*\n)*[ \t]*(?P<name>[^\n]{1,80})$",
    re.IGNORECASE | re.MULTILINE,
)


# A text that keeps referring to "this License" / "this Agreement" is a license itself: other
# licenses it names ("may be distributed under the CeCILL-C license") are not its own.
_SELF_REFERENCE = re.compile(r"\bthis\s+(?:public\s+)?(?:licen[sc]e|agreement)\b", re.IGNORECASE)
SELF_REFERENCES_FOR_LICENSE_TEXT = 3


def declared_licenses(text: str) -> list[Match]:
    """Licenses a text declares rather than contains, in order of appearance, without repeats.

    SPDX-License-Identifier lines always count. Names in prose, `license:` fields and "License"
    headings count only in texts that are not themselves license texts (fewer than
    SELF_REFERENCES_FOR_LICENSE_TEXT mentions of "this License" / "this Agreement").
    """
    found: list[Match] = []
    seen: set[str] = set()

    def add(license_id: str | None, score: float, method: str) -> None:
        if license_id and license_id not in seen:
            seen.add(license_id)
            found.append(Match(license_id, score, method))

    for m in _IDENTIFIER.finditer(text):
        parsed = parse_expression(m.group(1).strip())
        if parsed.ok:
            for license_id in parsed.license_ids:
                add(license_id, IDENTIFIER_SCORE, "spdx-identifier")
    if len(_SELF_REFERENCE.findall(text)) >= SELF_REFERENCES_FOR_LICENSE_TEXT:
        return found
    for m in _FIELD.finditer(text):
        add(_name_to_id(m.group(1)), NAME_MENTION_SCORE, "name-mention")
    for m in _HEADING.finditer(text):
        add(_name_to_id(m.group("name")), NAME_MENTION_SCORE, "name-mention")
    for m in _SENTENCE.finditer(text):
        add(_name_to_id(m.group("name")), NAME_MENTION_SCORE, "name-mention")
    return found


def _name_to_id(name: str) -> str | None:
    name = name.strip().strip("\"'`*_ ")
    if not name:
        return None
    parsed = parse_expression(name)
    if parsed.ok and len(parsed.license_ids) == 1:
        return parsed.license_ids[0]
    return license_name_to_spdx(name)
