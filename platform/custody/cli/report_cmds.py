"""`custody report` and `custody verify-report`: provenance reports, standard exports, offline checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_VERIFY_FAILED,
    ActorOption,
    DatabaseOption,
    HomeOption,
    JsonOption,
    KeyOption,
    VerifierKeyOption,
    acting,
    console,
    err_console,
    fail,
    opened,
    print_json,
    verifier_key,
)
from custody.cli.witness_cmds import WitnessKeyOption, witness_keys
from custody.reports import REPORT_FORMATS
from custody.reports.exports.catalog import EXPORTERS

FORMATS = f"{', '.join(REPORT_FORMATS)} (reports); {', '.join(EXPORTERS.names())} (exports)"


def report(
    target: Annotated[str, typer.Argument(metavar="TARGET", help="a dataset NAME@VERSION or a run id (NAME-xxxxxxxx)")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=FORMATS)] = "md",
    out: Annotated[Path, typer.Option("--out", "-o", help="file to write")] = Path("report.md"),
    as_json: JsonOption = False,
    home: HomeOption = None,
    database: DatabaseOption = None,
    key: KeyOption = None,
    actor: ActorOption = None,
) -> None:
    """Write a provenance report or a standard export; its digest is recorded in the ledger.

    Reports (md, html, json) carry every cited ledger entry with an inclusion proof and a signed
    checkpoint: `custody verify-report FILE --key KEY` checks them offline.
    """
    from custody.reports import ExportError
    from custody.reports.build import build
    from custody.reports.gather import ReportTargetError

    if fmt not in REPORT_FORMATS and fmt not in EXPORTERS:
        fail(f"--format {fmt!r} is not one of: {FORMATS}")
    if out.is_dir():
        fail(f"--out {out} is a directory; give a file name")
    with opened(home, database) as h:
        try:
            built = build(h, target, fmt, acting(h, key, actor, "report"))
        except (ReportTargetError, ExportError) as exc:
            fail(str(exc))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(built.data)
    except OSError as exc:
        fail(f"{out}: cannot write ({exc.strerror}); the export is recorded at ledger index {built.ledger_index}")
    summary = {
        "target": target,
        "subject": built.subject,
        "format": fmt,
        "out": str(out),
        "bytes": len(built.data),
        "digest": built.digest,
        "ledger_index": built.ledger_index,
    }
    if as_json:
        print_json(summary)
        return
    covers = "report content" if fmt in REPORT_FORMATS else "file"
    console.print(f"wrote {out} ({len(built.data):,} bytes): {fmt} for {built.subject}")
    console.print(f"  recorded: report.exported at ledger index {built.ledger_index} ({covers} sha256 {built.digest})")


def verify_report_command(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="a report written by `custody report`")],
    key: VerifierKeyOption,
    witness_key: WitnessKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify a report offline: entries, inclusion proofs, signed checkpoints, claims and seal.

    Each --witness-key (repeatable) must have cosigned the report's checkpoint (docs/witness.md).
    Exit codes: 0 verified; 1 verification failed (each problem is named); 2 not a report or a bad key.
    """
    from custody.reports.verify import ReportInputError, verify_report

    verifier = verifier_key(key)
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"{path}: cannot read ({exc.strerror})")
    witnesses = witness_keys(witness_key)
    try:
        result = verify_report(data, verifier, witnesses)
    except ReportInputError as exc:
        fail(f"{path}: {exc}", EXIT_BAD_INPUT)
    if as_json:
        print_json({"file": str(path), **result.as_json()})
    elif result.ok:
        console.print(
            f"{path}: verified ({result.fmt} report on {result.subject}): {result.entries_verified} ledger entries "
            f"proved to the checkpoint at size {result.tree_size}, {result.claims_checked} claims match them, "
            f"sealed by ledger entry {result.sealed_at}"
        )
    else:
        for problem in result.problems:
            err_console.print(f"{path}: {problem}")
    if not result.ok:
        raise typer.Exit(EXIT_VERIFY_FAILED)
