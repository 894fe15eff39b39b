"""The Analytics page in Chromium: every figure rendered and not blank, tables that open an
image in the editor, and no page for annotators."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from labelpilot.workspace import Workspace
from tests.analytics.test_report import scenario
from tests.web.test_active import live_project, open_as

pytestmark = pytest.mark.slow


def test_analytics_page_renders_every_figure(browser: Any, tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["cat", "dog", "bird"])
    ids = scenario(ws, tmp_path)
    for live in live_project(ws):
        page = open_as(browser, live, "reviewer")
        page.click("header >> text=Analytics")
        page.wait_for_selector("#analytics-title")
        report = page.evaluate("""async () => {
            const r = await fetch('/api/analytics'); return await r.json(); }""")
        drawn = [p["key"] for p in report["panels"] if p["svg"]]
        assert len(drawn) >= 9
        figures = page.query_selector_all("figure.analytics img.figure")
        assert len(figures) == len(drawn)
        for key in drawn:
            img = page.wait_for_selector(f"figure[data-key={key}] img.figure")
            assert img.evaluate("i => i.complete && i.naturalWidth > 300"), key
            shot = np.asarray(Image.open(io.BytesIO(img.screenshot())).convert("L"))
            inked = float((shot < 200).mean())
            assert inked > 0.01, (key, inked)  # axes, bars, text: not a blank box
        # figures that cannot be drawn say why (nothing is silently missing)
        for p in report["panels"]:
            if p["why_not"]:
                text = page.inner_text(f"figure[data-key={p['key']}] .why")
                assert p["why_not"] in text
        # every caption is shown with its figure
        caption = page.inner_text("figure[data-key=labels_per_class] figcaption")
        assert "largest class dog" in caption
        # the worst image opens in the editor
        page.click("figure[data-key=worst_images] td a")
        page.wait_for_selector("canvas")
        assert page.evaluate("location.hash") == f"#/label/{ids['img0']}"
        page.close()
        # annotators have no Analytics page (the API refuses them too)
        page = open_as(browser, live, "annotator")
        assert page.query_selector("header >> text=Analytics") is None
        status = page.evaluate("""async () => (await fetch('/api/analytics',
            {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('labelpilot.token')}})).status""")
        assert status in (401, 403)
        page.close()
