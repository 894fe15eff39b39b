"""Active learning in Chromium: a reviewer chooses what to label next from the overview;
the grid shows the chosen images first with their rank, "Start labeling" hands out the
first, and the editor says why it was chosen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.active.test_select import coco_workspace
from tests.server.conftest import PASSWORD, add_users
from tests.web.conftest import serve, sign_in
from tests.web.test_assist import wait_job

pytestmark = pytest.mark.slow


def live_project(ws: Any) -> Any:
    """The workspace with its users, served (the workspace closed here first)."""
    add_users(ws)
    root = ws.root
    ws.close()
    yield from serve(root)


def open_as(browser: Any, live: Any, user: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, live, user)
    return page


def test_choose_what_to_label_next_in_the_browser(browser: Any, make_workspace,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path, shared: Path) -> None:
    ws = coco_workspace(make_workspace, tmp_path, shared, n=6)
    for live in live_project(ws):
        page = open_as(browser, live, "reviewer")
        page.wait_for_selector("#select-reason >> text=from 6 images nobody has reviewed")
        page.wait_for_selector("#select-model option[value=yolox-nano]", state="attached")
        page.select_option("#select-strategy", "uncertainty")
        page.fill("#select-budget", "3")
        page.click("#select")
        text = wait_job(page, "select")
        assert "3 of 6 images first in the queue (uncertainty, model:yolox-nano@1)" in text
        token = live.token("reviewer", PASSWORD)
        (job,) = [j for j in live.api("GET", "/api/jobs", token) if j["kind"] == "select"]
        chosen = [s["file_name"] for s in job["result"]["selected"]]
        # the grid's default order: the chosen first, in order, with their ranks
        page.click("header >> text=Images")
        page.wait_for_selector("#count >> text=8 images")
        page.wait_for_selector(".cell .rank >> text=#3")
        cells = page.eval_on_selector_all(".cell", "cs => cs.map(c => c.textContent)")
        assert [c.split("#")[0] for c in cells[:3]] == chosen
        assert [c.split("#")[1] for c in cells[:3]] == ["1", "2", "3"]
        assert "#" not in cells[3]
        # "Start labeling" hands out the first chosen image; the editor says why
        page.click("text=LabelPilot")
        page.click("#start")
        why = page.wait_for_selector("#chosen-because")
        shown = why.text_content()
        page.wait_for_selector(f"aside h3 >> text={chosen[0]}")
        assert shown.startswith("Chosen #1 by uncertainty, score ")
        reason = job["result"]["selected"][0]["reason"]
        assert reason in shown
        page.close()
        # an annotator has no selection panel (a reviewer's action)
        ann = open_as(browser, live, "annotator")
        ann.wait_for_selector("#start")
        assert ann.query_selector("#select-panel") is None
        assert ann.query_selector("#loop-panel") is None
        ann.close()
        # an admin switches the closed loop on (the workspace's few accepted boxes are
        # far from 100: no training starts)
        admin = open_as(browser, live, "admin")
        admin.wait_for_selector("#loop-state >> text=The loop is off.")
        admin.check("#loop-enabled")
        admin.fill("#loop-every", "100")
        admin.fill("#loop-minutes", "2")
        admin.click("#loop-save")
        admin.wait_for_selector("#loop-state >> text=Training after every 100 accepted labels.")
        project = live.api("GET", "/api/project", live.token("admin", PASSWORD))
        assert project["loop"] == {"enabled": True, "every": 100, "minutes": 2.0}
        admin.close()


def test_whole_image_text_lines_in_the_browser(browser: Any, make_workspace,  # type: ignore[no-untyped-def]
                                               tmp_path: Path, shared: Path) -> None:
    from labelpilot.transfer import import_dataset
    from tests.jobs.test_autolabel import plate_crops

    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, plate_crops(tmp_path / "p", shared, 3), format="images")
    for live in live_project(ws):
        # an admin says the project's images are cropped lines
        admin = open_as(browser, live, "admin")
        admin.wait_for_selector("#loop-state >> text=Text lines: detected.")
        admin.select_option("#project-text-lines", "whole-image")
        admin.click("#loop-save")
        admin.wait_for_selector("#loop-state >> text=Text lines: whole images.")
        assert live.api("GET", "/api/project",
                        live.token("admin", PASSWORD))["text_lines"] == "whole-image"
        admin.close()
        # a reviewer's pre-label panel reads whole images by default
        page = open_as(browser, live, "reviewer")
        page.wait_for_selector("#prelabel-model option[value=ocr]", state="attached")
        assert page.is_visible("#prelabel-lines")
        assert page.input_value("#prelabel-lines") == "whole-image"
        page.click("#prelabel")
        wait_job(page, "autolabel")
        token = live.token("reviewer", PASSWORD)
        (job,) = [j for j in live.api("GET", "/api/jobs", token) if j["kind"] == "autolabel"]
        assert job["status"] == "done" and job["result"]["lines"] == "whole-image"
        assert job["result"]["added"] == 3
        page.close()


def test_segmentation_selection_in_the_browser(browser: Any, make_workspace,  # type: ignore[no-untyped-def]
                                               tmp_path: Path, shared: Path) -> None:
    import shutil

    from labelpilot.transfer import import_dataset

    src = tmp_path / "imgs"
    src.mkdir()
    for p in sorted((shared / "datasets" / "grabcut" / "data_GT").iterdir())[:3]:
        shutil.copy(p, src / p.name)
    ws = make_workspace(task="segment", labels=["object"])
    import_dataset(ws, src, format="images")
    for live in live_project(ws):
        page = open_as(browser, live, "reviewer")
        page.wait_for_selector("#select-model option[value=graphcut]", state="attached")
        options = page.eval_on_selector_all("#select-strategy option", "os => os.map(o => o.value)")
        assert options == ["uncertainty", "random"]  # nothing to spread out with
        page.select_option("#select-strategy", "uncertainty")
        page.fill("#select-budget", "2")
        page.click("#select")
        text = wait_job(page, "select")
        assert "2 of 3 images first in the queue (uncertainty, model:graphcut@1)" in text
        page.click("#start")
        why = page.wait_for_selector("#chosen-because")
        assert why.text_content().startswith("Chosen #1 by uncertainty, score ")
        page.close()
