"""Transcriptions in Chromium (issue 16): a reload while typing keeps what was typed, and
re-recognize updates the line's score with its text."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import PASSWORD
from tests.web.conftest import Live
from tests.web.test_ui import live, open_image, settled, sign_in  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow


def _page_image(live: Live) -> tuple[int, str]:  # noqa: F811
    token = live.token("reviewer", PASSWORD)
    images = live.api("GET", "/api/images", token)["data"]
    return next(i["id"] for i in images if i["file_name"] == "page.png"), token


def test_a_reload_while_typing_keeps_the_transcription(browser: Any, live: Live) -> None:  # noqa: F811
    image_id, token = _page_image(live)
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live)
    open_image(page, live, image_id)
    page.keyboard.press("Tab")
    selected = page.evaluate("__canvas.selected")
    page.keyboard.press("e")
    page.keyboard.type("HALF TYPED")
    page.reload()  # no Enter, no leaving the field: the draft is all there is
    page.wait_for_function("window.__editorReady !== undefined")
    page.wait_for_selector(".toast >> text=Restored 1 transcription typed before the page was left.")
    settled(page)
    assert live.api("GET", f"/api/annotations/{selected}", token)["text"] == "HALF TYPED"
    # restored once: the next load has nothing to restore
    page.reload()
    page.wait_for_function("window.__editorReady !== undefined")
    page.wait_for_timeout(300)
    assert page.locator(".toast >> text=Restored").count() == 0
    page.close()


def test_re_recognize_updates_the_score_with_the_text(browser: Any, live: Live) -> None:  # noqa: F811
    image_id, token = _page_image(live)
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live)
    open_image(page, live, image_id)
    page.keyboard.press("Tab")
    selected = page.evaluate("__canvas.selected")
    before = live.api("GET", f"/api/annotations/{selected}", token)
    page.keyboard.press("t")
    page.wait_for_selector("#tool-latency:has-text('read')")
    settled(page)
    after = live.api("GET", f"/api/annotations/{selected}", token)
    pts = (after["shape"]["points"] if after["shape"]["type"] == "quad" else None)
    assert pts is not None
    reread = live.api("POST", f"/api/images/{image_id}/recognize", token, json={"points": pts})
    assert after["score"] == pytest.approx(reread["score"]) and after["text"] == reread["text"]
    assert before["score"] is None  # an imported human line had none
    meta = page.locator(f"#ann-list li[data-id='{selected}'] .meta").text_content()
    assert f"{reread['score']:.2f}" in meta
    page.close()
