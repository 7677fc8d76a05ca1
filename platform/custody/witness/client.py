"""The log's side of tlog-witness: ask each witness to cosign a checkpoint, verify, keep.

`old` is the size this witness last cosigned for this ledger, as the ledger's cosignatures table
remembers it (0 when it never did). On a 409 the witness names its size; if that is not beyond the
head we retry once from there (e.g. the table was lost, or another copy of the log reached it first).
A 409 that persists, or a 422, means the witness saw a history this ledger does not extend.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from custody.ledger.log import Ledger, load_note
from custody.ledger.verifier import CosignerKey, VerificationError, verify_cosignature
from custody.witness.protocol import ADD_CHECKPOINT, SIZE_CONTENT_TYPE, format_request, parse_size_body

DEFAULT_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Exit codes a refusal maps to (custody.cli.common): fork or rollback seen = 1, anything else = 2.
REFUSED_FORK = 1
UNUSABLE = 2


class WitnessFailure(Exception):
    def __init__(self, url: str, status: str, message: str, code: int) -> None:
        super().__init__(f"witness {url}: {status}: {message}")
        self.url = url
        self.status = status
        self.code = code


@dataclass(frozen=True)
class WitnessTarget:
    url: str  # the submission prefix; requests go to <url>/add-checkpoint
    key: CosignerKey


def check_witness_url(text: str) -> str:
    """The submission prefix, or ValueError naming what is wrong with it."""
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"--witness {text!r} is not an http:// or https:// URL with a host")
    if parsed.query or parsed.fragment:
        raise ValueError(f"--witness {text!r}: give the URL prefix, without a query or fragment")
    return text.rstrip("/").removesuffix(ADD_CHECKPOINT)


def _post(url: str, body: bytes, timeout: float) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        url + ADD_CHECKPOINT, data=body, method="POST", headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    # A proxy from the environment must not sit between the log and a witness on this machine.
    handlers = [urllib.request.ProxyHandler({})] if urllib.parse.urlsplit(url).hostname in LOOPBACK else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.headers.get_content_type(), response.read(MAX_RESPONSE_BYTES)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get_content_type(), exc.read(MAX_RESPONSE_BYTES)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WitnessFailure(url, "unreachable", str(reason), UNUSABLE) from exc


def _first_line(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text.splitlines()[0][:200] if text else "(empty body)"


def _pick_cosignature(url: str, body: bytes, note: str, key: CosignerKey) -> str:
    """The response line that is a valid cosignature of `note` by `key` (others are ignored)."""
    for line in body.decode("utf-8", errors="replace").splitlines():
        if line.startswith(f"\u2014 {key.name} "):
            try:
                verify_cosignature(note + line + "\n", key)
            except VerificationError:
                continue
            return line + "\n"
    raise WitnessFailure(
        url, "200", f"no valid cosignature by {key} in the response (is --witness-key right?)", UNUSABLE
    )


def cosign(ledger: Ledger, note: str, target: WitnessTarget, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Get `target`'s cosignature of `note` (this ledger's checkpoint), verify it, keep it; return the line."""
    url, key = target.url, target.key
    size = load_note(note).size
    old = ledger.last_cosigned_size(key)
    for attempt in range(2):
        if old > size:
            raise WitnessFailure(
                url, "409 Conflict", f"the witness cosigned size {old}, beyond this ledger's {size}: rolled back?", 1
            )
        proof = ledger.consistency_proof(old, size) if 0 < old < size else []
        status, content_type, body = _post(url, format_request(old, proof, note), timeout)
        if status == 200:
            line = _pick_cosignature(url, body, note, key)
            ledger.add_cosignature(size, key, line)
            return line
        if status == 409:
            latest = parse_size_body(body) if content_type == SIZE_CONTENT_TYPE else None
            if latest is None:
                raise WitnessFailure(url, "409 Conflict", f"the response is not a {SIZE_CONTENT_TYPE} size", UNUSABLE)
            if attempt == 0 and latest != old and latest <= size:
                old = latest  # the witness is elsewhere in our history: prove from there, once
                continue
            if latest > size:
                why = f"the witness cosigned size {latest}, beyond this ledger's {size}: the ledger was rolled back"
            else:
                why = f"the witness cosigned a tree at size {latest} that this checkpoint (size {size}) does not extend"
            raise WitnessFailure(url, "409 Conflict", why, REFUSED_FORK)
        if status == 422:
            why = f"the consistency proof from size {old} to {size} does not match what the witness saw: a fork"
            raise WitnessFailure(url, "422 Unprocessable Entity", f"{why} ({_first_line(body)})", REFUSED_FORK)
        raise WitnessFailure(url, str(status), _first_line(body), UNUSABLE)
    raise AssertionError("unreachable: the loop returns or raises")


def cosign_all(
    ledger: Ledger, note: str, targets: list[WitnessTarget], timeout: float = DEFAULT_TIMEOUT_S
) -> list[WitnessFailure]:
    """Ask every witness in turn (one refusing does not stop the others); return the failures."""
    failures = []
    for target in targets:
        try:
            cosign(ledger, note, target, timeout)
        except WitnessFailure as exc:
            failures.append(exc)
    return failures
