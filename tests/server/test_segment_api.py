"""Click/box -> mask over HTTP, on SQLite and PostgreSQL, with the built-in graph cut."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from labelpilot.geometry import rle
from labelpilot.geometry.iou import mask_iou as iou
from labelpilot.server.app import create_app
from labelpilot.transfer import import_dataset
from tests.scenes import deepest, scene
from tests.server.conftest import PASSWORD, add_users


def scenes_dataset(folder: Path, n: int = 2) -> tuple[Path, list[list[np.ndarray]]]:
    """`n` synthetic scenes in the masks layout (instance ids), and their object masks."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    truths = []
    for i in range(n):
        img, objs = scene(i)
        cv2.imwrite(str(folder / "images" / f"s{i}.png"), img[..., ::-1])
        ids = np.zeros(img.shape[:2], np.uint8)
        for k, m in enumerate(objs, 1):
            ids[m] = k
        cv2.imwrite(str(folder / "masks" / f"s{i}.png"), ids)
        truths.append(objs)
    return folder, truths


@pytest.fixture
def seg_api(make_workspace, tmp_path: Path):  # type: ignore[no-untyped-def]
    ws = make_workspace(task="segment", labels=["object"])
    src, truths = scenes_dataset(tmp_path / "scenes")
    import_dataset(ws, src, format="masks", split="test")
    add_users(ws)
    with TestClient(create_app(ws)) as client:
        tok = client.post("/api/auth/token", data={"username": "annotator",
                                                   "password": PASSWORD}).json()["access_token"]
        client.cookies.clear()
        client.headers["Authorization"] = f"Bearer {tok}"
        ids = [im["id"] for im in client.get("/api/images?sort=file_name").json()["data"]]
        yield client, ws, ids, truths


def poly_mask(shapes: list[dict], h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w), bool)
    for s in shapes:
        out |= rle.from_polygons([s["points"]], h, w, s["holes"]).astype(bool)
    return out


def test_click_gives_a_polygon_with_its_hole_and_nothing_is_stored(seg_api) -> None:  # type: ignore[no-untyped-def]
    client, _ws, ids, truths = seg_api
    ring = truths[0][0]
    before = client.get(f"/api/images/{ids[0]}/annotations").json()
    x, y = deepest(ring)
    r = client.post(f"/api/images/{ids[0]}/segment",
                    json={"clicks": [{"x": x, "y": y, "positive": True}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "graphcut" and body["source"] == "model:graphcut@1"
    assert body["cached"] in ("computed", "memory") and body["warnings"] == []
    (p,) = body["proposals"]
    assert p["quality"] is None  # a min cut has no estimate of its IoU: none is made up
    assert len(p["shapes"]) == 1 and len(p["shapes"][0]["holes"]) == 1
    assert iou(poly_mask(p["shapes"], 240, 320), ring) > 0.9
    assert p["area"] == int(rle.decode(p["rle"], 240, 320).sum())
    assert client.get(f"/api/images/{ids[0]}/annotations").json() == before
    # the second prompt on the same image reuses the embedding
    r2 = client.post(f"/api/images/{ids[0]}/segment",
                     json={"clicks": [{"x": x, "y": y}], "output": "mask"})
    assert r2.json()["cached"] == "memory" and r2.json()["embed_ms"] == 0
    (shape,) = r2.json()["proposals"][0]["shapes"]
    assert shape["type"] == "mask" and shape["size"] == [240, 320]
    assert iou(rle.decode(shape["rle"], 240, 320).astype(bool), ring) > 0.9


def test_correction_with_the_previous_mask_then_save_as_the_models(seg_api) -> None:  # type: ignore[no-untyped-def]
    client, _ws, ids, truths = seg_api
    ring, rect = truths[1]
    both = ring | rect
    ys, xs = np.nonzero(both)
    box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
    first = client.post(f"/api/images/{ids[1]}/segment", json={"box": box}).json()["proposals"][0]
    cx, cy = deepest(rect)
    r = client.post(f"/api/images/{ids[1]}/segment", json={
        "box": box, "clicks": [{"x": cx, "y": cy, "positive": False}],
        "previous": {"type": "mask", "rle": first["rle"], "size": [240, 320]}})
    assert r.status_code == 200, r.text
    p = r.json()["proposals"][0]
    got = rle.decode(p["rle"], 240, 320).astype(bool)
    assert iou(got, ring) > 0.85 and (got & rect).sum() < 0.1 * rect.sum()
    saved = client.post(f"/api/images/{ids[1]}/annotations", json={
        "label": "object", "shape": p["shapes"][0], "status": "edited",
        "source": r.json()["source"]})
    assert saved.status_code == 201, saved.text
    assert saved.json()["source"] == "model:graphcut@1" and saved.json()["status"] == "edited"
    bad = client.post(f"/api/images/{ids[1]}/annotations", json={
        "label": "object", "shape": p["shapes"][0], "source": "someone"})
    assert bad.status_code == 422


@pytest.mark.parametrize("body,status,needle", [
    ({}, 422, "empty prompt"),
    ({"clicks": [{"x": 400, "y": 10}]}, 422, "outside the image"),
    ({"box": [10, 10, 10, 100]}, 422, "zero area"),
    ({"clicks": [{"x": 5, "y": 5}], "previous": {"type": "mask", "rle": "xx", "size": [10, 10]}},
     422, "previous mask is 10x10"),
    ({"clicks": [{"x": 5, "y": 5}], "model": "nope"}, 404, "no model"),
    ({"clicks": [{"x": 5, "y": 5}], "model": "ocr"}, 422, "not an interactive segmenter"),
])
def test_bad_prompts_get_the_reason(seg_api, body: dict, status: int, needle: str) -> None:  # type: ignore[no-untyped-def]
    client, _ws, ids, _ = seg_api
    r = client.post(f"/api/images/{ids[0]}/segment", json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


def test_prepare_and_claim_precompute_the_embedding(seg_api) -> None:  # type: ignore[no-untyped-def]
    client, _ws, ids, truths = seg_api
    r = client.post(f"/api/images/{ids[1]}/segment/prepare")
    assert r.status_code == 202 and r.json()["model"] == "graphcut"
    sess, _ = client.app.state.sessions.get("graphcut")
    fut = sess.precompute(f"{_sha(client, ids[1])}", lambda: None)
    if fut is not None:
        fut.result(timeout=30)
    x, y = deepest(truths[1][0])
    r = client.post(f"/api/images/{ids[1]}/segment", json={"clicks": [{"x": x, "y": y}]})
    assert r.json()["cached"] == "memory"
    # claiming the next image starts its embedding too
    nxt = client.post("/api/images/next")
    assert nxt.status_code == 200
    assert sess.cache.stats["computed"] >= 2 or sess.cache.in_flight


def test_models_route_lists_the_segmenters(seg_api) -> None:  # type: ignore[no-untyped-def]
    client, _ws, _ids, _ = seg_api
    r = client.get("/api/models")
    assert r.status_code == 200
    by = {m["name"]: m for m in r.json()}
    assert by["graphcut"]["interactive"] and by["graphcut"]["default"]
    assert by["ocr"]["kind"] == "ocr" and not by["ocr"]["interactive"]


def _sha(client: TestClient, image_id: int) -> str:
    from labelpilot import review

    ws = client.app.state.workspace  # type: ignore[attr-defined]
    with ws.engine.connect() as conn:
        return str(review.get_image(conn, image_id).sha256)
