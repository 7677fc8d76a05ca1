"""`custody witness ...`: run an independent C2SP witness for custody ledgers (docs/witness.md)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import JsonOption, command_group, console, err_console, fail, print_json

app = command_group(help="An independent witness that cosigns ledger checkpoints (C2SP tlog-witness).")

DirOption = Annotated[Path, typer.Option("--dir", help="the witness's own directory (never a custody home)")]


def _open(directory: Path):
    from custody.witness.state import WitnessDirError, open_witness

    try:
        return open_witness(directory)
    except WitnessDirError as exc:
        fail(str(exc))


@app.command()
def init(
    directory: DirOption,
    name: Annotated[str, typer.Option("--name", help="the witness's key name, e.g. witness.example.org/w1")],
) -> None:
    """Create a witness: its own Ed25519 key (mode 0600); prints its verifier key (vkey)."""
    from custody.witness.state import WitnessDir, WitnessDirError

    try:
        witness = WitnessDir.init(directory, name)
    except (WitnessDirError, OSError) as exc:
        fail(str(exc))
    # stdout carries only the vkey, so `VKEY=$(custody witness init ...)` works
    err_console.print(f"initialized witness {witness.name} at {directory} (key mode 0600)")
    typer.echo(str(witness.key))


@app.command("add-log")
def add_log(
    directory: DirOption,
    key: Annotated[str, typer.Option("--key", help="the log's verifier key (`custody ledger pubkey`)")],
) -> None:
    """Trust a log: the witness cosigns checkpoints of the key's origin signed by this key."""
    from custody.ledger.verifier import MalformedInput, parse_verifier_key
    from custody.witness.state import WitnessDirError

    try:
        log_key = parse_verifier_key(key)
    except MalformedInput as exc:
        fail(f"--key: {exc}")
    witness = _open(directory)
    try:
        _, added = witness.add_log(log_key)
    except (WitnessDirError, OSError) as exc:
        fail(str(exc))
    console.print(f"{'now accepts' if added else 'already accepts'} log {log_key.name} (key {log_key})")


@app.command()
def show(directory: DirOption, as_json: JsonOption = False) -> None:
    """Print the witness's vkey, the logs it accepts and the last size and root it cosigned for each."""
    from custody.witness.state import WitnessDirError

    witness = _open(directory)
    try:
        logs = witness.logs()
    except (WitnessDirError, OSError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print_json(
            {
                "name": witness.name,
                "vkey": str(witness.key),
                "logs": [
                    {
                        "origin": log.origin,
                        "keys": list(log.keys),
                        "size": log.size,
                        "root": base64.b64encode(log.root).decode() if log.root else None,
                        "updated": log.updated,
                    }
                    for log in logs
                ],
            }
        )
        return
    console.print(f"witness {witness.name}")
    console.print(f"  vkey: {witness.key}")
    if not logs:
        console.print("  no logs yet (custody witness add-log --dir DIR --key LOG_VKEY)")
    for log in logs:
        seen = f"size {log.size}, root {base64.b64encode(log.root).decode()}" if log.root else "nothing cosigned yet"
        console.print(f"  log {log.origin}: {seen}")


@app.command()
def serve(
    directory: DirOption,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port)")],
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
) -> None:
    """Serve POST /add-checkpoint (C2SP tlog-witness) until stopped; one log line per request on stderr."""
    from custody.witness.server import serve as run_server
    from custody.witness.state import WitnessDirError
    from custody.witness.witness import Witness

    witness_dir = _open(directory)
    try:
        witness = Witness(witness_dir)
    except WitnessDirError as exc:
        fail(str(exc))
    try:
        run_server(witness, host, port, ready=sys.stdout, log=sys.stderr)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror or exc})")


# -- shared by the ledger and report commands that ask for or require cosignatures ----------

WitnessUrlOption = Annotated[
    list[str] | None,
    typer.Option("--witness", help="witness URL prefix to ask for a cosignature (repeatable)", show_default=False),
]
WitnessKeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--witness-key",
        help="witness verifier key NAME+ID+KEY, or a file holding one (repeatable)",
        show_default=False,
    ),
]


def witness_keys(texts: list[str] | None):
    """Parse --witness-key values (a vkey, or a file holding one); one-line error and exit 2 if bad."""
    from custody.ledger.verifier import MalformedInput, parse_cosigner_key

    keys = []
    for text in texts or []:
        value = text
        if text.count("+") < 2 and Path(text).is_file():
            try:
                value = Path(text).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                fail(f"--witness-key {text!r}: cannot read the key file ({exc})")
        try:
            keys.append(parse_cosigner_key(value))
        except MalformedInput as exc:
            fail(f"--witness-key {text[:80]!r}: {exc}")
    return keys


def witness_targets(urls: list[str] | None, keys: list[str] | None):
    """Pair each --witness URL with the --witness-key given in the same position."""
    from custody.witness.client import WitnessTarget, check_witness_url

    urls, parsed = urls or [], witness_keys(keys)
    if len(urls) != len(parsed):
        fail(f"give one --witness-key per --witness, in the same order ({len(urls)} URLs, {len(parsed)} keys)")
    targets = []
    for url, key in zip(urls, parsed, strict=True):
        try:
            targets.append(WitnessTarget(check_witness_url(url), key))
        except ValueError as exc:
            fail(str(exc))
    return targets


def fail_for_witnesses(failures: list) -> None:
    """One line naming every witness that refused or could not be reached; exit 1 if any saw a fork."""
    from custody.cli.common import EXIT_BAD_INPUT, EXIT_VERIFY_FAILED

    if failures:
        code = EXIT_VERIFY_FAILED if any(f.code == EXIT_VERIFY_FAILED for f in failures) else EXIT_BAD_INPUT
        fail("; ".join(str(f) for f in failures), code)
