"""`custody optout import | list`: opt-out registries, and the dataset versions they affect."""

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
from custody.wording import plural

app = command_group(
    help="Opt-out registries: domains, URL prefixes, authors and records left out of training (docs/optout.md).",
    no_args_is_help=True,
)


def _kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count:,}" for kind, count in sorted(kinds.items()))


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="a .csv or .jsonl of kind, value, source, date")],
    registry: Annotated[
        str, typer.Option("--registry", help="the registry this file is a version of (its newest import is in force)")
    ] = "default",
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Import a version of an opt-out registry (signed with your key) and show the dataset versions it affects.

    Every line is checked first; a bad one is reported as FILE:LINE and its field, and nothing is
    recorded. An import that drops entries of the registry's previous one lifts those opt-outs:
    it needs an approver's or an admin's key.
    """
    from custody.optout.lists import OptOutFileError
    from custody.optout.registry import RegistryError, import_file

    with opened(home, database) as h:
        who = acting(h, key, actor, "optout")
        try:
            imported = import_file(h, file, registry, who)
        except (OptOutFileError, RegistryError) as exc:
            fail(str(exc))
    body = imported.body
    if as_json:
        print_json(imported.as_json())
        return
    replaced = (
        f"; replaces ledger index {body['replaces']}: {body['added']:,} added, {body['withdrawn']:,} withdrawn"
        if body.get("replaces") is not None
        else ""
    )
    console.print(
        f"opt-out registry {body['registry']}: {plural(body['entries'], 'entry')} ({_kinds(body['kinds'])}) "
        f"from {body['file_name']} (sha256 {body['file_digest'][:12]}) recorded at ledger index "
        f"{imported.ledger_index}{replaced}"
    )
    if not body["affected"]:
        console.print("  it matches no record of any registered dataset version")
    else:
        console.print("  it affects:")
    for hit in body["affected"]:
        console.print(
            f"  {hit['dataset']}: {plural(hit['records'], 'record')} ({hit['new']:,} not opted out before; "
            f"{_kinds(hit['kinds'])})"
        )
    for unread in body["unread"]:
        console.print(f"  {unread['dataset']}: not matched, {unread['problem']}")
    if body["affected"]:
        console.print("  recheck them: custody check NAME@VERSION --checks provenance")


@app.command("list")
def list_command(
    entries: Annotated[bool, typer.Option("--entries", help="list every entry of the registries in force")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """The opt-out registries in force (each one's newest import), and with --entries what they list."""
    from custody.optout.registry import current

    with opened(home, database) as h:
        state = current(h)
        listed = {i.registry: i.entries(h) for i in state.imports} if entries or as_json else {}
    if as_json:
        print_json(
            {
                "digest": state.digest,
                "registries": [
                    {**i.as_json(), "listed": [e.as_json() for e in listed[i.registry]]} for i in state.imports
                ],
            }
        )
        return
    if not state.imports:
        console.print("no opt-out registries (custody optout import FILE)")
    for i in state.imports:
        body = i.body
        console.print(
            f"{i.registry}  ledger index {i.ledger_index}  {i.ts[:19]}  by {i.actor}  "
            f"{plural(body['entries'], 'entry')} ({_kinds(body['kinds'])})  {body['file_name']} "
            f"sha256 {body['file_digest'][:12]}"
        )
        for entry in listed.get(i.registry, []):
            console.print(
                f"  {entry.kind:<11} {entry.value}  (source: {entry.source}, {entry.date}, line {entry.line})"
            )
