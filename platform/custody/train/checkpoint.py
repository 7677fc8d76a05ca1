"""Checkpoints: written atomically, named by the SHA-256 of their bytes, loaded only after the bytes check out.

A checkpoint is one `torch.save` file holding plain values and tensors (no pickled classes), so it
loads with `weights_only=True`: model weights and config, optimizer state, step, training
config, the loss curve so far, evaluations, the data and tokenizer digests, the model's origin
(random init, or which checkpoint it was fine-tuned or transferred from) and the cumulative
emissions. The RNG state is a function of (seed, rank, step) (see loop.py), so the step is all
that a resume needs of it.

The digest is computed from the bytes as they are written, and the file appears under its final
name only once complete and fsynced. Loading reads the file once, hashes those bytes, compares
with the expected digest and only then unpickles them.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from custody.train.model import GPT, GPTConfig

FORMAT = "custody.train.checkpoint/v1"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, of another format, or does not fit what it is used for."""


class CheckpointDigestMismatch(CheckpointError):
    """The checkpoint's bytes are not the ones the ledger recorded."""


@dataclass(frozen=True)
class SavedCheckpoint:
    """What a caller records: where, which bytes, at which step, with which metrics and emissions."""

    path: Path
    digest: str
    bytes: int
    step: int
    metrics: dict
    emissions: dict | None = None  # cumulative Emissions.as_json() of the run so far

    def as_json(self) -> dict:
        return {
            "path": str(self.path),
            "digest": self.digest,
            "bytes": self.bytes,
            "step": self.step,
            "metrics": self.metrics,
            "emissions": self.emissions,
        }


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint and the digest of the bytes it was loaded from."""

    path: Path
    digest: str
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def model_config(self) -> GPTConfig:
        return GPTConfig(**self.state["model_config"])

    def build_model(self) -> GPT:
        """The saved model with its weights (on the CPU), recording where it came from."""
        model = GPT(self.model_config)
        model.load_state_dict(self.state["model"])
        model.origin = {"init": "checkpoint", "checkpoint_digest": self.digest, "step": self.step, "changes": []}
        return model


class _HashingWriter:
    """A file object that hashes what passes through it: the digest is of the bytes written."""

    def __init__(self, handle: io.BufferedWriter) -> None:
        self.handle, self.sha256, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def save_checkpoint(state: dict[str, Any], path: Path) -> tuple[str, int]:
    """Write atomically (temp file, fsync, rename); return (sha256, size) of the bytes on disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            writer = _HashingWriter(handle)
            torch.save({"format": FORMAT, **state}, writer)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    return writer.sha256.hexdigest(), writer.size


def host_copy(value: Any) -> Any:
    """A copy of every tensor in a nested state, in host memory: a snapshot training cannot change."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: host_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(host_copy(v) for v in value)
    return value


class CheckpointWriter:
    """Writes checkpoints on a background thread while training goes on; at most one is in flight.

    The step pays for a copy of the state into host memory, not for serialization, hashing and
    fsync. A finished write is handed back on the training thread (`poll`, `submit`, `drain`), so
    whoever records it (a ledger connection is bound to its thread) never runs on the writer
    thread, and a checkpoint is reported only once its bytes are durable under their final name.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="custody-checkpoint")
        self._pending: tuple[Future, Path, int, dict, dict | None] | None = None

    def submit(
        self, state: dict[str, Any], path: Path, step: int, metrics: dict, emissions: dict | None
    ) -> list[SavedCheckpoint]:
        """Start writing a snapshot of `state`; returns the previous checkpoint if it had to be waited for."""
        finished = self.drain()
        snapshot = host_copy(state)
        self._pending = (self._pool.submit(save_checkpoint, snapshot, path), Path(path), step, metrics, emissions)
        return finished

    def poll(self) -> list[SavedCheckpoint]:
        """The checkpoint in flight, if it is durable by now; never blocks."""
        if self._pending is None or not self._pending[0].done():
            return []
        return self.drain()

    def drain(self) -> list[SavedCheckpoint]:
        """Wait for the checkpoint in flight (a failed write raises here, on the training thread)."""
        if self._pending is None:
            return []
        future, path, step, metrics, emissions = self._pending
        self._pending = None
        digest, size = future.result()
        return [SavedCheckpoint(path, digest, size, step, metrics, emissions)]

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def load_checkpoint(path: Path, expected_digest: str | None = None) -> Checkpoint:
    """Read once, hash, compare with `expected_digest` (when given), then unpickle weights-only."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file") from None
    digest = hashlib.sha256(data).hexdigest()
    if expected_digest is not None and digest != expected_digest.removeprefix("sha256:"):
        raise CheckpointDigestMismatch(
            f"{path}: checkpoint bytes hash to sha256 {digest}, but sha256 "
            f"{expected_digest.removeprefix('sha256:')} was recorded; refusing to load it"
        )
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or damaged files
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint")
    return Checkpoint(path, digest, state)


def init_from_checkpoint(path: Path, digest: str) -> GPT:
    """The model of a recorded checkpoint, for fine-tuning or transfer; the digest is required."""
    if not digest:
        raise CheckpointError("fine-tuning starts from a recorded checkpoint: give its digest")
    return load_checkpoint(path, digest).build_model()
