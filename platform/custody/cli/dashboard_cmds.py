"""`custody dashboard`: run the Streamlit app in dashboards/ on one home, acting through its own key."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from custody.cli.common import HomeOption, KeyOption, console, err_console, fail, opened
from custody.paths import dashboards_dir


def dashboard(
    home: HomeOption = None,
    port: Annotated[int, typer.Option("--port", help="port to serve on", min=1, max=65535)] = 8501,
    address: Annotated[str, typer.Option("--address", help="address to listen on")] = "127.0.0.1",
    key: KeyOption = None,
) -> None:
    """Serve the dashboards (compliance review, datasets, runs, ledger, policies) for a home.

    --key (or $CUSTODY_KEY) is the dashboard's own key, on the roster with role attestor: every
    entry the dashboard records is signed with it and attests the person signed in. Without such
    a key the dashboard is read-only."""
    from custody.trust.acting import key_path
    from custody.views.identity import DASHBOARD_KEY_ENV, dashboard_service

    app = dashboards_dir() / "app.py"
    if not app.is_file():
        fail(f"dashboard app not found at {app} (set $CUSTODY_DASHBOARDS to the folder that holds app.py)")
    key_file = key_path(key)
    with opened(home, None) as h:  # fail here, clearly, rather than in the browser
        path = h.path.resolve()
        service = dashboard_service(h, key_file)
    # Only the key's path crosses to Streamlit: the key itself is read (and checked) by the app.
    env = {**os.environ, "CUSTODY_HOME": str(path)}
    env.pop(DASHBOARD_KEY_ENV, None)
    if key_file is not None:
        env[DASHBOARD_KEY_ENV] = str(key_file.resolve())
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
    if service.person is not None:
        console.print(f"signing as {service.person.name} (attestor, key {service.person.fingerprint})")
    else:
        err_console.print(f"read-only: {service.why_read_only}")
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the Streamlit server: a signal sent to `custody dashboard` must stop the server,
    # not orphan a child that keeps the port and the home open.
    os.execvpe(sys.executable, command, env)
