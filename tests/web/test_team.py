"""A team in Chromium (issue 16): a reviewer assigns the grid's list to an annotator, whose
"Start labeling" then hands out their images first; the reviewers' queue of submitted
images; tags on an image; attributes declared per class on the overview and edited per
shape in the editor."""

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
    live,  # noqa: F401  (the fixture: 4 images, no split)
)

pytestmark = pytest.mark.slow


def _image(live: Live, image_id: int) -> dict[str, Any]:  # noqa: F811
    return dict(live.api("GET", f"/api/images/{image_id}", live.token("admin", PASSWORD)))


def test_assign_from_the_grid_then_the_queues_follow(browser: Any, live: Live) -> None:  # noqa: F811
    ids = _ids(live)
    page = _page(browser, live, "reviewer")
    page.click("text=Images")
    page.fill("#search", "d.png")
    page.wait_for_selector("#count >> text=1 images")
    page.wait_for_selector("#assign-to option[value=annotator]", state="attached")
    page.select_option("#assign-to", "annotator")
    page.click("#assign-list")
    page.wait_for_selector(".toast >> text=1 images assigned: annotator 1.")
    assert _image(live, ids["d.png"])["assignee"] == "annotator"
    # the grid filters by assignee; the filters are kept when the grid is opened again
    page.fill("#search", "")
    page.select_option("select[name=assignee]", "@unassigned")
    page.wait_for_selector("#count >> text=3 images")
    page.click("text=LabelPilot")
    page.wait_for_selector("#jobs", state="attached")
    page.click("header >> text=Images")
    page.wait_for_selector("#count >> text=3 images")
    assert page.input_value("select[name=assignee]") == "@unassigned"
    page.close()

    # the annotator sees their image on the overview and gets it first from the queue,
    # though d.png is not the first image by id
    ann = _page(browser, live, "annotator")
    ann.wait_for_selector("#my-images >> text=1 image assigned to you")
    ann.click("#start")
    _ready(ann, ids["d.png"])
    ann.wait_for_selector("#assignee >> text=for annotator")
    ann.keyboard.press("d")  # submit for review
    ann.wait_for_function(f"window.__editorImage !== {ids['d.png']}")
    ann.close()

    # the reviewer's queue: the one submitted image
    rev = _page(browser, live, "reviewer")
    rev.wait_for_selector("#review-queue >> text=Review submitted images (1)")
    rev.click("#review-queue")
    _ready(rev, ids["d.png"])
    rev.wait_for_selector("#review-state >> text=submitted")
    rev.wait_for_selector("#position >> text=image 1 of 1 · review state submitted")
    rev.close()


def test_tags_and_attributes_in_the_editor(browser: Any, live: Live) -> None:  # noqa: F811
    ids = _ids(live)
    admin = _page(browser, live, "admin")
    admin.click("#classes-panel summary")
    # the project's name, shown in the header
    admin.fill("#project-name", "Cats and dogs")
    admin.press("#project-name", "Enter")
    admin.wait_for_selector(".toast >> text=The project is now Cats and dogs.")
    admin.wait_for_selector("header .project >> text=Cats and dogs (detect)")
    spec = "#classes-panel tr[data-label=cat] .attr-spec"
    admin.fill(spec, "occluded:checkbox, colour:select=black|white|ginger, age:number=0..30")
    admin.press(spec, "Enter")
    admin.wait_for_selector(".toast >> text=cat shapes carry occluded, colour, age.")
    # a broken line says why, and nothing is saved
    admin.wait_for_selector(spec)
    admin.fill(spec, "occluded checkbox")
    admin.press(spec, "Enter")
    admin.wait_for_selector(".toast.error >> text=is not name:type")
    admin.close()

    page = _page(browser, live, "annotator")
    image = ids["a.png"]
    _open(page, live, image)
    # tags: add two, remove one
    page.fill("#add-tag", "night")
    page.press("#add-tag", "Enter")
    page.wait_for_selector("#tags .tag[data-tag=night]")
    page.fill("#add-tag", "blurry")
    page.press("#add-tag", "Enter")
    page.wait_for_selector("#tags .tag[data-tag=blurry]")
    page.click("#tags .tag[data-tag=night] .untag")
    page.wait_for_selector("#tags .tag[data-tag=night]", state="detached")
    assert _image(live, image)["tags"] == ["blurry"]

    # a drawn cat starts with the class's defaults; its attributes are edited in the panel
    page.select_option("#label", "cat")
    page.keyboard.press("b")
    box = page.locator("canvas.label-canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 60, y - 40)
    page.mouse.down()
    page.mouse.move(x + 60, y + 40, steps=4)
    page.mouse.up()
    page.wait_for_selector("#attributes h4 >> text=cat attributes")
    token = live.token("admin", PASSWORD)
    anns = live.api("GET", f"/api/images/{image}/annotations", token)["data"]
    assert [a["attributes"] for a in anns] == [{"occluded": False, "colour": "black", "age": 0}]
    page.check("#attr-occluded")
    page.wait_for_selector("#save-status >> text=saved")
    page.select_option("#attr-colour", "ginger")
    page.wait_for_selector("#save-status >> text=saved")
    page.fill("#attr-age", "31")  # over the class's maximum: refused, said why
    page.press("#attr-age", "Enter")
    page.wait_for_selector("#save-status >> text=must be between 0 and 30")
    page.fill("#attr-age", "4")
    page.press("#attr-age", "Tab")
    page.wait_for_function(
        "window.__doc.anns.length === 1 && window.__doc.anns[0].attributes.age === 4")
    anns = live.api("GET", f"/api/images/{image}/annotations", token)["data"]
    assert anns[0]["attributes"] == {"occluded": True, "colour": "ginger", "age": 4}
    # the history tells the change
    page.click("#history-toggle")
    page.wait_for_selector("#history >> text=tags: blurry")
    page.wait_for_selector('#history >> text=attributes → {"occluded":true,"colour":"ginger","age":4}')
    # the grid shows the labeled image with its shapes drawn over the thumbnail
    page.click("header >> text=Images")
    cell = page.locator("#grid .cell", has_text="a.png").locator("img")
    cell.wait_for()
    assert "shapes=1" in (cell.get_attribute("src") or "")
    page.wait_for_function("Array.from(document.querySelectorAll('#grid .cell img'))"
                           ".every((i) => i.complete && i.naturalWidth > 0)")
    page.close()
