"""Dataset manifests: what a dataset is, byte for byte. The manifest's digest is the dataset's digest."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

from custody.ledger.entry import canonical_json

MANIFEST_KIND = "custody.dataset-manifest/v1"


@dataclass(frozen=True)
class ShardInfo:
    name: str
    format: str
    digest: str
    bytes: int
    records: int


@dataclass(frozen=True)
class DocumentInfo:
    name: str
    digest: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    fields: dict[str, str | None]
    shards: tuple[ShardInfo, ...]
    documents: tuple[DocumentInfo, ...] = field(default_factory=tuple)

    @property
    def records(self) -> int:
        return sum(s.records for s in self.shards)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def to_json(self) -> dict:
        return {
            "kind": MANIFEST_KIND,
            "name": self.name,
            "version": self.version,
            "fields": self.fields,
            "shards": [asdict(s) for s in self.shards],
            "documents": [asdict(d) for d in self.documents],
            "records": self.records,
            "bytes": self.bytes,
        }

    def canonical(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    @classmethod
    def from_json(cls, doc: dict) -> Manifest:
        if doc.get("kind") != MANIFEST_KIND:
            raise ValueError(f"not a {MANIFEST_KIND} document")
        return cls(
            doc["name"],
            doc["version"],
            doc["fields"],
            tuple(ShardInfo(**s) for s in doc["shards"]),
            tuple(DocumentInfo(**d) for d in doc.get("documents", [])),
        )
