"""The Label Studio ML backend routes (`/labelstudio/{model}/...`): labeling configs read
and refused with the reason, predictions in Label Studio's result JSON equal to the model
server's own answer, images read only from the Label Studio host with its token."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient

from labelpilot.errors import ValidationError
from labelpilot.models.catalogue import install
from labelpilot.serving.app import create_model_server
from labelpilot.serving.labelstudio import LabelingConfig, plan_for
from labelpilot.serving.workers import ServingConfig
from labelpilot.workspace import Workspace
from tests.conftest import SHARED, page_dataset
from tests.serving.test_model_server import token_for, wait_ready

DETECT_CONFIG = """<View>
  <Image name="img" value="$picture"/>
  <RectangleLabels name="objects" toName="img">
    <Label value="Person"/><Label value="Bowl"/><Label value="giraffe"/><Label value="Vase"/>
    <Label value="zebra crossing"/>
  </RectangleLabels>
</View>"""

POLYGON_CONFIG = DETECT_CONFIG.replace("RectangleLabels", "PolygonLabels")

OCR_CONFIG = """<View>
  <Image name="image" value="$ocr"/>
  <Labels name="label" toName="image"><Label value="Text"/></Labels>
  <Rectangle name="bbox" toName="image"/>
  <Polygon name="poly" toName="image"/>
  <TextArea name="transcription" toName="image" editable="true" perRegion="true"
            required="true" maxSubmissions="1" rows="5" displayMode="region-list"/>
</View>"""


class FakeLabelStudio(BaseHTTPRequestHandler):
    """Serves /data/upload/... like Label Studio: only with `Authorization: Token t0k`."""

    files: ClassVar[dict[str, bytes]] = {}
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        FakeLabelStudio.seen.append(self.path)
        data = self.files.get(self.path)
        if self.headers.get("Authorization") != "Token t0k":
            self.send_response(401)
            self.end_headers()
            return
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[TestClient, dict[str, str], str, Path]]:
    folder = tmp_path_factory.mktemp("ls")
    ws = Workspace.create(folder / "ws", task="detect", labels=["person"])
    install(ws.models_dir, "yolox-nano", str(SHARED / "models"))
    key = token_for(ws)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLabelStudio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ls_url = f"http://127.0.0.1:{server.server_address[1]}"
    app = create_model_server(ws, ["yolox-nano", "ocr"], ServingConfig(watch_s=0))
    auth = {"Authorization": "Basic " + base64.b64encode(f"labelstudio:{key}".encode()).decode()}
    with TestClient(app) as client:
        wait_ready(client)
        yield client, auth, ls_url, folder
    server.shutdown()


def test_labeling_configs_are_read_and_what_cannot_be_filled_is_said() -> None:
    c = LabelingConfig.parse(DETECT_CONFIG)
    assert (c.image, c.key) == ("img", "picture")
    plan = plan_for(c, "detect", ("person", "bicycle", "bowl"))
    assert plan.shape.name == "objects" and plan.label_map == {"person": "Person", "bowl": "Bowl"}
    ocr = plan_for(LabelingConfig.parse(OCR_CONFIG), "ocr", ("text",))
    assert (ocr.shape.name, ocr.text and ocr.text.name, ocr.labels and ocr.labels.name) == (
        "poly", "transcription", "label")
    for xml, kind, words in [
        ("<View", "detect", "not valid XML"),
        ('<View><Text name="t" value="$t"/></View>', "detect", "no <Image> tag"),
        (OCR_CONFIG, "detect", "no RectangleLabels or PolygonLabels"),
        (DETECT_CONFIG.replace("Person", "Cyclist").replace('"Bowl"', '"cat"'), "detect",
         "none of the model's classes"),
        (DETECT_CONFIG, "ocr", "per-region TextArea"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><View>&a;</View>', "detect", "not valid XML"),
    ]:
        with pytest.raises(ValidationError, match=words):
            plan_for(LabelingConfig.parse(xml), kind, ("person", "dog"))


def test_predictions_are_the_model_servers_answer_in_label_studio_json(
        backend: tuple[TestClient, dict[str, str], str, Path], shared: Path) -> None:
    client, auth, ls_url, _ = backend
    images = sorted((shared / "datasets" / "coco128" / "train2017").glob("*.jpg"))[:3]
    FakeLabelStudio.files = {f"/data/upload/1/{p.name}": p.read_bytes() for p in images}
    base = "/labelstudio/yolox-nano"
    assert client.get(base + "/health").json()["status"] == "UP"
    r = client.post(base + "/setup", headers=auth, json={
        "project": "7.1733000000", "schema": DETECT_CONFIG, "hostname": ls_url,
        "access_token": "t0k", "model_version": None})
    assert r.status_code == 200 and r.json()["model_version"] == "yolox-nano@1"
    tasks = [{"id": k + 1, "data": {"picture": f"/data/upload/1/{p.name}"}}
             for k, p in enumerate(images)]
    r = client.post(base + "/predict", headers=auth, json={"tasks": tasks, "project": "7.1733000000"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 3
    key = auth["Authorization"].split()[1]
    bearer = {"Authorization": f"Bearer {base64.b64decode(key).decode().split(':', 1)[1]}"}
    for p, pred in zip(images, results, strict=True):
        own = client.post("/v1/models/yolox-nano/predict", headers=bearer,
                          files={"file": (p.name, p.read_bytes())}).json()
        names = {"person": "Person", "bowl": "Bowl", "giraffe": "giraffe", "vase": "Vase"}
        want = [a for a in own["predictions"] if a["label"] in names]
        assert want  # each of these images has some
        assert pred["model_version"] == "yolox-nano@1"
        assert len(pred["result"]) == len(want)
        w, h = own["width"], own["height"]
        for got, a in zip(pred["result"], want, strict=True):
            assert got["type"] == "rectanglelabels" and got["from_name"] == "objects"
            assert got["to_name"] == "img" and (got["original_width"], got["original_height"]) == (w, h)
            x1, y1, x2, y2 = a["shape"]["xyxy"]
            v = got["value"]
            assert v["rectanglelabels"] == [names[a["label"]]]
            assert abs(v["x"] - x1 / w * 100) < 1e-6 and abs(v["width"] - (x2 - x1) / w * 100) < 1e-6
            assert abs(v["y"] - y1 / h * 100) < 1e-6 and abs(v["height"] - (y2 - y1) / h * 100) < 1e-6
            assert abs(got["score"] - a["score"]) < 1e-6
        assert pred["score"] == pytest.approx(min(a["score"] for a in own["predictions"]),
                                              abs=1e-6)
    # the config sent with the request wins; PolygonLabels only: boxes as four points
    r = client.post(base + "/predict", headers=auth, json={
        "tasks": tasks[:1], "project": "7.1733000000", "label_config": POLYGON_CONFIG})
    first = r.json()["results"][0]["result"][0]
    assert first["type"] == "polygonlabels" and len(first["value"]["points"]) == 4


def test_ocr_lines_come_as_regions_with_their_transcription(
        backend: tuple[TestClient, dict[str, str], str, Path], tmp_path: Path) -> None:
    client, auth, _, _ = backend
    page = (page_dataset(tmp_path / "p") / "page.png").read_bytes()
    data_url = "data:image/png;base64," + base64.b64encode(page).decode()
    r = client.post("/labelstudio/ocr/predict", headers=auth, json={
        "tasks": [{"id": 3, "data": {"ocr": data_url}}], "project": "9.1",
        "label_config": OCR_CONFIG})
    assert r.status_code == 200, r.text
    result = r.json()["results"][0]["result"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for item in result:
        by_type.setdefault(item["type"], []).append(item)
    assert set(by_type) == {"polygon", "textarea", "labels"}
    assert len(by_type["polygon"]) == len(by_type["textarea"]) == len(by_type["labels"]) >= 5
    for poly, text, label in zip(by_type["polygon"], by_type["textarea"], by_type["labels"],
                                 strict=True):
        assert poly["id"] == text["id"] == label["id"]  # one region
        assert text["from_name"] == "transcription" and text["value"]["text"][0]
        assert label["value"]["labels"] == ["Text"]
        assert text["value"]["points"] == poly["value"]["points"]
    texts = [t["value"]["text"][0] for t in by_type["textarea"]]
    assert "Region-based segmentation" in texts


def test_credentials_and_image_sources_are_checked(
        backend: tuple[TestClient, dict[str, str], str, Path], shared: Path) -> None:
    client, auth, ls_url, _ = backend
    base = "/labelstudio/yolox-nano"
    body = {"tasks": [{"id": 1, "data": {"picture": "/data/upload/1/x.jpg"}}],
            "project": "5.1", "label_config": DETECT_CONFIG}
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(b"u:wrong").decode()}):
        r = client.post(base + "/predict", headers=headers, json=body)
        assert r.status_code == 401, r.text
    client.post(base + "/setup", headers=auth, json={"project": "5.1", "schema": DETECT_CONFIG,
                                                     "hostname": ls_url, "access_token": "t0k"})
    # an image on another host is not fetched; a missing one says what Label Studio said
    for ref, words in [("http://169.254.169.254/latest/meta-data", "not on the Label Studio host"),
                       ("/data/upload/1/missing.jpg", "answered 404"),
                       ("data:image/png;base64,%%%", "not base64")]:
        r = client.post(base + "/predict", headers=auth, json={
            "tasks": [{"id": 1, "data": {"picture": ref}}], "project": "5.1"})
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    r = client.post(base + "/predict", headers=auth, json={"tasks": [{"id": 1, "data": {}}],
                                                          "project": "5.1"})
    assert r.status_code == 422 and "no data.picture" in r.json()["detail"]
    r = client.post(base + "/predict", headers=auth, json={"tasks": [], "project": "404.1"})
    assert r.status_code == 422 and "has not called /setup" in r.json()["detail"]
    r = client.post(base + "/setup", headers=auth, json={"project": "6.1", "schema": OCR_CONFIG})
    assert r.status_code == 422 and "RectangleLabels" in r.json()["detail"]
    assert client.post(base + "/webhook", headers=auth,
                       json={"action": "ANNOTATION_CREATED"}).json()["status"] == "ok"


SEGMENT_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="brush" toName="image"><Label value="object"/><Label value="box"/></BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true"><Label value="box"/></KeyPointLabels>
</View>"""


def test_a_click_in_label_studio_becomes_the_segmenters_mask(
        backend: tuple[TestClient, dict[str, str], str, Path]) -> None:
    import cv2

    from labelpilot.geometry.iou import mask_iou
    from labelpilot.geometry.rle import ls_mask_decode
    from tests.scenes import deepest, scene

    client, auth, _, _ = backend
    rgb, (_, rect) = scene(seed=3)
    png = cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()
    h, w = rect.shape
    x, y = deepest(rect)
    click = {"id": "k1", "type": "keypointlabels", "from_name": "click", "to_name": "image",
             "original_width": w, "original_height": h, "is_positive": True,
             "value": {"x": x / w * 100, "y": y / h * 100, "width": 1,
                       "keypointlabels": ["box"]}}
    task = {"id": 5, "data": {"image": "data:image/png;base64," + base64.b64encode(png).decode()}}
    base = "/labelstudio/graphcut"
    assert client.get(base + "/health").json()["status"] == "UP"
    r = client.post(base + "/setup", headers=auth, json={"project": "11.1",
                                                         "schema": SEGMENT_CONFIG})
    assert r.status_code == 200 and r.json()["model_version"] == "graphcut@1"
    r = client.post(base + "/predict", headers=auth, json={
        "tasks": [task], "project": "11.1", "params": {"context": {"result": [click]}}})
    assert r.status_code == 200, r.text
    (pred,) = r.json()["results"]
    (item,) = pred["result"]
    assert item["type"] == "brushlabels" and item["from_name"] == "brush"
    assert item["value"]["brushlabels"] == ["box"] and item["value"]["format"] == "rle"
    mask = ls_mask_decode(item["value"]["rle"], h, w)
    assert mask[int(y), int(x)] and mask_iou(mask, rect) > 0.8
    # without a click (a batch of tasks) there is nothing to segment
    r = client.post(base + "/predict", headers=auth, json={"tasks": [task], "project": "11.1"})
    assert r.json()["results"] == [{"result": [], "score": 0.0, "model_version": "graphcut@1"}]
    # a config without brushes is refused at setup
    r = client.post(base + "/setup", headers=auth, json={"project": "12.1",
                                                         "schema": DETECT_CONFIG})
    assert r.status_code == 422 and "BrushLabels" in r.json()["detail"]
