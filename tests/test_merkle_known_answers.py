"""Known-answer hashes (ledger.md "Hashing") and the RFC 6962 8-leaf tree roots.

The roots are those of the test leaves used by transparency-dev/merkle and by the RFC 6962
reference tests; they are checked through the pure tree arithmetic (merkle.RightEdge,
merkle.fold) and through a real SQLite-backed Ledger, both appending one entry at a time and in
one batch, and after reopening the database.
"""

from __future__ import annotations

import hashlib

import pytest

from custody.home import Home
from custody.ledger import merkle, verifier
from custody.ledger.log import Ledger
from custody.ledger.storage import open_storage
from rfc6962 import LEAVES, raw_entry

EMPTY_TREE = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
EMPTY_LEAF = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
LEAF_L123456 = "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
NODE_N123_N456 = "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"

ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
ORIGIN = "test.example/known-answers"


@pytest.fixture
def open_ledger(tmp_path):
    """Open (or create) a raw SQLite ledger at a path; every storage opened is closed afterwards."""
    opened = []

    def _open(name: str = "ledger.sqlite", create: bool = True) -> Ledger:
        storage = open_storage(f"sqlite:///{tmp_path / name}", create=create)
        opened.append(storage)
        return Ledger(storage, ORIGIN)

    yield _open
    for storage in opened:
        storage.close()


def naive_root(hashes: list[bytes]) -> bytes:
    """MTH over leaf hashes, straight from RFC 9162 §2.1.1 (an independent reference)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_root(hashes[:k]) + naive_root(hashes[k:])).digest()


# --- hashing known answers -------------------------------------------------------------------


def test_empty_tree_root():
    assert hashlib.sha256(b"").hexdigest() == EMPTY_TREE
    assert verifier.EMPTY_ROOT.hex() == EMPTY_TREE
    assert merkle.fold([]).hex() == EMPTY_TREE
    assert merkle.RightEdge().root().hex() == EMPTY_TREE


def test_empty_tree_in_a_fresh_ledger(open_ledger):
    ledger = open_ledger()
    assert ledger.corruption is None
    assert ledger.head() == (0, bytes.fromhex(EMPTY_TREE))
    assert ledger.root_at(0).hex() == EMPTY_TREE


def test_empty_leaf_hash():
    assert verifier.leaf_hash(b"").hex() == EMPTY_LEAF
    assert hashlib.sha256(b"\x00").hexdigest() == EMPTY_LEAF


def test_leaf_hash_known_answer():
    assert verifier.leaf_hash(b"L123456").hex() == LEAF_L123456
    # Domain separation is not optional: the bare SHA-256 of the entry is something else.
    assert hashlib.sha256(b"L123456").hexdigest() != LEAF_L123456
    assert verifier.leaf_hash(b"L123456".hex().encode()).hex() != LEAF_L123456


def test_node_hash_known_answer():
    assert verifier.node_hash(b"N123", b"N456").hex() == NODE_N123_N456
    # The pair is never sorted: swapping the children changes the hash.
    assert verifier.node_hash(b"N456", b"N123").hex() != NODE_N123_N456
    assert hashlib.sha256(b"N123N456").hexdigest() != NODE_N123_N456


def test_leaf_and_node_hashes_are_domain_separated():
    left, right = verifier.leaf_hash(b"a"), verifier.leaf_hash(b"b")
    assert verifier.node_hash(left, right) != verifier.leaf_hash(left + right)
    assert verifier.leaf_hash(b"") != verifier.EMPTY_ROOT


# --- the 8-leaf RFC 6962 tree ----------------------------------------------------------------


def test_reference_roots_are_self_consistent():
    """Guard the constants themselves against a typo: the naive MTH reproduces each root."""
    hashes = [verifier.leaf_hash(leaf) for leaf in LEAVES]
    assert [naive_root(hashes[:n]) for n in range(1, 9)] == ROOTS
    assert len(set(ROOTS)) == 8


def test_roots_through_right_edge():
    edge = merkle.RightEdge()
    completed = []
    for n, leaf in enumerate(LEAVES, start=1):
        completed.extend(edge.append(verifier.leaf_hash(leaf)))
        assert edge.size == n
        assert edge.root() == ROOTS[n - 1], f"root of size {n}"
    # The interior nodes handed back for storage are exactly the perfect subtrees of 8 leaves.
    hashes = [verifier.leaf_hash(leaf) for leaf in LEAVES]
    expected = {
        (level, idx): naive_root(hashes[idx << level : (idx + 1) << level])
        for level in (1, 2, 3)
        for idx in range(8 >> level)
    }
    assert {(level, idx): h for level, idx, h in completed} == expected
    assert len(completed) == len(expected)


def test_right_edge_copy_is_independent():
    edge = merkle.RightEdge()
    for leaf in LEAVES[:5]:
        edge.append(verifier.leaf_hash(leaf))
    clone = edge.copy()
    clone.append(verifier.leaf_hash(LEAVES[5]))
    assert edge.size == 5 and edge.root() == ROOTS[4]
    assert clone.size == 6 and clone.root() == ROOTS[5]


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_through_fold_of_perfect_nodes(size):
    hashes = [verifier.leaf_hash(leaf) for leaf in LEAVES]
    nodes = merkle.perfect_nodes(0, size)
    # Perfect-node decomposition: left to right, widths decreasing powers of two, covering [0, size).
    widths = [1 << level for level, _ in nodes]
    assert sum(widths) == size and widths == sorted(widths, reverse=True)
    assert len(set(widths)) == len(widths)
    node_hashes = [naive_root(hashes[idx << level : (idx + 1) << level]) for level, idx in nodes]
    assert merkle.fold(node_hashes) == ROOTS[size - 1]
    # Rebuilding the right edge from those stored hashes (what Ledger does on open) agrees.
    assert merkle.RightEdge(size, node_hashes).root() == ROOTS[size - 1]
    with pytest.raises(ValueError):
        merkle.RightEdge(size, node_hashes[:-1])


def test_roots_through_ledger_one_at_a_time(open_ledger):
    ledger = open_ledger()
    for n, leaf in enumerate(LEAVES, start=1):
        assert ledger.append(raw_entry(leaf)) == n - 1
        assert ledger.head() == (n, ROOTS[n - 1]), f"head after {n} appends"
    for n in range(1, 9):
        assert ledger.root_at(n) == ROOTS[n - 1], f"root_at({n})"
    for idx, leaf in enumerate(LEAVES):
        row = ledger.entry(idx)
        assert row.entry == leaf
        assert row.leaf_hash == verifier.leaf_hash(leaf)


def test_roots_through_ledger_in_one_batch_and_after_reopen(open_ledger):
    ledger = open_ledger()
    assert ledger.append_batch([raw_entry(leaf) for leaf in LEAVES]) == list(range(8))
    assert ledger.head() == (8, ROOTS[7])
    assert [ledger.root_at(n) for n in range(1, 9)] == ROOTS
    reopened = open_ledger(create=False)
    assert reopened.corruption is None
    assert reopened.head() == (8, ROOTS[7])
    assert [reopened.root_at(n) for n in range(1, 9)] == ROOTS


@pytest.mark.parametrize("split", [1, 3, 4, 5, 7])
def test_roots_through_ledger_in_two_batches(open_ledger, split):
    """Interior nodes completed across a batch boundary are stored correctly."""
    ledger = open_ledger()
    ledger.append_batch([raw_entry(leaf) for leaf in LEAVES[:split]])
    assert ledger.head() == (split, ROOTS[split - 1])
    ledger = open_ledger(create=False)  # a fresh Ledger rebuilds its right edge from storage
    ledger.append_batch([raw_entry(leaf) for leaf in LEAVES[split:]])
    assert ledger.head() == (8, ROOTS[7])
    assert [ledger.root_at(n) for n in range(1, 9)] == ROOTS


def test_roots_through_a_home(tmp_path):
    """Home.init on SQLite: its first entry is home.initialized; our leaves follow it."""
    home = Home.init(tmp_path / "home", actor="tester")
    try:
        ledger = home.ledger
        assert ledger.size == 1
        first = ledger.entry(0)
        assert first.leaf_hash == verifier.leaf_hash(first.entry)
        assert ledger.head()[1] == first.leaf_hash  # MTH of a single leaf is the leaf hash
        ledger.append_batch([raw_entry(leaf) for leaf in LEAVES])
        hashes = [first.leaf_hash] + [verifier.leaf_hash(leaf) for leaf in LEAVES]
        for n in range(1, 10):
            assert ledger.root_at(n) == naive_root(hashes[:n]), f"root_at({n})"
        # The checkpoint the home signs carries the same root, under the home's own key.
        checkpoint = verifier.verify_checkpoint(home.checkpoint(), home.verifier_key)
        assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (home.config.origin, 9, naive_root(hashes))
    finally:
        home.close()


def test_no_last_node_duplication_or_promotion():
    """The forbidden Bitcoin-style variants give different roots for odd sizes."""
    h = [verifier.leaf_hash(leaf) for leaf in LEAVES[:3]]
    duplicated = verifier.node_hash(verifier.node_hash(h[0], h[1]), verifier.node_hash(h[2], h[2]))
    assert ROOTS[2] != duplicated
    assert ROOTS[2] == verifier.node_hash(verifier.node_hash(h[0], h[1]), h[2])
