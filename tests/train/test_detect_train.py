"""Custom auto-label: fine-tune the catalogue's YOLOX-Nano on a few accepted boxes, export,
register, evaluate on the test split, pre-label with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelpilot.errors import LabelPilotError
from labelpilot.models.catalogue import install
from labelpilot.models.registry import load_detector
from labelpilot.transfer import import_dataset
from tests.coco128 import coco_subset, detect_workspace
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
    model = load_detector("custom", ws.models_dir)
    # the custom model only ever says the project's classes
    assert {lab for lab in model.spec.labels if lab} == {"bowl", "car"}

    found = model.predict(read_bgr(next((parts["test"] / "images").iterdir())))
    assert all(a.label in ("bowl", "car") for a in found)
    # from scratch: every convolution re-initialised, nothing else (Resize's scales stay)
    s = DetectTrainer(ws, DetectTrainConfig(init="scratch", epochs=1, batch=2, minutes=None,
                                            name="from-scratch")).run()
    assert s.steps == 2 and s.onnx_parity < 1e-3
    # ... and each class has one channel of its own (the base's classes mean nothing there)
    assert s.base_classes == {"bowl": ["bowl"], "car": ["car"]}


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


def test_a_new_class_is_found_in_the_base_models_classes(make_workspace, tmp_path: Path,
                                                         shared: Path) -> None:  # type: ignore[no-untyped-def]
    from labelpilot.train.detect import DetectTrainConfig, DetectTrainer

    # the project calls bowls "dish", a name the COCO model does not have
    ws = make_workspace(task="detect", labels=["dish"])
    d = coco_subset(shared, tmp_path / "c", ["bowl"], 6, 0)["train"]
    j = json.loads((d / "a.json").read_text())
    j["categories"][0]["name"] = "dish"
    (d / "a.json").write_text(json.dumps(j))
    import_dataset(ws, d / "a.json", format="coco", split="train", images_dir=d / "images")
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    r = DetectTrainer(ws, DetectTrainConfig(epochs=1, batch=2, minutes=None, name="dish")).run()
    assert r.base_classes["dish"][0] == "bowl" and "person" not in r.base_classes["dish"]
    labels = json.loads((ws.models_dir / "dish" / "manifest.json").read_text())["labels"]
    assert {lab for lab in labels if lab} == {"dish"} and labels[45] == "dish"  # COCO's bowl
    model = load_detector("dish", ws.models_dir)

    found = model.predict(read_bgr(sorted((d / "images").iterdir())[0]))
    assert found and {a.label for a in found} == {"dish"}
