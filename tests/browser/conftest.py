"""Browser fixtures: Debian's Chromium driven by Playwright against a live portal on 127.0.0.1.

Playwright's sync API keeps its own asyncio loop marked as running in this thread while it is
alive, so it lives for this package only (``scope="package"``): tests elsewhere that run an event
loop never see it. Every page records console errors and uncaught exceptions; a CSP violation
or an unexpected error fails the test at teardown.
"""
import os
import re
from pathlib import Path

import pytest

from tests.live_server import LiveServer
from tests.support import need

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SHOTS = Path(os.environ.get("PORTAL_SHOTS_DIR", "/tmp/shots"))
TIMEOUT_MS = 10_000


@pytest.fixture(scope="package")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        need("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app_config, request):
    """The portal on its own migrated database copy, served from a thread; ``.url`` is its base."""
    with LiveServer() as server:
        urls = {"FRONTEND_URL": server.url, "OAUTH_REDIRECT_URI": server.url + "/auth/oauth/callback"}
        app_config.update(urls)
        app = request.getfixturevalue("app")
        app.config.update(urls)
        server.serve(app)
        yield server


class Console:
    """What the page said on its console. CSP violations are never allowed."""

    def __init__(self):
        self.errors = []
        self.allowed = []

    def allow(self, pattern):
        """Expect console errors matching ``pattern`` (e.g. the 401 of a failed sign-in)."""
        self.allowed.append(re.compile(pattern))

    def on_message(self, message):
        if message.type == "error":
            where = message.location.get("url") or ""
            self.errors.append(f"{message.text} [{where}]" if where else message.text)

    def on_page_error(self, error):
        self.errors.append(f"uncaught: {error}")

    def unexpected(self):
        return [text for text in self.errors
                if "Content Security Policy" in text or not any(p.search(text) for p in self.allowed)]


@pytest.fixture
def console():
    return Console()


@pytest.fixture
def page(browser, live_server, console):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("console", console.on_message)
    page.on("pageerror", console.on_page_error)
    yield page
    context.close()
    unexpected = console.unexpected()
    if unexpected:
        pytest.fail("browser console errors:\n" + "\n".join(unexpected))


@pytest.fixture
def shoot():
    """shoot(page, name): a full-page screenshot to /tmp/shots/<name>.png, to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name):
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
