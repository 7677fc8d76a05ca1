"""Where custody finds the data it ships beside the code (policies, deny lists)."""

from __future__ import annotations

import os
from pathlib import Path


def policies_dir() -> Path:
    """`$CUSTODY_POLICIES`, else the checkout's `policies/` (platform/ is the source root)."""
    configured = os.environ.get("CUSTODY_POLICIES")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "policies"
