"""The demo's detection and segmentation projects in Chromium (issue 16): the overview
says how many images have proposals, the grid shows them, and a reviewer accepts the
model's outlines or boxes from the keyboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labelpilot.demo import build_demo
from tests.server.conftest import PASSWORD, add_users
from tests.web.conftest import Live, serve, sign_in

pytestmark = pytest.mark.slow


@pytest.fixture(params=["segment", "detect"])
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Live, str]]:
    ws = build_demo(tmp_path / "demo", project=request.param)
    add_users(ws)
    ws.close()
    for live in serve(tmp_path / "demo"):
        yield live, request.param


def test_review_the_demos_proposals(browser: Any, demo: tuple[Live, str]) -> None:
    live, project = demo
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live, "reviewer")
    page.wait_for_selector("#first-run >> text=3 images have proposals to review")
    page.click("header >> text=Images")
    page.select_option("select[name=review_state]", "prelabeled")
    page.wait_for_selector("#count >> text=3 images")
    page.locator("#grid .cell").first.click()
    page.wait_for_function("window.__editorReady !== undefined && __doc.anns.length > 0")
    token = live.token("admin", PASSWORD)
    image = page.evaluate("window.__editorImage")
    anns = live.api("GET", f"/api/images/{image}/annotations", token)["data"]
    kinds = {a["shape"]["type"] for a in anns}
    assert kinds == ({"box"} if project == "detect" else {"polygon"})
    assert {a["status"] for a in anns} == {"predicted"}
    page.keyboard.press("a")
    page.wait_for_selector(f".toast >> text=accepted {len(anns)}")
    anns = live.api("GET", f"/api/images/{image}/annotations", token)["data"]
    assert {a["status"] for a in anns} == {"accepted"}
    page.close()
