"""Custom auto-label: fine-tune the catalogue's YOLOX-Nano on a few accepted boxes, export,
register, evaluate on the test split, pre-label with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labelpilot.errors import LabelPilotError
from labelpilot.models.catalogue import install
from labelpilot.models.registry import load_detector
from labelpilot.transfer import import_dataset
from tests.coco128 import bullseyes, coco_subset, detect_workspace
from tests.imaging import read_bgr

pytest.importorskip("torch")


def test_train_a_detector_register_it_and_prelabel(make_workspace, tmp_path: Path,
                                                    shared: Path) -> None:  # type: ignore[no-untyped-def]
    from labelpilot.train.detect import DetectTrainConfig, DetectTrainer

    ws = make_workspace(task="detect", labels=["bowl", "car", "giraffe"])
    parts = coco_subset(shared, tmp_path / "c", ["bowl", "car"], 4, 3)
    cfg = DetectTrainConfig(epochs=1, batch=2, name="custom", minutes=None)
    with pytest.raises(LabelPilotError, match="train split has no accepted boxes"):
        DetectTrainer(ws, cfg).run()
    for split, d in parts.items():
        import_dataset(ws, d / "a.json", format="coco", split=split, images_dir=d / "images")
    with pytest.raises(LabelPilotError, match="'yolox-nano', which is not installed"):
        DetectTrainer(ws, cfg).run()
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    warnings: list[str] = []
    losses: list[float] = []
    r = DetectTrainer(ws, cfg, progress=lambda p: losses.append(p["loss"]),
                      warn=warnings.append).run()
    assert r.classes == ["bowl", "car"] and r.skipped_classes == ["giraffe"]
    assert any("'giraffe' has no accepted boxes" in w for w in warnings)
    assert r.steps == 2 and len(losses) == 2 and all(v > 0 for v in losses)
    assert r.kept_step == 2 and r.val_map50 == -1.0  # too few images to hold some out
    assert r.onnx_parity < 1e-3
    assert r.test is not None and set(r.test["per_class"]) <= {"bowl", "car"}
    for key in ("map50", "map50_95", "accept_rate"):
        assert 0 <= r.test[key] <= 1
    # the test images with the most to fix, worst first, each with its boxes
    fixes = [len(e["misses"]) + len(e["false_alarms"]) for e in r.test["examples"]]
    assert all(n > 0 for n in fixes) and fixes == sorted(fixes, reverse=True)
    assert {e["file_name"] for e in r.test["examples"]} <= {
        p.name for p in (parts["test"] / "images").iterdir()}
    model = load_detector("custom", ws.models_dir)
    # the custom model says the project's classes, one channel each; both are COCO classes,
    # so each started from the base model's own channel
    assert list(model.spec.labels) == ["bowl", "car"]
    assert r.base == "yolox-nano" and r.base_classes == {"bowl": ["bowl"], "car": ["car"]}
    assert set(r.seconds_per_step) == {"data", "forward", "loss", "backward", "update"}

    found = model.predict(read_bgr(next((parts["test"] / "images").iterdir())))
    assert all(a.label in ("bowl", "car") for a in found)
    # its backbone gives image embeddings for diversity sampling (onnx's Extractor could
    # not cut the graph PyTorch exported: a tensor's shape was not inferred)
    from labelpilot.models.features import FeatureExtractor

    sample = model.network_input(np.zeros((64, 64, 3), np.uint8))
    fe = FeatureExtractor(model.session.path, prepare=model.network_input, sample=sample)
    v = fe.embed(read_bgr(next((parts["test"] / "images").iterdir())))
    assert v.shape == (fe.dim,) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    # from scratch: every convolution re-initialised, nothing else (Resize's scales stay)
    s = DetectTrainer(ws, DetectTrainConfig(init="scratch", epochs=1, batch=2, minutes=None,
                                            name="from-scratch")).run()
    assert s.steps == 2 and s.onnx_parity < 1e-3
    # ... and no class starts from a base class (the base's classes mean nothing there)
    assert s.base_classes == {"bowl": [], "car": []}


def test_training_a_detector_from_the_api(make_workspace, tmp_path: Path, shared: Path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from labelpilot.server.app import create_app
    from tests.server.conftest import PASSWORD

    ws = detect_workspace(make_workspace, tmp_path, shared, ["bowl", "car"],
                          classes=["bowl", "car"], train=3, test=2, users=True)
    with TestClient(create_app(ws)) as client:
        tok = client.post("/api/auth/token", data={"username": "admin",
                                                   "password": PASSWORD}).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        # 3 training images: too few bowls to learn them well (the cars are enough), said
        # before the run (it may still start) and in its result
        check = client.get("/api/train/check", headers=h, params={"task": "detect"}).json()
        assert check["ready"] and [w.split(":")[0] for w in check["warnings"]] == ["bowl"]
        assert "in the train split; 10 or more of each class are needed" in check["warnings"][0]
        # tiles are for detectors, and of 64 px or more
        bad = client.post("/api/train", headers=h, json={"task": "detect", "tile": 32})
        assert bad.status_code == 422 and "tile" in bad.text
        bad = client.post("/api/train", headers=h, json={"task": "detect", "tile": "big"})
        assert bad.status_code == 422 and "tile" in bad.text
        ocr = client.post("/api/train", headers=h, json={"task": "ocr-rec", "tile": 640})
        assert ocr.status_code == 400 and "--tile is for detectors" in ocr.json()["detail"]
        r = client.post("/api/train", headers=h, json={"task": "detect", "epochs": 1,
                                                       "name": "api-detector"})
        assert r.status_code == 202, r.text
        assert r.json()["kind"] == "train-detect"
        second = client.post("/api/train", headers=h, json={"task": "detect", "epochs": 1})
        assert second.status_code == 400 and "already queued or running" in second.json()["detail"]
        import time

        for _ in range(600):
            job = client.get(f"/api/jobs/{r.json()['id']}", headers=h).json()
            if job["status"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.2)
        assert job["status"] == "done", job
        assert job["result"]["model"] == "api-detector" and job["result"]["onnx_parity"] < 1e-3
        assert set(check["warnings"]) <= set(job["result"]["warnings"])
        models = {m["name"]: m for m in client.get("/api/models", headers=h).json()}
        assert models["api-detector"]["task"] == "detect"
        pre = client.post("/api/autolabel", headers=h, json={"model": "api-detector",
                                                             "images": "all"})
        assert pre.status_code == 202 and pre.json()["kind"] == "autolabel"


def test_cancelling_a_training_job_stops_it_and_registers_nothing(
        make_workspace, tmp_path: Path, shared: Path) -> None:  # type: ignore[no-untyped-def]
    import time

    from fastapi.testclient import TestClient

    from labelpilot.server.app import create_app
    from tests.server.conftest import PASSWORD

    ws = detect_workspace(make_workspace, tmp_path, shared, ["bowl", "car"],
                          classes=["bowl", "car"], train=3, test=2, users=True)
    with TestClient(create_app(ws)) as client:
        tok = client.post("/api/auth/token", data={"username": "admin",
                                                   "password": PASSWORD}).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        job_id = client.post("/api/train", headers=h, json={
            "task": "detect", "minutes": 5, "name": "never-registered"}).json()["id"]
        url = f"/api/jobs/{job_id}"
        while client.get(url, headers=h).json()["status"] == "queued":
            time.sleep(0.1)
        asked = client.post(f"{url}/cancel", headers=h).json()
        t0 = time.monotonic()
        assert asked["status"] == "running" and asked["cancel_requested"]  # 'cancelling'
        for _ in range(600):
            job = client.get(url, headers=h).json()
            if job["status"] != "running":
                break
            time.sleep(0.2)
        print(f"cancelled {time.monotonic() - t0:.1f} s after the request")
        assert job["status"] == "cancelled" and job["result"] is None
        assert "never-registered" not in {m["name"] for m in client.get(
            "/api/models", headers=h).json()}
        assert not (ws.models_dir / "never-registered").exists()
        assert not (ws.models_dir / ".runs" / f"job-{job_id}").exists()


def test_held_out_images_choose_the_weights_kept(make_workspace, tmp_path: Path,
                                                 shared: Path) -> None:  # type: ignore[no-untyped-def]
    from labelpilot.train.detect import DetectTrainConfig, DetectTrainer

    ws = detect_workspace(make_workspace, tmp_path, shared, ["person"], classes=["person"],
                          train=8, test=2)
    r = DetectTrainer(ws, DetectTrainConfig(epochs=2, batch=2, minutes=None, name="kept")).run()
    # 8 images: 2 held out; mAP measured at the start and along the way, the best kept
    assert r.train_images == 8 and 0 <= r.val_map50 <= 1 and 0 <= r.kept_step <= r.steps
    vals = [h["val_map50"] for h in r.history if "val_map50" in h]
    assert vals and r.val_map50 >= max(vals)
    m = json.loads((ws.models_dir / "kept" / "manifest.json").read_text())
    assert m["metrics"]["val_images"] == 2 and m["metrics"]["kept_step"] == r.kept_step
    # the curve the Models page draws (GET /api/models/{name}/history)
    curve = json.loads((ws.models_dir / "kept" / "history.json").read_text())
    assert curve[-1]["step"] == r.history[-1]["step"] and any("val_map50" in p for p in curve)


def test_an_interrupted_run_goes_on_from_its_checkpoint(make_workspace, tmp_path: Path,
                                                        shared: Path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from labelpilot.train.detect import DetectTrainConfig, DetectTrainer

    ws = detect_workspace(make_workspace, tmp_path, shared, ["person"], classes=["person"],
                          train=8)
    run = tmp_path / "run"
    # evaluations at each quarter only, not also every 30 s (a slow machine would add some)
    cfg = DetectTrainConfig(epochs=4, batch=2, minutes=None, name="resumed", eval_seconds=None)

    class Crash(Exception):
        pass

    def crash_at_7(p: dict) -> None:
        if p["step"] == 7:
            raise Crash()

    # 6 training images (2 held out), batches of 2: 12 steps, a checkpoint every 3
    with pytest.raises(Crash):
        DetectTrainer(ws, cfg, progress=crash_at_7, run_dir=run).run()
    saved = torch.load(run / "checkpoint.pt", weights_only=False)
    assert saved["state"]["step"] == 6 and saved["classes"] == ["person"]
    steps: list[int] = []
    r = DetectTrainer(ws, cfg, progress=lambda p: steps.append(int(p["step"])),
                      run_dir=run).run(resume=True)
    assert steps == list(range(7, 13)) and r.steps == 12
    assert [h["step"] for h in r.history] == list(range(1, 13))  # the curve before the crash
    assert sum("val_map50" in h for h in r.history) == 4
    # a checkpoint from another kind of run is not mixed in
    with pytest.raises(LabelPilotError, match="of another run"):
        DetectTrainer(ws, DetectTrainConfig(init="scratch", epochs=1, batch=2, minutes=None),
                      run_dir=run).run(resume=True)


def test_train_and_eval_from_the_cli(tmp_path: Path, shared: Path) -> None:
    from tests.cli.test_cli import run

    ws = tmp_path / "ws"
    assert run("init", ws, "--task", "detect", "--labels", "bowl,car")[0] == 0
    code, _, err = run("train", ws, "--task", "detect", "--epochs", "1")
    assert code != 0 and "train split has no accepted boxes" in err
    parts = coco_subset(shared, tmp_path / "c", ["bowl", "car"], 8, 2)
    for split, d in parts.items():
        assert run("import", ws, d / "a.json", "--format", "coco", "--split", split,
                   "--images-dir", d / "images")[0] == 0
    assert run("models", "add", ws, "yolox-nano", "--from", shared / "models")[0] == 0
    code, out, err = run("train", ws, "--task", "detect", "--epochs", "1", "--name", "cli-det")
    assert code == 0, err
    assert "Trained cli-det (pretrained) on 8 images" in out and "held-out mAP50" in out
    assert "test split: mAP50" in out and "AP50:95" in out  # the per-class table
    code, out, err = run("eval", ws, "--model", "cli-det", "--split", "test", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["images"] == 2 and set(got["per_class"]) <= {"bowl", "car"}
    m = json.loads((ws / "models" / "cli-det" / "manifest.json").read_text())
    assert m["metrics"]["test"]["map50"] == pytest.approx(got["map50"])


def test_the_class_layer_is_the_projects_own(tmp_path: Path, shared: Path) -> None:
    """Before any training: a class the base model has by name says what the base model
    says (its channel copied); a new class says nothing yet (the prior, 1%); boxes and
    objectness are the base model's."""
    import onnx
    import onnxruntime as ort

    from labelpilot.models.registry import get_manifest
    from labelpilot.train.detect import (
        DetectTrainConfig,
        DetectTrainer,
        find_yolox_head,
        with_classes,
    )
    from labelpilot.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["car", "bullseye"])
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    base = get_manifest("yolox-nano", ws.models_dir)
    proto = onnx.load(str(base.file("model")[0]))
    head = find_yolox_head(proto)
    assert head.classes == 80 and len(head.cls_convs) == 3 and len(head.reshapes) == 3
    # the layers that learn first: each level's box, objectness and class convolutions
    assert head.preds == {f"head.{k}_preds.{level}.{p}" for k in ("reg", "obj", "cls")
                          for level in range(3) for p in ("weight", "bias")}
    trainer = DetectTrainer(ws, DetectTrainConfig())
    weights, started = trainer.class_layer(proto, head, base, ["car", "bullseye"])
    assert started == {"car": ["car"], "bullseye": []}
    exported, logits = with_classes(proto, head, weights)
    image = read_bgr(shared / "datasets" / "coco128" / "train2017" / "000000000009.jpg")
    from labelpilot.models.detect import DetectorModel

    x, _, _ = DetectorModel(base, threads=1).preprocess(image)

    def run(p: onnx.ModelProto) -> np.ndarray:
        sess = ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0][0])

    before, after, raw = run(proto), run(exported), run(logits)
    assert after.shape == (3549, 7)
    np.testing.assert_allclose(after[:, :5], before[:, :5], atol=1e-5)
    np.testing.assert_allclose(after[:, 5], before[:, 5 + base.labels.index("car")], atol=1e-5)
    assert 0.005 < np.median(after[:, 6]) < 0.02 and after[:, 6].max() < 0.05
    # the trained graph gives logits where the exported one gives probabilities
    np.testing.assert_allclose(1 / (1 + np.exp(-raw[:, 4:])), after[:, 4:], atol=1e-5)
    np.testing.assert_allclose(raw[:, :4], after[:, :4], atol=1e-5)


def _bullseyes(folder: Path, shared: Path, n: int, seed: int) -> Path:
    """`n` coco128 photos with 1-3 bullseyes (a class no COCO model has), as a COCO file."""
    return bullseyes(folder, shared, n, seed)


def test_a_class_the_base_model_has_never_seen_is_learnt(tmp_path: Path, shared: Path) -> None:
    from labelpilot.train.detect import DetectTrainConfig, DetectTrainer
    from labelpilot.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["bullseye"])
    for split, n, seed in (("train", 10, 1), ("val", 4, 2), ("test", 4, 3)):
        d = _bullseyes(tmp_path / split, shared, n, seed)
        import_dataset(ws, d / "a.json", format="coco", split=split, images_dir=d / "images")
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    r = DetectTrainer(ws, DetectTrainConfig(epochs=8, batch=4, minutes=None, name="rings",
                                            eval_seconds=None)).run()
    assert r.base_classes == {"bullseye": []}
    vals = [h["val_map50"] for h in r.history if "val_map50" in h]
    print(f"{r.steps} steps, val mAP50 along the way {vals}, test {r.test}")
    # at the start the new class says nothing; the frozen-body steps come first
    assert r.history[0]["frozen"] == 1.0 and r.history[-1]["frozen"] == 0.0
    assert r.kept_step > 0 and r.val_map50 >= 0.5
    assert r.test is not None and r.test["map50"] >= 0.5
    model = load_detector("rings", ws.models_dir)
    assert list(model.spec.labels) == ["bullseye"]
    # the display thresholds are the trained model's own, chosen on the 4 held-out images
    t = r.thresholds
    assert t is not None and t["images"] == 4 and 0.05 <= t["score_threshold"] <= 0.95
    assert model.settings.score_threshold == t["score_threshold"]
    if "bullseye" in t["class_thresholds"]:
        assert model.threshold_for("bullseye") == t["class_thresholds"]["bullseye"]
    assert t["f1"]["all"] > 0.5


def test_a_base_model_that_cannot_be_trained_is_refused(make_workspace, tmp_path: Path,
                                                        shared: Path) -> None:  # type: ignore[no-untyped-def]
    from labelpilot.train.detect import DetectTrainConfig, DetectTrainer

    ws = detect_workspace(make_workspace, tmp_path, shared, ["car"], classes=["car"], train=2)
    install(ws.models_dir, "nanodet-m", str(shared / "models"))
    with pytest.raises(LabelPilotError, match="nanodet-m has a nanodet output layout, which "
                                              "this trainer cannot train") as e:
        DetectTrainer(ws, DetectTrainConfig(base="nanodet-m", epochs=1)).run()
    assert e.value.hint == "use --base yolox-nano"


def test_boxes_too_small_for_the_input_are_said() -> None:
    from types import SimpleNamespace

    from labelpilot.train.detect import tiny_boxes

    big = SimpleNamespace(width=4000, height=3000)  # scaled by 416/4000 = 0.104
    small = SimpleNamespace(width=400, height=300)
    items = [(big, [((0, 0, 30, 30), "tree"), ((0, 0, 50, 50), "tree"), ((0, 0, 400, 400), "car")]),
             (small, [((0, 0, 30, 30), "tree")])]
    (said,) = tiny_boxes(items, (416, 416))
    # 30 px at 0.104 is 3.1 px (lost), 50 px is 5.2 px (kept); the same 30 px box is fine
    # in a 400 px image
    assert said.startswith("tree: 1 of 3 boxes are under 4 px") and "up to 4000 px" in said
    assert tiny_boxes(items[1:], (416, 416)) == []


def test_several_bases_are_compared_and_the_best_on_held_out_images_kept(
        tmp_path: Path, shared: Path) -> None:
    from tests.cli.test_cli import run

    ws = tmp_path / "ws"
    assert run("init", ws, "--task", "detect", "--labels", "bullseye")[0] == 0
    for split, n, seed in (("train", 8, 1), ("val", 3, 2), ("test", 3, 3)):
        d = _bullseyes(tmp_path / split, shared, n, seed)
        assert run("import", ws, d / "a.json", "--format", "coco", "--split", split,
                   "--images-dir", d / "images")[0] == 0
    for name in ("yolox-nano", "person-detector", "nanodet-m"):
        assert run("models", "add", ws, name, "--from", shared / "models")[0] == 0
    # every base must be trainable before any training starts
    code, _, err = run("train", ws, "--task", "detect", "--epochs", "1",
                       "--base", "yolox-nano,nanodet-m")
    assert code != 0 and "nanodet-m has a nanodet output layout" in err
    code, out, err = run("train", ws, "--task", "detect", "--epochs", "3", "--name", "rings",
                         "--base", "person-detector,yolox-nano")
    assert code == 0, err
    assert "Base models compared" in out
    m = json.loads((ws / "models" / "rings" / "manifest.json").read_text())
    rows = m["metrics"]["bases"]
    assert sorted(r["base"] for r in rows) == ["person-detector", "yolox-nano"]
    # the kept model is the best on the held-out images, whatever the test split says
    assert rows[0]["val_map50"] >= rows[1]["val_map50"]
    assert m["metrics"]["base"] == rows[0]["base"] and m["name"] == "rings"
    assert f"{rows[0]['base']} kept" in out
    for r in rows:
        assert r["steps"] > 0 and r["ms_per_image"] > 0 and 0 <= r["test_map50"] <= 1
    # the other base's model is not registered, and no run folder is left behind
    code, out, _ = run("models", "list", ws, "--json")
    names = [i["name"] for i in json.loads(out)]
    assert names.count("rings") == 1 and not any("person-detector." in n for n in names)
    assert not any((ws / "models" / ".runs").iterdir())
    got = json.loads(run("eval", ws, "--model", "rings", "--split", "test", "--json")[1])
    assert got["map50"] == pytest.approx(m["metrics"]["test"]["map50"])
