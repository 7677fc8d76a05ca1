"""`custody people`: the roster of keys and roles, changed only by admin-signed entries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import (
    ActorOption,
    DatabaseOption,
    HomeOption,
    JsonOption,
    SigningKeyOption,
    acting,
    command_group,
    console,
    fail,
    opened,
    print_json,
    write_out,
)
from custody.trust.permissions import ROLE_HELP, ROLES

app = command_group(
    help="People and their keys: who may sign what (roster changes are signed by an admin).", no_args_is_help=True
)

RolesOption = Annotated[
    list[str],
    typer.Option("--role", help="repeatable; " + "; ".join(f"{r}: {h}" for r, h in ROLE_HELP.items())),
]


def _check_roles(roles: list[str]) -> list[str]:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        fail(f"--role {unknown[0]!r}: must be one of {', '.join(ROLES)}")
    return sorted(set(roles))


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="the person's name on the roster (e.g. an email address)")],
    key: Annotated[Path, typer.Option("--key", help="the person's OpenSSH Ed25519 public key (FILE.pub)")],
    roles: RolesOption,
    signing_key: SigningKeyOption = None,
    actor: ActorOption = None,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Add a person's key with roles; signed by an admin (--signing-key or $CUSTODY_KEY)."""
    import re

    from custody.trust.entry_types import PERSON_NAME
    from custody.trust.sshkeys import SigningKeyError, load_public_key

    if not re.fullmatch(PERSON_NAME, name):
        fail(f"name {name!r}: 1-128 letters, digits and . _ @ + -, starting with a letter or digit")
    chosen = _check_roles(roles)
    try:
        public = load_public_key(key)
    except SigningKeyError as exc:
        fail(str(exc))
    with opened(home, database) as h:
        admin = acting(h, signing_key, actor)
        body = {"name": name, "key": public.openssh, "fingerprint": public.fingerprint, "roles": chosen}
        index = h.record("people.added/v1", f"person:{name}", body, actor=admin)
        h.checkpoint()
        console.print(f"added {name} ({', '.join(chosen)}) with key {public.fingerprint}, ledger index {index}")


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="the person whose key is revoked")],
    reason: Annotated[str, typer.Option("--reason", help="why (recorded)")] = "revoked by an admin",
    signing_key: SigningKeyOption = None,
    actor: ActorOption = None,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Revoke a person's key: signatures from the next ledger index on are refused; earlier ones stay valid."""
    with opened(home, database) as h:
        admin = acting(h, signing_key, actor)
        member = h.roster().by_name(name)
        if member is None:
            fail(f"{name} is not on the roster (see `custody people list`)")
        body = {"name": name, "fingerprint": member.key.fingerprint, "reason": reason}
        index = h.record("people.revoked/v1", f"person:{name}", body, actor=admin)
        h.checkpoint()
        console.print(f"revoked {name}'s key {member.key.fingerprint} at ledger index {index}")


@app.command("list")
def list_people(
    include_revoked: Annotated[bool, typer.Option("--all", help="include revoked keys")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """The roster: names, roles, key fingerprints, and when each key was added (or revoked)."""
    with opened(home, database) as h:
        roster = h.roster()
        members = roster.members if include_revoked else roster.active()
        if as_json:
            print_json([m.as_json() for m in members])
            return
        if not roster.signed:
            console.print("this home was made before signed entries: it has no roster")
            return
        if not members:
            console.print("no one is on the roster")
        for m in members:
            state = f", revoked at index {m.revoked_index}" if m.revoked_index is not None else ""
            console.print(
                f"{m.name}  {', '.join(sorted(m.roles))}  {m.key.fingerprint}  (index {m.added_index}{state})"
            )


@app.command("allowed-signers")
def allowed_signers(
    out: Annotated[Path | None, typer.Option("--out", help="write to this file instead of standard output")] = None,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Print the roster as an OpenSSH allowed_signers file (for `ssh-keygen -Y verify`)."""
    with opened(home, database) as h:
        text = h.roster().allowed_signers()
    if out is None:
        typer.echo(text, nl=False)
        return
    write_out(out, text)
    console.print(f"wrote {out}")
