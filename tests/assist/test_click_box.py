"""Click -> box over HTTP: the detector's best proposal under the clicks, else the mask's box."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from labelpilot.models.catalogue import install
from labelpilot.server.app import create_app
from labelpilot.transfer import import_dataset
from tests.models.test_detect import coco
from tests.scenes import deepest
from tests.server.conftest import PASSWORD, add_users
from tests.server.conftest import api as api  # the fixture, with its roles
from tests.server.test_segment_api import scenes_dataset


def client_for(ws) -> TestClient:  # type: ignore[no-untyped-def]
    add_users(ws)
    client = TestClient(create_app(ws))
    tok = client.post("/api/auth/token", data={"username": "annotator",
                                               "password": PASSWORD}).json()["access_token"]
    client.cookies.clear()
    client.headers["Authorization"] = f"Bearer {tok}"
    return client


def test_click_gives_the_detectors_box_and_a_second_click_corrects_it(
        make_workspace, tmp_path: Path, shared: Path) -> None:  # type: ignore[no-untyped-def]
    ws = make_workspace(task="detect")
    files, _, _ = coco(shared, 1)
    (tmp_path / "i").mkdir()
    (tmp_path / "i" / files[0].name).write_bytes(files[0].read_bytes())
    import_dataset(ws, tmp_path / "i", format="images")
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    with client_for(ws) as client:
        (img,) = client.get("/api/images").json()["data"]
        url = f"/api/images/{img['id']}/click-box"
        # the top-right bowl of 000000000009.jpg
        r = client.post(url, json={"clicks": [{"x": 470, "y": 100}]})
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["method"] == "detector" and first["label"] == "bowl"
        assert first["source"] == "model:yolox-nano@1"
        x1, y1, x2, y2 = first["box"]
        assert x1 <= 470 <= x2 and y1 <= 100 <= y2
        # a negative click inside that box: another box that holds the first click only
        r = client.post(url, json={"clicks": [{"x": 470, "y": 100},
                                              {"x": (x1 + x2) / 2, "y": y2 - 5, "positive": False}]})
        assert r.status_code == 200, r.text
        second = r.json()
        assert second["box"] != first["box"]
        bx1, by1, bx2, by2 = second["box"]
        assert bx1 <= 470 <= bx2 and by1 <= 100 <= by2
        assert not (bx1 <= (x1 + x2) / 2 <= bx2 and by1 <= y2 - 5 <= by2) or \
            second["method"] == "mask"
        bad = client.post(url, json={"clicks": [{"x": 5, "y": 5, "positive": False}]})
        assert bad.status_code == 422 and "positive click" in bad.json()["detail"]
        out = client.post(url, json={"clicks": [{"x": 5000, "y": 5}]})
        assert out.status_code == 422 and "outside the image" in out.json()["detail"]


def test_without_a_detector_the_mask_gives_the_box(make_workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = make_workspace(task="detect")
    src, truths = scenes_dataset(tmp_path / "s", 1)
    import_dataset(ws, src / "images", format="images")
    _ring, rect = truths[0]
    with client_for(ws) as client:
        (img,) = client.get("/api/images").json()["data"]
        x, y = deepest(rect)
        r = client.post(f"/api/images/{img['id']}/click-box", json={"clicks": [{"x": x, "y": y}]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["method"] == "mask" and body["source"] == "model:graphcut@1"
        import numpy as np

        ys, xs = np.nonzero(rect)
        want = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert max(abs(a - b) for a, b in zip(body["box"], want, strict=True)) <= 3


def test_autolabel_route_takes_detectors_maps_and_segmenters(api, shared: Path) -> None:  # type: ignore[no-untyped-def]
    install(api.ws.models_dir, "yolox-nano", str(shared / "models"))
    bad = api.post("reviewer", "/api/autolabel", json={"model": "yolox-nano",
                                                      "map": {"bowl": "plate"}})
    assert bad.status_code == 400 and "do not exist" in bad.json()["detail"]
    assert "cat, dog" in bad.json()["hint"]
    ok = api.post("reviewer", "/api/autolabel", json={"model": "yolox-nano", "map": {"cat": "dog"}})
    assert ok.status_code == 202 and ok.json()["kind"] == "autolabel"
    seg = api.post("reviewer", "/api/autolabel", json={"model": "graphcut"})
    assert seg.status_code == 202 and seg.json()["kind"] == "segment-everything"
    assert api.post("annotator", "/api/autolabel", json={"model": "graphcut"}).status_code == 403
