"""Many shapes at once, in Chromium (issue 16): shift-click and a shift-drag lasso pick
shapes, which then move, change class, get accepted and deleted together; Ctrl+C / Ctrl+V
copy and paste them; Ctrl+B propagates them to the next image of the list."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import PASSWORD
from tests.web.conftest import Live
from tests.web.test_review import (
    _ids,
    _open,
    _page,
    _ready,
    live,  # noqa: F401  (the fixture: 4 images 160x120)
)

pytestmark = pytest.mark.slow

BOXES = [[10, 10, 40, 40], [60, 10, 90, 40], [110, 70, 150, 110]]


def _boxes(live: Live, image_id: int) -> list[dict[str, Any]]:  # noqa: F811
    token = live.token("admin", PASSWORD)
    return [live.api("POST", f"/api/images/{image_id}/annotations", token,
                     json={"label": "cat", "shape": {"type": "box", "xyxy": xyxy},
                           "status": "predicted", "source": "model:graphcut@1"})
            for xyxy in BOXES]


def _anns(live: Live, image_id: int) -> list[dict[str, Any]]:  # noqa: F811
    token = live.token("admin", PASSWORD)
    return list(live.api("GET", f"/api/images/{image_id}/annotations", token)["data"])


def _screen(page: Any, x: float, y: float) -> tuple[float, float]:
    box = page.locator("canvas.label-canvas").bounding_box()
    tx, ty, s = page.evaluate("[__canvas.tx, __canvas.ty, __canvas.scale]")
    return box["x"] + tx + x * s, box["y"] + ty + y * s


def _shift_click(page: Any, x: float, y: float) -> None:
    page.keyboard.down("Shift")
    page.mouse.click(*_screen(page, x, y))
    page.keyboard.up("Shift")


def _drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A mouse drag between two image points; the edits it makes saved."""
    page.mouse.move(*_screen(page, *start))
    page.mouse.down()
    page.mouse.move(*_screen(page, *end), steps=4)
    page.mouse.up()
    _settled(page)


def _settled(page: Any) -> None:
    page.wait_for_function("__doc.saving === 0")


def test_pick_many_then_move_reclass_accept_and_delete_together(browser: Any, live: Live) -> None:  # noqa: F811
    ids = _ids(live)
    image = ids["a.png"]
    made = _boxes(live, image)
    page = _page(browser, live, "reviewer")
    _open(page, live, image)
    # click the first, shift-click the second: both picked
    page.mouse.click(*_screen(page, 25, 25))
    page.keyboard.down("Shift")
    page.mouse.click(*_screen(page, 75, 25))
    page.keyboard.up("Shift")
    page.wait_for_function("__canvas.picked.size === 2")
    assert page.locator("#ann-list li.selected").count() == 2
    # a drag moves both
    _drag(page, (25, 25), (35, 45))
    page.wait_for_function("__doc.anns.filter((a) => a.status === 'edited').length === 2")
    moved = {a["id"]: a["shape"]["xyxy"] for a in _anns(live, image)}
    for a, xyxy in zip(made[:2], BOXES[:2], strict=True):
        got = moved[a["id"]]
        assert abs(got[0] - (xyxy[0] + 10)) < 1.5 and abs(got[1] - (xyxy[1] + 20)) < 1.5, got
    assert moved[made[2]["id"]] == BOXES[2]
    # the class select changes both
    page.select_option("#label", "dog")
    _settled(page)
    page.wait_for_function("__doc.anns.filter((a) => a.label === 'dog').length === 2")
    # Enter accepts the picked ones (one request), the third stays a proposal
    page.keyboard.press("Enter")
    page.wait_for_selector(".toast >> text=accepted 2")
    assert sorted(a["status"] for a in _anns(live, image)) == ["accepted", "accepted", "predicted"]

    # Esc lets go; a shift-drag lasso round the lower right picks the third alone
    page.keyboard.press("Escape")
    page.wait_for_function("__canvas.picked.size === 0")
    page.keyboard.down("Shift")
    page.mouse.move(*_screen(page, 104, 64))  # on no shape (the second moved to 70..100, 30..60)
    page.mouse.down()
    page.mouse.move(*_screen(page, 158, 118), steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    page.wait_for_function(f"__canvas.picked.size === 1 && __canvas.picked.has({made[2]['id']})")
    # Ctrl+A picks all; Delete deletes all
    page.keyboard.press("Control+a")
    page.wait_for_function("__canvas.picked.size === 3")
    page.keyboard.press("Delete")
    _settled(page)
    page.wait_for_function("__doc.anns.length === 0")
    assert _anns(live, image) == []
    page.close()


def test_copy_paste_and_propagate_to_the_next_image(browser: Any, live: Live) -> None:  # noqa: F811
    ids = _ids(live)
    first, second = ids["c.png"], ids["a.png"]  # the first two by id
    made = _boxes(live, first)
    page = _page(browser, live, "annotator")
    _open(page, live, first)
    page.keyboard.down("Shift")
    page.mouse.click(*_screen(page, 25, 25))
    page.mouse.click(*_screen(page, 130, 90))
    page.keyboard.up("Shift")
    page.wait_for_function("__canvas.picked.size === 2")
    page.keyboard.press("Control+c")
    page.wait_for_selector(".toast >> text=Copied 2 shapes.")
    # pasted on another image: the same shapes, as this person's edits
    _open(page, live, ids["d.png"])
    page.keyboard.press("Control+v")
    page.wait_for_selector(".toast >> text=Pasted 2 shapes.")
    pasted = _anns(live, ids["d.png"])
    assert sorted(a["shape"]["xyxy"] for a in pasted) == sorted([BOXES[0], BOXES[2]])
    assert {(a["status"], a["source"], a["label"]) for a in pasted} == {("edited", "human", "cat")}
    # Ctrl+B from the first image: copied to the next one of the list, which opens
    _open(page, live, first)
    page.mouse.click(*_screen(page, 75, 25))
    page.wait_for_function(f"__canvas.selected === {made[1]['id']}")
    page.keyboard.press("Control+b")
    _ready(page, second)
    page.wait_for_selector(".toast >> text=Copied 1 shape to the next image.")
    assert [a["shape"]["xyxy"] for a in _anns(live, second)] == [BOXES[1]]
    page.close()


def test_merge_and_cut_out_with_plus_and_minus(browser: Any, live: Live) -> None:  # noqa: F811
    image = _ids(live)["b.png"]
    token = live.token("admin", PASSWORD)
    made = [live.api("POST", f"/api/images/{image}/annotations", token,
                     json={"label": "cat", "shape": {"type": "box", "xyxy": xyxy}})
            for xyxy in ([20, 20, 60, 60], [40, 20, 80, 60], [45, 30, 55, 40])]
    page = _page(browser, live, "reviewer")
    _open(page, live, image)
    # one alone: + says what it needs
    page.mouse.click(*_screen(page, 25, 50))
    page.keyboard.press("+")
    page.wait_for_selector(".toast >> text=Pick two shapes")
    # the second, then shift-click the first: + merges the second into the first (the
    # selected one keeps the result)
    page.mouse.click(*_screen(page, 75, 50))
    _shift_click(page, 25, 50)
    page.wait_for_function(f"__canvas.picked.size === 2 && __canvas.selected === {made[0]['id']}")
    page.keyboard.press("+")
    page.wait_for_selector(".toast >> text=Merged into one shape.")
    anns = {a["id"]: a for a in _anns(live, image)}
    assert made[1]["id"] not in anns and anns[made[0]["id"]]["shape"]["type"] == "polygon"
    # the small box cut out of it: a hole
    page.mouse.click(*_screen(page, 50, 35))
    _shift_click(page, 25, 50)
    page.wait_for_function(f"__canvas.picked.size === 2 && __canvas.selected === {made[0]['id']}")
    page.keyboard.press("-")
    page.wait_for_selector(".toast >> text=Cut out of the selected shape.")
    shape = next(a for a in _anns(live, image) if a["id"] == made[0]["id"])["shape"]
    assert len(shape["holes"]) == 1
    page.close()


def test_a_box_turns_by_its_rotation_handle(browser: Any, live: Live) -> None:  # noqa: F811
    image = _ids(live)["d.png"]
    token = live.token("admin", PASSWORD)
    box = live.api("POST", f"/api/images/{image}/annotations", token,
                   json={"label": "cat", "shape": {"type": "box", "xyxy": [40, 40, 120, 80]}})
    page = _page(browser, live, "reviewer")
    _open(page, live, image)
    page.mouse.click(*_screen(page, 80, 60))
    page.wait_for_function(f"__canvas.selected === {box['id']}")
    # the handle: 24 screen pixels above the middle of the top edge; dragged to the right
    # of the centre, the box turns a quarter clockwise
    hx, hy = _screen(page, 80, 40)
    page.mouse.move(hx, hy - 24)
    page.mouse.down()
    cx, cy = _screen(page, 80, 60)
    page.mouse.move(cx + 80, cy, steps=6)
    page.mouse.up()
    _settled(page)
    page.wait_for_function(f"__doc.byId({box['id']}).shape.type === 'rotated_box'")
    got = live.api("GET", f"/api/annotations/{box['id']}", token)["shape"]
    cx_, cy_, w, h, angle = got["cxcywha"]
    assert (round(cx_), round(cy_), round(w), round(h)) == (80, 60, 80, 40)
    assert abs(angle - 90) < 2, angle
    page.close()
