"""Differential test: our prover against a naive recursive reading of RFC 9162 §2.1 (ledger.md test 3).

The reference below transcribes the RFC definitions (MTH, PATH, PROOF/SUBPROOF) with nothing
clever in them. They return subtree *ranges* (so the shape of a proof is compared, not only its
bytes) and hash each range with the naive MTH. Our side is merkle.inclusion_ranges /
consistency_ranges + hash_ranges over a fetch of stored perfect nodes, and a real SQLite
ledger. Every produced proof must also verify with the standalone verifier.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from functools import cache

import pytest

from custody.ledger import merkle, verifier
from custody.ledger.log import Ledger
from custody.ledger.storage import open_storage
from rfc6962 import raw_entry

EXHAUSTIVE_MAX = 160  # hashes: every 0 <= m <= n <= this
RANGES_EXHAUSTIVE_MAX = 300  # ranges (no hashing, cheap): every 0 <= m <= n <= this
POOL = 3000  # leaves available to the random larger sizes and to the real ledger
LEDGER_EXHAUSTIVE_MAX = 64


# --- the naive reference (RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1) -------------------------------


def rfc_split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def leaf_bytes(i: int) -> bytes:
    return f"differential leaf {i}".encode()


LEAF_HASHES = [hashlib.sha256(b"\x00" + leaf_bytes(i)).digest() for i in range(POOL)]


@cache
def mth(lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) over the leaf pool; memoized only for speed, the recursion is the RFC's."""
    n = hi - lo
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return LEAF_HASHES[lo]
    k = rfc_split(n)
    return hashlib.sha256(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi)).digest()


def rfc_path(m: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """PATH(m, D[lo:hi]) as the ranges whose MTH are the proof elements (m relative to lo)."""
    n = hi - lo
    if n == 1:
        return []
    k = rfc_split(n)
    if m < k:
        return [*rfc_path(m, lo, lo + k), (lo + k, hi)]
    return [*rfc_path(m - k, lo + k, hi), (lo, lo + k)]


def rfc_subproof(m: int, lo: int, hi: int, whole: bool) -> list[tuple[int, int]]:
    """SUBPROOF(m, D[lo:hi], b) as ranges."""
    n = hi - lo
    if m == n:
        return [] if whole else [(lo, hi)]
    k = rfc_split(n)
    if m <= k:
        return [*rfc_subproof(m, lo, lo + k, whole), (lo + k, hi)]
    return [*rfc_subproof(m - k, lo + k, hi, False), (lo, lo + k)]


def rfc_proof(m: int, n: int) -> list[tuple[int, int]]:
    """PROOF(m, D[0:n]) as ranges."""
    return rfc_subproof(m, 0, n, True)


def naive_inclusion(m: int, n: int) -> list[bytes]:
    return [mth(lo, hi) for lo, hi in rfc_path(m, 0, n)]


def naive_consistency(m: int, n: int) -> list[bytes]:
    return [mth(lo, hi) for lo, hi in rfc_proof(m, n)]


def test_reference_sanity():
    """The reference reproduces the RFC's worked examples (RFC 9162 §2.1.5, seven leaves d0..d6).

    Nodes: a..f are leaves d0..d5, g = [0,2), h = [2,4), i = [4,6), j = d6, k = [0,4), l = [4,7).
    """
    node = {"a": (0, 1), "b": (1, 2), "c": (2, 3), "d": (3, 4), "f": (5, 6), "g": (0, 2), "h": (2, 4)}
    node |= {"i": (4, 6), "j": (6, 7), "k": (0, 4), "l": (4, 7)}

    def nodes(names: str) -> list[tuple[int, int]]:
        return [node[name] for name in names]

    assert rfc_path(0, 0, 7) == nodes("bhl")
    assert rfc_path(3, 0, 7) == nodes("cgl")
    assert rfc_path(4, 0, 7) == nodes("fjk")
    assert rfc_path(6, 0, 7) == nodes("ik")
    assert rfc_proof(3, 7) == nodes("cdgl")
    assert rfc_proof(4, 7) == nodes("l")
    assert rfc_proof(6, 7) == nodes("ijk")
    assert mth(0, 1) == LEAF_HASHES[0]
    assert mth(0, 3) == verifier.node_hash(verifier.node_hash(LEAF_HASHES[0], LEAF_HASHES[1]), LEAF_HASHES[2])


# --- tree arithmetic: ranges -------------------------------------------------------------------


def test_split_point_matches_rfc():
    for n in range(2, 5000):
        assert merkle.split_point(n) == rfc_split(n), n


def test_ranges_match_rfc_for_all_small_sizes():
    for n in range(1, RANGES_EXHAUSTIVE_MAX + 1):
        for m in range(n):
            assert merkle.inclusion_ranges(m, n) == rfc_path(m, 0, n), f"PATH({m}, {n})"
        for m in range(1, n + 1):
            assert merkle.consistency_ranges(m, n) == rfc_proof(m, n), f"PROOF({m}, {n})"


def interesting_sizes(rng: random.Random, count: int, limit: int) -> list[int]:
    sizes = [rng.randrange(1, limit) for _ in range(count)]
    for bits in range(1, limit.bit_length()):
        sizes.extend(s for s in ((1 << bits) - 1, 1 << bits, (1 << bits) + 1) if 0 < s < limit)
    return sizes


def test_ranges_match_rfc_for_huge_random_sizes():
    """The range arithmetic needs no hashes, so it can be compared at any size (up to 2**64)."""
    rng = random.Random(9162)
    for n in interesting_sizes(rng, 400, 1 << 64):
        picks = {0, n - 1, n // 2, rng.randrange(n), rng.randrange(n)}
        for m in picks:
            assert merkle.inclusion_ranges(m, n) == rfc_path(m, 0, n), f"PATH({m}, {n})"
        for m in picks | {n}:
            if m > 0:
                assert merkle.consistency_ranges(m, n) == rfc_proof(m, n), f"PROOF({m}, {n})"


def test_every_proof_range_decomposes_into_perfect_nodes_inside_the_tree():
    for n in range(1, EXHAUSTIVE_MAX + 1):
        ranges = [r for m in range(n) for r in merkle.inclusion_ranges(m, n)]
        ranges += [r for m in range(1, n + 1) for r in merkle.consistency_ranges(m, n)]
        for lo, hi in ranges:
            nodes = merkle.perfect_nodes(lo, hi)
            covered = [(idx << level, (idx + 1) << level) for level, idx in nodes]
            assert covered[0][0] == lo and covered[-1][1] == hi
            assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))
            assert hi <= n


# --- hashes: hash_ranges over a dict of perfect nodes ------------------------------------------


@cache
def perfect_store(limit: int) -> dict[tuple[int, int], bytes]:
    """Every perfect node (level, idx) over the first `limit` leaves, hashed naively."""
    store = {}
    level = 0
    while (1 << level) <= limit:
        for idx in range(limit >> level):
            store[(level, idx)] = mth(idx << level, (idx + 1) << level)
        level += 1
    return store


def fetch_within(n: int):
    """A fetch that serves only nodes of the tree of size n, so a node from beyond it is missing."""
    store = perfect_store(POOL)
    requests = []

    def fetch(ids):
        ids = list(ids)
        requests.append(ids)
        return {node: store[node] for node in ids if (node[1] + 1) << node[0] <= n}

    return fetch, requests


def check_pair(m: int, n: int, fetch) -> None:
    root = mth(0, n)
    assert merkle.hash_ranges([(0, n)], fetch) == [root], f"root of {n}"
    if m < n:
        proof = merkle.hash_ranges(merkle.inclusion_ranges(m, n), fetch)
        assert proof == naive_inclusion(m, n), f"inclusion proof ({m}, {n})"
        verifier.verify_inclusion(m, n, LEAF_HASHES[m], proof, root)
    if m > 0:
        proof = merkle.hash_ranges(merkle.consistency_ranges(m, n), fetch)
        assert proof == naive_consistency(m, n), f"consistency proof ({m}, {n})"
        verifier.verify_consistency(m, n, mth(0, m), root, proof)


def test_hashes_match_rfc_for_all_small_sizes():
    for n in range(1, EXHAUSTIVE_MAX + 1):
        fetch, requests = fetch_within(n)
        for m in range(n + 1):
            check_pair(m, n, fetch)
        # One fetch per hash_ranges call: a proof costs one query.
        assert len(requests) == 1 + n + n + n


def test_hashes_match_rfc_for_random_larger_sizes():
    rng = random.Random(6962)
    for n in interesting_sizes(rng, 150, POOL + 1):
        fetch, _ = fetch_within(n)
        for m in {0, 1, n - 1, n, rng.randrange(n), rng.randrange(n), rng.randrange(1, n + 1)}:
            check_pair(m, n, fetch)


def test_hash_ranges_refuses_a_missing_node():
    fetch, _ = fetch_within(5)
    with pytest.raises(KeyError):
        merkle.hash_ranges([(0, 8)], fetch)


def test_right_edge_matches_rfc_root_at_every_size():
    edge = merkle.RightEdge()
    for n in range(1, POOL + 1):
        edge.append(LEAF_HASHES[n - 1])
        if n <= 300 or n % 97 == 0 or n & (n - 1) == 0 or n == POOL:
            assert edge.root() == mth(0, n), n
            assert [(level, idx) for level, idx, _ in edge.nodes] == merkle.perfect_nodes(0, n)


# --- a real SQLite ledger ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """POOL raw-leaf entries appended in random-sized batches, so nodes complete across batches."""
    path = tmp_path_factory.mktemp("differential") / "ledger.sqlite"
    storage = open_storage(f"sqlite:///{path}", create=True)
    log = Ledger(storage, "test.example/differential")
    rng = random.Random(2024)
    size = 0
    while size < POOL:
        count = min(POOL - size, rng.choice([1, 1, 2, 3, 7, 8, 31, 64, 200]))
        batch = [raw_entry(leaf_bytes(i)) for i in range(size, size + count)]
        assert log.append_batch(batch) == list(range(size, size + count))
        size += count
        assert log.head() == (size, mth(0, size)), f"head after reaching {size}"
    yield log
    storage.close()


def check_ledger_pair(ledger: Ledger, m: int, n: int) -> None:
    root = ledger.root_at(n)
    assert root == mth(0, n), f"root_at({n})"
    if m < n:
        proof = ledger.inclusion_proof(m, n)
        assert proof == naive_inclusion(m, n), f"ledger inclusion proof ({m}, {n})"
        verifier.verify_inclusion(m, n, ledger.entry(m).leaf_hash, proof, root)
    if m > 0:
        proof = ledger.consistency_proof(m, n)
        assert proof == naive_consistency(m, n), f"ledger consistency proof ({m}, {n})"
        verifier.verify_consistency(m, n, ledger.root_at(m), root, proof)


def test_ledger_stores_the_leaves(ledger):
    assert ledger.size == POOL
    for i in (0, 1, 2, 1023, 1024, POOL - 1):
        assert ledger.entry(i).leaf_hash == LEAF_HASHES[i]
        assert ledger.entry(i).entry == leaf_bytes(i)


def test_ledger_matches_rfc_for_all_small_sizes(ledger):
    for n in range(1, LEDGER_EXHAUSTIVE_MAX + 1):
        for m in range(n + 1):
            check_ledger_pair(ledger, m, n)


def test_ledger_matches_rfc_for_random_larger_sizes(ledger):
    rng = random.Random(1962)
    for n in interesting_sizes(rng, 120, POOL + 1):
        for m in {0, 1, n - 1, n, rng.randrange(n), rng.randrange(1, n + 1)}:
            check_ledger_pair(ledger, m, n)


def test_ledger_defaults_to_its_head(ledger):
    assert ledger.inclusion_proof(17) == naive_inclusion(17, POOL)
    assert ledger.consistency_proof(17) == naive_consistency(17, POOL)
    assert ledger.consistency_proof(POOL) == []
