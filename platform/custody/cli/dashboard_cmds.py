"""`custody dashboard`: run the Streamlit app in dashboards/ on one home."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from custody.cli.common import HomeOption, console, fail, opened
from custody.paths import dashboards_dir


def dashboard(
    home: HomeOption = None,
    port: Annotated[int, typer.Option("--port", help="port to serve on", min=1, max=65535)] = 8501,
    address: Annotated[str, typer.Option("--address", help="address to listen on")] = "127.0.0.1",
) -> None:
    """Serve the dashboards (compliance review, datasets, runs, ledger, policies) for a home."""
    app = dashboards_dir() / "app.py"
    if not app.is_file():
        fail(f"dashboard app not found at {app} (set $CUSTODY_DASHBOARDS to the folder that holds app.py)")
    with opened(home, None) as h:  # fail here, clearly, rather than in the browser
        path = h.path.resolve()
    env = {**os.environ, "CUSTODY_HOME": str(path)}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",  # no "Deploy" button or developer menu for reviewers
    ]
    console.print(f"custody dashboard for {path} at http://{address}:{port}")
    sys.stdout.flush()
    # Become the Streamlit server: a signal sent to `custody dashboard` must stop the server,
    # not orphan a child that keeps the port and the home open.
    os.execvpe(sys.executable, command, env)
