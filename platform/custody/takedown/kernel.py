"""The fingerprinting loop compiled (numba): one pass over a batch's code points gives every text's
kept hashes, with no Python work per character, word or text.

It computes exactly what the array version in fingerprints.py computes (`batch_fingerprints_arrays`;
a test holds the two equal on random text): word hashes (each word code point's hash times P^k,
summed modulo 2^64, mixed), shingles of NGRAM words, winnowing over WINDOW shingles inside each
text, consecutive repeats dropped. Texts are separated by NUL, which is no word character.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _mix(x: np.uint64) -> np.uint64:
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True)
def _winnow_into(
    shingles: np.ndarray,
    m: int,
    window: int,
    scratch: np.ndarray,
    owner: int,
    out_hashes: np.ndarray,
    out_owners: np.ndarray,
    k: int,
) -> int:
    """Append one text's kept hashes (its `m` shingles) to the outputs from position `k`; the new end.

    Every window's minimum in three passes (van Herk / Gil-Werman): within blocks of `window`
    shingles, minima from each block's start (`scratch`) and to each block's end (in place);
    a window spans at most two blocks, so its minimum is the smaller of those two."""
    if m == 0:
        return k
    if m < window:  # fewer shingles than a window: the smallest one
        smallest = shingles[0]
        for i in range(1, m):
            if shingles[i] < smallest:
                smallest = shingles[i]
        out_hashes[k] = smallest
        out_owners[k] = owner
        return k + 1
    for i in range(m):  # minima from each block's start
        scratch[i] = shingles[i] if i % window == 0 or shingles[i] < scratch[i - 1] else scratch[i - 1]
    for i in range(m - 2, -1, -1):  # minima to each block's end, in place
        if (i + 1) % window != 0 and shingles[i + 1] < shingles[i]:
            shingles[i] = shingles[i + 1]
    first = k
    for start in range(m - window + 1):
        end = start + window - 1
        smallest = shingles[start] if shingles[start] < scratch[end] else scratch[end]
        if k == first or out_hashes[k - 1] != smallest:
            out_hashes[k] = smallest
            out_owners[k] = owner
            k += 1
    return k


@njit(cache=True, nogil=True)
def fingerprint_codes(
    codes: np.ndarray,
    is_word: np.ndarray,
    char_hash: np.ndarray,
    p: np.uint64,
    base: np.uint64,
    ngram: int,
    window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(kept hashes, owner text of each) for NUL-separated texts given as code points."""
    limit = len(codes) // 2 + 2  # a word takes at least one code point and a separator
    out_hashes = np.empty(limit, dtype=np.uint64)
    out_owners = np.empty(limit, dtype=np.uint32)
    shingles = np.empty(limit, dtype=np.uint64)
    scratch = np.empty(limit, dtype=np.uint64)
    ring = np.zeros(ngram, dtype=np.uint64)
    base_powers = np.empty(ngram, dtype=np.uint64)
    power = np.uint64(1)
    for i in range(ngram):
        base_powers[i] = power
        power = power * base
    k = 0
    owner = 0
    words = 0  # words of the current text
    m = 0  # shingles of the current text
    h = np.uint64(0)
    pw = np.uint64(1)
    in_word = False
    for position in range(len(codes) + 1):
        c = codes[position] if position < len(codes) else 0
        if c != 0 and is_word[c]:
            h = h + char_hash[c] * pw
            pw = pw * p
            in_word = True
            continue
        if in_word:  # a word ends here
            ring[words % ngram] = _mix(h)
            words += 1
            if words >= ngram:
                total = np.uint64(0)
                for j in range(ngram):
                    total = total + ring[(words - ngram + j) % ngram] * base_powers[j]
                shingles[m] = total
                m += 1
            h = np.uint64(0)
            pw = np.uint64(1)
            in_word = False
        if c == 0:  # a text ends (NUL, or the end of the batch)
            k = _winnow_into(shingles, m, window, scratch, owner, out_hashes, out_owners, k)
            owner += 1
            words = 0
            m = 0
    return out_hashes[:k].copy(), out_owners[:k].copy()
