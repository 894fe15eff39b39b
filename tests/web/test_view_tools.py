"""What the editor shows, in Chromium (issue 16): hide and lock a shape or a whole class,
zoom to the selection (Z) and pan to it (Tab), brightness and contrast, the minimap of an
image larger than the view, and a crop of the selected text line."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import PASSWORD
from tests.web.conftest import Live
from tests.web.test_ui import (
    live,  # noqa: F401  (the fixture: an OCR page, 7 lines)
    open_image,
    settled,
    sign_in,
    to_screen,
)

pytestmark = pytest.mark.slow


def _page_with_lines(browser: Any, live: Live) -> tuple[Any, list[dict[str, Any]]]:  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live)
    token = live.token("reviewer", PASSWORD)
    image = next(i for i in live.api("GET", "/api/images", token)["data"] if i["annotations"])
    open_image(page, live, image["id"])
    anns = live.api("GET", f"/api/images/{image['id']}/annotations", token)["data"]
    return page, anns


def _center(a: dict[str, Any]) -> tuple[float, float]:
    pts = a["shape"]["points"]
    return sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)


def _pixel(page: Any, x: float, y: float) -> list[int]:
    return list(page.evaluate(
        "([x, y]) => Array.from(__canvas.canvas.getContext('2d').getImageData(x, y, 1, 1).data)",
        [x, y]))


def _painted(page: Any) -> None:
    """Wait until the canvas has painted a frame of its present state."""
    n = page.evaluate("__canvas.frames")
    page.evaluate("__canvas.redraw()")
    page.wait_for_function(f"__canvas.frames > {n}")


def test_hide_and_lock_a_shape_and_a_class(browser: Any, live: Live) -> None:  # noqa: F811
    page, anns = _page_with_lines(browser, live)
    first = anns[0]
    x, y = to_screen(page, *_center(first))
    page.mouse.click(x, y)
    page.wait_for_function(f"__canvas.selected === {first['id']}")
    # H hides it: no longer drawn, no longer clicked, the list row dimmed; the selection goes
    page.keyboard.press("h")
    page.wait_for_selector(f"#ann-list li[data-id='{first['id']}'].hidden-shape")
    assert page.evaluate("__canvas.selected") is None
    page.mouse.click(x, y)
    assert page.evaluate("__canvas.selected") is None
    # Shift+H shows everything again
    page.keyboard.press("Shift+H")
    page.wait_for_selector(f"#ann-list li[data-id='{first['id']}']:not(.hidden-shape)")
    page.mouse.click(x, y)
    page.wait_for_function(f"__canvas.selected === {first['id']}")

    # Shift+L locks it: Delete refuses and says why, a drag does not move it
    page.keyboard.press("Shift+L")
    page.wait_for_selector(".toast >> text=Locked this text.")
    page.keyboard.press("Delete")
    page.wait_for_selector(".toast >> text=is locked: Shift+L (or its lock) unlocks it.")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y + 30, steps=4)
    page.mouse.up()
    settled(page)
    token = live.token("reviewer", PASSWORD)
    now = live.api("GET", f"/api/annotations/{first['id']}", token)
    assert now["version"] == first["version"] and now["shape"] == first["shape"]

    # a whole class: the legend's switch hides every text line, and it stays hidden on the
    # next image
    page.click("#legend li[data-label=text] .hide-class")
    page.wait_for_function("__canvas.anns.every((a) => !__canvas.isVisible(a))")
    assert page.locator("#ann-list li.hidden-shape").count() == len(anns)
    page.keyboard.press("n")
    page.wait_for_function(f"window.__editorImage !== {first['image_id']}")
    page.wait_for_function("__canvas.hiddenClasses.has('text')")
    page.close()


def test_zoom_to_pan_to_minimap_brightness_and_the_line_crop(browser: Any, live: Live) -> None:  # noqa: F811
    page, anns = _page_with_lines(browser, live)
    fitted = page.evaluate("__canvas.scale")
    # Tab selects a line (and shows its crop beside the text field)
    page.keyboard.press("Tab")
    page.wait_for_function("__canvas.selected !== null")
    page.wait_for_selector("#line-crop:not([hidden])")
    width, height = page.evaluate("[document.getElementById('line-crop').width, "
                                  "document.getElementById('line-crop').height]")
    assert height == 48 or width == 320
    # Z zooms to it: the line fills most of the view's width or height, centred
    page.keyboard.press("z")
    page.wait_for_function("!__canvas.fitted")
    sel = next(a for a in anns if a["id"] == page.evaluate("__canvas.selected"))
    cx, cy = _center(sel)
    box = page.locator("canvas.label-canvas").bounding_box()
    sx, sy = to_screen(page, cx, cy)
    assert abs(sx - (box["x"] + box["width"] / 2)) < 3 and abs(sy - (box["y"] + box["height"] / 2)) < 3
    xs = [p[0] for p in sel["shape"]["points"]]
    ys = [p[1] for p in sel["shape"]["points"]]
    scale = page.evaluate("__canvas.scale")
    assert scale > fitted
    assert max((max(xs) - min(xs)) * scale / box["width"], (max(ys) - min(ys)) * scale / box["height"]) > 0.75
    # zoomed in, the image overflows the view: the minimap shows it whole, and a click on
    # its corner takes the view there
    page.wait_for_function("__canvas.minimap !== null")
    m = page.evaluate("__canvas.minimap")
    page.mouse.click(box["x"] + m["x"] + 2, box["y"] + m["y"] + 2)
    ix, iy = page.evaluate("__canvas.toImage(__canvas.canvas.width / 2, __canvas.canvas.height / 2)")
    assert ix < 2 / m["k"] + 1 and iy < 2 / m["k"] + 1
    # Tab pans to the next line when it is out of view
    page.keyboard.press("Tab")
    nxt = next(a for a in anns if a["id"] == page.evaluate("__canvas.selected"))
    nx, ny = to_screen(page, *_center(nxt))
    assert box["x"] <= nx <= box["x"] + box["width"] and box["y"] <= ny <= box["y"] + box["height"]

    # brightness: the image is drawn darker; double-click resets it
    page.keyboard.press("f")
    page.wait_for_function("__canvas.fitted")
    _painted(page)
    px, py = to_screen(page, 2, 2)
    probe = (px - box["x"], py - box["y"])
    before = _pixel(page, *probe)
    page.locator("#brightness").fill("0.3")
    page.wait_for_function("__canvas.brightness === 0.3")
    _painted(page)
    after = _pixel(page, *probe)
    assert sum(after[:3]) < sum(before[:3]) * 0.6, (before, after)
    page.dblclick("#brightness")
    page.wait_for_function("__canvas.brightness === 1")
    page.close()
