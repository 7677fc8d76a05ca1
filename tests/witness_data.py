"""What the witness and hand-over tests share: the CLI without a home, one-line errors, and
growing a ledger below the roster layer (the witness sees only checkpoints)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from custody.cli.main import app
from custody.home import Home
from custody.ledger.entry import make_entry

NO_HOME_ENV = {"CUSTODY_HOME": None, "CUSTODY_DATABASE": None}


def cli(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env=NO_HOME_ENV)


def assert_ok(result) -> None:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)


def one_line_error(result, code: int, *mentions: str) -> str:
    """A one-line `error: ...` on stderr naming what it should, the expected exit code, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in mentions:
        assert text in lines[0], lines[0]
    return lines[0]


def note_entry(text: str):
    # A pure ledger-level entry: no roster, no person keys (those are another layer's business).
    return make_entry("ledger.note/v1", "tester", "note", {"text": text})


def grow(path: Path, count: int, tag: str) -> int:
    """Append `count` notes to the home at `path`; return the new size."""
    home = Home.open(path)
    try:
        home.ledger.append_batch([note_entry(f"{tag} {i}") for i in range(count)])
        return home.ledger.size
    finally:
        home.close()
