"""`custody dashboard` fails clearly before starting Streamlit when it cannot serve."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.paths import dashboards_dir


def test_the_app_ships_beside_the_package() -> None:
    assert (dashboards_dir() / "app.py").is_file()


def test_missing_home_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboard", "--home", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no custody home" in result.output


def test_missing_app_is_a_clear_error(home, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUSTODY_DASHBOARDS", str(tmp_path))
    result = CliRunner().invoke(app, ["dashboard", "--home", str(home.path)])
    assert result.exit_code == 2 and "dashboard app not found" in result.output
