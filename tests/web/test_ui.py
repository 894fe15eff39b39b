"""The UI in a real Chromium against a real server: sign in, label, review, conflicts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labelpilot.transfer import import_dataset
from tests.conftest import page_dataset, write_image
from tests.server.conftest import PASSWORD, add_users
from tests.web.conftest import Live, serve
from tests.web.conftest import sign_in as signed_in

pytestmark = pytest.mark.slow


@pytest.fixture
def live(make_workspace, tmp_path: Path) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    ws = make_workspace(task="ocr", labels=["text", "logo"])
    import_dataset(ws, page_dataset(tmp_path / "p"), format="icdar")
    for i in range(3):
        write_image(tmp_path / "more" / f"extra{i}.png", 320, 200, seed=40 + i)
    import_dataset(ws, tmp_path / "more", format="images")
    add_users(ws)
    root = ws.root
    ws.close()
    yield from serve(root)


def sign_in(page: Any, live: Live, user: str = "reviewer") -> None:
    signed_in(page, live, user)
    page.wait_for_selector("text=4 images, 7 annotations")


def open_image(page: Any, live: Live, image_id: int) -> None:
    page.goto(f"{live.base}/#/label/{image_id}")
    # this image's editor, loaded (not one being left, whose flags are still set)
    page.wait_for_function(f"window.__editorImage === {image_id} && "
                           "window.__editorReady !== undefined")
    page.wait_for_selector("#ann-list", state="attached")


def to_screen(page: Any, x: float, y: float) -> tuple[float, float]:
    box = page.locator("canvas.label-canvas").bounding_box()
    tx, ty, s = page.evaluate("[__canvas.tx, __canvas.ty, __canvas.scale]")
    return box["x"] + tx + x * s, box["y"] + ty + y * s


def settled(page: Any) -> None:
    page.wait_for_function("__doc.saving === 0")


def test_label_and_review_with_the_keyboard(browser: Any, live: Live) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live)
    token = live.token("reviewer", PASSWORD)
    images = live.api("GET", "/api/images", token)["data"]
    page_id = next(i["id"] for i in images if i["file_name"] == "page.png")
    extra_id = next(i["id"] for i in images if i["file_name"] == "extra0.png")

    # the grid shows every image
    page.click("text=Images")
    page.wait_for_selector("#grid .cell")
    assert page.locator("#grid .cell").count() == 4

    # draw a box and a polygon on an empty image
    open_image(page, live, extra_id)
    page.keyboard.press("b")
    x1, y1 = to_screen(page, 20, 20)
    x2, y2 = to_screen(page, 120, 80)
    page.mouse.move(x1, y1)
    page.mouse.down()
    page.mouse.move(x2, y2, steps=5)
    page.mouse.up()
    settled(page)
    page.keyboard.press("p")
    for x, y in [(150, 30), (250, 40), (200, 150)]:
        page.mouse.click(*to_screen(page, x, y))
    page.keyboard.press("Enter")
    page.wait_for_function("__doc.anns.length === 2 && __doc.anns.every(a => a.score !== null)")
    settled(page)
    anns = live.api("GET", f"/api/images/{extra_id}/annotations", token)["data"]
    assert sorted(a["shape"]["type"] for a in anns) == ["box", "polygon"]
    box = next(a for a in anns if a["shape"]["type"] == "box")
    assert box["shape"]["xyxy"] == pytest.approx([20, 20, 120, 80], abs=1.5)
    # a new text line is read at once (text and score from the OCR model), keeping the
    # status of what a reviewer draws
    assert box["score"] is not None and box["status"] == "accepted"
    read = box["text"]
    assert page.locator(f"#ann-list li[data-id='{box['id']}'] .txt").text_content() == read

    # edit a transcription inline, then undo and redo it
    page.keyboard.press("v")
    page.mouse.click(*to_screen(page, 40, 40))
    page.keyboard.press("e")
    page.keyboard.type("LOT 42A <b>")
    page.keyboard.press("Enter")
    settled(page)
    assert live.api("GET", f"/api/annotations/{box['id']}", token)["text"] == "LOT 42A <b>"
    page.keyboard.press("Control+z")
    settled(page)
    assert live.api("GET", f"/api/annotations/{box['id']}", token)["text"] == read
    page.keyboard.press("Control+Shift+z")
    settled(page)
    assert live.api("GET", f"/api/annotations/{box['id']}", token)["text"] == "LOT 42A <b>"
    # user text is shown as text, never as markup
    assert page.locator("#ann-list li .txt", has_text="LOT 42A <b>").count() == 1
    assert page.locator("#ann-list b").count() == 0
    # undo the polygon's creation: it is deleted on the server
    page.keyboard.press("Delete")
    settled(page)
    assert len(live.api("GET", f"/api/images/{extra_id}/annotations", token)["data"]) == 1
    page.keyboard.press("Control+z")
    settled(page)
    assert len(live.api("GET", f"/api/images/{extra_id}/annotations", token)["data"]) == 2

    # review the page with the keyboard: select, accept one, reject one, accept all, done
    live.api("POST", "/api/images/" + str(page_id) + "/annotations/bulk", token,
             json={"status": "rejected"})  # make some work: everything back to review
    open_image(page, live, page_id)
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    settled(page)
    page.keyboard.press("Tab")
    page.keyboard.press("r")
    settled(page)
    statuses = [a["status"] for a in live.api("GET", f"/api/images/{page_id}/annotations", token)["data"]]
    assert "accepted" in statuses
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("?")
    page.keyboard.press("d")
    page.wait_for_function(f"!location.hash.endsWith('/{page_id}')")
    assert live.api("GET", f"/api/images/{page_id}", token)["review_state"] == "done"
    page.close()


def test_a_stale_edit_shows_the_conflict_and_keeps_both_informed(browser: Any, live: Live) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live, "annotator")
    token = live.token("reviewer", PASSWORD)
    page_id = next(i["id"] for i in live.api("GET", "/api/images", token)["data"]
                   if i["file_name"] == "page.png")
    open_image(page, live, page_id)
    first = live.api("GET", f"/api/images/{page_id}/annotations", token)["data"][0]
    # someone else edits the line while the page is open
    live.api("PATCH", f"/api/annotations/{first['id']}", token,
             json={"version": first["version"], "text": "their text"})
    page.locator("#ann-list li").first.click()
    page.keyboard.press("e")
    page.keyboard.press("Control+a")
    page.keyboard.type("my text")
    page.keyboard.press("Enter")
    page.wait_for_selector("#conflict")
    assert "their text" in page.inner_text("#conflict")
    page.click("#keep-mine")
    settled(page)
    now = live.api("GET", f"/api/annotations/{first['id']}", token)
    assert now["text"] == "my text" and now["version"] == first["version"] + 2
    page.close()


def test_re_recognize_tool_shows_its_latency(browser: Any, live: Live) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live)
    token = live.token("reviewer", PASSWORD)
    page_id = next(i["id"] for i in live.api("GET", "/api/images", token)["data"]
                   if i["file_name"] == "page.png")
    first = live.api("GET", f"/api/images/{page_id}/annotations", token)["data"][0]
    live.api("PATCH", f"/api/annotations/{first['id']}", token,
             json={"version": first["version"], "text": "wrong"})
    open_image(page, live, page_id)
    # the smart tools have toolbar buttons too; with nothing selected this one says why not
    page.click("button[data-tool=recognize]")
    page.wait_for_selector(".toast:has-text('select a text line first')")
    page.locator("#ann-list li").first.click()
    page.keyboard.press("t")
    page.wait_for_selector("#tool-latency:has-text('ms')")
    settled(page)
    assert live.api("GET", f"/api/annotations/{first['id']}", token)["text"] == \
        "Region-based segmentation"
    page.close()


def test_reshape_a_polygon_by_its_vertices(browser: Any, live: Live) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live)
    token = live.token("reviewer", PASSWORD)
    extra_id = next(i["id"] for i in live.api("GET", "/api/images", token)["data"]
                    if i["file_name"] == "extra1.png")
    open_image(page, live, extra_id)
    page.keyboard.press("p")
    for x, y in [(50, 50), (150, 50), (150, 150), (50, 150)]:
        page.mouse.click(*to_screen(page, x, y))
    page.keyboard.press("Enter")
    settled(page)
    page.keyboard.press("v")
    page.mouse.click(*to_screen(page, 100, 100))  # select it
    # drag the vertex at (150, 150) to (200, 180)
    page.mouse.move(*to_screen(page, 150, 150))
    page.mouse.down()
    page.mouse.move(*to_screen(page, 200, 180), steps=5)
    page.mouse.up()
    settled(page)
    (ann,) = live.api("GET", f"/api/images/{extra_id}/annotations", token)["data"]
    assert ann["shape"]["points"][2] == pytest.approx([200, 180], abs=1.5)
    # double-click on an edge adds a vertex; Alt+click on a vertex removes it
    page.mouse.dblclick(*to_screen(page, 100, 50))
    settled(page)
    (ann,) = live.api("GET", f"/api/images/{extra_id}/annotations", token)["data"]
    assert len(ann["shape"]["points"]) == 5
    page.keyboard.down("Alt")
    page.mouse.click(*to_screen(page, 100, 50))
    page.keyboard.up("Alt")
    settled(page)
    (ann,) = live.api("GET", f"/api/images/{extra_id}/annotations", token)["data"]
    assert len(ann["shape"]["points"]) == 4
    page.close()


def test_the_ui_works_under_the_servers_content_security_policy(browser: Any, live: Live) -> None:
    page = browser.strict_page(viewport={"width": 1280, "height": 720})
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)
    sign_in(page, live)  # the overview: scripts, styles, the jobs list
    page.click("text=Images")
    page.wait_for_selector("#grid .cell img")  # thumbnails, positioned by style attributes
    page.locator("#grid .cell").first.click()
    page.wait_for_selector("#ann-list li")  # the editor: canvas, image, annotations
    page.keyboard.press("?")
    page.wait_for_selector("#help")
    assert violations == []
    page.close()
