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


@pytest.fixture
def trained(tmp_path: Path, shared: Path) -> Iterator[Live]:
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["person"])
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    # as a training run leaves it: the figures in the manifest, the curve beside it
    path = ws.models_dir / "yolox-nano" / "manifest.json"
    m = ModelManifest.load(path)
    m.metrics.update({"steps": 12, "val_map50": 0.6})
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
    page.close()
