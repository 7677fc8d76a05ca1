"""A client that remembers the last checkpoint it saw and demands proof for every newer one."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from custody.ledger.verifier import (
    Checkpoint,
    ForkError,
    VerificationError,
    VerifierKey,
    verify_checkpoint,
    verify_consistency,
)

ProveConsistency = Callable[[int, int], list[bytes]]


class ForkDetected(ForkError):
    """Two signed checkpoints that cannot both be true; both notes are kept as evidence."""

    def __init__(self, message: str, remembered: str, presented: str) -> None:
        super().__init__(message)
        self.remembered = remembered
        self.presented = presented

    def evidence(self) -> str:
        return f"{self}\n--- remembered checkpoint ---\n{self.remembered}--- presented checkpoint ---\n{self.presented}"


def check_extends(old_note: str, new_note: str, key: VerifierKey, prove: ProveConsistency) -> Checkpoint:
    """Verify both notes and that `new_note` extends `old_note`; raise ForkDetected if not."""
    old = verify_checkpoint(old_note, key)
    new = verify_checkpoint(new_note, key)
    if new.size < old.size:
        raise ForkDetected(
            f"presented checkpoint (size {new.size}) is older than the remembered one "
            f"(size {old.size}): the log was rolled back",
            old_note,
            new_note,
        )
    if new.size == old.size and new.root != old.root:
        raise ForkDetected(f"two different roots signed for size {new.size}", old_note, new_note)
    if old.size and new.size > old.size:
        try:
            verify_consistency(old.size, new.size, old.root, new.root, prove(old.size, new.size))
        except VerificationError as exc:
            raise ForkDetected(f"size {new.size} does not extend size {old.size}: {exc}", old_note, new_note) from exc
    return new


class CheckpointWitness:
    """Keeps the last verified checkpoint in a file outside the database."""

    def __init__(self, path: Path, key: VerifierKey) -> None:
        self.path = path
        self.key = key

    def remembered(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def observe(self, note: str, prove: ProveConsistency) -> Checkpoint:
        """Accept `note` only if it extends what was seen before; then remember it.

        Processes sharing the home observe one at a time (a lock file beside it). A note older
        than the remembered one, and consistent with it, is another writer's that was remembered
        later than a newer one: accepted, and the newer one stays."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            old = self.remembered()
            if old:
                checkpoint = verify_checkpoint(note, self.key)
                if checkpoint.size < verify_checkpoint(old, self.key).size:
                    try:
                        check_extends(note, old, self.key, prove)
                    except ForkDetected as exc:
                        raise ForkDetected(str(exc), old, note) from exc
                    return checkpoint
                checkpoint = check_extends(old, note, self.key, prove)
            else:
                checkpoint = verify_checkpoint(note, self.key)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "w", encoding="utf-8") as out:
                out.write(note)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        return checkpoint
