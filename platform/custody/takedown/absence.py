"""Proofs that a record is *not* in a dataset version: a Merkle tree over its sorted record digests.

The leaves are the version's distinct record text SHA-256s in ascending order, hashed as RFC 9162
leaves, so the tree and its root are the ones `custody.ledger.verifier` already checks. A digest
is absent when two adjacent leaves straddle it (or the first leaf is above it, or the last below
it), each shown by an inclusion proof to the root that the takedown entry records. Anyone holding
the version can recompute the root from its records; the proof needs nothing but itself and that
root.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from custody.ledger.merkle import NodeId, fold, hash_ranges, inclusion_ranges, perfect_nodes
from custody.ledger.verifier import EMPTY_ROOT, ProofError, leaf_hash, node_hash, verify_inclusion


class DigestTree:
    """The sorted-digest tree of one dataset version, every perfect node kept (O(n) hashes)."""

    def __init__(self, digests: Iterable[str]) -> None:
        self.digests = sorted(set(digests))
        level = [leaf_hash(bytes.fromhex(d)) for d in self.digests]
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)

    @classmethod
    def unpack(cls, data: bytes) -> DigestTree:
        """A tree from `packed()` bytes."""
        if len(data) % 32:
            raise ValueError("a packed digest list is a multiple of 32 bytes")
        return cls(data[i : i + 32].hex() for i in range(0, len(data), 32))

    def packed(self) -> bytes:
        """The sorted digests, 32 bytes each: what the tree is rebuilt from."""
        return b"".join(bytes.fromhex(d) for d in self.digests)

    @property
    def size(self) -> int:
        return len(self.digests)

    def _fetch(self, nodes: Iterable[NodeId]) -> dict[NodeId, bytes]:
        return {(lvl, i): self.levels[lvl][i] for lvl, i in nodes}

    def root(self) -> str:
        if not self.digests:
            return EMPTY_ROOT.hex()
        return fold([self.levels[lvl][i] for lvl, i in perfect_nodes(0, self.size)]).hex()

    def _leaf(self, index: int) -> dict[str, Any]:
        proof = hash_ranges(inclusion_ranges(index, self.size), self._fetch)
        return {"index": index, "digest": self.digests[index], "proof": [p.hex() for p in proof]}

    def absence(self, digest: str) -> dict[str, Any]:
        """The proof that `digest` is not a leaf (ValueError when it is one)."""
        import bisect

        at = bisect.bisect_left(self.digests, digest)
        if at < self.size and self.digests[at] == digest:
            raise ValueError(f"record {digest} is in this version")
        return {
            "digest": digest,
            "left": self._leaf(at - 1) if at > 0 else None,
            "right": self._leaf(at) if at < self.size else None,
        }


@dataclass(frozen=True)
class Absent:
    digest: str
    between: tuple[str | None, str | None]  # the neighbouring leaves' digests


def _leaf_in(item: Any, size: int, root: bytes, side: str) -> tuple[int, str]:
    if not isinstance(item, dict):
        raise ProofError(f"{side} neighbour is not an object")
    index, digest, proof = item.get("index"), item.get("digest"), item.get("proof")
    if not isinstance(index, int) or not isinstance(digest, str) or not isinstance(proof, list):
        raise ProofError(f"{side} neighbour needs index, digest and proof")
    try:
        leaf = leaf_hash(bytes.fromhex(digest))
        path = [bytes.fromhex(p) for p in proof]
    except (ValueError, TypeError) as exc:
        raise ProofError(f"{side} neighbour: not hexadecimal ({exc})") from None
    verify_inclusion(index, size, leaf, path, root)
    return index, digest


def verify_absence(proof: Any, root_hex: str, size: int) -> Absent:
    """Check one absence proof against a version's recorded root and leaf count; ProofError if it fails."""
    if not isinstance(proof, dict) or not isinstance(proof.get("digest"), str):
        raise ProofError("absence proof needs a digest")
    digest = proof["digest"]
    root = bytes.fromhex(root_hex)
    left, right = proof.get("left"), proof.get("right")
    if size == 0:
        if root != EMPTY_ROOT or left is not None or right is not None:
            raise ProofError("an empty version has the empty root and no neighbours")
        return Absent(digest, (None, None))
    lo = _leaf_in(left, size, root, "left") if left is not None else None
    hi = _leaf_in(right, size, root, "right") if right is not None else None
    if lo is None and hi is None:
        raise ProofError("absence proof has no neighbour")
    if lo is None and hi[0] != 0:
        raise ProofError("without a left neighbour the right one must be the first leaf")
    if hi is None and lo[0] != size - 1:
        raise ProofError("without a right neighbour the left one must be the last leaf")
    if lo is not None and hi is not None and hi[0] != lo[0] + 1:
        raise ProofError("the neighbours are not adjacent leaves")
    if (lo is not None and not lo[1] < digest) or (hi is not None and not digest < hi[1]):
        raise ProofError(f"record {digest} is not strictly between its neighbours: it may be in the version")
    return Absent(digest, (lo[1] if lo else None, hi[1] if hi else None))
