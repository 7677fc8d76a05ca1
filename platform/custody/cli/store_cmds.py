"""`custody store ...`: the content-addressed artifact store."""

from __future__ import annotations

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
)
from custody.store import ArtifactError

app = command_group(help="The content-addressed artifact store.", no_args_is_help=True)


@app.command()
def put(
    file: Annotated[Path, typer.Argument(help="file to store")],
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Store a file under its SHA-256 digest and print the digest."""
    if not file.is_file():
        fail(f"{file}: not a readable file")
    with opened(home, database) as h:
        console.print(h.store.put_file(file))


@app.command()
def check(
    digest: Annotated[str, typer.Argument(help="SHA-256 hex digest")],
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Check that an artifact is present and its bytes still match its digest."""
    with opened(home, database) as h:
        try:
            ok = h.store.verify(digest)
        except ArtifactError as exc:
            fail(str(exc))
        if not ok:
            fail(f"artifact {digest} is missing or corrupted", EXIT_VERIFY_FAILED)
        console.print(f"artifact {digest} intact")


@app.command()
def erase(
    digest: Annotated[str, typer.Argument(help="SHA-256 hex digest of the payload to erase")],
    reason: Annotated[str, typer.Option(help="why, e.g. the erasure request's reference")],
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Erase a payload (a legal erasure request); the ledger keeps its digest and records the erasure."""
    with opened(home, database) as h:
        admin = acting(h, key, actor)
        try:
            path_exists = h.store.exists(digest)
        except ArtifactError as exc:
            fail(str(exc))
        if not path_exists:
            fail(f"artifact {digest} is not in the store")
        digest = digest.removeprefix("sha256:")
        # Record first: an erasure that is not in the ledger must not happen.
        index = h.record(
            "artifact.erased/v1",
            f"artifact:{digest}",
            {"digest": digest, "reason": reason},
            refs=[f"sha256:{digest}"],
            actor=admin,
        )
        h.store.erase(digest)
        console.print(f"erased {digest}; recorded at index {index}")


@app.command()
def gc(
    takedown: Annotated[
        str | None, typer.Option("--takedown", metavar="ID", help="only what this takedown replaced")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be erased; erase nothing")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Erase the shards of dataset versions a takedown replaced, once no live version names them.

    Each erasure is recorded (`artifact.erased/v1`, signed by you, an admin) before the bytes go;
    the ledger keeps their digests and still verifies.
    """
    from custody.takedown.erase import collect
    from custody.takedown.erase import gc as collect_garbage

    with opened(home, database) as h:
        if takedown is not None:
            from custody.takedown.apply import applied
            from custody.takedown.requests import RequestError, get

            try:
                get(h, takedown)
            except RequestError as exc:
                fail(f"--takedown: {exc}")
            if not applied(h, takedown):
                fail(f"--takedown: request {takedown} has not been applied: nothing of it to erase")
        if dry_run:
            found = collect(h, takedown)
        else:
            who = acting(h, key, actor)
            _require_admin(h, who)  # before anything is looked at: also when nothing is left to erase
            found = collect_garbage(h, who, takedown)
    if as_json:
        print_json({"dry_run": dry_run, **found.as_json()})
        return
    verb = "would erase" if dry_run else "erased"
    total = sum(e.size for e in found.erased)
    console.print(f"{verb} {len(found.erased)} shard(s), {total:,} bytes")
    for item in found.erased:
        console.print(f"  {item.digest[:16]}…  {', '.join(item.shards)}  ({', '.join(item.takedowns)})")
    for where in found.outside:
        console.print(f"  not erased, registered in place outside the home: {where}")


def _require_admin(home, who) -> None:
    """Erasing bytes is an admin's signed act (`artifact.erased/v1`); refuse anyone else up front."""
    from custody.trust.acting import NotPermitted, Person, require_roles
    from custody.trust.permissions import ADMIN

    if isinstance(who, Person):
        try:
            require_roles(who, ADMIN, "erase artifacts (custody store gc)")
        except NotPermitted as exc:
            fail(str(exc))
