"""The model server (`labelpilot serve-models`): answers equal the models' own, batches
give each image its own answer, a full queue and a passed deadline answer 503 with
Retry-After, a new version is swapped in without failing a request, bad input gets a 4xx
that says why, and only the workspace's users (tokens, API keys) may call it."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from labelpilot import users
from labelpilot.cli import app as cli
from labelpilot.errors import UnavailableError
from labelpilot.models.catalogue import install
from labelpilot.models.manifest import ModelManifest
from labelpilot.models.registry import load_detector, load_ocr
from labelpilot.serving.app import create_model_server
from labelpilot.serving.workers import ServingConfig
from labelpilot.workspace import Workspace
from tests.conftest import SHARED, page_dataset
from tests.imaging import read_bgr

PASSWORD = "correct horse battery"


def coco_images(shared: Path, n: int) -> list[Path]:
    return sorted((shared / "datasets" / "coco128" / "train2017").glob("*.jpg"))[:n]


def token_for(ws: Workspace, username: str = "client", role: str = "annotator") -> str:
    with ws.transaction() as conn:
        user = users.add_user(conn, username=username, password=PASSWORD, role=role)
        return users.issue_token(conn, user)[0]


def wait_ready(client: TestClient, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/readyz")
        if r.status_code == 200:
            return r.json()  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError("the model server did not get ready")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[TestClient, dict[str, str], Workspace]]:
    """yolox-nano and the built-in OCR model behind one server (batches of up to 8,
    gathered for 50 ms so that concurrent requests meet)."""
    ws = Workspace.create(tmp_path_factory.mktemp("served") / "ws", task="detect",
                          labels=["person"])
    install(ws.models_dir, "yolox-nano", str(SHARED / "models"))
    headers = {"Authorization": f"Bearer {token_for(ws)}"}
    app = create_model_server(ws, ["yolox-nano", "ocr"],
                              ServingConfig(max_batch=8, max_wait_s=0.05, watch_s=0))
    with TestClient(app) as client:
        wait_ready(client)
        yield client, headers, ws


def same_proposals(got: list[dict[str, Any]], want: list[Any], tol: float = 1e-3) -> None:
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        assert g["label"] == w.label and g.get("text") == w.text
        assert g["source"] == w.source and abs(g["score"] - w.score) < tol
        assert g["shape"]["type"] == w.shape.to_dict()["type"]
        a = np.array(next(v for k, v in g["shape"].items() if k != "type"), float)
        b = np.array(next(v for k, v in w.shape.to_dict().items() if k != "type"), float)
        assert np.abs(a - b).max() < 0.05, (g, w)


def test_every_way_of_sending_an_image_answers_what_the_model_itself_says(
        served: tuple[TestClient, dict[str, str], Workspace], shared: Path,
        tmp_path: Path) -> None:
    client, h, ws = served
    path = coco_images(shared, 1)[0]
    data = path.read_bytes()
    want = load_detector("yolox-nano", ws.models_dir).predict(read_bgr(path))
    assert want  # the test image has objects to find
    answers = [
        client.post("/v1/models/yolox-nano/predict", headers=h, files={"file": (path.name, data)}),
        client.post("/v1/models/yolox-nano/predict", headers=h,
                    json={"image": base64.b64encode(data).decode()}),
        client.post("/v1/models/yolox-nano/predict", headers=h,
                    json={"image": "data:image/jpeg;base64," + base64.b64encode(data).decode()}),
        client.post("/v1/models/yolox-nano/predict",
                    headers={**h, "Content-Type": "image/jpeg"}, content=data),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["model"], body["version"], body["variant"]) == ("yolox-nano", "1", None)
        assert (body["width"], body["height"]) == (640, 480)
        same_proposals(body["predictions"], want)
    # min_score: in the query or the JSON, the proposals under it are left out
    cut = float(np.median([(a.score or 0.0) for a in want]))
    kept = [a for a in want if (a.score or 0.0) >= cut]
    assert 0 < len(kept) < len(want)
    for r in (client.post("/v1/models/yolox-nano/predict", params={"min_score": cut}, headers=h,
                          files={"file": (path.name, data)}),
              client.post("/v1/models/yolox-nano/predict", headers=h,
                          json={"image": base64.b64encode(data).decode(), "min_score": cut})):
        same_proposals(r.json()["predictions"], kept)
    # the OCR model: quads with their transcriptions
    page = page_dataset(tmp_path / "p") / "page.png"
    want = load_ocr("ocr", ws.models_dir).predict(read_bgr(page))
    r = client.post("/v1/models/ocr/predict", headers=h,
                    files={"file": ("page.png", page.read_bytes())})
    assert r.status_code == 200, r.text
    assert len(want) >= 5 and r.json()["predictions"][0]["shape"]["type"] == "quad"
    same_proposals(r.json()["predictions"], want)


def test_concurrent_requests_run_as_one_batch_and_each_gets_its_own_answer(
        served: tuple[TestClient, dict[str, str], Workspace], shared: Path) -> None:
    client, h, ws = served
    paths = coco_images(shared, 6)
    model = load_detector("yolox-nano", ws.models_dir)
    want = {p.name: model.predict(read_bgr(p)) for p in paths}
    results: dict[str, Any] = {}

    def ask(p: Path) -> None:
        results[p.name] = client.post("/v1/models/yolox-nano/predict", headers=h,
                                      files={"file": (p.name, p.read_bytes())})

    threads = [threading.Thread(target=ask, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sizes = []
    for p in paths:
        r = results[p.name]
        assert r.status_code == 200, r.text
        same_proposals(r.json()["predictions"], want[p.name])
        sizes.append(r.json()["timing"]["batch_size"])
    assert max(sizes) > 1, sizes  # some of them were run together
    # the batch axis made that one network run, checked against single runs at load
    info = client.get("/v1/models/yolox-nano", headers=h).json()
    assert info["batching"]["max_batch"] is None and "batch axis added" in info["batching"]["note"]
    metrics = client.get("/metrics", headers=h).text
    count = re_value(metrics, 'labelpilot_batch_size_count{model="yolox-nano"}')
    total = re_value(metrics, 'labelpilot_batch_size_sum{model="yolox-nano"}')
    assert total > count  # batches of more than one request on average at some point


def re_value(text: str, prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{prefix} not in the metrics")


def test_the_ocr_model_reads_the_lines_of_several_images_together(
        served: tuple[TestClient, dict[str, str], Workspace], tmp_path: Path) -> None:
    _, _, ws = served
    page = read_bgr(page_dataset(tmp_path / "p") / "page.png")
    other = np.ascontiguousarray(page[40:, 20:])  # another crop of the page
    model = load_ocr("ocr", ws.models_dir)
    alone = [model.predict(page), model.predict(other)]
    together = model.predict_batch([page, other])
    for a, b in zip(alone, together, strict=True):
        assert [x.text for x in a] == [x.text for x in b]
        assert all(abs((x.score or 0) - (y.score or 0)) < 0.02 for x, y in zip(a, b, strict=True))


def test_bad_requests_get_a_4xx_that_says_why(
        served: tuple[TestClient, dict[str, str], Workspace], shared: Path) -> None:
    client, h, _ = served
    data = coco_images(shared, 1)[0].read_bytes()
    url = "/v1/models/yolox-nano/predict"
    cases: list[tuple[Any, int, str]] = [
        (client.post("/v1/models/nope/predict", headers=h, content=data), 404, "no served model"),
        (client.post(url, headers={**h, "Content-Type": "image/png"}, content=b"not an image"),
         415, "not a readable image"),
        (client.post(url, headers={**h, "Content-Type": "image/jpeg"}, content=data[:len(data) // 2]),
         415, "does not decode"),
        (client.post(url, headers={**h, "Content-Type": "image/jpeg"}, content=b""), 415, "empty"),
        (client.post(url, headers=h, json={"picture": "x"}), 422, "no 'image'"),
        (client.post(url, headers=h, json={"image": "%%%"}), 422, "not valid base64"),
        (client.post(url, headers=h, json={"image": "aGk=", "min_score": 2}), 422, "min_score"),
        (client.post(url, headers={**h, "Content-Type": "application/json"}, content=b"{"), 422,
         "not JSON"),
        (client.post(url, headers={**h, "Content-Type": "text/plain"}, content=b"hi"), 415,
         "cannot read an image"),
        (client.post(url, headers=h, files={"other": ("a.jpg", data)}), 422, "no file field"),
        (client.post(url, params={"min_score": 3}, headers=h, content=data), 422, "min_score"),
    ]
    for r, status, words in cases:
        assert r.status_code == status, (status, r.text)
        assert words in json.dumps(r.json()), (words, r.text)
    # a PNG header declaring more pixels than the limit: refused before decoding
    big = io.BytesIO()
    from PIL import Image

    Image.new("L", (12000, 9000)).save(big, format="PNG")
    r = client.post(url, headers={**h, "Content-Type": "image/png"}, content=big.getvalue())
    assert r.status_code == 413 and "over the limit" in r.json()["detail"]
    # the server still answers
    assert client.post(url, headers=h, files={"file": ("a.jpg", data)}).status_code == 200


def test_a_body_over_the_limit_is_refused_streamed_or_declared(shared: Path,
                                                               tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["person"])
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    h = {"Authorization": f"Bearer {token_for(ws)}"}
    app = create_model_server(ws, ["yolox-nano"], ServingConfig(watch_s=0),
                              max_body_bytes=100_000)
    data = coco_images(shared, 1)[0].read_bytes()
    assert len(data) > 100_000
    with TestClient(app) as client:
        wait_ready(client)
        r = client.post("/v1/models/yolox-nano/predict", headers={**h, "Content-Type":
                        "image/jpeg"}, content=data)
        assert r.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            for i in range(0, len(data), 8192):
                yield data[i:i + 8192]

        r = client.post("/v1/models/yolox-nano/predict", headers={**h, "Content-Type":
                        "image/jpeg"}, content=chunks())
        assert r.status_code == 413


def test_a_full_queue_or_a_passed_deadline_answers_503_with_retry_after(
        shared: Path, tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", task="ocr", labels=["text"])
    h = {"Authorization": f"Bearer {token_for(ws)}"}
    # a page of many lines: seconds of OCR, so that the queue stays full while we ask
    page = read_bgr(page_dataset(tmp_path / "p") / "page.png")
    big = np.ascontiguousarray(np.tile(page, (2, 2, 1)))
    data = cv2.imencode(".png", page)[1].tobytes()
    app = create_model_server(ws, ["ocr"], ServingConfig(
        max_batch=1, max_wait_s=0, queue_size=2, watch_s=0))
    with TestClient(app) as client:
        wait_ready(client)
        worker = app.state.pool.worker("ocr")
        accepted: list[Future[Any]] = [worker.submit_image(big)]
        deadline = time.monotonic() + 10
        while worker.depth and time.monotonic() < deadline:  # until it runs
            time.sleep(0.01)
        with pytest.raises(UnavailableError) as full:
            for _ in range(3):  # one running, two waiting, then refused
                accepted.append(worker.submit_image(big))
        assert "2 requests waiting" in full.value.message and full.value.retry_after >= 1
        r = client.post("/v1/models/ocr/predict", headers=h, files={"file": ("a.png", data)})
        assert r.status_code == 503, r.text
        assert int(r.headers["Retry-After"]) >= 1 and "waiting" in r.json()["detail"]
        # every request it accepted is answered
        assert len(accepted) == 3
        for f in accepted:
            loaded, proposals, _ = f.result(timeout=120)
            assert loaded.name == "ocr" and len(proposals) > 10
        assert client.post("/v1/models/ocr/predict", headers=h,
                           files={"file": ("a.png", data)}).status_code == 200
        metrics = client.get("/metrics", headers=h).text
        assert re_value(metrics, 'labelpilot_predict_errors_total{model="ocr",'
                                 'reason="queue_full"}') == 2
        assert re_value(metrics, 'labelpilot_predict_requests_total{code="503",'
                                 'model="ocr"}') == 1
    # a deadline shorter than a model run
    app = create_model_server(ws, ["ocr"], ServingConfig(timeout_s=0.0001, watch_s=0))
    with TestClient(app) as client:
        wait_ready(client)
        r = client.post("/v1/models/ocr/predict", headers=h, files={"file": ("a", data)})
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
        assert "deadline" in r.json()["detail"] or "did not answer" in r.json()["detail"]


def test_a_new_version_is_swapped_in_without_failing_a_request(shared: Path,
                                                               tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["person"])
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    h = {"Authorization": f"Bearer {token_for(ws)}"}
    paths = coco_images(shared, 4)
    app = create_model_server(ws, ["yolox-nano"], ServingConfig(max_batch=4, watch_s=0.2))
    answers: list[Any] = []
    stop = threading.Event()
    with TestClient(app) as client:
        wait_ready(client)

        def keep_asking(k: int) -> None:
            while not stop.is_set():
                p = paths[k % len(paths)]
                answers.append(client.post("/v1/models/yolox-nano/predict", headers=h,
                                           files={"file": (p.name, p.read_bytes())}))
                k += 1

        clients = [threading.Thread(target=keep_asking, args=(k,)) for k in range(3)]
        for t in clients:
            t.start()
        time.sleep(1.0)
        # version 2: only boxes scored 0.6 or more
        path = ws.models_dir / "yolox-nano" / "manifest.json"
        m = ModelManifest.load(path)
        m2 = replace(m, version="2", preprocessing={**m.preprocessing, "score_threshold": 0.6})
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(m2.to_json())
        tmp.replace(path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(r.status_code == 200 and r.json()["version"] == "2" for r in list(answers)):
                break
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        for t in clients:
            t.join()
        listed = client.get("/v1/models", headers=h).json()["data"][0]
        metrics = client.get("/metrics", headers=h).text
    assert all(r.status_code == 200 for r in answers), {r.status_code for r in answers}
    versions = [r.json()["version"] for r in answers]
    assert "1" in versions and "2" in versions, versions
    # every answer is wholly one version's: version 2 shows nothing under its threshold
    low = [r for r in answers if r.json()["version"] == "1"
           and any(p["score"] < 0.6 for p in r.json()["predictions"])]
    assert low  # version 1 does show such boxes
    assert all(p["score"] >= 0.6 for r in answers if r.json()["version"] == "2"
               for p in r.json()["predictions"])
    assert all(p["source"] == f"model:yolox-nano@{r.json()['version']}"
               for r in answers for p in r.json()["predictions"])
    assert listed["version"] == "2"
    assert re_value(metrics, 'labelpilot_model_swaps_total{model="yolox-nano"}') == 1
    assert re_value(metrics, 'labelpilot_model_loaded{model="yolox-nano",variant="",'
                             'version="2"}') == 1


def test_only_the_workspace_users_may_call_it_with_a_token_or_an_api_key(
        make_workspace: Any, shared: Path) -> None:
    # SQLite and PostgreSQL
    ws = make_workspace(task="detect", labels=["person"])
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    token_for(ws, "ann")
    made = CliRunner().invoke(cli, ["users", "add-key", str(ws.root), "ann", "--days", "30",
                                    "--json"])
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)["key"]
    data = coco_images(shared, 1)[0].read_bytes()
    app = create_model_server(ws, ["yolox-nano"], ServingConfig(watch_s=0))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200  # probes answer anyone
        wait_ready(client)
        url = "/v1/models/yolox-nano/predict"
        for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic eA=="}):
            for r in (client.get("/v1/models", headers=headers),
                      client.get("/metrics", headers=headers),
                      client.post(url, headers=headers, files={"file": ("a.jpg", data)})):
                assert r.status_code == 401, r.text
                assert r.headers["WWW-Authenticate"] == "Bearer"
        good = {"Authorization": f"Bearer {key}"}
        assert client.post(url, headers=good, files={"file": ("a.jpg", data)}).status_code == 200
        assert client.get("/v1/models", headers=good).json()["data"][0]["name"] == "yolox-nano"
        # a deactivated user's key stops working (after the token cache's 2 s)
        with ws.transaction() as conn:
            users.update_user(conn, "ann", active=False)
        time.sleep(2.2)
        r = client.post(url, headers=good, files={"file": ("a.jpg", data)})
        assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_readiness_and_a_graceful_close(shared: Path, tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["person"])
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    app = create_model_server(ws, ["yolox-nano"], ServingConfig(max_batch=2, watch_s=0))
    # before the models are loaded (no lifespan yet): alive, not ready
    bare = TestClient(app)
    assert bare.get("/healthz").status_code == 200
    r = bare.get("/readyz")
    assert r.status_code == 503 and r.json()["ready"] is False
    image = read_bgr(coco_images(shared, 1)[0])
    with TestClient(app) as client:
        assert wait_ready(client)["models"] == ["yolox-nano"]
        pool = app.state.pool
        futures = [pool.worker("yolox-nano").submit_image(image) for _ in range(6)]
        pool.close()  # what the lifespan's end does on SIGTERM
        assert all(f.result(timeout=1)[1] for f in futures)  # every accepted one answered
        with pytest.raises(UnavailableError, match="shutting down"):
            pool.worker("yolox-nano").submit_image(image)
        assert client.get("/readyz").status_code == 503


def test_unknown_or_unservable_models_are_refused_at_the_start(shared: Path,
                                                              tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["person"])
    r = CliRunner().invoke(cli, ["serve-models", str(ws.root), "--models", "nope"])
    assert r.exit_code != 0 and "no model 'nope'" in r.output
    r = CliRunner().invoke(cli, ["serve-models", str(ws.root), "--models", "graphcut"])
    assert r.exit_code != 0 and "serves pre-labeling models" in r.output
    r = CliRunner().invoke(cli, ["serve-models", str(ws.root), "--device", "cuda"])
    assert r.exit_code != 0 and "only cpu" in r.output
