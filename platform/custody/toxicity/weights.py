"""What every toxicity model file shares: its SHA-256, and the errors for a file that cannot be used.

Kept apart from scorers.py so a scorer module (linear.py) and the selection code (scorers.py)
can both use them without importing each other.
"""

from __future__ import annotations

import hashlib


class ScorerUnavailable(RuntimeError):
    """The requested scorer cannot run here (files missing, offline, package missing)."""


class ChecksumError(ValueError):
    """A checkpoint's SHA-256 is not the configured one; it was not unpickled."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
