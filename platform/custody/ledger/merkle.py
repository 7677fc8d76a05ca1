"""Merkle tree arithmetic for the prover side: which stored subtrees a root or proof needs.

A tree is stored as write-once hashes of *perfect* subtrees, addressed `(level, index)`: the
node covering leaves `[index << level, (index + 1) << level)`. Every RFC 9162 subtree hash
`MTH(D[lo:hi])` decomposes into a left-to-right run of perfect nodes folded from the right, so
roots and proofs need O(log n) stored hashes and no recomputation. Plans (which nodes) are
separated from fetching, so a backend answers a whole proof with one query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from hashlib import sha256 as _sha256

from custody.ledger.verifier import EMPTY_ROOT, node_hash

NodeId = tuple[int, int]  # (level, index at that level)
Range = tuple[int, int]  # leaves [lo, hi)
FetchNodes = Callable[[Iterable[NodeId]], dict[NodeId, bytes]]


def split_point(n: int) -> int:
    """The largest power of two strictly below n (n > 1), where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_nodes(lo: int, hi: int) -> list[NodeId]:
    """Decompose `[lo, hi)` (a subtree of the RFC recursion) into perfect nodes, left to right."""
    nodes = []
    while lo < hi:
        width = 1 << ((hi - lo).bit_length() - 1)
        while lo % width:  # only reached for ranges the RFC recursion never produces
            width >>= 1
        level = width.bit_length() - 1
        nodes.append((level, lo >> level))
        lo += width
    return nodes


def fold(hashes: list[bytes]) -> bytes:
    """Combine a left-to-right run of perfect subtree hashes into their MTH."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """RFC 9162 PATH(m, D[0:n]) as the subtree ranges whose hashes form the proof, in order."""
    ranges, lo, hi = [], 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[Range]:
    """RFC 9162 PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true) as subtree ranges, in order."""
    ranges, lo, hi, whole = [], 0, size2, True
    while True:
        if size1 - lo == hi - lo:
            if not whole:
                ranges.append((lo, hi))
            break
        k = split_point(hi - lo)
        if size1 - lo <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            whole = False
    ranges.reverse()
    return ranges


def hash_ranges(ranges: list[Range], fetch: FetchNodes) -> list[bytes]:
    """Hash each range with one fetch of all the perfect nodes they need."""
    plans = [perfect_nodes(lo, hi) for lo, hi in ranges]
    stored = fetch({node for plan in plans for node in plan})
    missing = [node for plan in plans for node in plan if node not in stored]
    if missing:
        raise KeyError(f"stored tree lacks node {missing[0]}")
    return [fold([stored[node] for node in plan]) for plan in plans]


class RightEdge:
    """The perfect subtrees covering `[0, size)`: enough to append leaves and compute the root."""

    def __init__(self, size: int = 0, hashes: list[bytes] | None = None) -> None:
        self.size = size
        self.nodes: list[tuple[int, int, bytes]] = []
        if size:
            ids = perfect_nodes(0, size)
            if hashes is None or len(hashes) != len(ids):
                raise ValueError("right edge needs one hash per perfect node")
            self.nodes = [(level, idx, h) for (level, idx), h in zip(ids, hashes, strict=True)]

    def append(
        self, leaf: bytes, completed: list[tuple[int, int, bytes]] | None = None
    ) -> list[tuple[int, int, bytes]]:
        """Add the next leaf; return the interior nodes it completes (level >= 1), added to
        `completed` when given. This is the hot loop of every append, hence the local names."""
        if completed is None:
            completed = []
        nodes = self.nodes
        index = self.size
        self.size = index + 1
        level, right = 0, leaf
        # Leaf `index` completes one parent per trailing 1-bit of its index.
        while index & 1:
            left = nodes.pop()[2]
            level += 1
            index >>= 1
            right = _sha256(b"\x01" + left + right).digest()
            completed.append((level, index, right))
        nodes.append((level, index, right))
        return completed

    def root(self) -> bytes:
        return fold([h for _, _, h in self.nodes])

    def copy(self) -> RightEdge:
        clone = RightEdge()
        clone.size, clone.nodes = self.size, list(self.nodes)
        return clone
