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

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

NGRAM = 8  # words per shingle: long enough that common phrases ("at the end of the day") rarely match
WINDOW = 24  # shingles per winnowing window: one kept hash per 24 shingles at most, about 2/25 on average
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


FINGERPRINT = "custody-fp/2"  # 2: word hashes computed over code points with numpy (was BLAKE2b per word)
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_P = np.uint64(0x100000001B3)  # odd: invertible modulo 2^64
_P_INV = np.uint64(pow(int(_P), -1, 1 << 64))
_SEED = np.uint64(0x243F6A8885A308D3)
_IS_WORD: np.ndarray | None = None  # code point -> matched by \w (the regex's own rule), built once
_CHAR_HASH: np.ndarray | None = None  # code point -> mix(code point + SEED), built once
_POWERS: tuple[np.ndarray, np.ndarray] = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))


def _is_word() -> np.ndarray:
    global _IS_WORD
    if _IS_WORD is None:
        table = np.zeros(0x110000, dtype=bool)
        for match in _WORD.finditer("".join(map(chr, range(0x110000)))):
            table[match.start() : match.end()] = True
        _IS_WORD = table
    return _IS_WORD


def _char_hashes() -> np.ndarray:
    """mix(code point + SEED) for word code points, 0 for the others (they add nothing to a sum)."""
    global _CHAR_HASH
    if _CHAR_HASH is None:
        _CHAR_HASH = np.where(_is_word(), _mix(np.arange(0x110000, dtype=np.uint64) + _SEED), np.uint64(0))
    return _CHAR_HASH


def _ascii_word_bytes() -> bytes:
    """A bytes.translate table: 1 for the ASCII word characters, 0 for every other byte."""
    return bytes(int(flag) for flag in _is_word()[:128]) + bytes(128)


def nul_positions(text: str) -> np.ndarray:
    """Positions (in code points) of the NUL characters of `text`."""
    if text.isascii():
        return np.flatnonzero(np.frombuffer(text.encode("ascii"), dtype=np.uint8) == 0)
    return np.flatnonzero(np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4") == 0)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P^i and P^-i modulo 2^64 for i < n (kept and grown: every batch needs them)."""
    global _POWERS
    if len(_POWERS[0]) < n:
        size = max(n, 2 * len(_POWERS[0]))
        with np.errstate(over="ignore"):
            up = np.cumprod(np.full(size, _P, dtype=np.uint64))
            down = np.cumprod(np.full(size, _P_INV, dtype=np.uint64))
        _POWERS = (np.concatenate([[np.uint64(1)], up[:-1]]), np.concatenate([[np.uint64(1)], down[:-1]]))
    return _POWERS


def word_runs(text: str) -> tuple[np.ndarray, np.ndarray]:
    r"""(hash, start) of every word of an already normalised `text`, a word being a maximal run of
    code points that `\w` matches: the same words `_WORD.findall(text)` gives, each hashed as
    mix(sum over its code points c_k of mix(c_k + SEED) * P^k) modulo 2^64, all in a few array
    operations instead of a Python call per word: each code point's hash (0 for non-word ones)
    times P^position, summed from each word's start to the next one's, times P^-start."""
    if text.isascii():  # most text: one byte per code point, classified by bytes.translate
        raw = text.encode("ascii")
        codes = np.frombuffer(raw, dtype=np.uint8)
        inside = np.frombuffer(raw.translate(_ascii_word_bytes()), dtype=np.int8)
        char_hash = _char_hashes()[:128]
    else:
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        inside = _is_word()[codes].view(np.int8)
        char_hash = _char_hashes()
    if len(codes) == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.diff(inside, prepend=np.int8(0)) == 1)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.uint64), starts
    up, down = _powers(len(codes))
    with np.errstate(over="ignore"):
        weighted = char_hash[codes]
        weighted *= up[: len(codes)]
        hashes = _mix(np.add.reduceat(weighted, starts) * down[starts])
    return hashes, starts


def _word_hashes(items: list[str]) -> np.ndarray:
    """The hash of each (normalised) word, as `word_runs` gives it inside a text."""
    if not items:
        return np.zeros(0, dtype=np.uint64)
    hashes, _ = word_runs("\x00".join(items))  # NUL is no word character: a separator
    if len(hashes) != len(items):
        raise ValueError("a word to hash holds a character that is not a word character")
    return hashes


def shingle_hashes(items: list[str], n: int = NGRAM) -> np.ndarray:
    """One uint64 per run of `n` consecutive words (sum of word hash x BASE^position, mod 2^64)."""
    if len(items) < n:
        return np.zeros(0, dtype=np.uint64)
    return ngram_hashes(_word_hashes(items), n)


def ngram_hashes(hashed: np.ndarray, n: int) -> np.ndarray:
    total = np.zeros(len(hashed) - n + 1, dtype=np.uint64)
    factor = np.uint64(1)
    with np.errstate(over="ignore"):  # wrapping arithmetic is the point
        for k in range(n):
            total += hashed[k : len(hashed) - n + 1 + k] * factor
            factor = factor * _BASE
    return total


def sliding_min(values: np.ndarray, window: int) -> np.ndarray:
    """The minimum of every `window` consecutive values (len(values) >= window), by doubling:
    minima of 1, 2, 4, ... values, then two overlapping runs of the largest power of two. A few
    whole-array passes, where a reduce over a strided window view walks each window apart."""
    span, current = 1, values
    while span * 2 <= window:
        current = np.minimum(current[:-span], current[span:])
        span *= 2
    count = len(values) - window + 1
    return np.minimum(current[:count], current[window - span : window - span + count])


def winnow(hashes: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """The kept hashes: the minimum of every `window` consecutive ones (each kept once)."""
    if len(hashes) == 0:
        return hashes
    if len(hashes) <= window:
        return np.unique(hashes[[int(np.argmin(hashes))]])
    return np.unique(sliding_min(hashes, window))


def index_words(text: str) -> list[str]:
    """The words `words()` finds, without their offsets: normalised once per text (the fast path
    for indexing; `words()` keeps offsets for the confirmation)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def fingerprints(text: str) -> np.ndarray:
    """A text's kept hashes, sorted and unique."""
    return winnow(shingle_hashes(index_words(text)))


def joined_texts(texts: list[str]) -> str:
    """The texts normalised and joined by NUL (a NUL inside a text becomes a space: it separates
    words there anyway)."""
    joined = unicodedata.normalize("NFKC", "\x00".join(texts)).casefold()
    if len(nul_positions(joined)) != len(texts) - 1:  # NUL stays NUL under NFKC and casefold
        joined = "\x00".join(unicodedata.normalize("NFKC", t.replace("\x00", " ")).casefold() for t in texts)
    return joined


def batch_fingerprints(texts: list[str], n: int = NGRAM, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """(kept hashes, the position in `texts` each belongs to, in text order), for many texts at
    once: the hashes `fingerprints(text)` gives per text (a hash may appear more than once for a
    text). The compiled loop (kernel.py) when numba is installed, else the array version."""
    try:
        from custody.takedown.kernel import fingerprint_codes
    except ImportError:  # numba missing: the same result, about twice the time
        return batch_fingerprints_arrays(texts, n, window)
    joined = joined_texts(texts)
    if joined.isascii():
        codes, is_word, char_hash = (
            np.frombuffer(joined.encode("ascii"), dtype=np.uint8),
            _is_word()[:128],
            _char_hashes()[:128],
        )
    else:
        codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        is_word, char_hash = _is_word(), _char_hashes()
    return fingerprint_codes(codes, is_word, char_hash, _P, _BASE, n, window)


def batch_fingerprints_arrays(texts: list[str], n: int = NGRAM, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """`batch_fingerprints` in numpy array operations alone (no Python work per word or text)."""
    joined = joined_texts(texts)
    boundaries = nul_positions(joined)
    hashed, starts = word_runs(joined)
    owner_of_word = np.searchsorted(boundaries, starts)
    if len(hashed) < n:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint32)
    shingles = ngram_hashes(hashed, n)
    # A shingle belongs to a text when its n words all do.
    first, last = owner_of_word[: len(shingles)], owner_of_word[n - 1 :]
    keep = first == last
    shingles, owners = shingles[keep], first[keep]
    kept_hashes, kept_owners = [], []
    if len(shingles) >= window:  # windows of `window` shingles inside one text: their minimum
        minima = sliding_min(shingles, window)
        inside = owners[: len(minima)] == owners[window - 1 :]
        kept_hashes.append(minima[inside])
        kept_owners.append(owners[: len(minima)][inside])
    # Texts with fewer shingles than a window keep their smallest one.
    per_text = np.bincount(owners, minlength=len(texts))
    short = np.flatnonzero((per_text > 0) & (per_text < window))
    if len(short):
        nonempty = np.flatnonzero(per_text > 0)  # their shingles lie in order, one run per text
        mins = np.minimum.reduceat(shingles, np.concatenate([[0], np.cumsum(per_text[nonempty])[:-1]]))
        kept_hashes.append(mins[np.searchsorted(nonempty, short)])
        kept_owners.append(short)
    if not kept_hashes:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint32)
    hashes, owned = np.concatenate(kept_hashes), np.concatenate(kept_owners).astype(np.uint32)
    if len(kept_hashes) > 1:  # the short texts' minima came last: back into text order
        order = np.argsort(owned, kind="stable")
        hashes, owned = hashes[order], owned[order]
    # Neighbouring windows mostly share their minimum: drop repeats of the previous pair (a hash may
    # still repeat within a text further on; lookups do not mind).
    fresh = np.ones(len(hashes), dtype=bool)
    fresh[1:] = (hashes[1:] != hashes[:-1]) | (owned[1:] != owned[:-1])
    return hashes[fresh], owned[fresh]


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
