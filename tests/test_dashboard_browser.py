"""The dashboard in a real browser: `custody dashboard --key` serves it with the dashboard's own
roster key on a home built like the demo's, and headless Chromium

- opens every page, checks that the panels a new user reads show real values (the license mix of
  a dataset whose records take the card's license, a small run's energy in Wh, "not checked" on
  the Policies page, a ledger page that opens on a proof, tables that fit the page, a lineage graph
  whose text can be read) and takes a screenshot of each: into $CUSTODY_SCREENSHOTS when set
  (docs/screenshots/ is made this way), else the test's tmp dir;
- signs in, approves a finding and sees it leave the queue, and the ledger holds the approval
  signed by the dashboard, attesting the reviewer;
- signs in as an approver, reads a takedown's plan, confirms it and applies it, and the ledger
  holds the application signed by the dashboard, attesting the approver.

Needs Debian's `chromium` package (CI installs it). Without it these tests fail, never skip.
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

from dashboard_data import (
    APPROVER,
    DASHBOARD,
    PASSWORDS,
    PII_FINDING,
    PLAY_RECORDS,
    PLAY_TAKEDOWN_BY,
    PLAYS,
    REVIEWER,
    TOXIC_FINDING,
    WEB_OWNER,
    base_home,
    copy_home,
)

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
START_TIMEOUT_S = 60
WIDTH = 1400  # a laptop's window with the sidebar open
MIN_TEXT_PX = 12  # the lineage graph's labels must be at least this tall to read


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


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=chromium(), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            yield launched
        finally:
            launched.close()


def settle(page) -> None:
    """Wait until the script run is over and every element has drawn (charts and tables load late)."""
    page.wait_for_load_state("networkidle")
    page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=60_000)
    page.locator("[data-testid=stSkeleton]").first.wait_for(state="detached", timeout=30_000)
    page.wait_for_timeout(800)  # vega and the data grid paint after their data arrives


def screenshot(page, path: Path) -> None:
    """The whole page (Streamlit scrolls inside its main element, so size the window to it), kept
    small: 256 colours are plenty for text, tables and bar charts."""
    from PIL import Image

    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": WIDTH, "height": height + 40})
    page.wait_for_timeout(600)  # charts redraw at the new size
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": WIDTH, "height": 1000})
    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)


def tables_overflowing(page) -> list[list[int]]:
    """[scrollWidth, clientWidth] of every table wider than its place on the page."""
    widths = page.evaluate(
        "Array.from(document.querySelectorAll('[data-testid=stDataFrame] .dvn-scroller'))"
        ".map(e => [e.scrollWidth, e.clientWidth])"
    )
    return [w for w in widths if w[0] > w[1] + 1]


def choose(page, label: str, option: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    page.evaluate("document.activeElement.blur()")  # no focus ring in the screenshot
    settle(page)


def check_overview(page) -> None:
    expect = _expect()
    expect(page.get_by_text("1 intermediate stage output hidden", exact=False).first).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_be_visible()  # datasets by latest decision
    expect(page.get_by_text("1 entry came after it")).to_be_visible()


def check_datasets(page) -> None:
    expect = _expect()
    choose(page, "Dataset", PLAYS)
    expect(page.get_by_text(f"CC-BY-4.0: {PLAY_RECORDS} records")).to_be_visible()  # the card's license
    expect(page.get_by_text("no license check result")).to_have_count(0)
    expect(page.get_by_test_id("stText").filter(has_text=WEB_OWNER)).to_be_visible()
    assert page.locator(f"a[href='mailto:{WEB_OWNER}']").count() == 0  # "Registered by" is plain text
    labels = page.locator("[data-testid=stGraphVizChart] svg text")
    expect(labels.first).to_be_visible()
    heights = [box["height"] for box in (labels.nth(i).bounding_box() for i in range(labels.count())) if box]
    assert heights and min(heights) >= MIN_TEXT_PX, heights


def check_review(page) -> None:
    _expect()(page.get_by_role("heading", name=PII_FINDING)).to_be_visible()


def check_runs(page) -> None:
    expect = _expect()
    expect(page.get_by_test_id("stMetricValue").filter(has_text="0.317 Wh")).to_be_visible()
    expect(page.get_by_text("about 0.017 smartphone charges", exact=False)).to_be_visible()
    assert "e-0" not in page.get_by_test_id("stMain").inner_text()  # no 8.8e-06 showers


def choose_request(page, requested_by: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text="Request").click()
    page.get_by_role("option").filter(has_text=requested_by).click()
    page.evaluate("document.activeElement.blur()")
    settle(page)


def check_takedowns(page) -> None:
    expect = _expect()
    expect(page.get_by_text("2 requests: 2 open, 0 applied")).to_be_visible()
    choose_request(page, PLAY_TAKEDOWN_BY)
    expect(page.get_by_role("heading", name="Where the work is now")).to_be_visible()
    expect(page.get_by_text("Sign in (sidebar) as an approver or admin to apply a takedown.")).to_be_visible()
    expect(page.get_by_role("button", name="Apply takedown")).to_have_count(0)


def check_ledger(page) -> None:
    expect = _expect()
    expect(page.get_by_text("1 entry came after it", exact=False)).to_be_visible()
    expect(page.get_by_text("sign one first", exact=False)).to_have_count(0)
    expect(page.get_by_test_id("stDownloadButton").filter(has_text="Download inclusion proof")).to_be_visible()


def check_policies(page) -> None:
    expect = _expect()
    expect(page.get_by_text("not checked", exact=False).first).to_be_visible()
    expect(page.get_by_text("· 1 not checked", exact=False).first).to_be_visible()  # a rule's line


def _expect():
    from playwright.sync_api import expect

    # Assertions wait as long as page actions do (set_default_timeout does not reach them; their
    # own default, 5 s, is less than a first page takes on a loaded 2-core machine).
    expect.set_options(timeout=30_000)
    return expect


PAGES = {
    "overview": ("", check_overview),
    "datasets": ("datasets", check_datasets),
    "review": ("review", check_review),
    "runs": ("runs", check_runs),
    "takedowns": ("takedowns", check_takedowns),
    "ledger": ("ledger", check_ledger),
    "policies": ("policies", check_policies),
}


def test_every_page_in_the_browser(served, browser, tmp_path: Path) -> None:
    url, _ = served
    folder = Path(os.environ.get("CUSTODY_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
    page.set_default_timeout(30_000)
    for name, (path, check) in PAGES.items():
        page.goto(f"{url}/{path}")
        settle(page)
        check(page)
        assert not tables_overflowing(page), (name, tables_overflowing(page))
        assert page.get_by_test_id("stException").count() == 0, name
        screenshot(page, folder / f"{name}.png")
    for name in PAGES:
        assert (folder / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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


def test_approver_applies_a_takedown_in_the_browser(served, browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    url, home = served
    page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
    page.set_default_timeout(30_000)
    page.goto(f"{url}/takedowns")
    settle(page)
    page.get_by_label("User name", exact=True).fill(APPROVER)
    page.get_by_label("Password", exact=True).fill(PASSWORDS[APPROVER])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {APPROVER} (reviewer)")).to_be_visible()
    settle(page)
    choose_request(page, PLAY_TAKEDOWN_BY)
    plan = "I have read the plan: replace 3 dataset versions and taint 1 run"
    apply_button = page.get_by_role("button", name="Apply takedown")
    expect(apply_button).to_be_disabled()  # until the plan is confirmed
    page.get_by_test_id("stCheckbox").filter(has_text=plan).locator("label").click()
    expect(apply_button).to_be_enabled()
    apply_button.click()
    expect(page.get_by_text("3 dataset versions replaced, 1 run tainted", exact=False)).to_be_visible()
    expect(page.get_by_text("the takedown is complete", exact=False)).to_be_visible()
    expect(page.get_by_test_id("stDownloadButton").filter(has_text="Download proof of removal")).to_be_visible()
    artifacts = Path(os.environ.get("CUSTODY_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / "dashboard-takedown-applied.png"), full_page=True)

    from custody.home import Home

    opened = Home.open(home)
    try:
        applied = next(iter(opened.storage.entries(0, opened.ledger.size, type_prefix="takedown.applied/")))
        who = opened.attribute(applied)
    finally:
        opened.close()
    assert (applied.actor, who.kind, who.via, who.problem) == (APPROVER, "attested", DASHBOARD, None)
