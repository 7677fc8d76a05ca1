"""Content-addressed artifact store: a file's path is derived from its SHA-256, never from input.

`ArtifactStore` keeps artifacts in a folder; `custody.store.s3.S3ArtifactStore` keeps them in an
S3-compatible bucket behind the same methods, with this folder as its local read-through cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


class ArtifactError(Exception):
    """An artifact is missing, corrupted, or was named by something that is not a digest."""


class StoreUnavailable(Exception):
    """The store could not be reached, or refused the operation (read-only bucket, no credentials).

    Deliberately not an ArtifactError: it says nothing about the artifact, so no caller may take it
    for "missing" or "corrupted" and record that; whatever was under way stops, unrecorded."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        """Where the artifacts are, for messages."""
        return str(self.root)

    def local_path(self, digest: str) -> Path:
        """The artifact's path in this folder, whether or not it is there (no fetching)."""
        digest = digest.removeprefix("sha256:")
        if not _DIGEST.match(digest):
            raise ArtifactError(f"{digest[:80]!r} is not a SHA-256 hex digest")
        return self.root / "sha256" / digest[:2] / digest[2:]

    def path_for(self, digest: str) -> Path:
        """A local path to the artifact's bytes (for a remote store: fetched and verified first)."""
        return self.local_path(digest)

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()

    def put_bytes(self, data: bytes) -> str:
        return self.put_chunks([data])

    def put_file(self, path: Path) -> str:
        with open(path, "rb") as handle:
            return self.put_stream(handle)

    def put_stream(self, handle: BinaryIO) -> str:
        return self.put_chunks(iter(lambda: handle.read(CHUNK), b""))

    def put_chunks(self, chunks: Iterable[bytes]) -> str:
        """Stream chunks to a temporary file while hashing, then move it to its digest path."""
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            hexdigest = digest.hexdigest()
            self._publish(Path(tmp_name), hexdigest)
            return hexdigest
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def staging_path(self) -> Path:
        """A new empty file in the store's temp area, for a copy written elsewhere (a worker
        process); wrap it in Staged with its digest and size once written."""
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        os.close(fd)
        return Path(tmp_name)

    def stage_file(self, path: Path) -> Staged:
        """Copy a file into the store's temp area while hashing; nothing is visible until commit()."""
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as source:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        except BaseException:
            os.unlink(tmp_name)
            raise
        return Staged(self, Path(tmp_name), digest.hexdigest(), size)

    def _publish(self, tmp: Path, digest: str) -> None:
        """Move a finished temp file (already fsynced) to its digest path, or drop it if there."""
        target = self.local_path(digest)
        if target.exists():
            tmp.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)

    def read_bytes(self, digest: str) -> bytes:
        """The artifact's bytes, after checking they still hash to their name."""
        path = self.path_for(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactError(f"artifact {digest} is not in the store ({self.location})") from exc
        if hashlib.sha256(data).hexdigest() != digest.removeprefix("sha256:"):
            raise ArtifactError(f"artifact {digest} is corrupted: its bytes no longer match its digest")
        return data

    def verify(self, digest: str) -> bool:
        path = self.path_for(digest)
        return path.exists() and sha256_file(path) == digest.removeprefix("sha256:")

    def erase(self, digest: str) -> bool:
        """Delete an artifact (a legal erasure); the ledger keeps only its digest."""
        path = self.path_for(digest)
        if not path.exists():
            return False
        os.chmod(path, 0o644)
        path.unlink()
        return True


class Staged:
    """A file copied into the store's temp area: commit() publishes it, discard() drops it."""

    def __init__(self, store: ArtifactStore, path: Path, digest: str, size: int) -> None:
        self.store, self.path, self.digest, self.size = store, path, digest, size

    def commit(self) -> str:
        with open(self.path, "rb") as handle:
            os.fsync(handle.fileno())
        self.store._publish(self.path, self.digest)
        return self.digest

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
