"""Data in and out from the browser (issue 16): images uploaded on the Images page (with
duplicates, non-images and a broken file said so), and an export job downloaded from the
overview."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labelpilot.transfer import import_dataset
from tests.conftest import write_image
from tests.server.conftest import PASSWORD, add_users
from tests.test_transfer import coco_dir
from tests.web.conftest import Live, serve, sign_in

pytestmark = pytest.mark.slow


@pytest.fixture
def live(make_workspace, tmp_path: Path) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    ws = make_workspace(labels=["cat", "dog"])
    import_dataset(ws, coco_dir(tmp_path / "c", 2), format="coco", split="train")
    add_users(ws)
    root = ws.root
    ws.close()
    yield from serve(root)


def test_upload_images_from_the_images_page(browser: Any, live: Live, tmp_path: Path) -> None:
    new = [write_image(tmp_path / "up" / f"new{i}.png", 64, 48, seed=50 + i) for i in range(2)]
    (tmp_path / "up" / "notes.txt").write_text("not an image")
    (tmp_path / "up" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live, "annotator")
    page.click("text=Images")
    page.wait_for_selector("#grid .cell")
    assert page.locator("#grid .cell").count() == 2
    page.set_input_files("#upload-files", [str(p) for p in new] + [
        str(new[0]), str(tmp_path / "up" / "notes.txt"), str(tmp_path / "up" / "broken.png")])
    page.wait_for_selector("#upload-status >> text=2 added, 1 already there, 1 refused, "
                           "1 not images (skipped)")
    assert "broken.png: " in page.text_content("#upload-status")
    page.wait_for_function("document.querySelectorAll('#grid .cell').length === 4")
    token = live.token("admin", PASSWORD)
    names = {i["file_name"] for i in live.api("GET", "/api/images", token)["data"]}
    assert {"new0.png", "new1.png"} <= names and "broken.png" not in names
    page.close()


def test_export_and_download_from_the_overview(browser: Any, live: Live) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    sign_in(page, live, "annotator")
    assert page.locator("#export-panel").count() == 0  # exporting needs a reviewer
    page.click("#logout")
    page.wait_for_selector("#username")
    sign_in(page, live, "reviewer")
    page.wait_for_selector("#export-format option[value=yolo]", state="attached")
    page.select_option("#export-format", "yolo")
    page.select_option("#export-split", "train")
    page.click("#export")
    link = page.wait_for_selector(".job[data-kind=export].done a.download", timeout=60_000)
    row = page.text_content(".job[data-kind=export].done")
    assert "yolo: 2 images, 4 annotations" in row  # two boxes an image
    with page.expect_download() as got:
        link.click()
    data = Path(got.value.path()).read_bytes()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "data.yaml" in names
    labels = [n for n in names if n.startswith("labels/train/") and n.endswith(".txt")]
    assert len(labels) == 2
    page.close()


def test_import_an_archive_from_the_overview(browser: Any, live: Live, tmp_path: Path) -> None:
    import shutil

    from tests.formats.test_fidelity import cvat_yolo11

    src = cvat_yolo11(tmp_path / "y")  # CVAT's YOLO 1.1 export: 3 images, 2 boxes
    archive = shutil.make_archive(str(tmp_path / "cvat-yolo"), "zip", src)
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live, "reviewer")
    page.wait_for_selector("#import-format option[value=yolo]", state="attached")
    page.set_input_files("#import-file", archive)
    page.select_option("#import-format", "yolo")
    page.click("#import")
    row = page.wait_for_selector(".job[data-kind=import].done", timeout=60_000)
    assert "cvat-yolo.zip: 3 images added (0 already there), 2 annotations" in row.text_content()
    # a broken one: the job fails with the reason, nothing is imported
    (src / "obj_train_data" / "a.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    bad = shutil.make_archive(str(tmp_path / "bad"), "zip", src)
    page.set_input_files("#import-file", bad)
    page.click("#import")
    err = page.wait_for_selector(".job[data-kind=import].failed .job-error", timeout=60_000)
    assert "a.txt, line 1: class 7 is not among the dataset's 2 class names (0-1)" in \
        err.text_content()
    token = live.token("admin", PASSWORD)
    assert live.api("GET", "/api/images", token)["count"] == 2 + 3
    page.close()
