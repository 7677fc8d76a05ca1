"""custody: governance and tamper-evident audit for the data that trains language models.

The Python API for training loops is `custody.governed_run` (custody.runs.api, docs/api.md); it is
imported on first use, so `import custody` stays cheap for the CLI and for every lower floor.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {"governed_run": "custody.runs.api", "GovernedRun": "custody.runs.api", "RunDenied": "custody.runs.api"}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'custody' has no attribute {name!r}")
