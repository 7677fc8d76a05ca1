"""`custody ledger ...`: record, browse, verify, checkpoint and prove."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import (
    EXIT_VERIFY_FAILED,
    ActorOption,
    DatabaseOption,
    HomeOption,
    JsonOption,
    KeyOption,
    acting,
    command_group,
    console,
    fail,
    opened,
    print_json,
    read_text_file,
    write_out,
)
from custody.cli.witness_cmds import (
    WitnessKeyOption,
    WitnessUrlOption,
    fail_for_witnesses,
    witness_keys,
    witness_targets,
)
from custody.home import Home, HomeError
from custody.ledger import query
from custody.ledger.verifier import (
    MalformedInput,
    SignatureError,
    VerificationError,
    parse_verifier_key,
    verify_checkpoint,
    verify_consistency_bundle,
    verify_proof_bundle,
)
from custody.ledger.witness import check_extends

app = command_group(help="The tamper-evident audit ledger.", no_args_is_help=True)


def _key(text: str | None, home: Home | None = None):
    if text is None:
        return home.verifier_key if home else None
    try:
        return parse_verifier_key(text)
    except MalformedInput as exc:
        fail(f"--key: {exc}")


@app.command()
def note(
    text: Annotated[str, typer.Argument(help="the note, e.g. an external legal event")],
    subject: Annotated[str, typer.Option(help="what the note is about")] = "note",
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Record a free-text note, signed with your key."""
    with opened(home, database) as h:
        index = h.record("ledger.note/v1", subject, {"text": text}, actor=acting(h, key, actor))
        console.print(f"recorded note at index {index}")


@app.command()
def show(
    start: Annotated[int, typer.Option("--from", min=0, help="first index")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="how many entries")] = 20,
    type_prefix: Annotated[str | None, typer.Option("--type", help="only entry types starting with this")] = None,
    subject: Annotated[str | None, typer.Option(help="only entries about this subject")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """List entries, with who signed each (personally, attested by the dashboard, or the service)."""
    with opened(home, database) as h:
        rows = query.window(h.storage, limit, type_prefix, subject, start=start)
        signed = {r.idx: h.attribute(r) for r in rows}
        if as_json:
            print_json(
                [
                    {
                        "index": r.idx,
                        "leaf_hash": r.leaf_hash.hex(),
                        "entry": query.envelope(r),
                        "signed": signed[r.idx].as_json(),
                    }
                    for r in rows
                ]
            )
            return
        from rich.table import Table

        table = Table("index", "time", "type", "actor", "signed", "subject", "body")
        for r in rows:
            body = json.dumps(query.body(r), ensure_ascii=False)
            who = signed[r.idx]
            how = f"attested by {who.via}" if who.kind == "attested" else who.kind
            if who.problem:
                how += " (NOT PERMITTED)"
            table.add_row(
                str(r.idx), r.ts, r.type, r.actor, how, r.subject, body[:80] + ("…" if len(body) > 80 else "")
            )
        console.print(table)
        console.print(f"{len(rows)} of {h.ledger.size} entries")


@app.command()
def verify(
    key: Annotated[
        str | None, typer.Option(help="verifier key to check checkpoints with [default: the home's]")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="processes checking signatures [default: every core]")
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Re-verify the whole ledger: every entry, node, head and checkpoint, and every entry's signature
    and role against the roster as it stood at that entry. Exit 1 naming the first bad index."""
    from custody.trust.audit import verify_signatures

    with opened(home, database) as h:
        report = h.ledger.verify(_key(key, h), h.witness.remembered())
        signatures = verify_signatures(h.storage, workers)
        report.problems.extend(signatures.problems)
        if as_json:
            print_json(
                {
                    "ok": report.ok,
                    "size": report.size,
                    "root": report.root.hex(),
                    "checkpoints_checked": report.checkpoints_checked,
                    "first_bad_index": report.first_bad_index,
                    "signed": signatures.signed_home,
                    "signatures": signatures.by_kind,
                    "problems": [{"index": i, "problem": p} for i, p in sorted(report.problems)],
                }
            )
        if not report.ok:
            if not as_json:
                fail(f"ledger verification failed: {report.first_problem()}", EXIT_VERIFY_FAILED)
            raise typer.Exit(EXIT_VERIFY_FAILED)
        if not as_json:
            console.print(
                f"ledger intact: {report.size} entries, root {report.root.hex()}, "
                f"{report.checkpoints_checked} checkpoints checked"
            )
            if signatures.signed_home:
                kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(signatures.by_kind.items()))
                console.print(f"signatures: all {signatures.entries} entries signed and permitted ({kinds})")
            else:
                console.print("signatures: none (a home made before signed entries)")


@app.command()
def checkpoint(
    out: Annotated[Path | None, typer.Option(help="also write the signed note to this file")] = None,
    witness: WitnessUrlOption = None,
    witness_key: WitnessKeyOption = None,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Sign a checkpoint of the current head (after proving it extends the last one).

    With --witness URL --witness-key VKEY (repeatable, paired in order), each witness is asked to
    cosign it (C2SP tlog-witness); verified cosignatures are kept with the checkpoint and printed
    with it. A witness that refuses: exit 1 if it saw a fork or rollback, 2 if unreachable or
    misconfigured; the checkpoint stays signed either way (docs/witness.md).
    """
    from custody.witness.client import cosign_all

    targets = witness_targets(witness, witness_key)  # bad input fails before anything is signed
    with opened(home, database) as h:
        signed = h.checkpoint()
        failures = cosign_all(h.ledger, signed, targets)
        signed = h.ledger.with_cosignatures(signed)
        if out:
            write_out(out, signed)
        typer.echo(signed, nl=False)
        fail_for_witnesses(failures)


@app.command()
def pubkey(home: HomeOption = None) -> None:
    """Print the verifier key that checks this ledger's checkpoints."""
    try:
        typer.echo(str(Home.open(home).verifier_key))
    except HomeError as exc:
        fail(str(exc))


@app.command()
def proof(
    index: Annotated[int, typer.Argument(min=0, help="ledger index of the entry")],
    out: Annotated[Path, typer.Option(help="file to write the proof to")],
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Export an entry with its inclusion proof and a signed checkpoint, verifiable offline."""
    with opened(home, database) as h:
        h.ledger.entry(index)  # a clear error for an index beyond the ledger
        # The newest cosigned checkpoint covering the entry, else the newest covering it, else a new one.
        note_text = h.ledger.proof_checkpoint(index) or h.checkpoint()
        bundle = h.ledger.export_proof(index, note_text)
        write_out(out, json.dumps(bundle, indent=2) + "\n")
        console.print(f"wrote proof of entry {index} at size {bundle['tree_size']} to {out}")


@app.command("verify-proof")
def verify_proof(
    file: Annotated[Path, typer.Argument(help="proof file from `custody ledger proof`")],
    key: Annotated[str, typer.Option(help="the ledger's verifier key (from `custody ledger pubkey`)")],
    witness_key: WitnessKeyOption = None,
) -> None:
    """Verify an exported proof offline: needs only the file and the key (and each --witness-key
    whose cosignature of the checkpoint is required)."""
    text = read_text_file(file, "proof file")
    verifier_key = _key(key)
    witnesses = witness_keys(witness_key)
    try:
        verified = verify_proof_bundle(text, verifier_key, witnesses)
    except MalformedInput as exc:
        fail(f"{file}: {exc}")
    except VerificationError as exc:
        fail(f"{file}: proof does not verify: {exc}", EXIT_VERIFY_FAILED)
    entry = query.envelope(verified)
    console.print(
        f"verified: entry {verified.index} ({entry.get('type')}) is in {verified.checkpoint.origin} "
        f"at size {verified.checkpoint.size}{_cosigned_by(witnesses)}"
    )


def _cosigned_by(witnesses: list) -> str:
    return f", cosigned by {', '.join(w.name for w in witnesses)}" if witnesses else ""


@app.command()
def consistency(
    checkpoint_file: Annotated[Path, typer.Argument(help="an older signed checkpoint of this ledger")],
    key: Annotated[str | None, typer.Option(help="verifier key [default: the home's]")] = None,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Prove the current ledger extends an older checkpoint; exit 1 on a fork."""
    old_note = read_text_file(checkpoint_file, "checkpoint")
    with opened(home, database) as h:
        verifier_key = _key(key, h)
        try:
            old = verify_checkpoint(old_note, verifier_key)
        except MalformedInput as exc:
            fail(f"{checkpoint_file}: {exc}")
        current = h.ledger.latest_checkpoint()
        size = h.ledger.size
        if current is None or verify_checkpoint(current, verifier_key).size != size:
            current = h.checkpoint()
        new = check_extends(old_note, current, verifier_key, h.ledger.consistency_proof)
        proof_hashes = h.ledger.consistency_proof(old.size, new.size) if old.size else []
        console.print(
            f"consistent: size {new.size} extends size {old.size} "
            f"({len(proof_hashes)} proof hashes: {', '.join(base64.b64encode(p).decode()[:12] for p in proof_hashes)})"
        )


@app.command("consistency-proof")
def consistency_proof(
    checkpoint_file: Annotated[Path, typer.Argument(help="an older signed checkpoint of this ledger")],
    out: Annotated[Path, typer.Option(help="file to write the consistency proof to")],
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Hand over a proof that the ledger extends an older checkpoint (custody.consistency-proof/v1).

    The new checkpoint is the latest (signed now if the head moved), with its cosignatures;
    `custody ledger verify-consistency FILE --key KEY` checks it offline. Exit 1 on a fork."""
    from custody.witness.handover import consistency_document

    old_note = read_text_file(checkpoint_file, "checkpoint")
    with opened(home, database) as h:
        try:
            document = consistency_document(h, old_note)
        except MalformedInput as exc:
            fail(f"{checkpoint_file}: {exc}")
        except SignatureError as exc:
            fail(f"{checkpoint_file}: not a checkpoint of this ledger: {exc}", EXIT_VERIFY_FAILED)
        write_out(out, json.dumps(document, indent=2) + "\n")
        console.print(
            f"wrote proof that size {document['new_size']} extends size {document['old_size']} "
            f"({len(document['proof'])} hashes) to {out}"
        )


@app.command("verify-consistency")
def verify_consistency_cmd(
    file: Annotated[Path, typer.Argument(help="file from `custody ledger consistency-proof`")],
    key: Annotated[str, typer.Option(help="the ledger's verifier key (from `custody ledger pubkey`)")],
    witness_key: WitnessKeyOption = None,
) -> None:
    """Verify a hand-over consistency proof offline. Exit 0 consistent, 1 not (or a bad signature or
    a missing cosignature), 2 malformed file or key."""
    text = read_text_file(file, "consistency proof file")
    verifier_key = _key(key)
    witnesses = witness_keys(witness_key)
    try:
        result = verify_consistency_bundle(text, verifier_key, witnesses)
    except MalformedInput as exc:
        fail(f"{file}: {exc}")
    except VerificationError as exc:
        fail(f"{file}: not consistent: {exc}", EXIT_VERIFY_FAILED)
    console.print(
        f"consistent: size {result.new.size} of {result.new.origin} extends size {result.old.size}"
        f"{_cosigned_by(witnesses)}"
    )


@app.command("entry")
def entry_cmd(
    index: Annotated[int, typer.Argument(help="ledger index", min=0)],
    body_out: Annotated[Path | None, typer.Option("--body-out", help="write the exact signed bytes here")] = None,
    signature_out: Annotated[
        Path | None, typer.Option("--signature-out", help="write the armored SSH signature here")
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show one entry and who signed it; export what `ssh-keygen -Y verify` needs to check it alone."""
    from custody.ledger.entry import Entry
    from custody.trust import sshsig
    from custody.trust.audit import classify

    with opened(home, database) as h:
        row = h.ledger.entry(index)
        entry = Entry.decode(row.entry)
        doc = entry.as_dict()
        if entry.signature is None:
            fail(f"entry {index} is unsigned (a home made before signed entries)")
        signer, problem = classify(index, doc, h.roster(max(index, 1)))  # entry 0 declares the service key
        principal = {"service": "custody-service"}.get(signer.kind, signer.name) if signer else None
        if body_out is not None:
            write_out(body_out, entry.signed_bytes)
        if signature_out is not None:
            write_out(signature_out, sshsig.armor(entry.signature))
        info = {
            "index": index,
            "type": entry.type,
            "actor": entry.actor,
            "subject": entry.subject,
            "ts": entry.ts,
            "signed_by": principal,
            "signer_kind": signer.kind if signer else None,
            "key_fingerprint": sshsig.parse(entry.signature).public.fingerprint,
            "attest": entry.attest,
            "problem": problem,
            "body": entry.body,
        }
        if as_json:
            print_json(info)
        else:
            kind = {"person": "personally", "attested": "attested by", "service": "by the service key, for"}
            who = f"{kind[signer.kind]} {principal if signer.kind != 'service' else entry.actor}" if signer else "?"
            console.print(f"entry {index}: {entry.type} on {entry.subject}, {entry.ts}")
            console.print(f"  signed {who} ({info['key_fingerprint']})")
            if entry.attest:
                a = entry.attest
                console.print(f"  attests {entry.actor}, signed in by {a['method']} at {a['signed_in_at']}")
            if problem:
                console.print(f"  NOT PERMITTED: {problem}")
            if body_out and signature_out:
                stamp = entry.ts[:19].replace("-", "").replace(":", "").replace("T", "") + "Z"
                console.print(
                    f"  check alone: custody people allowed-signers > allowed_signers && ssh-keygen -Y verify "
                    f"-f allowed_signers -I {principal} -n custody -s {signature_out} "
                    f"-Overify-time={stamp} < {body_out}"
                )
        if problem:
            raise typer.Exit(EXIT_VERIFY_FAILED)
