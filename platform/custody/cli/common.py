"""Options every command shares, error reporting and exit codes.

Exit codes (a public interface; scripts rely on them):
  0  success
  1  verification failed: the ledger, a proof or a checkpoint does not check out (or a fork)
  2  bad input or usage: missing home, malformed file, wrong key, unknown field
  3  deny and 4 needs-review are reserved for `custody gate`
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from typer.core import TyperGroup

EXIT_OK = 0
EXIT_VERIFY_FAILED = 1
EXIT_BAD_INPUT = 2

# soft_wrap: keys, digests and paths must stay on one line to be copied or parsed.
# markup=False: user text (paths, notes, names) must print as given, never as rich markup.
console = Console(highlight=False, soft_wrap=True, markup=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="custody home directory [default: $CUSTODY_HOME or ./.custody]", show_default=False),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="ledger database URL (postgresql://...); default: the home's config"),
]
ActorOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        "--actor",
        help="who you expect to act as: checked against the roster name of --key, never a source of identity",
        show_default=False,
    ),
]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        "--signing-key",
        help="your OpenSSH Ed25519 private key (or its .pub, with the key in ssh-agent) [default: $CUSTODY_KEY]",
        show_default=False,
    ),
]
SigningKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--signing-key",
        help="your OpenSSH Ed25519 private key (or its .pub, with the key in ssh-agent) [default: $CUSTODY_KEY]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


class PlainGroup(TyperGroup):
    """Lists each command with its whole first sentence (click would cut it at ~45 characters,
    mid-sentence); the formatter wraps it instead."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:  # typer's own copy of click's types
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and command.short_help is None and command.help:
                paragraph = command.help.strip().split("\n\n", 1)[0].replace("\n", " ")
                command.short_help = paragraph.split(". ", 1)[0].rstrip(".")
        super().format_commands(ctx, formatter)


def command_group(**settings: Any) -> typer.Typer:
    """A group of commands with plain help: the first line is `Usage:`, types read `TEXT`, and it
    pipes and greps like any Unix tool's (no boxes, no blank line before it)."""
    settings.setdefault("cls", PlainGroup)
    settings.setdefault("context_settings", {"max_content_width": 120})
    return typer.Typer(rich_markup_mode=None, **settings)


# Recorded weights, as `custody eval`, `release` and `prefs` name them.
WeightsArgument = Annotated[
    str, typer.Argument(metavar="RUN_OR_CHECKPOINT", help="a run id, or sha256:DIGEST of a checkpoint")
]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print a one-line error and exit; nothing has been written at this point."""
    err_console.print("error:", style="bold red", end=" ")
    err_console.print(message)
    raise typer.Exit(code)


def acting(home: Any, key: Path | None, asserted: str | None, command: str | None = None) -> Any:
    """The roster member whose key this command holds (`--key`, else $CUSTODY_KEY).

    In a home made before signatures, the asserted name (or the OS user) acts, as it used to.
    `command` names work the person asks the service for, checked against their roles."""
    from custody.home import current_actor
    from custody.trust.acting import key_path, person_for_key, require_roles
    from custody.trust.permissions import request_roles

    roster = home.roster()
    if not roster.signed:
        return current_actor(asserted)
    path = key_path(key)
    if path is None:
        fail("this command acts for a person: give your key with --key FILE (or set CUSTODY_KEY)")
    person = person_for_key(roster, path, asserted)
    if command is not None:
        require_roles(person, request_roles(command), command)
    return person


def byte_progress(quiet: bool = False) -> Progress:
    """A transient progress bar over bytes, on a terminal only: hidden for --json (stdout is for
    machines) and when output goes to a pipe or file, where it would leave a blank line behind."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_out(path: Path, data: str | bytes) -> None:
    """Write a file the user named, whole or not at all (a temp file renamed into place)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(raw)
        os.replace(tmp, path)
    except OSError as exc:
        fail(f"{path}: cannot write ({exc.strerror})")


def read_text_file(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{path}: {what} not found")
    except IsADirectoryError:
        fail(f"{path}: is a directory, expected a {what}")
    except UnicodeDecodeError as exc:
        fail(f"{path}: {what} is not UTF-8 text (byte {exc.start})")
    except OSError as exc:
        fail(f"{path}: cannot read {what} ({exc.strerror})")


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'your input is wrong': one line, exit 2, nothing recorded."""
    from custody.accounts import AccountError
    from custody.checks.catalog import CheckError
    from custody.checks.provenance import SourceListError
    from custody.datasets.card import CardError
    from custody.datasets.names import DatasetRefError
    from custody.datasets.readers import DatasetInputError
    from custody.datasets.registry import DatasetNotFound, RegistrationConflict
    from custody.evalsets.records import EvalError
    from custody.home import HomeError
    from custody.ledger.entry import EntryError
    from custody.ledger.log import LedgerRangeError
    from custody.ledger.signing import KeyFileError
    from custody.ledger.storage import StorageError
    from custody.store import ArtifactError, StoreUnavailable
    from custody.trust.acting import NotPermitted
    from custody.trust.sshkeys import SigningKeyError

    return (
        NotPermitted,
        SigningKeyError,
        HomeError,
        StorageError,
        KeyFileError,
        EntryError,
        LedgerRangeError,
        ArtifactError,
        StoreUnavailable,
        CardError,
        DatasetRefError,
        DatasetInputError,
        DatasetNotFound,
        RegistrationConflict,
        SourceListError,
        CheckError,
        AccountError,
        EvalError,
    )


@contextmanager
def opened(home: Path | None, database: str | None):
    """Open a home; turn every expected failure into a one-line error and exit code."""
    from custody.datasets.registry import IntegrityError
    from custody.home import Home
    from custody.ledger.log import LedgerCorrupted
    from custody.ledger.verifier import VerificationError
    from custody.ledger.witness import ForkDetected

    bad_input = _bad_input_errors()
    try:
        opened_home = Home.open(home, database)
    except bad_input as exc:
        fail(str(exc))
    try:
        yield opened_home
    except ForkDetected as exc:
        fail(exc.evidence(), EXIT_VERIFY_FAILED)
    except (LedgerCorrupted, VerificationError, IntegrityError) as exc:
        fail(str(exc), EXIT_VERIFY_FAILED)
    except bad_input as exc:
        fail(str(exc))
    finally:
        opened_home.close()


VerifierKeyOption = Annotated[
    str, typer.Option("--key", help="verifier key (as `custody ledger pubkey` prints it) or a file")
]


def verifier_key(key: str) -> Any:
    """The ledger's verifier key from --key: the key itself (as `custody ledger pubkey` prints it) or a file."""
    from custody.ledger.verifier import VerificationError, parse_verifier_key

    key_text = key
    if not key.count("+") >= 2 or Path(key).is_file():
        try:
            key_text = Path(key).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--key {key!r} is neither a verifier key nor a readable key file ({exc})")
    try:
        return parse_verifier_key(key_text)
    except VerificationError as exc:
        fail(f"--key: {exc}")
