"""The model side of the UI in a real Chromium: pre-labeling with a detector's class map,
training a custom detector from the overview, and the models page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.coco128 import detect_workspace
from tests.server.conftest import PASSWORD
from tests.web.conftest import serve, sign_in

pytestmark = pytest.mark.slow


def wait_job(page: Any, kind: str) -> str:
    row = page.wait_for_selector(f".job[data-kind={kind}].done, .job[data-kind={kind}].failed",
                                 timeout=120_000)
    text = row.text_content()
    assert "done" in text, text
    return str(text)


def test_prelabel_with_a_class_map(browser: Any, make_workspace, tmp_path: Path,  # type: ignore[no-untyped-def]
                                   shared: Path) -> None:
    # the project calls COCO's bowls "dish"; the model's other classes are dropped
    ws = detect_workspace(make_workspace, tmp_path, shared, ["dish", "broccoli"], users=True)
    root = ws.root
    ws.close()
    for live in serve(root):
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        sign_in(page, live, "reviewer")
        requests: list[str] = []
        base = live.base
        page.on("request", lambda r, seen=requests, base=base: seen.append(r.url.removeprefix(base)))
        page.select_option("#prelabel-model", "yolox-nano")
        page.wait_for_selector("#class-map select[data-label=dish]")
        # same-named classes are preselected, the others start at "none"
        assert page.eval_on_selector("select[data-label=broccoli]", "s => s.value") == "broccoli"
        assert page.eval_on_selector("select[data-label=dish]", "s => s.value") == ""
        assert not page.is_checked("#add-unmapped")
        page.select_option("select[data-label=dish]", "bowl")
        # broccoli set to none: dropped, although the project has a label of that name
        page.select_option("select[data-label=broccoli]", "")
        mark = len(requests)
        page.click("#prelabel")
        wait_job(page, "autolabel")
        token = live.token("reviewer", PASSWORD)
        (img,) = live.api("GET", "/api/images", token)["data"]
        anns = live.api("GET", f"/api/images/{img['id']}/annotations", token)["data"]
        assert anns and {a["label"] for a in anns} == {"dish"}
        (job,) = live.api("GET", "/api/jobs", token)
        # progress came over the job's event stream: the list was read once, after the start
        assert f"/api/jobs/{job['id']}/events" in requests
        assert requests[mark:].count("/api/jobs") == 1, requests
        assert job["params"]["map"] == {"bowl": "dish", "broccoli": ""}
        assert job["result"]["dropped_unmapped"] > 0
        page.close()


def test_train_a_detector_from_the_overview(browser: Any, make_workspace, tmp_path: Path,  # type: ignore[no-untyped-def]
                                            shared: Path) -> None:
    pytest.importorskip("torch")
    ws = detect_workspace(make_workspace, tmp_path, shared, ["bowl", "car"],
                          classes=["bowl", "car"], train=4, test=2, users=True)
    root = ws.root
    ws.close()
    for live in serve(root):
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        # reviewers pre-label but do not train
        sign_in(page, live, "reviewer")
        page.wait_for_selector("#prelabel-panel")
        assert page.query_selector("#train-panel") is None
        page.click("#logout")
        page.wait_for_selector("#username")
        sign_in(page, live, "admin")
        # too few bowls to learn them well: said next to the button (it can still start)
        page.wait_for_selector("#train-warnings li >> text=bowl: ")
        assert "10 or more of each class are needed" in page.inner_text("#train-warnings")
        # it starts from one of the installed detectors with a YOLOX head
        page.wait_for_selector("#train-base option", state="attached")
        assert page.eval_on_selector_all("#train-base option", "os => os.map(o => o.value)") \
            == ["yolox-nano"]
        assert page.eval_on_selector("#train-base", "s => s.value") == "yolox-nano"
        # a run cancelled from its row says 'cancelling…' until it stops; it registers nothing
        page.fill("#train-minutes", "5")
        page.fill("#train-name", "cancelled-detector")
        page.click("#train")
        page.click(".job[data-kind=train-detect].running .cancel-job", timeout=60_000)
        # (a run that stops within the same moment skips straight to 'cancelled')
        shown = page.wait_for_selector(".job[data-kind=train-detect].cancelling, "
                                       ".job[data-kind=train-detect].cancelled")
        assert "cancelling…" in shown.text_content() or "cancelled" in shown.text_content()
        assert page.locator(".job[data-kind=train-detect] .cancel-job").count() == 0
        page.wait_for_selector(".job[data-kind=train-detect].cancelled", timeout=60_000)
        token = live.token("admin", PASSWORD)
        assert "cancelled-detector" not in {m["name"] for m in live.api("GET", "/api/models",
                                                                         token)}
        page.fill("#train-minutes", "0.05")
        page.fill("#train-name", "ui-detector")
        # in tiles (large images with small objects): a tile under 64 px is refused here
        page.fill("#train-tile", "20")
        page.click("#train")
        page.wait_for_selector(".toast >> text=64 or more")
        page.fill("#train-tile", "320")
        page.click("#train")
        text = wait_job(page, "train-detect")
        assert "model ui-detector: test mAP50" in text and "tiles of 320 px)" in text
        jobs = live.api("GET", "/api/jobs", token)
        assert {j["params"]["base"] for j in jobs if j["kind"] == "train-detect"} == {"yolox-nano"}
        (done,) = [j for j in jobs if j["kind"] == "train-detect" and j["status"] == "done"]
        assert done["params"]["tile"] == 320 and done["result"]["tiling"]["train_tiles"] > 4
        # the new model is offered for pre-labeling without a reload ...
        page.wait_for_selector("#prelabel-model option[value=ui-detector]", state="attached")
        page.select_option("#prelabel-model", "ui-detector")
        page.wait_for_selector("#class-map select[data-label=car]")
        assert page.eval_on_selector("select[data-label=bowl]", "s => s.value") == "bowl"
        # ... and the models page shows what it measured on the test split, per class
        page.click("header a[href='#/models']")
        row = page.wait_for_selector("tr[data-model=ui-detector]")
        assert "test split (2 images)" in row.text_content()
        classes = page.eval_on_selector_all(
            "tr[data-model=ui-detector] table.per-class td:first-child",
            "cells => cells.map(c => c.textContent)")
        (m,) = [m for m in live.api("GET", "/api/models", token) if m["name"] == "ui-detector"]
        assert classes == sorted(m["metrics"]["test"]["per_class"]) and classes
        assert sorted(m["classes"]) == ["bowl", "car"] and m["task"] == "detect"
        # the test images with the most to fix link to the editor, worst first
        links = page.eval_on_selector_all("tr[data-model=ui-detector] ul.mistakes a",
                                          "as => as.map(a => a.getAttribute('href'))")
        assert links == [f"#/label/{e['image_id']}" for e in m["metrics"]["test"]["examples"]]
        page.close()
