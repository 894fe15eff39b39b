"""Splits from the browser (issue 16): shared out by ratio on the overview, or the grid's
current list put into one split."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.server.conftest import PASSWORD
from tests.web.conftest import Live, sign_in
from tests.web.test_review import live  # noqa: F401  (the fixture: 4 images, no split)

pytestmark = pytest.mark.slow


def _splits(live: Live) -> Counter[str]:  # noqa: F811
    token = live.token("admin", PASSWORD)
    return Counter(i["split"] or "unassigned"
                   for i in live.api("GET", "/api/images", token)["data"])


def test_assign_splits_from_the_overview_and_the_grid(browser: Any, live: Live) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, live, "reviewer")
    page.fill("#split-train", "50")
    page.fill("#split-val", "25")
    page.fill("#split-test", "25")
    page.click("#assign-splits")
    page.wait_for_selector(".toast >> text=Splits assigned to 4 images: test 1, train 2, val 1.")
    # the overview's counts are read again
    page.wait_for_selector("table.stats >> text=train")
    assert _splits(live) == {"train": 2, "val": 1, "test": 1}
    # the grid's list (filtered to train) into val
    page.click("text=Images")
    page.select_option("select[name=split]", "train")
    page.wait_for_selector("#count >> text=2 images")
    page.select_option("#list-split", "val")
    page.click("#list-to-split")
    page.wait_for_selector(".toast >> text=2 images now in val.")
    assert _splits(live) == {"val": 3, "test": 1}
    page.close()
