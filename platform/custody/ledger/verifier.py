"""Standalone verifier for custody ledger proofs and checkpoints.

This module is what an auditor has to trust, so it is kept small and self-contained: it
depends on nothing but the standard library and `cryptography` (for Ed25519), and imports
nothing else from custody. It follows RFC 9162 §2.1 (Merkle hashing, inclusion and
consistency verification, literally, including the final `sn == 0` checks) and the C2SP
`tlog-checkpoint` and `signed-note` formats.

It also checks C2SP `tlog-cosignature/v1` witness cosignatures (Ed25519, key type 0x04) and
hand-over consistency proofs (`custody.consistency-proof/v1`).

Copy this file next to an exported proof (inclusion or consistency) and a verifier key, and the
proof can be checked offline with `python verifier.py PROOF.json VKEY [--witness-key WVKEY ...]`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
PROOF_FORMAT = "custody.inclusion-proof/v1"
CONSISTENCY_FORMAT = "custody.consistency-proof/v1"
# C2SP signed-note: Ed25519 signature type byte, and the signature line prefix (U+2014 + space).
ED25519_TYPE = 0x01
# C2SP tlog-cosignature/v1: timestamped Ed25519 witness cosignatures have their own type byte.
COSIGNATURE_TYPE = 0x04
COSIGNATURE_HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = (1 << 63) - 1
SIGNATURE_PREFIX = "\u2014 "
MAX_NOTE_BYTES = 1 << 20


class VerificationError(Exception):
    """Base class: the input is well-formed enough to check, and the check failed."""


class MalformedInput(VerificationError):
    """The input could not be parsed (bad base64, wrong lengths, missing fields)."""


class ProofError(VerificationError):
    """A Merkle proof did not verify."""


class CheckpointError(MalformedInput):
    """A checkpoint body or signed note is malformed."""


class SignatureError(VerificationError):
    """No valid signature by the expected key."""


class ForkError(VerificationError):
    """Two checkpoints cannot both be views of one append-only log."""


# --- RFC 9162 §2.1.1 hashing ---------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise MalformedInput(f"{what} must be {HASH_SIZE} bytes")


# --- RFC 9162 §2.1.3.2 inclusion -----------------------------------------------------------


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    if size <= 0:
        raise ProofError("a tree of size 0 has no inclusion proofs")
    if index < 0 or index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    _check_hash(leaf, "leaf hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    """Raise ProofError unless `proof` shows `leaf` at `index` in the tree of `size` and `root`."""
    _check_hash(root, "root")
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError("inclusion proof does not lead to the expected root")


# --- RFC 9162 §2.1.4.2 consistency ---------------------------------------------------------


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]) -> None:
    """Raise ProofError unless the tree (size2, root2) extends the tree (size1, root1)."""
    if size1 < 0 or size2 < size1:
        raise ProofError(f"size1 {size1} must be between 0 and size2 {size2}")
    if size1 == 0:
        raise ProofError("a tree of size 0 has no consistency proofs")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
    if size1 == size2:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if root1 != root2:
            raise ProofError("equal sizes but different roots")
        return
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != root1:
        raise ProofError("consistency proof does not lead to the first root")
    if sr != root2:
        raise ProofError("consistency proof does not lead to the second root")


# --- C2SP signed notes and checkpoints -----------------------------------------------------


def key_id(name: str, public_key: bytes, signature_type: int = ED25519_TYPE) -> bytes:
    """C2SP signed-note key ID: SHA-256(name || "\n" || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()[:4]


def vkey_text(name: str, key_id_: bytes, signature_type: int, public_key: bytes) -> str:
    """A verifier key as signed-note writes it: `<name>+<hex key id>+<base64(type || key)>`."""
    return f"{name}+{key_id_.hex()}+{base64.b64encode(bytes([signature_type]) + public_key).decode()}"


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: bytes

    def __str__(self) -> str:
        return vkey_text(self.name, self.key_id, ED25519_TYPE, self.public_key)


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedInput(f"{what} is not valid base64") from exc


def _valid_key_name(name: str) -> bool:
    return bool(name) and "+" not in name and all(c > " " and not "\ud800" <= c <= "\udfff" for c in name)


def valid_key_name(name: str) -> bool:
    """A C2SP key name: non-empty, no spaces, no '+', no control characters."""
    return _valid_key_name(name)


def _parse_vkey(text: str, key_type: int, what: str) -> tuple[str, bytes, bytes]:
    """Split `<name>+<hex key id>+<base64(type || Ed25519 public key)>` into name, id, public key."""
    parts = text.strip().split("+", 2)  # base64 may itself contain "+"
    if len(parts) != 3 or not _valid_key_name(parts[0]):
        raise MalformedInput(f"{what} must look like NAME+KEYID+KEY")
    name, hex_id, b64_key = parts
    try:
        kid = bytes.fromhex(hex_id)
    except ValueError as exc:
        raise MalformedInput(f"{what} id is not hex") from exc
    raw = _b64decode(b64_key, what)
    if len(hex_id) != 8 or hex_id != hex_id.lower() or len(kid) != 4 or len(raw) != 33 or raw[0] != key_type:
        kind = "an Ed25519 key" if key_type == ED25519_TYPE else "an Ed25519 cosignature key (type 0x04)"
        raise MalformedInput(f"{what} is not {kind}")
    return name, kid, raw[1:]


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse a C2SP verifier key `<name>+<hex key id>+<base64(0x01 || public key)>`."""
    name, kid, public = _parse_vkey(text, ED25519_TYPE, "verifier key")
    if key_id(name, public) != kid:
        raise MalformedInput("verifier key id does not match its name and key")
    return VerifierKey(name, kid, public)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "\n".join(lines) + "\n"


def parse_checkpoint_body(body: str) -> Checkpoint:
    if not body.endswith("\n"):
        raise CheckpointError("checkpoint body must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint body needs origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    if not origin or any(not line for line in extensions):
        raise CheckpointError("checkpoint has an empty line in its body")
    if not size_text.isascii() or not size_text.isdigit() or (size_text != "0" and size_text[0] == "0"):
        raise CheckpointError("checkpoint size is not a decimal number")
    if len(size_text) > 20 or int(size_text) >= 1 << 64:
        raise CheckpointError("checkpoint size is out of range")
    root = _b64decode(root_text, "checkpoint root")
    if len(root) != HASH_SIZE:
        raise CheckpointError("checkpoint root is not 32 bytes")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


@dataclass(frozen=True)
class SignedNote:
    text: str
    signatures: tuple[tuple[str, bytes, bytes], ...]  # (name, key id, signature)


def parse_signed_note(note: str | bytes) -> SignedNote:
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise CheckpointError("signed note is too large")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError("signed note is not UTF-8") from exc
    if len(note) > MAX_NOTE_BYTES:
        raise CheckpointError("signed note is too large")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CheckpointError("signed note is not valid UTF-8 text") from exc
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise CheckpointError("signed note has no signature block")
    text, block = note[: cut + 1], note[cut + 2 :]
    signatures = []
    for line in block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError("signature line must start with an em dash and a space")
        fields = line[len(SIGNATURE_PREFIX) :].split(" ")
        if len(fields) != 2 or not _valid_key_name(fields[0]):
            raise CheckpointError("signature line must be '— NAME SIGNATURE'")
        raw = _b64decode(fields[1], "note signature")
        if len(raw) < 5:
            raise CheckpointError("note signature is too short")
        signatures.append((fields[0], raw[:4], raw[4:]))
    if not signatures:
        raise CheckpointError("signed note has no signatures")
    return SignedNote(text, tuple(signatures))


def verify_note(note: str | bytes, key: VerifierKey) -> str:
    """Return the note's text when it carries a valid signature by `key`."""
    parsed = parse_signed_note(note)
    public = Ed25519PublicKey.from_public_bytes(key.public_key)
    for name, kid, signature in parsed.signatures:
        if name == key.name and kid == key.key_id:
            try:
                public.verify(signature, parsed.text.encode())
            except InvalidSignature as exc:
                raise SignatureError(f"signature by {key.name} does not verify") from exc
            return parsed.text
    raise SignatureError(f"note carries no signature by key {key.name}+{key.key_id.hex()}")


def verify_checkpoint(note: str | bytes, key: VerifierKey) -> Checkpoint:
    """Verify a signed checkpoint note and return its body; its origin must be the key's name."""
    checkpoint = parse_checkpoint_body(verify_note(note, key))
    if checkpoint.origin != key.name:
        raise CheckpointError(f"checkpoint origin {checkpoint.origin!r} is not this log ({key.name!r})")
    return checkpoint


# --- C2SP tlog-cosignature/v1 (witness cosignatures) ----------------------------------------


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    return key_id(name, public_key, COSIGNATURE_TYPE)


@dataclass(frozen=True)
class CosignerKey:
    """A witness's verifier key: `<name>+<hex key id>+<base64(0x04 || public key)>`."""

    name: str
    key_id: bytes
    public_key: bytes

    def __str__(self) -> str:
        return vkey_text(self.name, self.key_id, COSIGNATURE_TYPE, self.public_key)


def parse_cosigner_key(text: str) -> CosignerKey:
    name, kid, public = _parse_vkey(text, COSIGNATURE_TYPE, "witness key")
    if cosigner_key_id(name, public) != kid:
        raise MalformedInput("witness key id does not match its name and key")
    return CosignerKey(name, kid, public)


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What a v1 cosignature signs: a header line, a time line, then the checkpoint's note text."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedInput(f"cosignature timestamp {timestamp} is out of range")
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


def verify_cosignature(note: str | bytes, key: CosignerKey) -> int:
    """Return the timestamp of `key`'s valid cosignature on the note; raise SignatureError if none."""
    parsed = parse_signed_note(note)
    public = Ed25519PublicKey.from_public_bytes(key.public_key)
    for name, kid, blob in parsed.signatures:
        if name != key.name or kid != key.key_id:
            continue  # signed-note: signatures by other keys are ignored
        if len(blob) != 8 + 64:
            raise SignatureError(f"cosignature by witness {key.name} is not a timestamped Ed25519 signature")
        timestamp = int.from_bytes(blob[:8], "big")
        try:
            public.verify(blob[8:], cosignature_message(parsed.text, timestamp))
        except (InvalidSignature, MalformedInput) as exc:
            raise SignatureError(f"cosignature by witness {key.name} does not verify") from exc
        return timestamp
    raise SignatureError(f"no cosignature by witness {key}")


def verify_cosigned_checkpoint(
    note: str | bytes, key: VerifierKey, witnesses: Sequence[CosignerKey] = ()
) -> Checkpoint:
    """verify_checkpoint, then require a valid cosignature by every one of `witnesses`."""
    checkpoint = verify_checkpoint(note, key)
    for witness in witnesses:
        verify_cosignature(note, witness)
    return checkpoint


# --- exported proof bundles ----------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedEntry:
    index: int
    entry: bytes
    checkpoint: Checkpoint


def _field(doc: dict, name: str, kind: type):
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedInput(f"proof file field '{name}' is missing or not a {kind.__name__}")
    return value


def _load_document(document: str | bytes, fmt: str) -> dict:
    try:
        doc = json.loads(document)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedInput(f"proof file is not JSON: {str(exc)[:200]}") from exc
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise MalformedInput(f"proof file is not a {fmt} document")
    return doc


def _hashes(doc: dict, name: str) -> list[bytes]:
    # A non-string element becomes b"", which the proof verifiers reject as a malformed hash.
    return [_b64decode(p, "proof element") if isinstance(p, str) else b"" for p in _field(doc, name, list)]


def _require_cosignatures(note: str, witnesses: Sequence[CosignerKey]) -> None:
    for witness in witnesses:
        verify_cosignature(note, witness)


def verify_proof_bundle(
    document: str | bytes, key: VerifierKey, witnesses: Sequence[CosignerKey] = ()
) -> VerifiedEntry:
    """Verify an exported inclusion proof (entry + proof + signed checkpoint) offline; each of
    `witnesses` must have cosigned the checkpoint."""
    doc = _load_document(document, PROOF_FORMAT)
    index = _field(doc, "index", int)
    size = _field(doc, "tree_size", int)
    entry = _b64decode(_field(doc, "entry", str), "entry")
    proof = _hashes(doc, "proof")
    note = _field(doc, "checkpoint", str)
    checkpoint = verify_checkpoint(note, key)
    # Informational copies must agree with what was verified, or the file was edited.
    if "leaf_hash" in doc and doc["leaf_hash"] != leaf_hash(entry).hex():
        raise ProofError("proof file's leaf_hash does not match its entry")
    if "origin" in doc and doc["origin"] != checkpoint.origin:
        raise ProofError("proof file's origin does not match its checkpoint")
    if checkpoint.size != size:
        raise ProofError(f"proof is for size {size} but the checkpoint is for size {checkpoint.size}")
    verify_inclusion(index, size, leaf_hash(entry), proof, checkpoint.root)
    _require_cosignatures(note, witnesses)
    return VerifiedEntry(index, entry, checkpoint)


# --- anchored entries (reports, takedown proofs) ----------------------------------------------


def hex_hashes(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise VerificationError(f"{what} is not a list of hex hashes")
    try:
        return [bytes.fromhex(v) for v in values]
    except ValueError as exc:
        raise VerificationError(f"{what} is not hex") from exc


def verify_anchored_entry(item: Any, size: int, checkpoint: Checkpoint) -> dict[str, Any]:
    """The decoded envelope of an anchored entry (`Ledger.anchored_entry`: its exact bytes, leaf
    hash and inclusion proof), once its bytes, leaf and proof lead to the checkpoint's root."""
    if not isinstance(item, dict) or not isinstance(item.get("entry"), str):
        raise VerificationError("has no entry text")
    raw = item["entry"].encode("utf-8", errors="surrogatepass")
    if item.get("leaf_hash") != leaf_hash(raw).hex():
        raise VerificationError("its bytes do not hash to its leaf hash")
    index = item.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise VerificationError("has no integer index")
    verify_inclusion(index, size, leaf_hash(raw), hex_hashes(item.get("proof"), "its proof"), checkpoint.root)
    try:
        envelope = json.loads(raw)
    except ValueError as exc:
        raise VerificationError("is not JSON") from exc
    if not isinstance(envelope, dict) or not isinstance(envelope.get("body"), dict):
        raise VerificationError("is not a ledger entry envelope")
    return envelope


# --- hand-over consistency proofs -------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedConsistency:
    old: Checkpoint
    new: Checkpoint
    witnesses: tuple[str, ...]  # names of the witnesses whose cosignatures were verified


def verify_consistency_bundle(
    document: str | bytes, key: VerifierKey, witnesses: Sequence[CosignerKey] = ()
) -> VerifiedConsistency:
    """Verify a hand-over: both checkpoints are the log's, the new one extends the old one (RFC 9162
    §2.1.4.2), and each of `witnesses` cosigned the new one. ForkError when they are two histories."""
    doc = _load_document(document, CONSISTENCY_FORMAT)
    old_note = _field(doc, "old_checkpoint", str)
    new_note = _field(doc, "new_checkpoint", str)
    proof = _hashes(doc, "proof")
    old = verify_checkpoint(old_note, key)
    new = verify_checkpoint(new_note, key)
    copies = {"origin": new.origin, "old_size": old.size, "new_size": new.size}
    for name, value in copies.items():
        if name in doc and doc[name] != value:
            raise ProofError(f"proof file's {name} does not match its checkpoints")
    if new.size < old.size:
        raise ForkError(
            f"the new checkpoint (size {new.size}) is older than the old one (size {old.size}): rolled back"
        )
    if old.size == 0:
        if proof:
            raise ProofError("a tree of size 0 has no consistency proof; the proof must be empty")
    elif new.size == old.size and new.root != old.root:
        raise ForkError(f"two different roots signed for size {new.size}: the log forked")
    else:
        try:
            verify_consistency(old.size, new.size, old.root, new.root, proof)
        except ProofError as exc:
            raise ForkError(f"size {new.size} does not extend size {old.size}: {exc}") from exc
    _require_cosignatures(new_note, witnesses)
    return VerifiedConsistency(old, new, tuple(w.name for w in witnesses))


def _format_of(data: bytes) -> object:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None  # the inclusion-proof verifier names what is wrong
    return doc.get("format") if isinstance(doc, dict) else None


def _usage() -> int:
    print("usage: verifier.py PROOF_FILE VERIFIER_KEY [--witness-key WITNESS_KEY ...]", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    """Exit 0 verified, 1 does not verify (or a fork), 2 unreadable or malformed input."""
    args = argv[1:]
    if len(args) < 2 or len(args) % 2:
        return _usage()
    path, key_text, rest = args[0], args[1], args[2:]
    if any(flag != "--witness-key" for flag in rest[::2]):
        return _usage()
    try:
        key = parse_verifier_key(key_text)
        witnesses = [parse_cosigner_key(text) for text in rest[1::2]]
        with open(path, "rb") as handle:
            data = handle.read()
        if _format_of(data) == CONSISTENCY_FORMAT:
            result = verify_consistency_bundle(data, key, witnesses)
            message = f"size {result.new.size} of {result.new.origin} extends size {result.old.size}"
        else:
            entry = verify_proof_bundle(data, key, witnesses)
            message = f"entry {entry.index} is in {entry.checkpoint.origin} at size {entry.checkpoint.size}"
    except (OSError, ValueError, MalformedInput) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    except VerificationError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    cosigned = f", cosigned by {', '.join(w.name for w in witnesses)}" if witnesses else ""
    print(message + cosigned)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
