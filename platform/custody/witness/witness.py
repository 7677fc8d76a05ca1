"""The add-checkpoint decision (C2SP tlog-witness), made atomically per log.

Order of checks, each with the status the spec gives it:
  malformed body or checkpoint                     400
  origin not configured                            404
  no valid signature by a trusted key of the log   403
  old size > checkpoint size                       400
  old size != the size last cosigned for the log   409, body "<last size>\\n", text/x.tlog.size
  same size, different root                        409 (likewise), the request kept as evidence
  consistency proof does not verify                422, the request kept as evidence
  otherwise: persist (size, root, note), then      200 with one cosignature/v1 line
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from custody.ledger.verifier import (
    EMPTY_ROOT,
    Checkpoint,
    SignatureError,
    VerificationError,
    parse_checkpoint_body,
    parse_signed_note,
    verify_checkpoint,
    verify_consistency,
)
from custody.witness.protocol import SIZE_CONTENT_TYPE, BadRequest, parse_request
from custody.witness.state import LogState, WitnessDir

TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = TEXT
    detail: str = ""  # for the request log: which log, which sizes (never key material)


def text_reply(status: int, message: str, detail: str = "") -> Reply:
    return Reply(status, (message + "\n").encode(), TEXT, detail or message)


def _conflict(size: int, detail: str) -> Reply:
    return Reply(409, f"{size}\n".encode(), SIZE_CONTENT_TYPE, detail)


class Witness:
    def __init__(self, directory: WitnessDir) -> None:
        self.dir = directory
        self.cosigner = directory.cosigner()
        # Threads of one server serialize here; other processes (add-log) on the directory's flock.
        self._lock = threading.Lock()

    def add_checkpoint(self, body: bytes) -> Reply:
        try:
            request = parse_request(body)
            checkpoint = parse_checkpoint_body(parse_signed_note(request.note).text)
        except (BadRequest, VerificationError) as exc:
            return text_reply(400, f"bad request: {exc}")
        where = f"origin={checkpoint.origin} old={request.old_size} size={checkpoint.size}"
        with self._lock, self.dir.locked():
            log = self.dir.log(checkpoint.origin)
            if log is None or not log.keys:
                return text_reply(404, "unknown log origin", where)
            if not _signed_by_log(request.note, log):
                return text_reply(403, "no valid signature by a trusted key of this log", where)
            if request.old_size > checkpoint.size:
                return text_reply(400, "old size is larger than the checkpoint size", where)
            if request.old_size != log.size:
                return _conflict(log.size, f"{where}: last cosigned size is {log.size}")
            refusal = self._check_extends(log, checkpoint, list(request.proof), where)
            if refusal is not None:
                if refusal.status in (409, 422):
                    self.dir.keep_evidence(checkpoint.origin, body, refusal.detail)
                return refusal
            now = int(time.time())
            if checkpoint.size > log.size:
                # Persist before answering: a cosignature must never outlive the state it promises.
                self.dir.save(LogState(log.origin, log.keys, checkpoint.size, checkpoint.root, request.note, now))
            line = self.cosigner.cosign(request.note, now)
        return Reply(200, line.encode(), TEXT, where)

    @staticmethod
    def _check_extends(log: LogState, checkpoint: Checkpoint, proof: list[bytes], where: str) -> Reply | None:
        if checkpoint.size == log.size:
            if log.size == 0 and checkpoint.root != EMPTY_ROOT:
                return text_reply(422, "a tree of size 0 has the empty root", where)
            if log.size and checkpoint.root != log.root:
                return _conflict(log.size, f"{where}: a different root for the size last cosigned")
            if proof:
                return text_reply(422, "equal sizes need an empty consistency proof", where)
            return None
        if log.size == 0:
            return text_reply(422, "the proof must be empty from size 0", where) if proof else None
        try:
            verify_consistency(log.size, checkpoint.size, log.root or b"", checkpoint.root, proof)
        except VerificationError as exc:
            return text_reply(422, f"consistency proof does not verify: {exc}", where)
        return None


def _signed_by_log(note: str, log: LogState) -> bool:
    """Signatures by keys the witness does not trust are ignored (signed-note)."""
    for key in log.verifier_keys():
        try:
            verify_checkpoint(note, key)
            return True
        except SignatureError:
            continue
        except VerificationError:
            return False
    return False
