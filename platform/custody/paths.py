"""Where custody finds what it ships beside the code: policies, run specs, the dashboards.

Each is a folder at the top of the checkout (platform/ is the source root), or wherever its
environment variable points.
"""

from __future__ import annotations

import os
from pathlib import Path


def _shipped(variable: str, folder: str) -> Path:
    configured = os.environ.get(variable)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / folder


def policies_dir() -> Path:
    """`$CUSTODY_POLICIES`, else the checkout's `policies/`."""
    return _shipped("CUSTODY_POLICIES", "policies")


def dashboards_dir() -> Path:
    """`$CUSTODY_DASHBOARDS`, else the checkout's `dashboards/` (the Streamlit app is not in the package)."""
    return _shipped("CUSTODY_DASHBOARDS", "dashboards")


def pipelines_dir() -> Path:
    """`$CUSTODY_PIPELINES`, else the checkout's `pipelines/` (run specs are data, not code)."""
    return _shipped("CUSTODY_PIPELINES", "pipelines")
