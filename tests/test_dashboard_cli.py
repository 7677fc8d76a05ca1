"""`custody dashboard` fails clearly before starting Streamlit when it cannot serve, and hands the
app its key by path only, saying whether the dashboard can sign or is read-only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custody.cli.main import app
from custody.paths import dashboards_dir
from custody.views.identity import DASHBOARD_KEY_ENV


def test_the_app_ships_beside_the_package() -> None:
    assert (dashboards_dir() / "app.py").is_file()


def test_missing_home_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboard", "--home", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no custody home" in result.output


def test_missing_app_is_a_clear_error(home, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUSTODY_DASHBOARDS", str(tmp_path))
    result = CliRunner().invoke(app, ["dashboard", "--home", str(home.path)])
    assert result.exit_code == 2 and "dashboard app not found" in result.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def streamlit_environ(home: Path, key: Path, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Start `custody dashboard --key KEY`, wait until it has become Streamlit, and return what it
    printed and the environment the Streamlit server runs with."""
    command = [sys.executable, "-m", "custody", "dashboard", "--home", str(home), "--port", str(free_port())]
    server = subprocess.Popen(
        [*command, "--key", str(key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while b"\0-m\0streamlit\0" not in Path(f"/proc/{server.pid}/cmdline").read_bytes():
            assert server.poll() is None and time.monotonic() < deadline, "custody dashboard did not exec Streamlit"
            time.sleep(0.05)
        raw = Path(f"/proc/{server.pid}/environ").read_bytes()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    environ = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
    return output, environ


def test_the_key_reaches_streamlit_by_path_only(home, cast) -> None:
    cast.enroll(home, "dashboard", "attestor")
    key = cast.key_file("dashboard")
    env = {k: v for k, v in os.environ.items() if k != "CUSTODY_KEY"}
    output, environ = streamlit_environ(home.path, key, env)
    assert f"signing as dashboard (attestor, key {cast.public('dashboard').fingerprint})" in output
    assert environ[DASHBOARD_KEY_ENV] == str(key.resolve())
    secret = key.read_text().splitlines()[1]  # a line of the private key's base64
    assert not any(secret in value for value in environ.values())


def test_a_key_that_is_not_an_attestor_serves_read_only(home, cast) -> None:
    cast.enroll(home, "bob", "reviewer")
    output, environ = streamlit_environ(home.path, cast.key_file("bob"), dict(os.environ))
    assert "read-only: its key belongs to bob (reviewer), who is not an attestor" in output
    assert environ[DASHBOARD_KEY_ENV] == str(cast.key_file("bob").resolve())  # the app says why on every page
