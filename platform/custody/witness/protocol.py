"""The tlog-witness add-checkpoint request body, both ways.

old <size>\n
<base64 consistency-proof hash>\n      (0 to 63 lines)
\n
<signed checkpoint note>
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from custody.ledger.verifier import HASH_SIZE, MAX_NOTE_BYTES

ADD_CHECKPOINT = "/add-checkpoint"
SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
# A note of at most MAX_NOTE_BYTES plus the old line and 63 proof lines.
MAX_BODY_BYTES = MAX_NOTE_BYTES + 64 * 64


class BadRequest(ValueError):
    """The request body is not a well-formed add-checkpoint request (HTTP 400)."""


@dataclass(frozen=True)
class AddCheckpoint:
    old_size: int
    proof: tuple[bytes, ...]
    note: str


def _decimal(text: str, what: str) -> int:
    # ASCII decimal, no sign, no leading zeroes (unless it is 0), fits an unsigned 64-bit size.
    if not text.isascii() or not text.isdigit() or (text != "0" and text[0] == "0") or len(text) > 20:
        raise BadRequest(f"{what} is not a decimal size")
    value = int(text)
    if value >= 1 << 64:
        raise BadRequest(f"{what} is out of range")
    return value


def parse_request(body: bytes) -> AddCheckpoint:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest("request body is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("request body is not UTF-8") from exc
    cut = text.find("\n\n")
    if cut < 0:
        raise BadRequest("request body has no empty line before the checkpoint")
    head, note = text[:cut].split("\n"), text[cut + 2 :]
    if not head[0].startswith("old "):
        raise BadRequest("request body must start with 'old <size>'")
    old_size = _decimal(head[0][4:], "old size")
    if len(head) - 1 > MAX_PROOF_LINES:
        raise BadRequest(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for number, line in enumerate(head[1:], 1):
        try:
            value = base64.b64decode(line.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            raise BadRequest(f"consistency proof line {number} is not base64") from exc
        if len(value) != HASH_SIZE:
            raise BadRequest(f"consistency proof line {number} is not a {HASH_SIZE}-byte hash")
        proof.append(value)
    if not note:
        raise BadRequest("request body has no checkpoint")
    return AddCheckpoint(old_size, tuple(proof), note)


def format_request(old_size: int, proof: list[bytes], note: str) -> bytes:
    if len(proof) > MAX_PROOF_LINES:
        raise ValueError(f"a consistency proof of {len(proof)} hashes is longer than the protocol allows")
    lines = [f"old {old_size}", *(base64.b64encode(p).decode() for p in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode("utf-8")


def parse_size_body(body: bytes) -> int | None:
    """The size in a 409 response body (`<size>\\n`), or None when it is not one."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\n"):
        return None
    try:
        return _decimal(text[:-1], "size")
    except BadRequest:
        return None
