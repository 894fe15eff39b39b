"""A real `labelpilot serve` and the Debian Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from labelpilot.server.app import STATIC
from tests.server.live import free_port
from tests.server.live import serve as serve_process

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class Live:
    base: str
    root: Path

    def token(self, user: str, password: str) -> str:
        r = httpx.post(f"{self.base}/api/auth/token", data={"username": user, "password": password})
        return str(r.json()["access_token"])

    def api(self, method: str, path: str, token: str, **kw: Any) -> Any:
        r = httpx.request(method, f"{self.base}{path}",
                          headers={"Authorization": f"Bearer {token}"}, **kw)
        return r.json() if r.content else None


def sign_in(page: Any, live: Live, user: str) -> None:
    """Sign in through the login form and wait for the overview."""
    from tests.server.conftest import PASSWORD

    page.goto(live.base + "/")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#jobs", state="attached")


def require_ui() -> None:
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: `make test` installs it (apt-get install chromium)")
    if not (STATIC / "app.js").is_file():
        pytest.fail("the web UI is not built: run `make web`")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_ui()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield CspBypass(b)
        b.close()


class CspBypass:
    """The browser for tests that wait with `page.wait_for_function`, which evaluates
    strings (the server's CSP forbids that to scripts, and to Playwright too).
    tests/web/test_ui.py checks the UI under the real policy with `strict_page`."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser

    def new_page(self, **kw: Any) -> Any:
        return self.browser.new_page(**{"bypass_csp": True, **kw})

    def strict_page(self, **kw: Any) -> Any:
        return self.browser.new_page(**kw)


def serve(root: Path) -> Iterator[Live]:
    port = free_port()
    proc = serve_process(root, port, delay=0.0)
    try:
        yield Live(f"http://127.0.0.1:{port}", root)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
