"""The smart mask tool in a real Chromium: click, correct with a right-click, keep."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelpilot.geometry import rle
from labelpilot.geometry.iou import mask_iou as iou
from labelpilot.transfer import import_dataset
from tests.scenes import deepest
from tests.server.conftest import PASSWORD, add_users
from tests.server.test_segment_api import scenes_dataset
from tests.web.conftest import Live, serve
from tests.web.conftest import sign_in as signed_in
from tests.web.test_ui import open_image, settled, to_screen

pytestmark = pytest.mark.slow


@pytest.fixture
def seg_live(make_workspace, tmp_path: Path) -> Iterator[tuple[Live, list[Any]]]:  # type: ignore[no-untyped-def]
    ws = make_workspace(task="segment", labels=["object"])
    src, truths = scenes_dataset(tmp_path / "scenes", 1)
    import_dataset(ws, src / "images", format="images")  # the images only: we label them
    add_users(ws)
    root = ws.root
    ws.close()
    for live in serve(root):
        yield live, truths


def sign_in(page: Any, live: Live) -> None:
    signed_in(page, live, "annotator")
    page.wait_for_selector("text=1 images")


def test_click_correct_and_keep_a_mask(browser: Any, seg_live: tuple[Live, list[Any]]) -> None:
    live, truths = seg_live
    ring, rect = truths[0]
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live)
    token = live.token("annotator", PASSWORD)
    (img,) = live.api("GET", "/api/images", token)["data"]
    open_image(page, live, img["id"])
    page.keyboard.press("s")
    # the tool registered through the smart-tool hook takes the canvas's prompts
    assert page.evaluate("__canvas.tool") == "prompt"
    assert page.get_attribute("button[data-tool=smart]", "class") == "active"
    # drag a box around both objects: the mask takes both
    ys, xs = np.nonzero(ring | rect)
    page.mouse.move(*to_screen(page, float(xs.min()) - 2, float(ys.min()) - 2))
    page.mouse.down()
    page.mouse.move(*to_screen(page, float(xs.max()) + 2, float(ys.max()) + 2), steps=5)
    page.mouse.up()
    page.wait_for_selector("#tool-latency:has-text('ms')")
    assert page.evaluate("__canvas.smartBox") is not None
    # right-click the rectangle: not the object
    page.evaluate("document.getElementById('tool-latency').textContent = ''")
    page.mouse.click(*to_screen(page, *deepest(rect)), button="right")
    page.wait_for_selector("#tool-latency:has-text('ms')")
    assert page.evaluate("__canvas.smartClicks.length") == 1
    assert "graphcut" in page.text_content("#tool-latency")
    page.keyboard.press("Enter")
    settled(page)
    anns = live.api("GET", f"/api/images/{img['id']}/annotations", token)["data"]
    assert len(anns) == 1
    a = anns[0]
    assert a["source"] == "model:graphcut@1" and a["status"] == "edited"
    shape = a["shape"]
    got = rle.from_polygons([shape["points"]], 240, 320, shape["holes"]).astype(bool)
    assert iou(got, ring) > 0.85 and len(shape["holes"]) == 1
    # undo takes the kept mask away again
    page.keyboard.press("Control+z")
    settled(page)
    assert live.api("GET", f"/api/images/{img['id']}/annotations", token)["data"] == []
    # a mask in two pieces (a box around both objects) is kept as one object: one mask
    page.keyboard.press("s")
    page.evaluate("document.getElementById('tool-latency').textContent = ''")
    page.mouse.move(*to_screen(page, float(xs.min()) - 2, float(ys.min()) - 2))
    page.mouse.down()
    page.mouse.move(*to_screen(page, float(xs.max()) + 2, float(ys.max()) + 2), steps=5)
    page.mouse.up()
    page.wait_for_selector("#tool-latency:has-text('no quality estimate')")
    page.keyboard.press("Enter")
    settled(page)
    (kept,) = live.api("GET", f"/api/images/{img['id']}/annotations", token)["data"]
    assert kept["shape"]["type"] == "mask"
    got = rle.decode(kept["shape"]["rle"], 240, 320).astype(bool)
    assert iou(got, ring | rect) > 0.85
    page.close()


@pytest.fixture
def person_live(make_workspace, tmp_path: Path, shared: Path):  # type: ignore[no-untyped-def]
    import cv2

    from labelpilot.models.catalogue import install
    from labelpilot.models.convert.sam import convert_sam
    from tests.models.test_semantic import person

    ws = make_workspace(task="segment", labels=["person"])
    img, gt = person(shared)
    (tmp_path / "p").mkdir()
    cv2.imwrite(str(tmp_path / "p" / "person.png"), img[..., ::-1])
    import_dataset(ws, tmp_path / "p", format="images")
    install(ws.models_dir, "deeplabv3-pascal",
            str(shared / "models" / "deeplabv3_mnv2_pascal_257.onnx"))
    convert_sam(ws.models_dir, "tiny-sam", arch="sam_tiny", checkpoint=None)
    add_users(ws)
    root = ws.root
    ws.close()
    for live in serve(root):
        yield live, gt


def test_each_model_kind_answers_in_the_editor(browser: Any, person_live) -> None:  # type: ignore[no-untyped-def]
    live, gt = person_live
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live)
    token = live.token("annotator", PASSWORD)
    (img,) = live.api("GET", "/api/images", token)["data"]
    open_image(page, live, img["id"])
    page.wait_for_selector("#smart-model option[value=graphcut]", state="attached")
    options = page.eval_on_selector_all("#smart-model option", "os => os.map(o => o.value)")
    assert set(options) == {"graphcut", "tiny-sam", "deeplabv3-pascal"}
    assert page.eval_on_selector("#smart-model", "s => s.value") == "tiny-sam"  # the default
    page.keyboard.press("s")
    x, y = deepest(gt)
    h, w = gt.shape
    for model in ("tiny-sam", "graphcut", "deeplabv3-pascal"):
        page.select_option("#smart-model", model)
        page.evaluate("document.getElementById('tool-latency').textContent = ''")
        if model == "tiny-sam":
            page.mouse.click(*to_screen(page, x, y))
        page.wait_for_selector(f"#tool-latency:has-text('{model}')")
        assert "ms" in page.text_content("#tool-latency")
    page.keyboard.press("Enter")
    settled(page)
    anns = live.api("GET", f"/api/images/{img['id']}/annotations", token)["data"]
    assert anns and {a["source"] for a in anns} == {"model:deeplabv3-pascal@1"}
    got = np.zeros((h, w), bool)
    for a in anns:
        got |= rle.from_polygons([a["shape"]["points"]], h, w, a["shape"]["holes"]).astype(bool)
    assert iou(got, gt) > 0.4
    page.close()


def test_click_to_box_with_a_detector(browser: Any, make_workspace, tmp_path: Path,  # type: ignore[no-untyped-def]
                                      shared: Path) -> None:
    from tests.coco128 import detect_workspace

    ws = detect_workspace(make_workspace, tmp_path, shared, ["bowl", "broccoli"], users=True)
    root = ws.root
    ws.close()
    for live in serve(root):
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        sign_in(page, live)
        token = live.token("annotator", PASSWORD)
        (img,) = live.api("GET", "/api/images", token)["data"]
        open_image(page, live, img["id"])
        page.keyboard.press("k")
        page.mouse.click(*to_screen(page, 470, 100))  # the top-right bowl
        page.wait_for_selector("#tool-latency:has-text('yolox-nano@1 (detector) bowl')")
        page.keyboard.press("Enter")
        settled(page)
        (a,) = live.api("GET", f"/api/images/{img['id']}/annotations", token)["data"]
        assert a["label"] == "bowl" and a["shape"]["type"] == "box"
        assert a["source"] == "model:yolox-nano@1" and a["status"] == "edited"
        x1, y1, x2, y2 = a["shape"]["xyxy"]
        assert x1 <= 470 <= x2 and y1 <= 100 <= y2
        page.close()
        # a reviewer rejects it: the detector's same box is not offered again under K
        reviewer = browser.new_page(viewport={"width": 1280, "height": 720})
        signed_in(reviewer, live, "reviewer")
        open_image(reviewer, live, img["id"])
        reviewer.keyboard.press("Tab")
        reviewer.keyboard.press("r")
        settled(reviewer)
        reviewer.keyboard.press("k")
        reviewer.mouse.click(*to_screen(reviewer, 470, 100))
        reviewer.wait_for_selector("#tool-latency:has-text(\"the detector's box here was "
                                   "rejected (bowl)\")")
        reviewer.keyboard.press("Enter")  # nothing to keep
        settled(reviewer)
        (again,) = live.api("GET", f"/api/images/{img['id']}/annotations", token)["data"]
        assert again["id"] == a["id"] and again["status"] == "rejected"
        reviewer.close()
