"""The ledger: an append-only Merkle log over a storage backend (RFC 9162 §2.1).

One writer at a time appends under the backend's lock; entries, the interior nodes they
complete and the new head commit in one transaction. On open the right edge of the tree is
rebuilt from stored nodes and cross-checked against the head and the last signed checkpoint;
on a mismatch the ledger refuses writes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from custody.ledger import merkle
from custody.ledger.entry import Entry, EntryError
from custody.ledger.signing import NoteSigner
from custody.ledger.storage import EntryRow, Storage, StorageError
from custody.ledger.verifier import (
    PROOF_FORMAT,
    Checkpoint,
    CosignerKey,
    ForkError,
    VerificationError,
    VerifierKey,
    leaf_hash,
    node_hash,
    parse_checkpoint_body,
    parse_signed_note,
    verify_checkpoint,
    verify_consistency,
    verify_cosignature,
)

Admit = Callable[[Sequence[Entry], int], None]


class LedgerCorrupted(Exception):
    """The stored tree does not match its head or checkpoints: writes are refused."""


class LedgerRangeError(ValueError):
    """An index or size outside the ledger."""


@dataclass
class VerifyReport:
    size: int
    root: bytes
    checkpoints_checked: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)  # (first bad index, what)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_index(self) -> int | None:
        return min(idx for idx, _ in self.problems) if self.problems else None

    def first_problem(self) -> str:
        idx, what = min(self.problems)
        return f"first bad index {idx}: {what}"


class Ledger:
    def __init__(self, storage: Storage, origin: str) -> None:
        self.storage = storage
        self.origin = origin
        self._edge: merkle.RightEdge | None = None
        self._edge_root = b""  # the root of self._edge, so appends need not refold it
        self.corruption = self.cross_check()

    # -- reading ----------------------------------------------------------------------------
    def head(self) -> tuple[int, bytes]:
        return self.storage.head()

    @property
    def size(self) -> int:
        return self.storage.head()[0]

    def root_at(self, size: int) -> bytes:
        self._check_size(size)
        return merkle.hash_ranges([(0, size)], self.storage.fetch_nodes)[0] if size else merkle.fold([])

    def entry(self, index: int) -> EntryRow:
        row = self.storage.entry(index)
        if row is None or index >= self.size:
            raise LedgerRangeError(f"no entry at index {index} (ledger size {self.size})")
        return row

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise LedgerRangeError(f"index {index} is not below tree size {size}")
        return merkle.hash_ranges(merkle.inclusion_ranges(index, size), self.storage.fetch_nodes)

    def anchored_entry(self, index: int, size: int) -> dict:
        """An entry's exact bytes with its inclusion proof to the tree of `size`, for offline
        verification (`verifier.verify_anchored_entry`)."""
        row = self.entry(index)
        return {
            "index": index,
            # Verbatim: canonical JSON is UTF-8 text, so the JSON string holds the exact bytes hashed.
            "entry": row.entry.decode("utf-8"),
            "leaf_hash": row.leaf_hash.hex(),
            "proof": [p.hex() for p in self.inclusion_proof(index, size)],
        }

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        size2 = self.size if size2 is None else size2
        self._check_size(size2)
        if not 0 < size1 <= size2:
            raise LedgerRangeError(f"consistency needs 0 < size1 <= size2, got {size1} and {size2}")
        return merkle.hash_ranges(merkle.consistency_ranges(size1, size2), self.storage.fetch_nodes)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise LedgerRangeError(f"size {size} is beyond the ledger (size {self.size})")

    # -- startup cross-check ----------------------------------------------------------------
    def cross_check(self) -> str | None:
        """Rebuild the right edge from stored nodes; compare with the head and last checkpoint."""
        # One snapshot: another writer committing between two reads is not a mismatch.
        with self.storage.read_snapshot():
            return self._cross_check()

    def _cross_check(self) -> str | None:
        size, root = self.storage.head()
        if self.storage.max_index() + 1 != size:
            return f"head says {size} entries but the last stored index is {self.storage.max_index()}"
        try:
            edge = self._load_edge(size)
        except KeyError as exc:
            return f"stored tree is incomplete: {exc}"
        if edge.root() != root:
            return "stored nodes do not fold to the head root"
        last = self.storage.last_checkpoint()
        if last is not None:
            cp_size, cp_root, note = last
            if cp_size > size:
                return f"ledger has {size} entries but a checkpoint was signed at size {cp_size}"
            try:
                body = parse_checkpoint_body(parse_signed_note(note).text)
            except VerificationError as exc:
                return f"last checkpoint is malformed: {exc}"
            if (body.size, body.root) != (cp_size, cp_root) or self.root_at(cp_size) != cp_root:
                return f"stored tree does not match the checkpoint at size {cp_size}"
        self._edge, self._edge_root = edge, root
        return None

    def _load_edge(self, size: int) -> merkle.RightEdge:
        ids = merkle.perfect_nodes(0, size)
        stored = self.storage.fetch_nodes(ids)
        if len(stored) != len(ids):
            raise KeyError(next(node for node in ids if node not in stored))
        return merkle.RightEdge(size, [stored[node] for node in ids])

    # -- writing ----------------------------------------------------------------------------
    def append(self, entry: Entry) -> int:
        return self.append_batch([entry])[0]

    def append_batch(self, entries: Sequence[Entry], admit: Admit | None = None) -> list[int]:
        """Append entries in one transaction; return their indices.

        `admit(entries, size)` runs under the writer lock before anything is written, with the
        size the first entry will get; it raises to refuse the batch (nothing is written)."""
        if self.corruption:
            raise LedgerCorrupted(f"ledger refuses writes: {self.corruption}")
        if not entries:
            return []
        for entry in entries:
            if not isinstance(entry, Entry):
                raise EntryError("append takes entries built by make_entry")
        with self.storage.write_transaction() as (size, root):
            if admit is not None:
                admit(entries, size)
            if self._edge is not None and self._edge.size == size and self._edge_root == root:
                edge = self._edge.copy()
            else:  # another writer appended since we last looked
                edge = self._load_edge(size)
                if edge.root() != root:
                    self.corruption = "stored nodes do not fold to the head root"
                    raise LedgerCorrupted(f"ledger refuses writes: {self.corruption}")
            rows: list[tuple] = []
            nodes: list[tuple[int, int, bytes]] = []
            for entry in entries:
                leaf = leaf_hash(entry.raw)
                rows.append((edge.size, entry.raw, leaf, entry.type, entry.ts, entry.actor, entry.subject))
                edge.append(leaf, nodes)
            self.storage.insert_entries(rows)
            self.storage.insert_nodes(nodes)
            new_root = edge.root()
            self.storage.set_head(edge.size, new_root)
        self._edge, self._edge_root = edge, new_root
        return list(range(size, edge.size))

    # -- checkpoints ------------------------------------------------------------------------
    def sign_checkpoint(self, signer: NoteSigner, remembered: str | None = None) -> str:
        """Sign the current head, after proving it extends the last signed checkpoint and
        `remembered` (a checkpoint kept outside the database, e.g. the home's witness file)."""
        if self.corruption:
            raise LedgerCorrupted(f"ledger refuses to sign: {self.corruption}")
        if signer.name != self.origin:
            raise VerificationError(f"signing key is for {signer.name!r}, not this ledger ({self.origin!r})")
        with self.storage.write_transaction() as (size, root):
            existing = self.storage.checkpoint_at(size)
            if existing is not None and existing[1] == root:
                return existing[2]
            last = self.storage.last_checkpoint()
            for old_note in [n for n in (last[2] if last else None, remembered) if n is not None]:
                old = verify_checkpoint(old_note, signer.verifier_key)
                if old.size > size:
                    raise ForkError(
                        f"head (size {size}) is behind the checkpoint signed at size {old.size}: "
                        "the log was rolled back"
                    )
                if old.size > 0:
                    try:
                        verify_consistency(old.size, size, old.root, root, self.consistency_proof(old.size, size))
                    except VerificationError as exc:
                        raise ForkError(f"head does not extend the last checkpoint at size {old.size}: {exc}") from exc
            note = signer.sign(Checkpoint(self.origin, size, root).body())
            self.storage.insert_checkpoint(size, root, note)
        return note

    def latest_checkpoint(self) -> str | None:
        last = self.storage.last_checkpoint()
        return last[2] if last else None

    # -- witness cosignatures ---------------------------------------------------------------
    def add_cosignature(self, size: int, key: CosignerKey, line: str) -> None:
        """Keep a witness's cosignature line for the checkpoint signed at `size`, once it verifies
        with `key` (SignatureError otherwise). The first line per witness key and size is kept."""
        stored = self.storage.checkpoint_at(size)
        if stored is None:
            raise LedgerRangeError(f"no checkpoint was signed at size {size}")
        if not line.startswith("\u2014 ") or not line.endswith("\n") or line.count("\n") != 1:
            raise VerificationError("a cosignature must be one signature line")
        verify_cosignature(stored[2] + line, key)
        self.storage.insert_cosignature(size, key.name, key.key_id, line)

    def last_cosigned_size(self, key: CosignerKey) -> int:
        """The largest checkpoint size this witness key cosigned for this ledger (0: never)."""
        return self.storage.last_cosigned_size(key.name, key.key_id)

    def with_cosignatures(self, note: str) -> str:
        """`note` with the cosignature lines kept for its checkpoint appended: still a signed note."""
        text = parse_signed_note(note).text
        stored = self.storage.checkpoint_at(parse_checkpoint_body(text).size)
        if stored is None or parse_signed_note(stored[2]).text != text:
            return note  # not this ledger's checkpoint at that size: nothing of ours to add
        present = set(note.splitlines(keepends=True))
        return note + "".join(line for line in self.storage.cosignatures_at(stored[0]) if line not in present)

    def proof_checkpoint(self, index: int) -> str | None:
        """The checkpoint an exported proof of `index` should use: the newest cosigned one that
        covers it, else the newest signed one that covers it, else None (sign one first)."""
        cosigned = [size for size in self.storage.cosigned_sizes() if size > index]
        if cosigned:
            stored = self.storage.checkpoint_at(cosigned[-1])
            if stored is not None:
                return self.with_cosignatures(stored[2])
        last = self.storage.last_checkpoint()
        return last[2] if last is not None and last[0] > index else None

    def export_proof(self, index: int, note: str | None = None, signer: NoteSigner | None = None) -> dict:
        """Entry bytes, inclusion proof and a signed checkpoint (with the witness cosignatures kept
        for it): verifiable offline with the key."""
        if note is None:
            note = self.proof_checkpoint(index)
            if note is None and signer is not None:
                note = self.sign_checkpoint(signer)
            elif note is None:
                raise LedgerRangeError(f"no signed checkpoint covers index {index}; sign one first")
        note = self.with_cosignatures(note)
        checkpoint = parse_checkpoint_body(parse_signed_note(note).text)
        row = self.entry(index)
        proof = self.inclusion_proof(index, checkpoint.size)
        return {
            "format": PROOF_FORMAT,
            "origin": checkpoint.origin,
            "index": index,
            "tree_size": checkpoint.size,
            "entry": base64.b64encode(row.entry).decode(),
            "leaf_hash": row.leaf_hash.hex(),
            "proof": [base64.b64encode(p).decode() for p in proof],
            "checkpoint": note,
        }

    # -- full verification ------------------------------------------------------------------
    def verify(self, key: VerifierKey | None = None, remembered: str | None = None) -> VerifyReport:
        """Re-hash every stored entry, rebuild every node, and check head and checkpoints."""
        # One snapshot: entries committed by a writer while this runs are not beyond the head.
        with self.storage.read_snapshot():
            return self._verify(key, remembered)

    def _verify(self, key: VerifierKey | None, remembered: str | None) -> VerifyReport:
        size, head_root = self.storage.head()
        report = VerifyReport(size, head_root)
        problems = report.problems
        checkpoints = self.storage.checkpoints()
        anchors: list[tuple[int, bytes, str]] = []  # (size, expected root, what)
        for cp_size, cp_root, note in checkpoints:
            what = f"checkpoint at size {cp_size}"
            try:
                body = verify_checkpoint(note, key) if key else parse_checkpoint_body(parse_signed_note(note).text)
            except VerificationError as exc:
                problems.append((cp_size, f"{what}: {exc}"))
                continue
            if (body.size, body.root, body.origin) != (cp_size, cp_root, self.origin):
                problems.append((cp_size, f"{what}: stored size/root/origin differ from the signed note"))
                continue
            anchors.append((cp_size, body.root, what))
        if remembered is not None:
            try:
                body = (
                    verify_checkpoint(remembered, key)
                    if key
                    else parse_checkpoint_body(parse_signed_note(remembered).text)
                )
                anchors.append((body.size, body.root, f"remembered checkpoint at size {body.size}"))
            except VerificationError as exc:
                problems.append((0, f"remembered checkpoint: {exc}"))

        # Level 0: rehash the stored bytes; check contiguity and the copied envelope fields.
        tree_problems = len(problems)  # problems found in entries and nodes start here
        level: list[bytes] = []
        for row in self.storage.iter_entries():
            expected = len(level)
            if row.idx != expected:
                problems.append((expected, f"entry {expected} is missing (next stored index is {row.idx})"))
                break
            leaf = leaf_hash(row.entry)
            if leaf != row.leaf_hash:
                problems.append((row.idx, "entry bytes do not match their stored leaf hash"))
            else:
                problem = _envelope_mismatch(row)
                if problem:
                    problems.append((row.idx, problem))
            level.append(leaf)
        count = len(level)
        if count != size:
            problems.append((min(count, size), f"head says {size} entries but {count} are stored contiguously"))

        # Anchored roots: collect the perfect nodes each needs while building the levels.
        wanted = {
            (lvl, idx) for a_size, _, _ in anchors if a_size <= count for lvl, idx in merkle.perfect_nodes(0, a_size)
        }
        wanted.update(merkle.perfect_nodes(0, count))
        kept = {(0, idx): level[idx] for lvl, idx in wanted if lvl == 0}
        height = 0
        while len(level) > 1:
            parents = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            height += 1
            self._compare_level(height, parents, problems, count, tree_problems)
            kept.update({(height, idx): parents[idx] for lvl, idx in wanted if lvl == height})
            level = parents
        if (height + 1) <= self.storage.max_level():
            problems.append((count, f"nodes stored above the tree's height {height}"))

        def root_of(n: int) -> bytes:
            return merkle.fold([kept[node] for node in merkle.perfect_nodes(0, n)])

        if root_of(count) != head_root and count == size:
            problems.append((size, "head root does not match the entries"))
        for a_size, a_root, what in anchors:
            if a_size > count:
                problems.append(
                    (count, f"{what} is beyond the {count} stored entries: the ledger was truncated or rolled back")
                )
            elif root_of(a_size) != a_root:
                earlier = [s for s, r, _ in anchors if s < a_size and s <= count and root_of(s) == r]
                start = max(earlier, default=0)
                problems.append(
                    (
                        _blame(problems[tree_problems:], start, a_size),
                        f"{what} does not match the entries: history in [{start}, {a_size}) was rewritten",
                    )
                )
            else:
                report.checkpoints_checked += 1
        return report

    def _compare_level(
        self, level: int, computed: list[bytes], problems: list[tuple[int, str]], count: int, tree_problems: int
    ) -> None:
        expected = 0
        for idx, stored in self.storage.iter_level(level):
            if idx != expected:
                problems.append((expected << level, f"node ({level}, {expected}) is missing"))
                return
            if idx >= len(computed):
                problems.append(
                    (max(idx << level, count), f"node ({level}, {idx}) is stored but the entries do not complete it")
                )
                return
            if stored != computed[idx]:
                blamed = _blame(problems[tree_problems:], idx << level, (idx + 1) << level)
                problems.append(
                    (blamed, f"node ({level}, {idx}) does not match entries [{idx << level}, {(idx + 1) << level})")
                )
                return
            expected += 1
        if expected < len(computed):
            problems.append((expected << level, f"node ({level}, {expected}) is missing"))


_decode_json = json.JSONDecoder().decode


def _envelope_mismatch(row: EntryRow) -> str | None:
    """Why a stored entry is not a v1 envelope matching its indexed columns, or None.

    A lean check (no schema objects): it runs once per entry in a full verification.
    """
    try:
        doc = _decode_json(row.entry.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return f"entry is not a valid envelope: {exc}"
    if type(doc) is not dict or doc.get("v") not in (1, 2) or not isinstance(doc.get("body"), dict):
        return "entry is not a valid envelope"
    if (doc.get("type"), doc.get("ts"), doc.get("actor"), doc.get("subject")) != (
        row.type,
        row.ts,
        row.actor,
        row.subject,
    ):
        return "indexed columns differ from the entry bytes"
    return None


def _blame(problems: list[tuple[int, str]], lo: int, hi: int) -> int:
    """Where a mismatch over leaves [lo, hi) starts: a bad index already found there, else lo."""
    return min((idx for idx, _ in problems if lo <= idx < hi), default=lo)


def load_note(note: str) -> Checkpoint:
    return parse_checkpoint_body(parse_signed_note(note).text)


__all__ = ["Ledger", "LedgerCorrupted", "LedgerRangeError", "StorageError", "VerifyReport", "load_note"]
