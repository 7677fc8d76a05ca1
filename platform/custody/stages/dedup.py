"""`dedup-exact`: drop every record whose normalized text was already seen; the first copy is kept.

Normalization before hashing is deliberately light — Unicode NFC, whitespace runs collapsed,
optionally case folded — so the stage finds copies, not paraphrases (that is `dedup-near`).
State is one 16-byte BLAKE2b digest and the kept record's id per distinct text: memory grows
with the number of distinct texts, never with their length. A collision between two different
texts (probability ~n²/2¹²⁹) would drop a record wrongly; its decision row names the record it
was taken for, so such a drop is auditable.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

from custody.datasets.readers import Record
from custody.home import Home
from custody.stages.base import Decision, Stage

_SPACE = re.compile(r"\s+")


class DedupExact(Stage):
    name = "dedup-exact"
    version = "1.0.0"

    def __init__(self, home: Home, *, collapse_whitespace: bool = True, casefold: bool = False) -> None:
        super().__init__(home)
        self.collapse_whitespace = collapse_whitespace
        self.casefold = casefold

    def config(self) -> dict[str, Any]:
        return {
            "hash": "blake2b-128",
            "unicode_form": "NFC",
            "collapse_whitespace": self.collapse_whitespace,
            "casefold": self.casefold,
            "keep": "first",
        }

    def key(self, text: str) -> bytes:
        text = unicodedata.normalize("NFC", text)
        if self.collapse_whitespace:
            text = _SPACE.sub(" ", text).strip()
        if self.casefold:
            text = text.casefold()
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()

    def process(self, records: Iterable[Record]) -> Iterator[Decision]:
        first: dict[bytes, str] = {}  # text digest -> id of the record kept for it
        for record in records:
            key = self.key(record.text)
            kept = first.get(key)
            if kept is None:
                first[key] = record.id
                yield Decision(record, "keep")
            else:
                yield Decision(record, "drop", "duplicate:exact", score=1.0, details=json.dumps({"duplicate_of": kept}))
