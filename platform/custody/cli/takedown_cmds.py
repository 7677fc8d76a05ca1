"""`custody takedown request | list | show`: requests to remove a work, recorded before anything changes."""

from __future__ import annotations

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
    VerifierKeyOption,
    acting,
    command_group,
    console,
    err_console,
    fail,
    opened,
    print_json,
    verifier_key,
)
from custody.cli.find_cmds import (
    DomainOption,
    FieldOption,
    RecordHashOption,
    TextFileOption,
    UrlPrefixOption,
    read_passage,
)

app = command_group(
    help="Takedown requests: who asks for which work to be removed, and where it is (docs/takedown.md).",
    no_args_is_help=True,
)


def _print_affected(found) -> None:
    if not found.live_hits():
        console.print("  held by no live dataset version now")
    for dataset in sorted({h.dataset for h in found.hits}):
        records = [h.record_id for h in found.hits if h.dataset == dataset]
        removed = found.removed.get(dataset)
        note = f" (taken down by {removed['takedown']}; bytes still in the store)" if removed else ""
        listed = ", ".join(records[:5]) + (" ..." if len(records) > 5 else "")
        console.print(f"  {dataset}: {len(records)} record(s) ({listed}){note}")
    if found.derived:
        console.print(f"  derived from them: {', '.join(found.derived)}")
    for run in found.runs:
        console.print(f"  run {run['run_id']} read {', '.join(run['read'])}: {len(run['checkpoints'])} checkpoint(s)")


@app.command("request")
def request_command(
    by: Annotated[str, typer.Option("--by", help="who asks: the author, site owner or person concerned")],
    reason: Annotated[str, typer.Option("--reason", help="why: copyright, opt-out, personal data, ...")],
    text_file: TextFileOption = None,
    record_hash: RecordHashOption = None,
    url_prefix: UrlPrefixOption = None,
    domain: DomainOption = None,
    field: FieldOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Record a takedown request (signed with your key) and show where the work is now.

    The passage itself is never recorded: only the SHA-256 of its words and its shingle hashes.
    """
    from custody.takedown.find import FindError
    from custody.takedown.requests import RequestError, affected, request

    passage = read_passage(text_file) if text_file is not None else None
    with opened(home, database) as h:
        who = acting(h, key, actor, "takedown")
        try:
            taken = request(h, by, reason, passage, record_hash, who, url_prefix=url_prefix, domain=domain, field=field)
        except FindError as exc:
            fail(f"--text-file {text_file}: {exc}")
        except RequestError as exc:
            fail(str(exc))
        found = affected(h, taken, who)
    if as_json:
        print_json({**taken.as_json(), "affected": found.as_json()})
        return
    console.print(f"takedown request {taken.id} recorded at ledger index {taken.ledger_index}; the work is now in:")
    _print_affected(found)


@app.command("list")
def list_command(as_json: JsonOption = False, home: HomeOption = None, database: DatabaseOption = None) -> None:
    """Every takedown request, oldest first."""
    from custody.takedown.requests import all_requests

    with opened(home, database) as h:
        requests = all_requests(h)
    if as_json:
        print_json([r.as_json() for r in requests])
        return
    if not requests:
        console.print("no takedown requests")
    for r in requests:
        console.print(
            f"{r.id}  {r.ts[:19]}  by {r.body['requested_by']}  ({r.body['query']['kind']}): {r.body['reason']}"
        )


@app.command("show")
def show_command(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="a request id, td-xxxxxxxx")],
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """A request, and where the work is now (indexes missing are built and recorded)."""
    from custody.takedown.apply import applied
    from custody.takedown.requests import RequestError, affected, get

    with opened(home, database) as h:
        try:
            taken = get(h, request_id)
        except RequestError as exc:
            fail(str(exc))
        found = affected(h, taken, acting(h, key, actor, "takedown"))
        applied_bodies = applied(h, taken.id)
    if as_json:
        applications = [{"ledger_index": i, **body} for i, body in applied_bodies]
        print_json({**taken.as_json(), "applied": applications, "affected": found.as_json()})
        return
    q = taken.body["query"]
    console.print(
        f"{taken.id}: requested by {taken.body['requested_by']}, "
        f"recorded by {taken.actor} at ledger index {taken.ledger_index}"
    )
    console.print(f"  reason: {taken.body['reason']}")
    what = {"url-prefix": q.get("url_prefix"), "domain": q.get("domain"), "field": f"field {q.get('field')}, value"}
    described = what.get(q["kind"]) or q["kind"]
    console.print(f"  work: {described} sha256 {q['sha256']}" + (f" ({q['words']} words)" if q.get("words") else ""))
    for index, body in applied_bodies:
        console.print(f"  applied at ledger index {index}:")
        _print_changes(body)
    _print_affected(found)


def _print_changes(body: dict) -> None:
    for version in body["versions"]:
        new = version["new"] or "no version (nothing left)"
        console.print(f"    {version['old']} -> {new} ({version['how']}, {version['removed']} record(s) held the work)")
    for run in body["tainted_runs"]:
        why = f"read {', '.join(run['read'])}" if run["read"] else f"started from run {run['inherits_from']}"
        console.print(f"    run {run['run_id']} tainted ({why})")


@app.command("apply")
def apply_command(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="a request id, td-xxxxxxxx")],
    include_running: Annotated[
        bool, typer.Option("--include-running", help="apply even while a run reads affected data (it is tainted)")
    ] = False,
    erase: Annotated[
        bool, typer.Option("--erase", help="then erase the replaced shards from the store (`store gc`; admin)")
    ] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Remove the work: new versions without it, everything derived from them derived again, runs tainted.

    Signed by you (an approver or admin). Exit 2 when it cannot be applied (already applied, held
    nowhere, a run in progress, a derived dataset that cannot be derived again): nothing is taken
    down then. An interrupted apply resumes when run again.
    """
    from custody.takedown.apply import ApplyError, apply
    from custody.takedown.erase import gc
    from custody.takedown.requests import RequestError
    from custody.trust.acting import Person, require_roles

    say = (lambda _line: None) if as_json else console.print
    with opened(home, database) as h:
        who = acting(h, key, actor)
        if erase and isinstance(who, Person):
            require_roles(who, frozenset({"admin"}), "erase from the store (--erase)")
        try:
            done = apply(h, request_id, who, include_running=include_running, say=say)
        except (ApplyError, RequestError) as exc:
            fail(str(exc))
        erased = gc(h, who, done.request.id) if erase else None
    if as_json:
        print_json({"ledger_index": done.ledger_index, **done.body, "erased": erased.as_json() if erased else None})
        return
    console.print(f"takedown {done.request.id} applied at ledger index {done.ledger_index}:")
    _print_changes(done.body)
    if erased is not None:
        total = sum(e.size for e in erased.erased)
        console.print(f"erased {len(erased.erased)} shard(s) of the replaced versions ({total:,} bytes)")


@app.command("proof")
def proof_command(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="an applied request, td-xxxxxxxx")],
    out: Annotated[Path, typer.Option("--out", "-o", help="the proof file to write (JSON)")],
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Write an offline-verifiable proof that the request was applied and the removed records are gone.

    Anyone checks it with `custody takedown verify-proof FILE --key VKEY` (the key from
    `custody ledger pubkey`): the signed request and application entries, and for each new dataset
    version a proof that every removed record is absent from its sorted record digests.
    """
    from custody.takedown.proof import NotApplied, build_proof
    from custody.takedown.requests import RequestError

    with opened(home, database) as h:
        try:
            doc = build_proof(h, request_id)
        except (RequestError, NotApplied) as exc:
            fail(str(exc))
    try:
        out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"--out {out}: cannot write ({exc.strerror})")
    proved = sum(len(r["absences"]) for r in doc["removals"])
    console.print(
        f"wrote {out}: {proved} removed record(s) proved absent from {len(doc['removals'])} new version(s), "
        f"entries proved to the checkpoint at size {doc['tree_size']}"
    )


@app.command("verify-proof")
def verify_proof_command(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="a proof written by `custody takedown proof`")],
    key: VerifierKeyOption,
    as_json: JsonOption = False,
) -> None:
    """Verify a proof of removal offline, with nothing but the file and the ledger's verifier key.

    Exit codes: 0 verified; 1 verification failed (the problem is named); 2 not a proof file or a bad key.
    """
    from custody.ledger.verifier import MalformedInput, VerificationError
    from custody.takedown.proof import verify_proof

    verifier = verifier_key(key)
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"{path}: cannot read ({exc.strerror})")
    try:
        result = verify_proof(data, verifier)
    except MalformedInput as exc:
        fail(f"{path}: {exc}")
    except VerificationError as exc:
        if as_json:
            print_json({"file": str(path), "ok": False, "problem": str(exc)})
        else:
            err_console.print(f"{path}: NOT verified: {exc}")
        raise typer.Exit(EXIT_VERIFY_FAILED) from None
    if as_json:
        print_json({"file": str(path), "ok": True, **result.as_json()})
        return
    console.print(
        f"{path}: verified: takedown {result.request} (requested by {result.requested_by}: {result.reason}) "
        f"proved to the checkpoint at size {result.tree_size}"
    )
    for application in result.applications:
        for version in application["versions"]:
            if version["new"] is None:
                console.print(f"  {version['old']}: no version replaces it")
            else:
                console.print(f"  {version['new']}: {version['absent']} removed record(s) proved absent")
