"""`custody user`: local dashboard accounts (add, list, role, passwd, remove)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from custody.accounts import ROLES, Accounts
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
)

app = command_group(help="Local accounts for the dashboard (passwords kept only as salted scrypt hashes).")

RoleOption = Annotated[str, typer.Option("--role", help=f"one of {', '.join(ROLES)}")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from the first line of standard input")
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("no terminal to ask for the password: pipe it in with --password-stdin")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="user name")],
    role: RoleOption = "viewer",
    password_stdin: PasswordStdin = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    signing_key: SigningKeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Add a user; the ledger records the name and role (never the password or its hash)."""
    with opened(home, database) as h:
        admin = acting(h, signing_key, actor)
        _on_roster(h, name)
        accounts = Accounts(h.path)
        account = accounts.add(name, role, _password(password_stdin))
        try:
            index = h.record("user.added/v1", f"user:{name}", {"name": name, "role": role}, actor=admin)
        except BaseException:
            accounts.remove(name)  # an account the ledger does not know about must not exist
            raise
        console.print(f"added {account.name} ({account.role}), ledger index {index}")


@app.command("role")
def role(
    name: Annotated[str, typer.Argument(help="user name")],
    new_role: RoleOption,
    home: HomeOption = None,
    database: DatabaseOption = None,
    signing_key: SigningKeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Change a user's role."""
    with opened(home, database) as h:
        admin = acting(h, signing_key, actor)
        previous = Accounts(h.path).set_role(name, new_role)
        body = {"name": name, "role": new_role, "previous": previous}
        index = h.record("user.role_changed/v1", f"user:{name}", body, actor=admin)
        console.print(f"{name}: {previous} -> {new_role}, ledger index {index}")


@app.command("passwd")
def passwd(
    name: Annotated[str, typer.Argument(help="user name")],
    password_stdin: PasswordStdin = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
) -> None:
    """Set a user's password."""
    with opened(home, database) as h:
        Accounts(h.path).set_password(name, _password(password_stdin))
        console.print(f"password of {name} changed")


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="user name")],
    home: HomeOption = None,
    database: DatabaseOption = None,
    signing_key: SigningKeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Remove a user."""
    with opened(home, database) as h:
        admin = acting(h, signing_key, actor)
        Accounts(h.path).remove(name)
        index = h.record("user.removed/v1", f"user:{name}", {"name": name}, actor=admin)
        console.print(f"removed {name}, ledger index {index}")


@app.command("list")
def list_users(home: HomeOption = None, database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List users and roles."""
    with opened(home, database) as h:
        accounts = Accounts(h.path).list()
        if as_json:
            print_json([{"name": a.name, "role": a.role, "created": a.created} for a in accounts])
            return
        if not accounts:
            console.print("no dashboard accounts yet (custody user add NAME --role reviewer --password-stdin)")
        for a in accounts:
            console.print(f"{a.name}\t{a.role}\t{a.created}")


def _on_roster(home, name: str) -> None:
    """A dashboard account signs in as a roster member: the name must be on the roster first."""
    roster = home.roster()
    if roster.signed and roster.by_name(name) is None:
        fail(
            f"{name} is not on the roster: an admin adds their key first "
            f"(`custody people add {name} --key FILE.pub --role reviewer`)"
        )
