"""`custody verify-report`: check a report offline with nothing but the ledger's verifier key.

For each anchor: the entry's bytes hash to its leaf hash, the inclusion proof leads to the root of
the signed checkpoint, and the checkpoint's signature is the key's. Every claim in the report
must match the anchored entry it cites (artifacts by digest). The seal proves the digest of the
whole report content was recorded in the ledger; for Markdown and HTML that content carries the
digest of the human-readable text around it. So any edited byte fails, and says where.

Witnesses required by the verifier (`--witness-key`) must have cosigned the anchors' checkpoint
(the one every cited entry is proved to) or the seal's, which extends it by a verified consistency
proof; a cosignature line by a required witness that does not verify fails the report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from custody.ledger.entry import json_digest
from custody.ledger.verifier import (
    Checkpoint,
    CosignerKey,
    VerificationError,
    VerifierKey,
    hex_hashes,
    parse_signed_note,
    verify_anchored_entry,
    verify_checkpoint,
    verify_consistency,
    verify_cosignature,
)
from custody.reports import REPORT_FORMAT
from custody.reports.claims import claims, mismatch
from custody.reports.layout import LayoutError, parse

FRAMING = ("anchors", "seal", "rendering")


class ReportInputError(ValueError):
    """Not a custody report at all (exit 2), as opposed to one that fails verification (exit 1)."""


@dataclass
class VerifyResult:
    fmt: str
    subject: str
    problems: list[str] = field(default_factory=list)
    entries_verified: int = 0
    claims_checked: int = 0
    sealed_at: int | None = None
    tree_size: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "format": self.fmt,
            "subject": self.subject,
            "problems": self.problems,
            "entries_verified": self.entries_verified,
            "claims_checked": self.claims_checked,
            "sealed_at": self.sealed_at,
            "tree_size": self.tree_size,
        }


def _checkpoint(note: Any, key: VerifierKey, size: Any) -> Checkpoint:
    if not isinstance(note, str):
        raise VerificationError("is missing")
    checkpoint = verify_checkpoint(note, key)
    if checkpoint.size != size:
        raise VerificationError(f"is for tree size {checkpoint.size}, the proofs for {size}")
    return checkpoint


def verify_report(data: bytes, key: VerifierKey, witnesses: Sequence[CosignerKey] = ()) -> VerifyResult:
    try:
        parsed = parse(data)
    except LayoutError as exc:
        raise ReportInputError(str(exc)) from exc
    doc = parsed.doc
    if doc.get("format") != REPORT_FORMAT or not isinstance(doc.get("anchors"), dict):
        raise ReportInputError(f"not a {REPORT_FORMAT} document (no format tag or no anchors)")
    if not isinstance(doc.get("seal"), dict):
        raise ReportInputError("the report has no seal (was it written by `custody report`?)")
    result = VerifyResult(parsed.fmt, str(doc.get("subject")))
    problems = result.problems
    if not parsed.layout_ok:
        problems.append("the embedded report document was edited: its text is not as custody wrote it")

    anchors = doc["anchors"]
    verified: dict[int, dict[str, Any]] = {}
    anchored: dict[int, dict[str, Any]] = {}
    checkpoint = None
    try:
        checkpoint = _checkpoint(anchors.get("checkpoint"), key, anchors.get("tree_size"))
        result.tree_size = checkpoint.size
    except VerificationError as exc:
        problems.append(f"anchors' signed checkpoint: {exc}")
    for item in anchors.get("entries") or []:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int):
            problems.append("an anchor has no integer index")
            continue
        anchored[index] = item
        if checkpoint is None:
            continue
        try:
            verified[index] = verify_anchored_entry(item, checkpoint.size, checkpoint)
        except VerificationError as exc:
            problems.append(f"anchored ledger entry {index}: {exc}")
    result.entries_verified = len(verified)

    body = {k: v for k, v in doc.items() if k not in FRAMING}
    for claim in claims(body):
        index = claim["ledger_index"]
        result.claims_checked += 1
        if index not in anchored:
            problems.append(f"a claim cites ledger entry {index}, which the report does not anchor")
        elif index in verified:
            why = mismatch(claim, verified[index])
            if why:
                problems.append(f"claim on ledger entry {index} ({verified[index].get('type')}): {why}")

    _check_rendering(doc, parsed.fmt, parsed.human, problems)
    _check_seal(doc, parsed.fmt, key, checkpoint, result)
    _check_witnesses(doc, witnesses, problems)
    return result


def _check_witnesses(doc: dict[str, Any], witnesses: Sequence[CosignerKey], problems: list[str]) -> None:
    notes = [doc["anchors"].get("checkpoint"), doc["seal"].get("checkpoint")]
    notes = [note for note in notes if isinstance(note, str)]
    for witness in witnesses:
        cosigned = False
        for note in notes:
            try:
                signers = {(name, kid) for name, kid, _ in parse_signed_note(note).signatures}
            except VerificationError:
                continue  # a malformed checkpoint is already a problem of its own
            if (witness.name, witness.key_id) not in signers:
                continue
            try:
                verify_cosignature(note, witness)
                cosigned = True
            except VerificationError as exc:
                problems.append(f"witness {witness.name}: {exc}")
                break
        else:
            if not cosigned:
                problems.append(f"witness {witness.name}: neither of the report's checkpoints carries its cosignature")


def _check_rendering(doc: dict[str, Any], fmt: str, human: bytes | None, problems: list[str]) -> None:
    rendering = doc.get("rendering")
    if fmt == "json":
        if rendering is not None:
            problems.append("a JSON report carries a rendering digest: it was cut out of a Markdown or HTML report")
        return
    if not isinstance(rendering, dict) or rendering.get("format") != fmt:
        problems.append(f"the embedded report is not the one rendered as {fmt}")
        return
    if human is None or hashlib.sha256(human).hexdigest() != rendering.get("sha256"):
        problems.append(f"the human-readable {fmt} text was edited: its digest does not match the report's")


def _check_seal(doc: dict[str, Any], fmt: str, key: VerifierKey, anchors_cp: Checkpoint | None, result) -> None:
    seal = doc["seal"]
    problems = result.problems
    try:
        checkpoint = _checkpoint(seal.get("checkpoint"), key, seal.get("tree_size"))
    except VerificationError as exc:
        problems.append(f"seal's signed checkpoint: {exc}")
        return
    try:
        envelope = verify_anchored_entry(seal, checkpoint.size, checkpoint)
    except VerificationError as exc:
        problems.append(f"seal (ledger entry {seal.get('index')}): {exc}")
        return
    result.sealed_at = seal["index"]
    recorded = envelope["body"]
    content = {k: v for k, v in doc.items() if k != "seal"}
    if envelope.get("type") != "report.exported/v1":
        problems.append(f"seal (ledger entry {seal['index']}) is a {envelope.get('type')}, not a report.exported entry")
    elif recorded.get("digest") != json_digest(content):
        problems.append(
            f"the report content does not match the digest recorded in ledger entry {seal['index']}: it was edited"
        )
    elif (recorded.get("format"), recorded.get("subject")) != (fmt, doc.get("subject")):
        problems.append(f"ledger entry {seal['index']} recorded a {recorded.get('format')} report on another subject")
    if anchors_cp is not None:
        try:
            proof = hex_hashes(seal.get("consistency"), "the seal's consistency proof")
            verify_consistency(anchors_cp.size, checkpoint.size, anchors_cp.root, checkpoint.root, proof)
        except VerificationError as exc:
            problems.append(f"the seal's checkpoint does not extend the anchors' checkpoint: {exc}")
