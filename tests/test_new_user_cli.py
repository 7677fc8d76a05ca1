"""What a new user trips on in the CLI, each fixed and held: lists without intermediate outputs,
exit codes that survive a closed pipe, prompts that need a terminal, rows as JSON objects, and
messages in words."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.datasets.card import CARD_TEMPLATE

BAD_JSON = '{"id": "a", "text": "fine"}\n{"id": "b", "text": "no end}'  # no newline: unterminated


def cli(home, *args: str, input: str | None = None):
    return CliRunner().invoke(app, [*args, "--home", str(home.path)], input=input)


def register(home, tmp_path: Path, name: str, rows: list[dict]) -> None:
    card = tmp_path / "card.toml"
    card.write_text(CARD_TEMPLATE, encoding="utf-8")
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = cli(home, "dataset", "register", str(data), "--name", name, "--version", "1", "--card", str(card))
    assert result.exit_code == 0, result.output


@pytest.fixture
def chained(home, engineer_key, tmp_path):
    """forum@1 and a two-stage chain over it: forum@2, with one intermediate output."""
    register(home, tmp_path, "forum", [{"id": f"p{i}", "text": f"post {i} about bread"} for i in range(12)])
    done = cli(home, "prepare", "forum@1", "--stages", "normalize-unicode,dedup-exact")
    assert done.exit_code == 0, done.output
    return home


def test_dataset_list_hides_intermediate_outputs_unless_asked(chained):
    listed = cli(chained, "dataset", "list", "--json")
    assert [d["dataset"] for d in json.loads(listed.stdout)] == ["forum@1", "forum@2"]
    everything = json.loads(cli(chained, "dataset", "list", "--all", "--json").stdout)
    assert [d["dataset"] for d in everything] == ["forum@1", "forum@2+1-normalize-unicode", "forum@2"]
    shown = cli(chained, "dataset", "list").stdout
    assert "1 intermediate stage output not shown (--all shows them)" in shown


def test_check_output_reads_in_words(chained):
    result = cli(chained, "check", "forum@2", "--checks", "provenance,toxicity")
    assert result.exit_code == 0, result.output
    assert "provenance 1.1.0: pass — 12 records (12 pass); no findings" in result.stdout
    assert "{'" not in result.stdout and not result.stdout.startswith("\n")


def test_findings_rows_carry_details_as_objects(chained):
    assert cli(chained, "check", "forum@2", "--checks", "license").exit_code == 0
    rows = cli(chained, "findings", "forum@2", "--check", "license").stdout.splitlines()
    first = json.loads(rows[0])
    assert isinstance(first["details"], dict) and first["details"]["category"] == "permissive"


def test_malformed_json_is_described_once(home, engineer_key, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(BAD_JSON, encoding="utf-8")
    card = tmp_path / "card.toml"
    card.write_text(CARD_TEMPLATE, encoding="utf-8")
    result = cli(home, "dataset", "register", str(data), "--name", "bad", "--version", "1", "--card", str(card))
    assert result.exit_code == 2
    assert "Unterminated string starting at column" in result.stderr and "at at" not in result.stderr


def test_a_closed_pipe_keeps_the_commands_exit_code(chained, tmp_path):
    """`custody gate X | head -1` must exit with the gate's code (3), not 1 for a BrokenPipeError."""
    env = {**os.environ, "CUSTODY_HOME": str(chained.path), "CUSTODY_KEY": os.environ["CUSTODY_KEY"]}
    command = f"{sys.executable} -m custody gate forum@1 --purpose research | head -c 1 >/dev/null"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], env=env, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert "BrokenPipe" not in done.stderr and "Traceback" not in done.stderr


def test_user_commands_without_a_terminal(home, cast):
    cast.enroll(home, "rita", "reviewer")
    admin = {"CUSTODY_KEY": str(cast.key_file("admin"))}
    empty = CliRunner().invoke(app, ["user", "list", "--home", str(home.path)])
    assert empty.exit_code == 0 and "no dashboard accounts yet" in empty.stdout
    prompt = CliRunner().invoke(app, ["user", "add", "rita", "--role", "reviewer", "--home", str(home.path)], env=admin)
    assert prompt.exit_code == 2
    assert "--password-stdin" in prompt.stderr and "GetPassWarning" not in prompt.output
    piped = CliRunner().invoke(
        app,
        ["user", "add", "rita", "--role", "reviewer", "--password-stdin", "--home", str(home.path)],
        env=admin,
        input="a long enough password\n",
    )
    assert piped.exit_code == 0, piped.output


def test_the_card_template_numbers_every_field_and_says_where_required_fields_come_from():
    numbers = [int(n) for n in __import__("re").findall(r"# (\d+)[:\s]", CARD_TEMPLATE)]
    assert sorted(set(numbers)) == list(range(3, 15))  # 1-2 share [dataset]; 6 is there too
    assert "custody check --help" not in CARD_TEMPLATE and "custody policy bindings" in CARD_TEMPLATE
