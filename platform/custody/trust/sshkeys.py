"""OpenSSH Ed25519 keys: the keys engineers already sign git commits with.

Private keys load through `cryptography` (OpenSSH format, or PKCS#8 PEM for the home's service
key); a key held by ssh-agent signs through the agent protocol. Only Ed25519 is accepted: one
algorithm keeps verification small and every signature the same size.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_TYPE = "ssh-ed25519"
PASSPHRASE_ENV = "CUSTODY_KEY_PASSPHRASE"
_AGENT_SIGN_REQUEST, _AGENT_SIGN_RESPONSE = 13, 14


class SigningKeyError(ValueError):
    """A key file is missing, malformed, locked, or not Ed25519; the message names the file."""


def ssh_string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def read_ssh_string(data: bytes, offset: int) -> tuple[bytes, int]:
    """One SSH wire `string` at `offset`; raises ValueError when the data ends early."""
    if offset + 4 > len(data):
        raise ValueError("truncated length field")
    (length,) = struct.unpack_from(">I", data, offset)
    end = offset + 4 + length
    if end > len(data):
        raise ValueError("truncated string")
    return data[offset + 4 : end], end


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key as OpenSSH writes it."""

    raw: bytes  # the 32 key bytes

    @property
    def wire(self) -> bytes:
        return ssh_string(KEY_TYPE.encode()) + ssh_string(self.raw)

    @property
    def openssh(self) -> str:
        return f"{KEY_TYPE} {base64.b64encode(self.wire).decode()}"

    @property
    def fingerprint(self) -> str:
        """`SHA256:...` exactly as `ssh-keygen -l` prints it."""
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.wire).digest()).decode().rstrip("=")

    def verifier(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    @classmethod
    def from_wire(cls, wire: bytes) -> PublicKey:
        kind, offset = read_ssh_string(wire, 0)
        if kind != KEY_TYPE.encode():
            raise ValueError(
                f"{kind.decode(errors='replace')} key: custody needs an Ed25519 key (ssh-keygen -t ed25519)"
            )
        raw, offset = read_ssh_string(wire, offset)
        if len(raw) != 32 or offset != len(wire):
            raise ValueError("malformed ssh-ed25519 key")
        return cls(raw)


def parse_public_key(text: str, where: str) -> PublicKey:
    """`ssh-ed25519 AAAA... [comment]` (one line of a .pub file); errors name `where`."""
    parts = text.strip().split()
    if len(parts) < 2:
        raise SigningKeyError(f"{where}: not an OpenSSH public key (expected 'ssh-ed25519 AAAA...')")
    if parts[0] != KEY_TYPE:
        raise SigningKeyError(
            f"{where}: {parts[0]} key; custody needs an Ed25519 key (make one with `ssh-keygen -t ed25519`)"
        )
    try:
        key = PublicKey.from_wire(base64.b64decode(parts[1], validate=True))
    except (ValueError, base64.binascii.Error) as exc:
        raise SigningKeyError(f"{where}: malformed or truncated public key ({exc})") from None
    return key


def load_public_key(path: Path) -> PublicKey:
    return parse_public_key(_read_text(path, "public key"), str(path))


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SigningKeyError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise SigningKeyError(f"{path}: is a directory, expected a {what}") from None
    except UnicodeDecodeError:
        raise SigningKeyError(f"{path}: not a {what} (not text)") from None
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read {what} ({exc.strerror})") from None


class KeySigner:
    """Signs with an Ed25519 private key held in this process."""

    def __init__(self, key: Ed25519PrivateKey, source: str) -> None:
        self._key = key
        self.source = source
        self.public = PublicKey(
            key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )

    def sign_raw(self, data: bytes) -> bytes:
        return self._key.sign(data)


class AgentSigner:
    """Signs with a key that ssh-agent holds (the private key never enters this process)."""

    def __init__(self, public: PublicKey, socket_path: str, source: str) -> None:
        self.public = public
        self.source = source
        self._socket_path = socket_path

    def sign_raw(self, data: bytes) -> bytes:
        request = bytes([_AGENT_SIGN_REQUEST]) + ssh_string(self.public.wire) + ssh_string(data) + struct.pack(">I", 0)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(30)
                conn.connect(self._socket_path)
                conn.sendall(ssh_string(request))
                reply = _receive(conn)
        except OSError as exc:
            raise SigningKeyError(f"{self.source}: ssh-agent at {self._socket_path} failed ({exc})") from None
        if not reply or reply[0] != _AGENT_SIGN_RESPONSE:
            raise SigningKeyError(f"{self.source}: ssh-agent refused to sign (is the key loaded? `ssh-add -l`)")
        try:
            signature, _ = read_ssh_string(reply, 1)
            kind, offset = read_ssh_string(signature, 0)
            raw, _ = read_ssh_string(signature, offset)
        except ValueError as exc:
            raise SigningKeyError(f"{self.source}: malformed ssh-agent reply ({exc})") from None
        if kind != KEY_TYPE.encode() or len(raw) != 64:
            raise SigningKeyError(f"{self.source}: ssh-agent answered with a non-Ed25519 signature")
        return raw


def _receive(conn: socket.socket) -> bytes:
    header = _exactly(conn, 4)
    (length,) = struct.unpack(">I", header)
    return _exactly(conn, length)


def _exactly(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


Signer = KeySigner | AgentSigner


def load_signer(path: Path, passphrase: str | None = None) -> Signer:
    """A signer from a private key file, or from ssh-agent when `path` is a public key (.pub).

    A passphrase comes from the argument or $CUSTODY_KEY_PASSPHRASE; with neither, a locked key
    is refused with what to do instead (the agent never needs one)."""
    text = _read_text(path, "key file")
    if text.lstrip().startswith(KEY_TYPE + " ") or text.lstrip().startswith("ssh-"):
        public = parse_public_key(text.splitlines()[0] if text.strip() else text, str(path))
        socket_path = os.environ.get("SSH_AUTH_SOCK")
        if not socket_path:
            raise SigningKeyError(
                f"{path}: is a public key; give the private key file, or load the key into ssh-agent (SSH_AUTH_SOCK)"
            )
        return AgentSigner(public, socket_path, str(path))
    data = text.encode()
    secret = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV)
    password = secret.encode() if secret else None
    try:
        if b"BEGIN OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=password)
        elif b"BEGIN PRIVATE KEY" in data or b"BEGIN ENCRYPTED PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(data, password=password)
        elif b"BEGIN" in data and b"PRIVATE KEY" in data:
            kind = data.split(b"BEGIN", 1)[1].split(b"PRIVATE KEY", 1)[0].strip().decode(errors="replace")
            raise SigningKeyError(
                f"{path}: {kind or 'this'} key; custody needs an Ed25519 key (make one with `ssh-keygen -t ed25519`)"
            )
        else:
            raise SigningKeyError(f"{path}: not an OpenSSH private key")
    except TypeError as exc:
        if "encrypted" in str(exc).lower() or "password" in str(exc).lower():
            raise SigningKeyError(
                f"{path}: key is protected by a passphrase; load it into ssh-agent and give the .pub file, "
                f"or set {PASSPHRASE_ENV}"
            ) from None
        raise SigningKeyError(f"{path}: cannot load key ({exc})") from None
    except ValueError as exc:
        # A wrong passphrase decrypts to garbage, which OpenSSH's check bytes reveal as a bad checksum.
        if password and any(word in str(exc).lower() for word in ("decrypt", "bad", "checksum")):
            raise SigningKeyError(f"{path}: wrong passphrase") from None
        raise SigningKeyError(f"{path}: malformed or truncated private key ({exc})") from None
    except UnsupportedAlgorithm as exc:
        raise SigningKeyError(f"{path}: unsupported key ({exc}); custody needs Ed25519") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"{path}: {_kind(key)} key; custody needs an Ed25519 key (make one with `ssh-keygen -t ed25519`)"
        )
    return KeySigner(key, str(path))


def _kind(key: object) -> str:
    """The algorithm's everyday name, as ssh-keygen's -t would spell it."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa

    names = {rsa.RSAPrivateKey: "RSA", ec.EllipticCurvePrivateKey: "ECDSA", dsa.DSAPrivateKey: "DSA"}
    names[ed448.Ed448PrivateKey] = "Ed448"
    return next((name for kind, name in names.items() if isinstance(key, kind)), type(key).__name__)


def generate_key(path: Path, comment: str = "") -> KeySigner:
    """Write a new Ed25519 key pair in OpenSSH format: PATH (mode 0600) and PATH.pub."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    signer = KeySigner(key, str(path))
    suffix = f" {comment}" if comment else ""
    path.with_name(path.name + ".pub").write_text(signer.public.openssh + suffix + "\n", encoding="utf-8")
    return signer
