"""One style for what the CLI shows people: every --help screen reads like a Unix tool's."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from custody.cli.main import app
from custody.wording import counts, energy, mass, plural, volume


def command_paths() -> list[list[str]]:
    """Every command and group of the CLI, as the words that reach it."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command, path: list[str]) -> None:
        paths.append(path)
        if hasattr(command, "commands"):  # a group (typer carries its own copy of click)
            for name, sub in command.commands.items():
                if not sub.hidden:
                    walk(sub, [*path, name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "custody")
def test_help_screens_are_plain_and_whole(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("Usage: custody"), "no blank line or box before the usage line"
    for clutter in ("<bool>", "<str>", "<path>", "{'", "[default: None]"):
        assert clutter not in text, f"{clutter!r} in `custody {' '.join(path)} --help`"
    assert not re.search(r"\{[a-z_]+\}", text), "arguments read NAME, not {name}"
    listed = text.split("Commands:", 1)[1] if "Commands:" in text else ""
    assert not re.search(r"\w\.\.\.$", listed, flags=re.M), "a command's summary was cut mid-sentence"


def test_numbers_read_in_words_and_units_that_fit():
    assert [plural(n, "record") for n in (0, 1, 2)] == ["0 records", "1 record", "2 records"]
    assert plural(2, "entry") == "2 entries" and plural(1, "entry") == "1 entry"
    assert plural(3, "intermediate stage output") == "3 intermediate stage outputs"
    assert counts({"pass": 150}) == "150 pass" and counts({"flag": 2, "pass": 54}) == "54 pass, 2 flag"
    assert energy(0.000317) == "0.317 Wh" and energy(3.2) == "3.2 kWh"
    assert mass(0.000123) == "0.123 g" and volume(0.0011) == "1.1 mL"
    # Below the smallest unit (a run of a few steps): positional digits, never an exponent.
    assert energy(1.234e-8) == "0.0000123 Wh" and mass(2.5e-7) == "0.00025 g" and volume(0.0) == "0 mL"
