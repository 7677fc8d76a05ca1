"""Signing checkpoints as C2SP signed notes with an Ed25519 key that lives outside the database."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.ledger.verifier import SIGNATURE_PREFIX, VerifierKey, key_id


class KeyFileError(Exception):
    """The signing key file is missing, unreadable, too widely readable or not Ed25519."""


class NoteSigner:
    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = name
        self._key = private_key
        public = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.verifier_key = VerifierKey(name, key_id(name, public), public)

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._key

    def sign(self, text: str) -> str:
        """Return `text` as a signed note: text, a blank line, one signature line."""
        if not text.endswith("\n"):
            raise ValueError("note text must end with a newline")
        signature = self._key.sign(text.encode())
        encoded = base64.b64encode(self.verifier_key.key_id + signature).decode()
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {encoded}\n"


def generate_key_file(path: Path) -> None:
    """Write a new Ed25519 private key, readable by its owner only (mode 0600)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def load_private_pem(path: Path, what: str, error: type[Exception] = KeyFileError) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file only its owner can read; `error` names what failed."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise error(f"{path}: {what} is readable by others (mode {mode:o}); chmod 600 it")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise error(f"{path}: {what} not found") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise error(f"{path}: not a readable Ed25519 private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise error(f"{path}: {what} is not Ed25519")
    return key


def load_signer(path: Path, name: str) -> NoteSigner:
    return NoteSigner(name, load_private_pem(path, "signing key"))
