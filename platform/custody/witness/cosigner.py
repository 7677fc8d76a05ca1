"""The witness's signing key and tlog-cosignature/v1 lines (Ed25519, key type 0x04)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.ledger.signing import load_private_pem
from custody.ledger.verifier import (
    SIGNATURE_PREFIX,
    CosignerKey,
    cosignature_message,
    cosigner_key_id,
    parse_signed_note,
)


class WitnessKeyError(Exception):
    """The witness key file is missing, unreadable, too widely readable or not Ed25519."""


class Cosigner:
    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = name
        self._key = private_key
        public = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key = CosignerKey(name, cosigner_key_id(name, public), public)

    def cosign(self, note: str, timestamp: int | None = None) -> str:
        """One cosignature line over the checkpoint text of `note` (its signature lines excluded)."""
        text = parse_signed_note(note).text
        when = int(time.time()) if timestamp is None else timestamp
        signature = self._key.sign(cosignature_message(text, when))
        blob = self.key.key_id + when.to_bytes(8, "big") + signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"


def load_cosigner(path: Path, name: str) -> Cosigner:
    """Load the witness key, refusing a file others can read (as the ledger's key loader does)."""
    return Cosigner(name, load_private_pem(path, "witness key", WitnessKeyError))
