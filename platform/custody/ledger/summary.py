"""Summaries of the ledger kept in a file and carried forward: a state that was true at one ledger
size, saved with that size and the root of the tree at that size.

A reader loads the state, checks that it describes a prefix of this ledger (the size is not past
the head and the tree at that size still has the saved root; otherwise it starts from nothing),
and brings it to the head by reading only the entries appended since (`query.touched`). What the
state holds and how new entries change it is the reader's; this module only keeps it honest about
which ledger, and which prefix of it, it describes. The file is a cache: deleting it costs one
computation from the whole ledger, and a damaged or foreign one is ignored.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custody.ledger.log import Ledger


@dataclass
class Summary:
    """A state valid at ledger `size` (0 and empty: nothing is known yet)."""

    size: int = 0
    state: dict[str, Any] = field(default_factory=dict)


def load(path: Path, ledger: Ledger, kind: str) -> Summary:
    """The summary saved at `path` if it is of `kind` and describes a prefix of `ledger`; else an empty one."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        size, root, state = int(saved["size"]), bytes.fromhex(saved["root"]), saved["state"]
        if saved["kind"] != kind or not isinstance(state, dict):
            return Summary()
    except (OSError, ValueError, KeyError, TypeError):
        return Summary()
    if not 0 <= size <= ledger.size or ledger.root_at(size) != root:
        return Summary()  # another ledger's, or this one's before it was replaced
    return Summary(size, state)


def save(path: Path, ledger: Ledger, kind: str, summary: Summary) -> None:
    """Write the summary atomically (a reader sees the old file or the new one); a home that
    cannot be written keeps no summary, and the next reader computes again."""
    document = {"kind": kind, "size": summary.size, "root": ledger.root_at(summary.size).hex(), "state": summary.state}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        return
