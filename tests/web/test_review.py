"""The review flow in Chromium (issue 16): next / previous walk the grid's list ("image i
of N"), done asks about undecided proposals, keys pressed while an image loads wait for
it, annotators submit for review and reviewers send back with a comment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labelpilot.transfer import import_dataset
from tests.conftest import write_image
from tests.server.conftest import PASSWORD, add_users
from tests.web.conftest import Live, serve, sign_in

pytestmark = pytest.mark.slow

# imported in this order, so the ids are not the order of the names
NAMES = ["c.png", "a.png", "d.png", "b.png"]
PROPOSAL = {"label": "cat", "shape": {"type": "box", "xyxy": [10, 10, 60, 50]},
            "status": "predicted", "source": "model:graphcut@1"}


@pytest.fixture
def live(make_workspace, tmp_path: Path) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    ws = make_workspace(task="detect", labels=["cat", "dog"])
    for i, name in enumerate(NAMES):
        write_image(tmp_path / "imgs" / name, 160, 120, seed=i)
        import_dataset(ws, tmp_path / "imgs" / name, format="images")
    add_users(ws)
    root = ws.root
    ws.close()
    yield from serve(root)


def _ids(live: Live) -> dict[str, int]:
    token = live.token("admin", PASSWORD)
    return {i["file_name"]: i["id"] for i in live.api("GET", "/api/images", token)["data"]}


def _propose(live: Live, image_id: int, n: int) -> list[int]:
    token = live.token("admin", PASSWORD)
    return [live.api("POST", f"/api/images/{image_id}/annotations", token, json=PROPOSAL)["id"]
            for _ in range(n)]


def _page(browser: Any, live: Live, role: str) -> Any:
    """A 1280x720 page signed in as `role`."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live, role)
    return page


def _open(page: Any, live: Live, image_id: int) -> None:
    """The editor on image `image_id`, loaded."""
    page.goto(f"{live.base}/#/label/{image_id}")
    _ready(page, image_id)


def _ready(page: Any, image_id: int) -> None:
    # this image's editor, loaded (not the one being left, whose flags are still set)
    page.wait_for_function(f"window.__editorImage === {image_id} && "
                           "window.__editorReady !== undefined")
    page.wait_for_selector("#position:not(:empty)")


def test_next_and_previous_walk_the_grids_list(browser: Any, live: Live) -> None:
    ids = _ids(live)
    page = _page(browser, live, "reviewer")
    page.click("text=Images")
    page.select_option("select[name=sort]", "file_name")
    page.wait_for_selector("#grid .cell >> text=b.png")
    page.click("#grid .cell >> text=b.png")
    _ready(page, ids["b.png"])
    assert page.text_content("#position") == "image 2 of 4 · sort by file name"
    page.keyboard.press("n")
    _ready(page, ids["c.png"])
    assert page.text_content("#position").startswith("image 3 of 4")
    page.keyboard.press("ArrowLeft")
    _ready(page, ids["b.png"])
    page.click("#prev-image")  # the same for mouse users
    _ready(page, ids["a.png"])
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector(".toast >> text=This is the first image of the list.")
    assert page.evaluate("location.hash").endswith(f"/label/{ids['a.png']}")
    page.close()


def test_done_asks_about_undecided_proposals(browser: Any, live: Live) -> None:
    ids = _ids(live)
    target = ids["d.png"]
    proposals = _propose(live, target, 2)
    page = _page(browser, live, "reviewer")
    _open(page, live, target)
    page.keyboard.press("d")
    page.wait_for_selector("#undecided >> text=2 proposals are still undecided on this image.")
    page.keyboard.press("Escape")  # back to them: nothing changed
    page.wait_for_selector("#undecided", state="detached")
    token = live.token("reviewer", PASSWORD)
    assert live.api("GET", f"/api/images/{target}", token)["review_state"] != "done"
    page.keyboard.press("d")
    page.click("#accept-rest")
    page.wait_for_function(f"!location.hash.endsWith('/label/{target}')")
    assert live.api("GET", f"/api/images/{target}", token)["review_state"] == "done"
    assert [live.api("GET", f"/api/annotations/{i}", token)["status"] for i in proposals] == [
        "accepted", "accepted"]
    page.close()


def test_keys_pressed_while_the_image_loads_act_once_it_is_in(browser: Any, live: Live) -> None:
    ids = _ids(live)
    target = ids["a.png"]
    proposals = _propose(live, target, 2)
    page = _page(browser, live, "reviewer")

    def slow(route: Any) -> None:
        page.wait_for_timeout(1500)  # a slow network: the annotations arrive late
        route.continue_()

    page.route(f"**/api/images/{target}/annotations", slow)
    page.goto(f"{live.base}/#/label/{target}")
    page.wait_for_selector("canvas")
    page.keyboard.press("a")  # accept all, before the annotations are there
    _ready(page, target)
    token = live.token("reviewer", PASSWORD)
    page.wait_for_function("document.querySelectorAll('#ann-list li.accepted').length === 2")
    assert [live.api("GET", f"/api/annotations/{i}", token)["status"] for i in proposals] == [
        "accepted", "accepted"]
    page.close()


def test_annotators_submit_and_reviewers_send_back(browser: Any, live: Live) -> None:
    ids = _ids(live)
    target = ids["c.png"]
    _propose(live, target, 1)
    page = _page(browser, live, "annotator")
    _open(page, live, target)
    assert page.locator("#accept").count() == 0  # no reviewer buttons for annotators
    page.keyboard.press("a")
    page.wait_for_selector(".toast >> text=Annotators cannot accept proposals: press D to "
                           "submit the image for review.")
    page.click("#submit")
    page.wait_for_selector(".toast >> text=Submitted for review.")
    token = live.token("reviewer", PASSWORD)
    assert live.api("GET", f"/api/images/{target}", token)["review_state"] == "submitted"

    reviewer = _page(browser, live, "reviewer")
    _open(reviewer, live, target)
    reviewer.click("#send-back")
    reviewer.click("#send-back-ok")  # without a comment: refused, nothing sent
    reviewer.wait_for_selector(".toast >> text=A comment is needed to send an image back.")
    assert live.api("GET", f"/api/images/{target}", token)["review_state"] == "submitted"
    reviewer.keyboard.press("u")
    reviewer.fill("#send-back-comment", "the box misses the cat's tail")
    reviewer.click("#send-back-ok")
    reviewer.wait_for_selector(".toast >> text=Sent back.")
    assert live.api("GET", f"/api/images/{target}", token)["review_state"] == "in_review"

    page.goto(f"{live.base}/#/label/{ids['a.png']}")
    _open(page, live, target)
    page.wait_for_selector("#review-note")
    assert page.text_content("#review-note") == (
        "Sent back by reviewer: the box misses the cat's tail")
    page.close()
    reviewer.close()


def test_what_a_reviewer_keeps_from_a_smart_tool_is_accepted(browser: Any, live: Live) -> None:
    # the same rule as a drawn shape: a reviewer's own shape is accepted, an annotator's
    # edited (tests/web/test_smart_mask.py keeps one as an annotator)
    ids = _ids(live)
    target = ids["b.png"]
    page = _page(browser, live, "reviewer")
    _open(page, live, target)
    page.keyboard.press("s")
    box = page.locator("canvas.label-canvas").bounding_box()
    tx, ty, s = page.evaluate("[__canvas.tx, __canvas.ty, __canvas.scale]")
    page.mouse.click(box["x"] + tx + 80 * s, box["y"] + ty + 60 * s)
    page.wait_for_selector("#tool-latency:has-text('no quality estimate')")
    page.keyboard.press("Enter")
    page.wait_for_function("__doc.saving === 0 && __doc.anns.length === 1")
    token = live.token("reviewer", PASSWORD)
    (kept,) = live.api("GET", f"/api/images/{target}/annotations", token)["data"]
    assert (kept["status"], kept["source"]) == ("accepted", "model:graphcut@1")
    page.close()


def test_history_and_comments_in_the_editor(browser: Any, live: Live) -> None:
    ids = _ids(live)
    target = ids["d.png"]
    (proposal,) = _propose(live, target, 1)
    page = _page(browser, live, "reviewer")
    _open(page, live, target)
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # accept the proposal
    page.wait_for_function("__doc.saving === 0 && __doc.anns[0].status === 'accepted'")
    page.click("#history-toggle")
    page.wait_for_selector(f"#history li >> text=changed #{proposal}: status "
                           '"predicted" → "accepted"')
    assert "admin" in page.text_content("#history li.create")  # who drew it
    page.fill("#comment-text", "the box cuts the tail")
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#history li.comment >> text=commented #{proposal}: "the box cuts the tail"')
    token = live.token("annotator", PASSWORD)
    last = live.api("GET", f"/api/images/{target}/audit", token)[-1]
    assert (last["action"], last["annotation_id"], last["username"]) == (
        "comment", proposal, "reviewer")
    page.close()


def test_jobs_say_why_they_cannot_start_before_starting(browser: Any, live: Live) -> None:
    page = _page(browser, live, "admin")
    # nothing reviewed in the train split: training says so, next to its disabled button
    page.wait_for_selector("#train-reason >> text=the train split has no accepted boxes")
    assert page.is_disabled("#train")
    # four untouched images to pre-label; none once they are all done
    page.wait_for_selector("#prelabel-reason >> text=4 images")
    assert not page.is_disabled("#prelabel")
    token = live.token("admin", PASSWORD)
    for image_id in _ids(live).values():
        live.api("PATCH", f"/api/images/{image_id}", token, json={"review_state": "done"})
    page.reload()
    page.wait_for_selector("#prelabel-reason >> text=no new image to pre-label")
    assert page.is_disabled("#prelabel")
    page.select_option("#prelabel-images", "all")
    page.wait_for_selector("#prelabel-reason >> text=every image is done")
    # the jobs list comes before the panels
    assert page.evaluate("document.getElementById('jobs').compareDocumentPosition("
                         "document.getElementById('train-panel')) & "
                         "Node.DOCUMENT_POSITION_FOLLOWING")
    page.close()


def test_search_help_button_and_favicon(browser: Any, live: Live) -> None:
    page = _page(browser, live, "annotator")
    assert page.get_attribute("link[rel=icon]", "href") == "/static/favicon.svg"
    icon = page.request.get(f"{live.base}/favicon.ico")
    assert icon.ok and icon.headers["content-type"] == "image/svg+xml"
    page.click("text=Images")
    page.wait_for_selector("#count >> text=4 images")
    page.fill("#search", "B.PN")
    page.wait_for_selector("#count >> text=1 images")
    assert page.locator("#grid .cell").all_text_contents() == ["b.png"]
    page.click("#grid .cell")
    page.wait_for_selector("#position:not(:empty)")
    assert "q B.PN" in page.text_content("#position")  # next / previous walk the results
    page.click("#help-button")
    page.wait_for_selector("#help >> text=Keyboard")
    page.close()


def test_label_classes_and_their_colours(browser: Any, live: Live) -> None:
    ids = _ids(live)
    _propose(live, ids["a.png"], 1)  # a cat
    page = _page(browser, live, "admin")
    page.click("#classes-panel summary")
    row = "#classes-panel tr[data-label=dog]"
    page.evaluate("document.querySelector('#classes-panel').dataset.old = '1'")
    page.fill(f"{row} input[type=color]", "#ff0000")
    page.wait_for_selector(".toast >> text=dog is drawn in #ff0000.")
    # the overview is drawn again from what was stored: edit the new rows, not the old
    page.wait_for_function("!document.querySelector('#classes-panel').dataset.old && "
                           "document.querySelector('#classes-panel').open")
    page.fill(f"{row} input.rename", "hound")
    page.press(f"{row} input.rename", "Enter")
    page.wait_for_selector("#classes-panel tr[data-label=hound]")
    page.select_option("#classes-panel tr[data-label=cat] select.merge", "hound")
    page.wait_for_selector(".toast >> text=cat merged into hound.")
    token = live.token("admin", PASSWORD)
    project = live.api("GET", "/api/project", token)
    assert project["labels"] == ["hound"] and project["label_colors"] == {"hound": "#ff0000"}
    # the editor draws each class in its colour, with a legend
    page.goto(f"{live.base}/#/label/{ids['a.png']}")
    _ready(page, ids["a.png"])
    assert page.get_attribute("#legend li[data-label=hound] .swatch", "style") == \
        "background:#ff0000"
    assert page.evaluate("__canvas.colors.get('hound')") == "#ff0000"
    page.close()


def test_the_image_is_fitted_again_when_the_window_changes(browser: Any, live: Live) -> None:
    ids = _ids(live)
    page = _page(browser, live, "reviewer")
    page.goto(f"{live.base}/#/label/{ids['a.png']}")
    _ready(page, ids["a.png"])
    fits = ("__canvas.fitted && Math.abs(Math.min(__canvas.canvas.width / 160, "
            "__canvas.canvas.height / 120) * 0.95 - __canvas.scale) < 1e-6")
    assert page.evaluate(fits)
    before = page.evaluate("__canvas.scale")
    page.set_viewport_size({"width": 800, "height": 500})
    page.wait_for_function(f"{fits} && __canvas.scale < {before}")
    # zoomed in, the point in the middle stays in the middle
    page.keyboard.press("1")
    centre = "__canvas.toImage(__canvas.canvas.width / 2, __canvas.canvas.height / 2)"
    x, y = page.evaluate(centre)
    page.set_viewport_size({"width": 1100, "height": 650})
    page.wait_for_function("!__canvas.fitted && __canvas.canvas.width > 700")
    x2, y2 = page.evaluate(centre)
    assert abs(x2 - x) < 1 and abs(y2 - y) < 1
    page.close()


def test_a_first_run_hint_until_an_image_is_done(browser: Any, live: Live) -> None:
    page = _page(browser, live, "annotator")
    assert "D marks the image done" in page.text_content("#first-run")
    token = live.token("reviewer", PASSWORD)
    live.api("PATCH", f"/api/images/{_ids(live)['a.png']}", token, json={"review_state": "done"})
    page.reload()
    page.wait_for_selector("#jobs", state="attached")
    assert page.locator("#first-run").count() == 0
    page.close()
