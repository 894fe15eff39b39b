"""Masks in the editor, in Chromium (issue 16): masks are drawn and picked by their pixels;
the brush paints a new mask or adds to the selected one, the eraser takes pixels away (all
of them: the mask goes), "Fill holes" fills a ring; the point tool puts points. The RLE the
browser writes is read back by the server's own decoder."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelpilot.annotations import Mask
from labelpilot.geometry import rle
from labelpilot.store import repo
from labelpilot.transfer import import_dataset
from tests.conftest import write_image
from tests.server.conftest import PASSWORD, add_users
from tests.web.conftest import Live, serve
from tests.web.test_multi import _anns, _drag, _screen, _settled
from tests.web.test_review import (
    _ids,
    _open,
    _page,
    live,  # noqa: F401  (the fixture: 4 images 160x120)
)

pytestmark = pytest.mark.slow


def _mask_pixels(a: dict[str, Any]) -> Any:
    h, w = a["shape"]["size"]
    return rle.decode(a["shape"]["rle"], h, w).astype(bool)


def _stroke(page: Any, points: list[tuple[float, float]]) -> None:
    page.mouse.move(*_screen(page, *points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*_screen(page, *p), steps=6)
    page.mouse.up()


def _picks_only_on(page: Any, *, miss: tuple[float, float], hit: tuple[float, float],
                   shape_id: int) -> None:
    """With the select tool and nothing selected, a click at `miss` picks nothing and a
    click at `hit` picks the shape."""
    page.keyboard.press("v")
    page.keyboard.press("Escape")
    page.mouse.click(*_screen(page, *miss))
    assert page.evaluate("__canvas.selected") is None
    page.mouse.click(*_screen(page, *hit))
    page.wait_for_function(f"__canvas.selected === {shape_id}")


def _size(page: Any, n: int) -> None:
    """The brush size typed in its field, then the keys go back to the canvas."""
    page.fill("#brush-size", str(n))
    page.press("#brush-size", "Enter")
    page.focus("canvas.label-canvas")
    page.wait_for_function(f"__canvas.brushSize === {n}")


def test_brush_eraser_fill_holes_and_points(browser: Any, live: Live) -> None:  # noqa: F811
    image = _ids(live)["a.png"]
    page = _page(browser, live, "reviewer")
    _open(page, live, image)
    page.keyboard.press("m")
    page.wait_for_selector("#brush-controls:not([hidden])")
    _size(page, 10)
    # one horizontal stroke: a new mask, about 100 x 10 pixels with round ends
    _stroke(page, [(30, 60), (130, 60)])
    _settled(page)
    page.wait_for_function("__doc.anns.some((a) => a.shape.type === 'mask')")
    anns = [a for a in _anns(live, image) if a["shape"]["type"] == "mask"]
    assert len(anns) == 1
    mask = anns[0]
    px = _mask_pixels(mask)
    expected = 100 * 10 + math.pi * 5 ** 2
    assert abs(px.sum() - expected) < 0.15 * expected, px.sum()
    ys, xs = np.nonzero(px)
    assert 24 <= xs.min() <= 26 and 134 <= xs.max() <= 136 and 54 <= ys.min() <= 56
    assert mask["status"] == "accepted" and mask["source"] == "human"

    # the eraser cuts it in two where it crosses; the mask stays one annotation
    page.keyboard.press("x")
    _stroke(page, [(80, 40), (80, 80)])
    _settled(page)
    page.wait_for_function(f"__doc.byId({mask['id']}).version > {mask['version']}")
    cut = _mask_pixels(_anns(live, image)[0])
    assert not cut[:, 78:83].any() and cut[:, 30:70].any() and cut[:, 90:130].any()

    # a ring with the brush on the selected mask, then Fill holes fills its middle
    page.keyboard.press("m")
    ring = [(20 + 10 * math.cos(t / 12 * 2 * math.pi), 25 + 10 * math.sin(t / 12 * 2 * math.pi))
            for t in range(13)]
    _size(page, 4)
    _stroke(page, ring)
    _settled(page)
    ringed = _anns(live, image)[0]
    before = _mask_pixels(ringed)
    assert not before[25, 20]  # the ring's middle is a hole
    page.click("#fill-holes")
    page.wait_for_function(f"__doc.byId({mask['id']}).version === {ringed['version']} + 1")
    _settled(page)
    after = _mask_pixels(_anns(live, image)[0])
    assert after[25, 20] and after.sum() > before.sum() + 150
    assert Mask(_anns(live, image)[0]["shape"]["rle"], 120, 160).area() == after.sum()

    # the mask is picked by its pixels, not its box: a click in the cut selects nothing
    _picks_only_on(page, miss=(80, 60), hit=(110, 60), shape_id=mask["id"])

    # erasing every pixel deletes the mask
    page.keyboard.press("x")
    _size(page, 80)
    _stroke(page, [(0, 20), (160, 20), (160, 60), (0, 60), (0, 100), (160, 100), (160, 120)])
    _settled(page)
    page.wait_for_function("!__doc.anns.some((a) => a.shape.type === 'mask')")

    # points
    page.keyboard.press("o")
    page.mouse.click(*_screen(page, 40, 30))
    _settled(page)
    pts = [a for a in _anns(live, image) if a["shape"]["type"] == "point"]
    assert len(pts) == 1 and abs(pts[0]["shape"]["xy"][0] - 40) < 1.5
    page.close()


def test_an_imported_mask_is_drawn_in_its_class_colour(browser: Any, live: Live) -> None:  # noqa: F811
    image = _ids(live)["b.png"]
    m = np.zeros((120, 160), dtype=np.uint8)
    m[30:90, 40:120] = 1
    m[50:70, 70:90] = 0  # a hole
    token = live.token("admin", PASSWORD)
    made = live.api("POST", f"/api/images/{image}/annotations", token, json={
        "label": "dog", "shape": {"type": "mask", "rle": rle.encode(m), "size": [120, 160]}})
    page = _page(browser, live, "reviewer")
    _open(page, live, image)
    bits = page.evaluate("(id) => { const m = __canvas.masks.get(id).bits; "
                         "return [m.x, m.y, m.w, m.h, Array.from(m.bits).reduce((s, v) => s + v, 0)]; }",
                         made["id"])
    assert bits == [40, 30, 80, 60, int(m.sum())]
    # the hole is not the mask: a click there picks nothing, a click on the mask picks it
    page.mouse.click(*_screen(page, 80, 60))
    assert page.evaluate("__canvas.selected") is None
    page.mouse.click(*_screen(page, 50, 40))
    page.wait_for_function("__canvas.selected !== null")
    page.close()


@pytest.fixture
def keypoints_live(make_workspace, tmp_path: Path) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    ws = make_workspace(task="detect", labels=["person"])
    write_image(tmp_path / "imgs" / "p.png", 160, 120, seed=3)
    import_dataset(ws, tmp_path / "imgs", format="images")
    with ws.transaction() as conn:
        repo.set_label_keypoints(conn, {"person": {"keypoints": ["head", "hip", "foot"],
                                                   "skeleton": [[1, 2], [2, 3]]}})
        repo.update_label(conn, "person", {"color": "#00ff00"})
    add_users(ws)
    root = ws.root
    ws.close()
    yield from serve(root)


def test_keypoints_are_put_in_their_order_and_joined_by_the_skeleton(
        browser: Any, keypoints_live: Live) -> None:
    kp = keypoints_live
    image = next(iter(_ids(kp).values()))
    page = _page(browser, kp, "reviewer")
    _open(page, kp, image)
    page.keyboard.press("o")
    for x, y in ((80, 20), (80, 60), (80, 100), (30, 30)):
        page.mouse.click(*_screen(page, x, y))
        _settled(page)
    points = sorted(_anns(kp, image), key=lambda a: a["id"])
    assert [(a["attributes"]["keypoint"], a["group"]) for a in points] == [
        ("head", 1), ("hip", 1), ("foot", 1), ("head", 2)]  # the fourth starts a new person
    # the skeleton: a green line between head and hip (none from the new head)
    page.wait_for_function("__canvas.frames > 0")
    box = page.locator("canvas.label-canvas").bounding_box()
    sx, sy = _screen(page, 80, 40)
    r, g, b, _ = page.evaluate(
        "([x, y]) => Array.from(__canvas.canvas.getContext('2d').getImageData(x, y, 1, 1).data)",
        [sx - box["x"], sy - box["y"]])
    assert g > 200 and r < 80 and b < 80, (r, g, b)
    page.close()


def test_a_line_is_drawn_reshaped_and_picked_by_its_stroke(browser: Any, live: Live) -> None:  # noqa: F811
    image = _ids(live)["d.png"]
    page = _page(browser, live, "reviewer")
    _open(page, live, image)
    page.keyboard.press("i")
    for corner in ((20, 20), (80, 60), (140, 30)):
        page.mouse.click(*_screen(page, *corner))
    page.keyboard.press("Enter")
    _settled(page)
    page.wait_for_function("__doc.anns.some((a) => a.shape.type === 'polyline')")
    (line,) = _anns(live, image)
    assert line["shape"]["type"] == "polyline"
    assert [[round(v) for v in p] for p in line["shape"]["points"]] == [[20, 20], [80, 60], [140, 30]]
    # picked on its stroke, not inside the triangle its ends would close
    _picks_only_on(page, miss=(80, 40), hit=(50, 40), shape_id=line["id"])
    # its middle vertex dragged down
    _drag(page, (80, 60), (80, 100))
    page.wait_for_function(f"__doc.byId({line['id']}).version === {line['version']} + 1")
    (moved,) = _anns(live, image)
    (x1, y1), (x2, y2), (x3, y3) = moved["shape"]["points"]
    assert [round(v) for v in (x1, y1, x3, y3)] == [20, 20, 140, 30]
    assert abs(x2 - 80) < 1.5 and abs(y2 - 100) < 1.5
    page.close()
