"""`custody takedown request | list | show`: requests to remove a work, recorded before anything changes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import (
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
)
from custody.cli.find_cmds import read_passage

app = command_group(
    help="Takedown requests: who asks for which work to be removed, and where it is (docs/takedown.md).",
    no_args_is_help=True,
)


def _print_affected(found) -> None:
    if not found.hits:
        console.print("  held by no registered dataset version now")
        return
    for dataset in sorted({h.dataset for h in found.hits}):
        records = [h.record_id for h in found.hits if h.dataset == dataset]
        console.print(
            f"  {dataset}: {len(records)} record(s) ({', '.join(records[:5])}{' ...' if len(records) > 5 else ''})"
        )
    if found.derived:
        console.print(f"  derived from them: {', '.join(found.derived)}")
    for run in found.runs:
        console.print(f"  run {run['run_id']} read {', '.join(run['read'])}: {len(run['checkpoints'])} checkpoint(s)")


@app.command("request")
def request_command(
    by: Annotated[str, typer.Option("--by", help="who asks: the author, site owner or person concerned")],
    reason: Annotated[str, typer.Option("--reason", help="why: copyright, opt-out, personal data, ...")],
    text_file: Annotated[Path | None, typer.Option("--text-file", help="the work: a passage of it, UTF-8")] = None,
    record_hash: Annotated[str | None, typer.Option("--record-hash", help="the work: a record's text SHA-256")] = None,
    url_prefix: Annotated[
        str | None, typer.Option("--url-prefix", help="every record whose source URL starts with this")
    ] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="every record from this host or below it")] = None,
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
            taken = request(h, by, reason, passage, record_hash, who, url_prefix=url_prefix, domain=domain)
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
    console.print(f"  work: {q['kind']} sha256 {q['sha256']}" + (f" ({q['words']} words)" if q.get("words") else ""))
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
    from custody.takedown.requests import RequestError

    say = (lambda _line: None) if as_json else console.print
    with opened(home, database) as h:
        who = acting(h, key, actor)
        try:
            done = apply(h, request_id, who, include_running=include_running, say=say)
        except (ApplyError, RequestError) as exc:
            fail(str(exc))
    if as_json:
        print_json({"ledger_index": done.ledger_index, **done.body})
        return
    console.print(f"takedown {done.request.id} applied at ledger index {done.ledger_index}:")
    _print_changes(done.body)
