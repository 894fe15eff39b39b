"""A model trained here shows its learning curve on the Models page (issue 17): the route
serves the points its trainer wrote (history.json), the page draws loss and the held-out
figure as SVG; a model not trained here has none (404)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labelpilot.models.catalogue import install
from labelpilot.models.manifest import ModelManifest
from labelpilot.workspace import Workspace
from tests.server.conftest import PASSWORD, add_users
from tests.web.conftest import Live, serve, sign_in

pytestmark = pytest.mark.slow

POINTS = [{"step": s, "seconds": s * 2.0, "loss": 5.0 / s, **({"val_map50": s / 20} if s % 4 == 0 else {})}
          for s in range(1, 13)]

TEST = {"images": 2, "map50": 0.5, "map50_95": 0.3, "accept_rate": 0.4, "precision": 0.75,
        "per_class": {"person": {"ap50": 0.5, "ap50_95": 0.3, "instances": 3}},
        "examples": [{"image_id": 7, "file_name": "b.jpg", "misses": [
            {"label": "person", "box": [1, 2, 3, 4]}, {"label": "person", "box": [5, 6, 7, 8]}],
            "false_alarms": []},
            {"image_id": 3, "file_name": "a.jpg", "misses": [], "false_alarms": [
                {"label": "person", "score": 0.4, "box": [1, 2, 3, 4]}]}]}
THRESHOLDS = {"score_threshold": 0.35, "class_thresholds": {"person": 0.4},
              "f1": {"all": 0.7, "person": 0.7}, "images": 5}

BASES = [{"base": "yolox-nano", "val_map50": 0.6, "steps": 12, "ms_per_image": 41.2,
          "test_map50": 0.5, "test_accept_rate": 0.4},
         {"base": "person-detector", "val_map50": 0.2, "steps": 30, "ms_per_image": 9.6,
          "test_map50": 0.1, "test_accept_rate": 0.05}]


@pytest.fixture
def trained(tmp_path: Path, shared: Path) -> Iterator[Live]:
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["person"])
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    # as a training run leaves it: the figures in the manifest, the curve beside it
    path = ws.models_dir / "yolox-nano" / "manifest.json"
    m = ModelManifest.load(path)
    m.metrics.update({"steps": 12, "val_map50": 0.6, "test": TEST, "thresholds": THRESHOLDS,
                      "bases": BASES})
    path.write_bytes(m.to_json())
    (path.parent / "history.json").write_text(json.dumps(POINTS))
    add_users(ws)
    ws.close()
    yield from serve(tmp_path / "ws")


def test_the_models_page_draws_a_trained_models_curve(browser: Any, trained: Live) -> None:
    token = trained.token("admin", PASSWORD)
    got = trained.api("GET", "/api/models/yolox-nano/history", token)
    assert got == [{k: float(v) for k, v in p.items()} for p in POINTS]
    missing = trained.api("GET", "/api/models/ocr/history", token)
    assert "has no training history" in missing["detail"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, trained, "reviewer")
    page.click("header a[href='#/models']")
    curve = page.locator("tr[data-model='yolox-nano'] svg.curve")
    curve.wait_for()
    assert curve.locator("circle.held-out").count() == 3  # steps 4, 8, 12
    line = curve.locator("polyline.loss").get_attribute("points") or ""
    assert len(line.split()) == 12
    assert "held-out map50 0.600" in (curve.text_content() or "")
    assert page.locator("tr[data-model='ocr'] svg.curve").count() == 0
    # what it measured: the test split, the images with the most to fix (linked to the
    # editor, worst first) and the display thresholds training chose
    row = page.locator("tr[data-model='yolox-nano']")
    assert "precision of the proposals shown 0.750" in (row.text_content() or "")
    links = row.locator("ul.mistakes a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert links == ["#/label/7", "#/label/3"]
    # the base models compared, the one kept first
    cells = row.locator("table.bases tr").evaluate_all(
        "rs => rs.map(r => [...r.children].map(c => c.textContent))")
    assert cells[1:] == [["yolox-nano", "0.600", "12", "41", "0.500", "0.400"],
                         ["person-detector", "0.200", "30", "10", "0.100", "0.050"]]
    assert row.locator("p.thresholds").text_content() == \
        "display thresholds chosen on 5 held-out images: 0.350, person 0.400"
    page.close()


def test_an_admin_optimizes_a_detector_from_the_models_page(browser: Any, tmp_path: Path,
                                                            shared: Path) -> None:
    """The button makes the INT8 variant as a job; the page says what the gate decided,
    with the figures, and a kept variant is listed with the model (whichever way the gate
    goes on this machine, the page must say the same as the job)."""
    import httpx

    from labelpilot.transfer import import_dataset
    from tests.coco128 import coco_subset

    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["person"])
    for split, d in coco_subset(shared, tmp_path / "c", ["person"], 8, 3).items():
        import_dataset(ws, d / "a.json", format="coco", split=split, images_dir=d / "images")
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    add_users(ws)
    ws.close()
    for live in serve(tmp_path / "ws"):
        reviewer = live.token("reviewer", PASSWORD)
        r = httpx.post(f"{live.base}/api/models/yolox-nano/optimize", json={},
                       headers={"Authorization": f"Bearer {reviewer}"})
        assert r.status_code == 403 and "optimize" in r.json()["detail"]
        admin = live.token("admin", PASSWORD)
        r = httpx.post(f"{live.base}/api/models/nope/optimize", json={},
                       headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 404
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, live, "reviewer")
        page.click("header a[href='#/models']")
        page.wait_for_selector("tr[data-model='yolox-nano']")
        assert page.locator("button.optimize").count() == 0  # admins only
        page.click("#logout")
        page.wait_for_selector("#username")
        sign_in(page, live, "admin")
        page.click("header a[href='#/models']")
        row = page.locator("tr[data-model='yolox-nano']")
        row.locator("button.optimize").wait_for()
        # the built-in OCR model can be optimized (into a workspace copy); graph cut cannot
        assert page.locator("tr[data-model='ocr'] button.optimize").count() == 1
        assert page.locator("tr[data-model='graphcut'] button.optimize").count() == 0
        row.locator("button.optimize").click()
        said = row.locator(".optimize-result")
        page.wait_for_function("() => /^(kept|refused|failed)/.test(document.querySelector("
                               "\"tr[data-model='yolox-nano'] .optimize-result\").textContent)",
                               timeout=300_000)
        (job,) = [j for j in live.api("GET", "/api/jobs", admin) if j["kind"] == "optimize"]
        assert job["status"] == "done", job
        text = said.text_content() or ""
        assert text.startswith("kept: " if job["result"]["kept"] else "refused: ")
        assert job["result"]["tries"][0]["reason"] in text
        page.reload()
        page.wait_for_selector("tr[data-model='yolox-nano']")
        variants = page.locator("tr[data-model='yolox-nano'] p.variant")
        assert variants.count() == (1 if job["result"]["kept"] else 0)
        page.close()
