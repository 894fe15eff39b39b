"""LabelPilot as the ML backend of a real Label Studio (from PyPI, in `.venv-ls`, made by
the Makefile), started here on 127.0.0.1: a project with a detection labeling config,
images uploaded to it (served by Label Studio from its own files), LabelPilot's model
server connected over Label Studio's REST API with basic auth and an API key; the
predictions Label Studio stores equal what LabelPilot's own API answers for the same
images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from labelpilot import users
from labelpilot.cli import app as cli
from labelpilot.models.catalogue import install
from labelpilot.workspace import Workspace
from tests.server.live import free_port

# one Label Studio for the module: both tests on one xdist worker (it starts in 1-2 min)
pytestmark = pytest.mark.xdist_group("label-studio")

ROOT = Path(__file__).resolve().parents[2]
LABEL_STUDIO = ROOT / ".venv-ls" / "bin" / "label-studio"
LS_TOKEN = "0123456789abcdef0123456789abcdef01234567"
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="objects" toName="image">
    <Label value="person"/><Label value="Bowl"/><Label value="giraffe"/><Label value="zebra"/>
  </RectangleLabels>
</View>"""


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url} exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not up in {seconds} s: {log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not LABEL_STUDIO.exists():
        pytest.fail(f"{LABEL_STUDIO} is missing: run `make .venv-ls/.installed`")
    data = tmp_path_factory.mktemp("label-studio")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABELPILOT_", "PYTHON"))}
    # LabelPilot is on this machine: Label Studio must be let connect to a local address,
    # for the backend and for the webhook it makes to it (as a team on one private network)
    env.update({"ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false",
                "DJANGO_DB": "sqlite", "LABEL_STUDIO_BASE_DATA_DIR": str(data),
                "HOST": f"http://127.0.0.1:{port}"})
    log = data / "label-studio.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [str(LABEL_STUDIO), "start", "--no-browser", "--internal-host", "127.0.0.1",
             "--port", str(port), "--data-dir", str(data), "--username", "lead@labelpilot.test",
             "--password", "correct horse battery", "--user-token", LS_TOKEN,
             "--enable-legacy-api-token"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=data)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", proc, log, 300)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def test_label_studio_stores_labelpilots_predictions(label_studio: str, shared: Path,
                                                     tmp_path: Path) -> None:
    ls = httpx.Client(base_url=label_studio, headers={"Authorization": f"Token {LS_TOKEN}"},
                      timeout=120)
    # a project, and images uploaded to it (Label Studio serves them from its files)
    r = ls.post("/api/projects", json={"title": "LabelPilot pre-labels", "label_config": CONFIG})
    assert r.status_code == 201, r.text
    project = r.json()["id"]
    images = sorted((shared / "datasets" / "coco128" / "train2017").glob("*.jpg"))[:4]
    r = ls.post(f"/api/projects/{project}/import",
                files=[(f"file{k}", (p.name, p.read_bytes(), "image/jpeg"))
                       for k, p in enumerate(images)])  # one field per file, as its UI sends
    assert r.status_code == 201, r.text
    tasks = ls.get("/api/tasks", params={"project": project, "page_size": 100}).json()
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    assert len(tasks) == 4
    # LabelPilot's model server, with an API key for Label Studio
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["person"])
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    with ws.transaction() as conn:
        users.add_user(conn, username="labelstudio", password="correct horse battery",
                       role="annotator")
    made = CliRunner().invoke(cli, ["users", "add-key", str(ws.root), "labelstudio", "--json"])
    key = json.loads(made.output)["key"]
    ws.close()
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "labelpilot.cli", "serve-models", str(ws.root), "--port",
             str(port), "--models", "yolox-nano"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/readyz", server, log, 120)
        backend = f"http://127.0.0.1:{port}/labelstudio/yolox-nano"
        r = ls.post("/api/ml", json={"url": backend, "project": project, "title": "LabelPilot",
                                     "auth_method": "BASIC_AUTH", "basic_auth_user": "ls",
                                     "basic_auth_pass": key})
        assert r.status_code == 201, r.text
        ml = r.json()
        assert ml.get("state") in ("CO", "CONNECTED", None), ml
        # Label Studio asks for predictions of every task
        r = ls.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions",
                                               "project": project},
                    json={"selectedItems": {"all": True, "excluded": []}})
        assert r.status_code == 200, r.text
        stored: dict[int, list[dict[str, Any]]] = {}
        for t in tasks:
            preds = ls.get("/api/predictions", params={"task": t["id"]}).json()
            stored[t["id"]] = preds
        # what LabelPilot's own API says for the same images
        own = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                           headers={"Authorization": f"Bearer {key}"}, timeout=60)
        names = {"person": "person", "bowl": "Bowl", "giraffe": "giraffe", "zebra": "zebra"}
        found = 0
        for t in tasks:
            upload = t["data"]["image"]
            name = next(p for p in images if upload.endswith(p.name))
            answer = own.post("/v1/models/yolox-nano/predict", files={
                "file": (name.name, name.read_bytes())}).json()
            want = [a for a in answer["predictions"] if a["label"] in names]
            (pred,) = stored[t["id"]]
            assert pred["model_version"] == "yolox-nano@1"
            got = pred["result"]
            assert len(got) == len(want), (got, want)
            w, h = answer["width"], answer["height"]
            for g, a in zip(got, want, strict=True):
                x1, y1, x2, y2 = a["shape"]["xyxy"]
                v = g["value"]
                assert g["type"] == "rectanglelabels" and g["from_name"] == "objects"
                assert v["rectanglelabels"] == [names[a["label"]]]
                assert abs(v["x"] - x1 / w * 100) < 1e-4 and abs(v["y"] - y1 / h * 100) < 1e-4
                assert abs(v["width"] - (x2 - x1) / w * 100) < 1e-4
                assert abs(v["height"] - (y2 - y1) / h * 100) < 1e-4
                assert abs(g["score"] - a["score"]) < 1e-6
            found += len(got)
        assert found >= 3
    finally:
        stop(server)
        shutil.rmtree(tmp_path / "ws", ignore_errors=True)


def test_a_click_in_label_studio_gets_labelpilots_mask(label_studio: str, tmp_path: Path) -> None:
    import cv2

    from labelpilot.geometry.iou import mask_iou
    from labelpilot.geometry.rle import ls_mask_decode
    from tests.scenes import deepest, scene
    from tests.serving.test_labelstudio_backend import SEGMENT_CONFIG

    ls = httpx.Client(base_url=label_studio, headers={"Authorization": f"Token {LS_TOKEN}"},
                      timeout=120)
    project = ls.post("/api/projects", json={"title": "LabelPilot smart masks",
                                             "label_config": SEGMENT_CONFIG}).json()["id"]
    rgb, (_, rect) = scene(seed=4)
    png = cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()
    r = ls.post(f"/api/projects/{project}/import", files=[("file0", ("scene.png", png,
                                                                     "image/png"))])
    assert r.status_code == 201, r.text
    tasks = ls.get("/api/tasks", params={"project": project}).json()
    (task,) = tasks["tasks"] if isinstance(tasks, dict) else tasks
    ws = Workspace.create(tmp_path / "ws", task="segment", labels=["box"])
    with ws.transaction() as conn:
        user = users.add_user(conn, username="ls", password="correct horse battery",
                              role="annotator")
        key = users.issue_token(conn, user)[0]
    ws.close()
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:  # segmenters answer Label Studio whatever --models says
        server = subprocess.Popen(
            [sys.executable, "-m", "labelpilot.cli", "serve-models", str(ws.root), "--port",
             str(port), "--models", "ocr"], stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/readyz", server, log, 120)
        r = ls.post("/api/ml", json={
            "url": f"http://127.0.0.1:{port}/labelstudio/graphcut", "project": project,
            "title": "LabelPilot masks", "is_interactive": True, "auth_method": "BASIC_AUTH",
            "basic_auth_user": "ls", "basic_auth_pass": key})
        assert r.status_code == 201, r.text
        h, w = rect.shape
        x, y = deepest(rect)
        click = {"id": "k1", "type": "keypointlabels", "from_name": "click",
                 "to_name": "image", "original_width": w, "original_height": h,
                 "is_positive": True, "value": {"x": x / w * 100, "y": y / h * 100,
                                                "width": 1, "keypointlabels": ["box"]}}
        r = ls.post(f"/api/ml/{r.json()['id']}/interactive-annotating",
                    json={"task": task["id"], "context": {"result": [click]}})
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        (item,) = r.json()["data"]["result"]
        assert item["type"] == "brushlabels" and item["value"]["brushlabels"] == ["box"]
        mask = ls_mask_decode(item["value"]["rle"], h, w)
        assert mask[int(y), int(x)] and mask_iou(mask, rect) > 0.8
    finally:
        stop(server)
