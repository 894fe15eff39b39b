"""Click -> box over HTTP: the detector's best proposal under the clicks, else the mask's box."""

from __future__ import annotations

import time
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
        # handing the image out starts finding its boxes: the first click does not wait
        # for the detector
        img = client.post("/api/images/next").json()
        cache = client.app.state.detections  # type: ignore[attr-defined]
        from labelpilot.assist.sessions import image_key
        from labelpilot.models.registry import load_detector
        from labelpilot.review import get_image

        with ws.engine.connect() as conn:
            key = image_key(get_image(conn, img["id"]))
        model = load_detector("yolox-nano", ws.models_dir)
        deadline = time.monotonic() + 30
        while not cache.has(model, key):
            assert time.monotonic() < deadline, "the boxes were not found in the background"
            time.sleep(0.05)
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


def test_on_a_large_image_a_small_object_is_found_in_a_window_round_the_click(
        make_workspace, tmp_path: Path, shared: Path) -> None:  # type: ignore[no-untyped-def]
    """On a 2560 x 1440 bench of shrunk coco128 images the whole image, shrunk to the
    detector's 416 px, loses the small people; the window round the click finds them."""
    import cv2

    from labelpilot.models.registry import load_detector
    from tests.coco128 import bench_of_small_people

    canvas, people = bench_of_small_people(shared)
    (tmp_path / "i").mkdir()
    cv2.imwrite(str(tmp_path / "i" / "bench.png"), canvas)
    ws = make_workspace(task="detect")
    import_dataset(ws, tmp_path / "i", format="images")
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    whole = load_detector("yolox-nano", ws.models_dir).detect(canvas)
    person = whole.classes == 0
    # the people the whole image misses, 30 px high or more
    missed = [g for g in people if g[3] - g[1] >= 30 and not any(
        b[0] <= (g[0] + g[2]) / 2 <= b[2] and b[1] <= (g[1] + g[3]) / 2 <= b[3]
        for b in whole.boxes[person])]
    assert len(missed) >= 5
    found = 0
    with client_for(ws) as client:
        (img,) = client.get("/api/images").json()["data"]
        for g in missed:
            cx, cy = (g[0] + g[2]) / 2, (g[1] + g[3]) / 2
            r = client.post(f"/api/images/{img['id']}/click-box",
                            json={"clicks": [{"x": cx, "y": cy}]})
            assert r.status_code == 200, r.text
            body = r.json()
            x1, y1, x2, y2 = body["box"]
            inter = max(0, min(x2, g[2]) - max(x1, g[0])) * max(0, min(y2, g[3]) - max(y1, g[1]))
            iou = inter / ((x2 - x1) * (y2 - y1) + (g[2] - g[0]) * (g[3] - g[1]) - inter)
            found += int(body["method"] == "detector" and body["label"] == "person" and iou >= 0.5)
    # the whole image's detections hold none of them (that is how they were chosen): every
    # detector box here came from the window
    assert found >= 5, (found, len(missed))
