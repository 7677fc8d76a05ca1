"""Names the name recognizer (custody.pii.names) finds by a cue besides the lists alone.

- A title before a capitalised word: "Dr. Cox", "Mrs Doubtfire", "Lil Yachty". The word may be
  an English word or missing from the lists; a stop word is not taken ("Miss You").
- A user handle that spells a full name: "@EmmaWillis", "@realDonaldTrump", "@sallykohn",
  "@MissMcCleary". The handle is cut into words at capitals (or, all in lower case, at the one
  place where a first name ends and a surname of four letters or more begins), and two words in
  a row must make a full name by the recognizer's own rule. A handle alone is not a name: most
  are not ("@jebove", "@KindnessOfMen"). Tokenised text that writes "@ EmmaWillis" counts too.

Each function yields (start, end) character ranges; the recognizer scores them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from itertools import pairwise

TITLES = ("Mr", "Mrs", "Ms", "Mx", "Miss", "Dr", "Prof", "Sir", "Dame", "Lil")
_TITLED = re.compile(
    rf"(?<![\w@#])(?:{'|'.join(TITLES)})(?:[ \t]*\.)?[ \t]+([^\W\d_][^\W\d_'’\-]+(?:['’\-][^\W\d_]+)*)(?![\w])"
)
_HANDLE = re.compile(r"(?<![\w@])@[ \t]?([A-Za-z][A-Za-z0-9_]{4,30})(?![\w])")
_PARTS = re.compile(r"(?:Mc|Mac)?[A-Z][a-z]+|[a-z]+|[A-Z]+(?![a-z])")
MIN_SPLIT_SURNAME = 4  # a lower-case handle's surname part


def titled(text: str, stop: Collection[str]) -> Iterator[tuple[int, int]]:
    """A title and the capitalised word after it ("Dr . Cox" as tokenised text writes it)."""
    for match in _TITLED.finditer(text):
        word = match.group(1)
        if word[:1].isupper() and word.lower() not in stop:
            yield match.start(), match.end(1)


def _split_lower(handle: str, first: Collection[str], last: Collection[str], words: Collection[str]) -> list[str]:
    """A lower-case handle as a first name and a surname that is no English word ("sallykohn" ->
    sally, kohn; not "paulwalk"), if one split makes both, the shortest first name winning."""
    for cut in range(3, len(handle) - MIN_SPLIT_SURNAME + 1):
        if handle[:cut] in first and handle[cut:] in last and handle[cut:] not in words:
            return [handle[:cut], handle[cut:]]
    return []


def handles(
    text: str,
    first: Collection[str],
    last: Collection[str],
    words: Collection[str],
    full: Callable[[str, str], float | None],
) -> Iterator[tuple[int, int]]:
    """Handles whose words hold a full name by `full` (the recognizer's rule for two words);
    `words` are the English words."""
    for match in _HANDLE.finditer(text):
        letters = match.group(1).rstrip("_0123456789")
        parts = _PARTS.findall(letters)
        if len(parts) == 1 and letters.islower():
            parts = [part.title() for part in _split_lower(letters, first, last, words)]
        if any(
            full(a, b) is not None or (a in TITLES and b[:1].isupper() and (b.lower() in last or b.lower() in first))
            for a, b in pairwise(parts)
        ):
            yield match.start(1), match.end(1)
