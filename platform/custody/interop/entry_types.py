"""Ledger entry schema for exported models: which files left the building, by digest."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.ledger.entry import EntryBody, entry_type

DIGEST = r"^[0-9a-f]{64}$"


class ExportedFile(EntryBody):
    path: str  # relative to the export folder
    sha256: str = Field(pattern=DIGEST)
    bytes: int = Field(ge=0)


@entry_type("model.exported/v1")
class ModelExported(EntryBody):
    """Recorded weights written as a folder another tool loads (subject `model:SHA256`).

    `manifest_digest` is the SHA-256 of the canonical JSON of `files` (each file's path, sha256
    and size, sorted by path): anyone holding the folder recomputes it (`manifest_digest()`)."""

    model_digest: str = Field(pattern=DIGEST)
    run_id: str | None = None
    format: Literal["hf-gpt2"]
    manifest_digest: str = Field(pattern=DIGEST)
    files: list[ExportedFile] = Field(min_length=1)
    checkpoint_size: int = Field(ge=1)  # the ledger size the card's signed checkpoint covers


@entry_type("model.imported/v1")
class ModelImported(EntryBody):
    """An outside model registered as a custody checkpoint (subject `model:SHA256` of that
    checkpoint in the artifact store), with the folder it came from by manifest digest, where
    it came from, and its license."""

    model_digest: str = Field(pattern=DIGEST)
    tokenizer_digest: str = Field(pattern=DIGEST)
    format: Literal["hf-gpt2"]
    manifest_digest: str = Field(pattern=DIGEST)
    files: list[ExportedFile] = Field(min_length=1)
    source: str = Field(min_length=1, max_length=2000)  # a URL or a name: where the folder came from
    license: str = Field(min_length=1)  # SPDX expression
    license_category: str  # custody.licenses.categories, never "unknown"
