"""The dashboard in a real browser: `custody dashboard --key` serves it with the dashboard's own
roster key, headless Chromium signs in, approves a finding and sees it leave the queue, and the
ledger holds the approval signed by the dashboard, attesting the reviewer; a screenshot is kept
as a test artifact.

Needs Debian's `chromium` package (CI installs it). Without it this test fails, never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard_data import DASHBOARD, PASSWORDS, PII_FINDING, REVIEWER, TOXIC_FINDING, base_home, copy_home

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
START_TIMEOUT_S = 60


def chromium() -> str:
    found = next((p for p in CHROMIUM_CANDIDATES if Path(p).exists()), None) or shutil.which("chromium")
    if not found:
        pytest.fail("headless Chromium is needed for the browser test: apt-get install -y chromium")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            pytest.fail(f"`custody dashboard` exited with {server.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the dashboard did not answer at {url} within {START_TIMEOUT_S} s")


@pytest.fixture
def served(tmp_path: Path, tmp_path_factory, shared_data: Path, cast):
    home = copy_home(base_home(tmp_path_factory, shared_data, cast), tmp_path / "home")
    port = free_port()
    key = cast.key_file(DASHBOARD)
    server = subprocess.Popen(
        [sys.executable, "-m", "custody", "dashboard", "--home", str(home), "--port", str(port), "--key", str(key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, server)
        yield url, home
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and anything it started
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_reviewer_approves_a_finding_in_the_browser(served, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, home = served
    artifacts = Path(os.environ.get("CUSTODY_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    screenshot = artifacts / "dashboard-review-approved.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium(), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{url}/review")
            expect(page.get_by_role("heading", name=PII_FINDING)).to_be_visible()

            page.get_by_label("User name", exact=True).fill(REVIEWER)
            page.get_by_label("Password", exact=True).fill(PASSWORDS[REVIEWER])
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text(f"Signed in as {REVIEWER} (reviewer)")).to_be_visible()

            page.get_by_label("Reason (recorded in the ledger)").fill("synthetic addresses, checked by hand")
            page.get_by_role("button", name="Record review").click()
            expect(page.get_by_text(f"recorded: approve {PII_FINDING} by {REVIEWER}")).to_be_visible()
            expect(page.get_by_text(f"attested by {DASHBOARD} (password sign-in)")).to_be_visible()
            expect(page.get_by_role("heading", name=TOXIC_FINDING)).to_be_visible()
            expect(page.get_by_role("heading", name=PII_FINDING)).to_have_count(0)
            page.get_by_text(f"recorded: approve {PII_FINDING}").scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from custody.home import Home

    opened = Home.open(home)
    try:
        last = opened.ledger.entry(opened.ledger.size - 1)
        who = opened.attribute(last)
    finally:
        opened.close()
    assert (last.type, last.actor) == ("review.recorded/v1", REVIEWER)
    assert (who.kind, who.via, who.problem) == ("attested", DASHBOARD, None)
    assert json.loads(last.entry)["attest"]["method"] == "password"
