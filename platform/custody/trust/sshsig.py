"""SSHSIG (OpenSSH PROTOCOL.sshsig): the signatures `ssh-keygen -Y sign` makes and verifies.

Blob: "SSHSIG" || uint32 1 || string publickey || string namespace || string reserved ||
string hash_algorithm || string signature. Signed data: "SSHSIG" || string namespace ||
string reserved || string hash_algorithm || string H(message). Only the wire format is written
here; Ed25519 itself is `cryptography`'s.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import textwrap
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature

from custody.trust.sshkeys import KEY_TYPE, PublicKey, Signer, read_ssh_string, ssh_string

MAGIC = b"SSHSIG"
VERSION = 1
NAMESPACE = "custody"
HASHES = {"sha512": hashlib.sha512, "sha256": hashlib.sha256}
BEGIN, END = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"


class SignatureFormatError(ValueError):
    """The bytes are not an SSHSIG blob this verifier understands."""


class BadSignature(ValueError):
    """A well-formed signature that does not verify (wrong key, namespace or message)."""


@dataclass(frozen=True)
class Sshsig:
    public: PublicKey
    namespace: str
    hash_algorithm: str
    signature: bytes  # the raw 64-byte Ed25519 signature


def signed_data(message: bytes, namespace: str = NAMESPACE, hash_algorithm: str = "sha512") -> bytes:
    digest = HASHES[hash_algorithm](message).digest()
    return (
        MAGIC
        + ssh_string(namespace.encode())
        + ssh_string(b"")
        + ssh_string(hash_algorithm.encode())
        + ssh_string(digest)
    )


def sign(signer: Signer, message: bytes, namespace: str = NAMESPACE) -> bytes:
    """The SSHSIG blob over `message` (sha512, as ssh-keygen does)."""
    raw = signer.sign_raw(signed_data(message, namespace))
    signature = ssh_string(KEY_TYPE.encode()) + ssh_string(raw)
    return (
        MAGIC
        + struct.pack(">I", VERSION)
        + ssh_string(signer.public.wire)
        + ssh_string(namespace.encode())
        + ssh_string(b"")
        + ssh_string(b"sha512")
        + ssh_string(signature)
    )


def parse(blob: bytes) -> Sshsig:
    try:
        if blob[:6] != MAGIC:
            raise SignatureFormatError("not an SSHSIG blob (bad magic)")
        if len(blob) < 10 or struct.unpack_from(">I", blob, 6)[0] != VERSION:
            raise SignatureFormatError("unsupported SSHSIG version")
        offset = 10
        public_wire, offset = read_ssh_string(blob, offset)
        namespace, offset = read_ssh_string(blob, offset)
        _reserved, offset = read_ssh_string(blob, offset)
        hash_algorithm, offset = read_ssh_string(blob, offset)
        signature, offset = read_ssh_string(blob, offset)
        if offset != len(blob):
            raise SignatureFormatError("trailing bytes after the signature")
        public = PublicKey.from_wire(public_wire)
        kind, inner = read_ssh_string(signature, 0)
        raw, inner = read_ssh_string(signature, inner)
    except ValueError as exc:
        raise SignatureFormatError(f"malformed SSHSIG: {exc}") from None
    algorithm = hash_algorithm.decode(errors="replace")
    if kind != KEY_TYPE.encode() or len(raw) != 64 or inner != len(signature):
        raise SignatureFormatError("malformed SSHSIG: not an Ed25519 signature")
    if algorithm not in HASHES:
        raise SignatureFormatError(f"SSHSIG hash algorithm {algorithm!r} is not sha512 or sha256")
    return Sshsig(public, namespace.decode(errors="replace"), algorithm, raw)


def verify(blob: bytes, message: bytes, namespace: str = NAMESPACE) -> PublicKey:
    """The key that signed `message`; raises BadSignature or SignatureFormatError."""
    sig = parse(blob)
    if sig.namespace != namespace:
        raise BadSignature(f"signature is for namespace {sig.namespace!r}, not {namespace!r}")
    try:
        sig.public.verifier().verify(sig.signature, signed_data(message, namespace, sig.hash_algorithm))
    except InvalidSignature:
        raise BadSignature("signature does not verify") from None
    return sig.public


def armor(blob: bytes) -> str:
    """The text `ssh-keygen -Y sign` writes (base64 wrapped at 70 columns)."""
    body = "\n".join(textwrap.wrap(base64.b64encode(blob).decode(), 70))
    return f"{BEGIN}\n{body}\n{END}\n"


def dearmor(text: str) -> bytes:
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        raise SignatureFormatError("not an armored SSH signature")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError as exc:
        raise SignatureFormatError(f"bad base64 in SSH signature ({exc})") from None
