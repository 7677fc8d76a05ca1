"""Passage fingerprints: winnowed hashes of word n-grams, so a page of a book is found in a record
whatever its whitespace, case, punctuation or surrounding text.

A text becomes words (NFKC, case-folded, runs of letters and digits; everything else separates),
each word a 64-bit hash (the first 8 bytes of its BLAKE2b), each run of N consecutive words one
polynomial hash of theirs, and of every W consecutive n-gram hashes the smallest is kept (winnowing,
Schleimer, Wilkerson & Aiken 2003). Two texts that share a run of at least W + N - 1 words
(MIN_WORDS) share at least one kept hash, so a passage that long is always found; shorter shared
runs may be. Every candidate is confirmed against the record's own words before it is reported.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

NGRAM = 8  # words per shingle: long enough that common phrases ("at the end of the day") rarely match
WINDOW = 16  # shingles per winnowing window: one kept hash per 16 shingles at most, about 2/17 on average
MIN_WORDS = NGRAM + WINDOW - 1  # a shared run this long is guaranteed to share a kept hash
_WORD = re.compile(r"\w+")
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the polynomial n-gram hash


@dataclass(frozen=True)
class Words:
    """A text's words (normalised) and where each starts and ends in the original text."""

    words: list[str]
    starts: list[int]
    ends: list[int]


def words(text: str) -> Words:
    """Normalised words with their character offsets in `text` (offsets survive NFKC only where a
    character keeps its length; they are offsets into the text as given)."""
    found, starts, ends = [], [], []
    for match in _WORD.finditer(text):
        found.append(unicodedata.normalize("NFKC", match.group()).casefold())
        starts.append(match.start())
        ends.append(match.end())
    return Words(found, starts, ends)


_HASHED: dict[str, int] = {}  # word -> hash: natural text repeats its words, BLAKE2b once each
_HASHED_MAX = 1 << 20


def _word_hash(word: str) -> int:
    value = _HASHED.get(word)
    if value is None:
        if len(_HASHED) >= _HASHED_MAX:
            _HASHED.clear()
        value = _HASHED[word] = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
    return value


def _word_hashes(items: list[str]) -> np.ndarray:
    values = [_HASHED.get(w) for w in items]  # the common case: every word seen before
    if None in values:
        values = [v if v is not None else _word_hash(w) for v, w in zip(values, items, strict=True)]
    return np.array(values, dtype=np.uint64)


def shingle_hashes(items: list[str], n: int = NGRAM) -> np.ndarray:
    """One uint64 per run of `n` consecutive words (sum of word hash x BASE^position, mod 2^64)."""
    if len(items) < n:
        return np.zeros(0, dtype=np.uint64)
    hashed = _word_hashes(items)
    total = np.zeros(len(items) - n + 1, dtype=np.uint64)
    factor = np.uint64(1)
    with np.errstate(over="ignore"):  # wrapping arithmetic is the point
        for k in range(n):
            total += hashed[k : len(items) - n + 1 + k] * factor
            factor = factor * _BASE
    return total


def winnow(hashes: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """The kept hashes: the minimum of every `window` consecutive ones (each kept once)."""
    if len(hashes) == 0:
        return hashes
    if len(hashes) <= window:
        return np.unique(hashes[[int(np.argmin(hashes))]])
    views = np.lib.stride_tricks.sliding_window_view(hashes, window)
    return np.unique(views.min(axis=1))


def index_words(text: str) -> list[str]:
    """The words `words()` finds, without their offsets: normalised once per text (the fast path
    for indexing; `words()` keeps offsets for the confirmation)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def fingerprints(text: str) -> np.ndarray:
    """A text's kept hashes, sorted and unique."""
    return winnow(shingle_hashes(index_words(text)))


def batch_fingerprints(texts: list[str], n: int = NGRAM, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """(kept hashes, the position in `texts` each belongs to), for many texts at once: the hashes
    `fingerprints(text)` gives per text (a hash may appear more than once for a text), computed
    over one array, without per-text numpy calls."""
    all_words: list[str] = []
    bounds = [0]
    for text in texts:
        all_words += index_words(text)
        bounds.append(len(all_words))
    hashed = _word_hashes(all_words)
    counts = np.diff(np.array(bounds, dtype=np.int64))
    owner_of_word = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
    if len(hashed) < n:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint32)
    shingles = np.zeros(len(hashed) - n + 1, dtype=np.uint64)
    factor = np.uint64(1)
    with np.errstate(over="ignore"):
        for k in range(n):
            shingles += hashed[k : len(hashed) - n + 1 + k] * factor
            factor = factor * _BASE
    # A shingle belongs to a text when its n words all do.
    first, last = owner_of_word[: len(shingles)], owner_of_word[n - 1 :]
    keep = first == last
    shingles, owners = shingles[keep], first[keep]
    kept_hashes, kept_owners = [], []
    if len(shingles) >= window:  # windows of `window` shingles inside one text: their minimum
        views = np.lib.stride_tricks.sliding_window_view(shingles, window)
        inside = owners[: len(views)] == owners[window - 1 :]
        kept_hashes.append(views[inside].min(axis=1))
        kept_owners.append(owners[: len(views)][inside])
    # Texts with fewer shingles than a window keep their smallest one.
    per_text = np.bincount(owners, minlength=len(texts))
    short = np.flatnonzero((per_text > 0) & (per_text < window))
    if len(short):
        starts = np.concatenate([[0], np.cumsum(per_text)[:-1]])
        kept_hashes.append(_mins(shingles, starts, per_text, short))
        kept_owners.append(short)
    if not kept_hashes:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint32)
    hashes, owned = np.concatenate(kept_hashes), np.concatenate(kept_owners).astype(np.uint32)
    # Neighbouring windows mostly share their minimum: drop repeats of the previous pair (a hash may
    # still repeat within a text further on; lookups do not mind).
    fresh = np.ones(len(hashes), dtype=bool)
    fresh[1:] = (hashes[1:] != hashes[:-1]) | (owned[1:] != owned[:-1])
    return hashes[fresh], owned[fresh]


def _mins(shingles: np.ndarray, starts: np.ndarray, per_text: np.ndarray, which: np.ndarray) -> np.ndarray:
    return np.array([shingles[starts[i] : starts[i] + per_text[i]].min() for i in which], dtype=np.uint64)


def shared_runs(
    passage_shingles: set[int], record: Words, n: int = NGRAM, min_words: int = MIN_WORDS
) -> list[tuple[int, int]]:
    """Character spans of `record` where it shares at least `min_words` consecutive words with a
    passage, given as the set of its shingle hashes (so a takedown request can be confirmed
    without keeping the passage): runs of consecutive record shingles that are all the passage's."""
    hashes = shingle_hashes(record.words, n).tolist()
    spans: list[tuple[int, int]] = []
    run_start = None
    for i in range(len(hashes) + 1):
        shared = i < len(hashes) and hashes[i] in passage_shingles
        if shared and run_start is None:
            run_start = i
        elif not shared and run_start is not None:
            if i - run_start + n - 1 >= min_words:  # words covered by shingles run_start .. i-1
                spans.append((record.starts[run_start], record.ends[i + n - 2]))
            run_start = None
    return spans
