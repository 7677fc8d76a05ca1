"""The `custody` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer

from custody import __version__
from custody.cli import check_cmds, dataset_cmds, ledger_cmds, policy_cmds, prepare_cmds, store_cmds
from custody.cli.catalog_cmds import catalog
from custody.cli.common import DatabaseOption, HomeOption, command_group, console, fail
from custody.cli.dashboard_cmds import dashboard
from custody.cli.eval_cmds import eval_command, release_command
from custody.cli.find_cmds import find
from custody.cli.model_cmds import export_model_command, import_model_command
from custody.cli.optout_cmds import app as optout_app
from custody.cli.people_cmds import app as people_app
from custody.cli.prefs_cmds import app as prefs_app
from custody.cli.ray_cmds import app as ray_app
from custody.cli.report_cmds import report, verify_report_command
from custody.cli.run_cmds import run as run_command
from custody.cli.takedown_cmds import app as takedown_app
from custody.cli.train_cmds import tokenize
from custody.cli.user_cmds import app as user_app
from custody.cli.witness_cmds import app as witness_app
from custody.home import Home, HomeError
from custody.ledger.signing import KeyFileError
from custody.ledger.storage import StorageError

app = command_group(
    name="custody",
    help="Governance and tamper-evident audit for the data that trains language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(ledger_cmds.app, name="ledger")
app.add_typer(store_cmds.app, name="store")
app.add_typer(dataset_cmds.app, name="dataset")
app.command("check")(check_cmds.check)
app.command("findings")(check_cmds.findings)
app.command("prepare")(prepare_cmds.prepare)
app.command("catalog")(catalog)
app.command("find")(find)
app.add_typer(policy_cmds.gate_app, name="gate")
app.add_typer(policy_cmds.review_app, name="review")
app.add_typer(policy_cmds.policy_app, name="policy")
app.command("tokenize")(tokenize)
app.add_typer(user_app, name="user")
app.add_typer(people_app, name="people")
app.add_typer(witness_app, name="witness")
app.add_typer(takedown_app, name="takedown")
app.add_typer(optout_app, name="optout")
app.add_typer(prefs_app, name="prefs")
app.add_typer(ray_app, name="ray")
app.command("run")(run_command)
app.command("eval")(eval_command)
app.command("release")(release_command)
app.command("export-model")(export_model_command)
app.command("import-model")(import_model_command)
app.command("dashboard")(dashboard)
app.command("report")(report)
app.command("export", help="`custody report` by another name: write an export, record its digest.")(report)
app.command("verify-report")(verify_report_command)


@app.command()
def init(
    admin: Annotated[str, typer.Option("--admin", help="the first admin's name on the roster")],
    admin_key: Annotated[
        Path, typer.Option("--admin-key", help="the first admin's OpenSSH Ed25519 public key (FILE.pub)")
    ],
    home: HomeOption = None,
    database: DatabaseOption = None,
    artifacts: Annotated[
        str | None,
        typer.Option(
            "--artifacts",
            metavar="LOCATION",
            help="where artifacts live: a folder every machine sees, or s3://BUCKET/PREFIX "
            "(credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, never stored) "
            "[default: HOME/artifacts]",
        ),
    ] = None,
    artifacts_endpoint: Annotated[
        str | None,
        typer.Option("--artifacts-endpoint", metavar="URL", help="the S3-compatible server's URL, when it is not AWS"),
    ] = None,
) -> None:
    """Create a home: ledger database, artifact store, the service's Ed25519 key (mode 0600), and a
    roster whose first admin is --admin with --admin-key."""
    import re

    from custody.trust.entry_types import PERSON_NAME
    from custody.trust.sshkeys import SigningKeyError, load_public_key

    if not re.fullmatch(PERSON_NAME, admin):
        fail(f"--admin {admin!r}: 1-128 letters, digits and . _ @ + -, starting with a letter or digit")
    try:
        key = load_public_key(admin_key)
        created = Home.init(
            home, database, admin=(admin, key), artifacts=artifacts, artifacts_endpoint=artifacts_endpoint
        )
    except (HomeError, StorageError, KeyFileError, SigningKeyError) as exc:
        fail(str(exc))
    console.print(f"initialized custody home at {created.path}")
    console.print(f"  ledger:   {created.storage.name} ({created.ledger.size} entry, checkpoint signed)")
    console.print(f"  store:    {created.store.location}")
    console.print(f"  key:      {created.path / 'keys' / 'ledger.key'} (mode 0600, never in the database)")
    console.print(f"  verifier: {created.verifier_key}")
    console.print(
        f"  admin:    {admin} ({key.fingerprint}); add people with `custody people add NAME --key FILE.pub --role ROLE`"
    )
    created.close()


@app.command()
def demo(
    home: Annotated[
        Path | None, typer.Option("--home", help="where to build the demo home [default: a new temp dir]")
    ] = None,
) -> None:
    """Run the end-to-end demo on generated data, offline.

    It makes a new temp folder for what a team would have around a home (the people's keys, the
    sources, the reports, proofs and a witness) and builds the home in it, or at --home."""
    from custody.demo import run_demo

    sys.exit(run_demo(home))


@app.command()
def version() -> None:
    """Print the custody version."""
    console.print(__version__)


class _ReaderGone:
    """Standard output that stops writing once its reader has gone (`custody gate X | head -1`):
    the command still finishes and exits with its own code, never a BrokenPipeError (exit 1)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._gone = False

    def _closed(self) -> None:
        self._gone = True
        # Point the descriptor at /dev/null so the interpreter's final flush cannot fail either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._closed()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._closed()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main() -> None:
    sys.stdout = _ReaderGone(sys.stdout)  # type: ignore[assignment]
    app()


if __name__ == "__main__":
    main()
