"""Property tests over a real ledger (ledger.md test 4).

Every inclusion and consistency proof the ledger produces verifies; any single bit flip in a
proof element, the leaf or a root fails; a changed index or size fails; a truncated, extended or
reordered proof fails (reordering equal elements is not a change, and must still verify).

The ledger is built once per module (distinct entries, so no two subtree hashes coincide).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custody.ledger import merkle, verifier
from custody.ledger.log import Ledger
from custody.ledger.storage import open_storage
from rfc6962 import raw_entry

SIZE = 300
EXAMPLES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    path = tmp_path_factory.mktemp("properties") / "ledger.sqlite"
    storage = open_storage(f"sqlite:///{path}", create=True)
    ledger = Ledger(storage, "test.example/properties")
    ledger.append_batch([raw_entry(f"entry {i}".encode()) for i in range(SIZE)])
    assert ledger.size == SIZE
    yield ledger
    storage.close()


# --- helpers -----------------------------------------------------------------------------------


def flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def rejects(check, *args) -> verifier.VerificationError:
    with pytest.raises(verifier.VerificationError) as info:
        check(*args)
    return info.value


def inclusion(tree: Ledger, index: int, size: int) -> tuple[bytes, list[bytes], bytes]:
    leaf = tree.entry(index).leaf_hash
    proof = tree.inclusion_proof(index, size)
    root = tree.root_at(size)
    verifier.verify_inclusion(index, size, leaf, proof, root)  # the unmodified proof is good
    return leaf, proof, root


def consistency(tree: Ledger, size1: int, size2: int) -> tuple[bytes, bytes, list[bytes]]:
    root1, root2 = tree.root_at(size1), tree.root_at(size2)
    proof = tree.consistency_proof(size1, size2)
    verifier.verify_consistency(size1, size2, root1, root2, proof)
    return root1, root2, proof


@st.composite
def inclusion_cases(draw) -> tuple[int, int]:
    size = draw(st.integers(1, SIZE))
    index = draw(st.integers(0, size - 1))
    return index, size


@st.composite
def consistency_cases(draw) -> tuple[int, int]:
    size2 = draw(st.integers(1, SIZE))
    size1 = draw(st.integers(1, size2))
    return size1, size2


@st.composite
def nonempty_inclusion_cases(draw) -> tuple[int, int]:
    size = draw(st.integers(2, SIZE))  # size 1 has an empty proof
    return draw(st.integers(0, size - 1)), size


@st.composite
def proper_consistency_cases(draw) -> tuple[int, int]:
    size2 = draw(st.integers(2, SIZE))  # size1 < size2: the proof is not empty
    return draw(st.integers(1, size2 - 1)), size2


def extra_elements():
    return st.one_of(
        st.binary(min_size=32, max_size=32),
        st.sampled_from(["copy", "leaf", "root", "zero"]),
    )


# --- inclusion ---------------------------------------------------------------------------------


@EXAMPLES
@given(case=inclusion_cases())
def test_inclusion_proofs_verify(tree, case):
    index, size = case
    leaf, proof, root = inclusion(tree, index, size)
    assert len(proof) == len(merkle.inclusion_ranges(index, size))
    assert verifier.root_from_inclusion_proof(index, size, leaf, proof) == root


def test_every_inclusion_proof_of_small_trees_verifies(tree):
    for size in range(1, 40):
        for index in range(size):
            inclusion(tree, index, size)


@EXAMPLES
@given(case=inclusion_cases(), data=st.data())
def test_inclusion_bit_flip_fails(tree, case, data):
    index, size = case
    leaf, proof, root = inclusion(tree, index, size)
    target = data.draw(st.integers(-2, len(proof) - 1), label="target (-2 leaf, -1 root, else proof[i])")
    bit = data.draw(st.integers(0, 255), label="bit")
    if target == -2:
        rejects(verifier.verify_inclusion, index, size, flip(leaf, bit), proof, root)
    elif target == -1:
        rejects(verifier.verify_inclusion, index, size, leaf, proof, flip(root, bit))
    else:
        bad = list(proof)
        bad[target] = flip(bad[target], bit)
        rejects(verifier.verify_inclusion, index, size, leaf, bad, root)


@EXAMPLES
@given(case=inclusion_cases(), data=st.data())
def test_inclusion_changed_index_fails(tree, case, data):
    index, size = case
    leaf, proof, root = inclusion(tree, index, size)
    other = data.draw(st.integers(-3, size + 3).filter(lambda i: i != index), label="other index")
    rejects(verifier.verify_inclusion, other, size, leaf, proof, root)


@EXAMPLES
@given(case=inclusion_cases(), data=st.data())
def test_inclusion_changed_size_fails(tree, case, data):
    """The proof for (index, size) does not prove index in the tree of another size."""
    index, size = case
    leaf, proof, _ = inclusion(tree, index, size)
    other = data.draw(st.integers(-1, SIZE).filter(lambda n: n != size), label="other size")
    other_root = tree.root_at(other) if other >= 0 else verifier.EMPTY_ROOT
    if 0 <= index < other and merkle.inclusion_ranges(index, other) == merkle.inclusion_ranges(index, size):
        verifier.verify_inclusion(index, other, leaf, proof, other_root)  # the same proof: not a change
    else:
        rejects(verifier.verify_inclusion, index, other, leaf, proof, other_root)


def test_size_is_bound_by_the_checkpoint_not_by_the_proof(tree):
    """A documented RFC 9162 property, not a defect: the verifier reads the size only for the
    proof's shape, so a proof can verify against the same root under another size with the same
    shape (0 in 3 and 0 in 4 both take two right siblings). The signed checkpoint binds size to
    root, which is why bundles check the checkpoint size."""
    leaf, proof, root3 = inclusion(tree, 0, 3)
    verifier.verify_inclusion(0, 4, leaf, proof, root3)
    rejects(verifier.verify_inclusion, 0, 4, leaf, proof, tree.root_at(4))
    rejects(verifier.verify_inclusion, 0, 5, leaf, proof, root3)  # a third step is needed at 5


@EXAMPLES
@given(case=nonempty_inclusion_cases(), data=st.data())
def test_inclusion_truncated_proof_fails(tree, case, data):
    index, size = case
    leaf, proof, root = inclusion(tree, index, size)
    if data.draw(st.booleans(), label="drop one element (else keep a prefix)"):
        gone = data.draw(st.integers(0, len(proof) - 1), label="dropped element")
        bad = proof[:gone] + proof[gone + 1 :]
    else:
        bad = proof[: data.draw(st.integers(0, len(proof) - 1), label="prefix length")]
    rejects(verifier.verify_inclusion, index, size, leaf, bad, root)


@EXAMPLES
@given(case=inclusion_cases(), extra=extra_elements(), data=st.data())
def test_inclusion_extended_proof_fails(tree, case, extra, data):
    index, size = case
    leaf, proof, root = inclusion(tree, index, size)
    if extra == "copy":
        extra = proof[data.draw(st.integers(0, len(proof) - 1))] if proof else leaf
    elif isinstance(extra, str):
        extra = {"leaf": leaf, "root": root, "zero": bytes(32)}[extra]
    where = data.draw(st.integers(0, len(proof)), label="insert position")
    rejects(verifier.verify_inclusion, index, size, leaf, [*proof[:where], extra, *proof[where:]], root)


@EXAMPLES
@given(case=nonempty_inclusion_cases(), data=st.data())
def test_inclusion_reordered_proof_fails(tree, case, data):
    index, size = case
    leaf, proof, root = inclusion(tree, index, size)
    order = data.draw(st.permutations(range(len(proof))), label="order")
    shuffled = [proof[i] for i in order]
    if shuffled == proof:  # identity, or only equal elements swapped: not a change
        verifier.verify_inclusion(index, size, leaf, shuffled, root)
    else:
        rejects(verifier.verify_inclusion, index, size, leaf, shuffled, root)


def test_reordering_equal_elements_is_not_a_change():
    """With a repeated value, swapping the two copies leaves the proof (and the verdict) alone."""
    leaf = verifier.leaf_hash(b"x")
    proof = [leaf, verifier.node_hash(leaf, leaf)]  # the tree x, x, x, x; index 0
    root = verifier.node_hash(verifier.node_hash(leaf, leaf), verifier.node_hash(leaf, leaf))
    verifier.verify_inclusion(0, 4, leaf, proof, root)
    verifier.verify_inclusion(3, 4, leaf, proof, root)  # every index holds the same leaf
    rejects(verifier.verify_inclusion, 0, 4, leaf, proof[::-1], root)


@EXAMPLES
@given(case=inclusion_cases(), data=st.data())
def test_inclusion_wrong_hash_lengths_are_malformed(tree, case, data):
    index, size = case
    leaf, proof, root = inclusion(tree, index, size)
    bad = data.draw(st.binary(max_size=70).filter(lambda b: len(b) != 32), label="bad hash")
    target = data.draw(st.integers(-2, len(proof) - 1), label="target")
    if target == -2:
        args = (index, size, bad, proof, root)
    elif target == -1:
        args = (index, size, leaf, proof, bad)
    else:
        args = (index, size, leaf, [*proof[:target], bad, *proof[target + 1 :]], root)
    error = rejects(verifier.verify_inclusion, *args)
    assert isinstance(error, verifier.MalformedInput)


# --- consistency -------------------------------------------------------------------------------


@EXAMPLES
@given(case=consistency_cases())
def test_consistency_proofs_verify(tree, case):
    size1, size2 = case
    _, _, proof = consistency(tree, size1, size2)
    assert len(proof) == len(merkle.consistency_ranges(size1, size2))
    assert (proof == []) == (size1 == size2)


def test_every_consistency_proof_of_small_trees_verifies(tree):
    for size2 in range(1, 40):
        for size1 in range(1, size2 + 1):
            consistency(tree, size1, size2)


@EXAMPLES
@given(case=consistency_cases(), data=st.data())
def test_consistency_bit_flip_fails(tree, case, data):
    size1, size2 = case
    root1, root2, proof = consistency(tree, size1, size2)
    target = data.draw(st.integers(-2, len(proof) - 1), label="target (-2 root1, -1 root2, else proof[i])")
    bit = data.draw(st.integers(0, 255), label="bit")
    if target == -2:
        rejects(verifier.verify_consistency, size1, size2, flip(root1, bit), root2, proof)
    elif target == -1:
        rejects(verifier.verify_consistency, size1, size2, root1, flip(root2, bit), proof)
    else:
        bad = list(proof)
        bad[target] = flip(bad[target], bit)
        rejects(verifier.verify_consistency, size1, size2, root1, root2, bad)


@EXAMPLES
@given(case=consistency_cases(), data=st.data())
def test_consistency_changed_size_fails(tree, case, data):
    size1, size2 = case
    _, _, proof = consistency(tree, size1, size2)
    if data.draw(st.booleans(), label="change size1 (else size2)"):
        new1 = data.draw(st.integers(-1, size2 + 1).filter(lambda n: n != size1), label="size1")
        new2 = size2
    else:
        new1 = size1
        new2 = data.draw(st.integers(size1 - 1, SIZE).filter(lambda n: n != size2), label="size2")
    root1 = tree.root_at(new1) if 0 <= new1 <= SIZE else verifier.EMPTY_ROOT
    root2 = tree.root_at(new2) if 0 <= new2 <= SIZE else verifier.EMPTY_ROOT
    if 0 < new1 <= new2 and merkle.consistency_ranges(new1, new2) == merkle.consistency_ranges(size1, size2):
        verifier.verify_consistency(new1, new2, root1, root2, proof)  # the same proof: not a change
    else:
        rejects(verifier.verify_consistency, new1, new2, root1, root2, proof)


@EXAMPLES
@given(case=consistency_cases(), data=st.data())
def test_consistency_roots_of_other_sizes_fail(tree, case, data):
    size1, size2 = case
    root1, root2, proof = consistency(tree, size1, size2)
    other = data.draw(st.integers(0, SIZE), label="other size")
    if other != size1:
        rejects(verifier.verify_consistency, size1, size2, tree.root_at(other), root2, proof)
    if other != size2:
        rejects(verifier.verify_consistency, size1, size2, root1, tree.root_at(other), proof)
    if size1 != size2:
        rejects(verifier.verify_consistency, size1, size2, root2, root1, proof)


@EXAMPLES
@given(case=proper_consistency_cases(), data=st.data())
def test_consistency_truncated_proof_fails(tree, case, data):
    size1, size2 = case
    root1, root2, proof = consistency(tree, size1, size2)
    if data.draw(st.booleans(), label="drop one element (else keep a prefix)"):
        gone = data.draw(st.integers(0, len(proof) - 1), label="dropped element")
        bad = proof[:gone] + proof[gone + 1 :]
    else:
        bad = proof[: data.draw(st.integers(0, len(proof) - 1), label="prefix length")]
    rejects(verifier.verify_consistency, size1, size2, root1, root2, bad)


@EXAMPLES
@given(case=consistency_cases(), extra=extra_elements(), data=st.data())
def test_consistency_extended_proof_fails(tree, case, extra, data):
    size1, size2 = case
    root1, root2, proof = consistency(tree, size1, size2)
    if extra == "copy":
        extra = proof[data.draw(st.integers(0, len(proof) - 1))] if proof else root1
    elif isinstance(extra, str):
        extra = {"leaf": tree.entry(size1 - 1).leaf_hash, "root": root1, "zero": bytes(32)}[extra]
    where = data.draw(st.integers(0, len(proof)), label="insert position")
    rejects(verifier.verify_consistency, size1, size2, root1, root2, [*proof[:where], extra, *proof[where:]])


@EXAMPLES
@given(case=proper_consistency_cases(), data=st.data())
def test_consistency_reordered_proof_fails(tree, case, data):
    size1, size2 = case
    root1, root2, proof = consistency(tree, size1, size2)
    order = data.draw(st.permutations(range(len(proof))), label="order")
    shuffled = [proof[i] for i in order]
    if shuffled == proof:
        verifier.verify_consistency(size1, size2, root1, root2, shuffled)
    else:
        rejects(verifier.verify_consistency, size1, size2, root1, root2, shuffled)


@EXAMPLES
@given(case=proper_consistency_cases(), data=st.data())
def test_consistency_wrong_hash_lengths_are_malformed(tree, case, data):
    size1, size2 = case
    root1, root2, proof = consistency(tree, size1, size2)
    bad = data.draw(st.binary(max_size=70).filter(lambda b: len(b) != 32), label="bad hash")
    target = data.draw(st.integers(-2, len(proof) - 1), label="target (-2 root1, -1 root2, else proof[i])")
    if target == -2:
        args = (size1, size2, bad, root2, proof)
    elif target == -1:
        args = (size1, size2, root1, bad, proof)
    else:
        args = (size1, size2, root1, root2, [*proof[:target], bad, *proof[target + 1 :]])
    error = rejects(verifier.verify_consistency, *args)
    assert isinstance(error, verifier.MalformedInput)


def test_consistency_equal_sizes_refuse_any_proof_element(tree):
    root = tree.root_at(7)
    verifier.verify_consistency(7, 7, root, root, [])
    for extra in (root, bytes(32), b"short"):
        rejects(verifier.verify_consistency, 7, 7, root, root, [extra])


def test_proof_elements_are_bytes_not_text(tree):
    """A hex or base64 string in place of a hash is malformed, never silently hashed."""
    leaf, proof, root = inclusion(tree, 5, 10)
    error = rejects(verifier.verify_inclusion, 5, 10, leaf, [p.hex() for p in proof], root)
    assert isinstance(error, verifier.MalformedInput)
    error = rejects(verifier.verify_inclusion, 5, 10, leaf.hex(), proof, root)
    assert isinstance(error, verifier.MalformedInput)
