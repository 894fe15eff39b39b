"""Fine-tuning: the trainable module, charset extension, resume, splits, errors."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch", reason="the [train] extra is part of make test")

from labelpilot.errors import LabelPilotError  # noqa: E402
from labelpilot.jobs import kinds  # noqa: E402
from labelpilot.models.ocr import builtin_manifest  # noqa: E402
from labelpilot.train import TrainingCancelled  # noqa: E402
from labelpilot.train.ocr_rec import TrainConfig, Trainer  # noqa: E402
from labelpilot.train.onnx_module import OnnxModule  # noqa: E402
from labelpilot.transfer import import_dataset  # noqa: E402
from tests.conftest import write_image  # noqa: E402

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
NEW = "Ж"  # Cyrillic: not among the pretrained recognizer's characters


def rec_dataset(folder: Path, counts: dict[str, int], *, new_char: bool = False,
                seed: int = 0) -> Path:
    """Rendered code lines (e.g. 'LOT 47A2') as a ppocr-rec set with per-split files."""
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(seed)
    font = ImageFont.truetype(str(FONT), 28) if FONT.exists() else ImageFont.load_default(28)
    (folder / "crops").mkdir(parents=True, exist_ok=True)
    n = 0
    for split, count in counts.items():
        lines = []
        for _ in range(count):
            code = f"{rng.choice(['LOT', 'REF', 'SN'])} {rng.randint(10, 99)}" \
                   f"{rng.choice('ABCDEK' + (NEW * 3 if new_char else ''))}{rng.randint(0, 9)}"
            im = Image.new("RGB", (220, 44), (235, 235, 230))
            ImageDraw.Draw(im).text((8, 6), code, fill=(20, 20, 20), font=font)
            name = f"crops/{split}_{n:04d}.png"
            im.save(folder / name)
            lines.append(f"{name}\t{code}\n")
            n += 1
        (folder / f"{split}_rec_gt.txt").write_text("".join(lines), encoding="utf-8")
    return folder


def test_module_matches_onnx_runtime_and_exports_the_same_graph(tmp_path: Path) -> None:
    import onnxruntime as ort

    path, _ = builtin_manifest().file("rec")
    module = OnnxModule(onnx.load(str(path))).eval()
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 48, 160)).astype(np.float32)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() < 1e-4
    onnx.save(module.to_onnx(), str(tmp_path / "back.onnx"))
    back = ort.InferenceSession(str(tmp_path / "back.onnx"), providers=["CPUExecutionProvider"])
    assert np.array_equal(back.run(None, {"x": x})[0], ref)


def test_unknown_operator_is_refused_by_name() -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->ij")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])])
    with pytest.raises(LabelPilotError, match="operators this trainer does not support: Einsum"):
        OnnxModule(helper.make_model(graph))


def test_train_extends_the_charset_and_registers_a_working_model(make_workspace,
                                                                 tmp_path: Path) -> None:
    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, rec_dataset(tmp_path / "d", {"train": 24, "val": 8, "test": 6},
                                   new_char=True), format="ppocr-rec")
    cfg = TrainConfig(epochs=2, batch=8, eval_every=2, name="codes")
    result = Trainer(ws, cfg, run_dir=tmp_path / "run").run()
    assert result.new_characters == [NEW]
    model_dir = ws.models_dir / "codes"
    assert (model_dir / "rec.onnx").is_file() and (model_dir / "curves.png").is_file()
    chars = (model_dir / "dict.txt").read_text(encoding="utf-8").split("\n")
    assert chars[-2] == NEW  # appended after the pretrained characters
    from labelpilot.models.registry import list_models, load_ocr

    info = next(m for m in list_models(ws.models_dir) if m.name == "codes")
    assert info.metrics["onnx_parity"] < 1e-3 and "val_accuracy" in info.metrics
    model = load_ocr("codes", ws.models_dir)
    assert model.charset[-1] == NEW and len(model.charset) == int(
        model.rec.session.get_outputs()[0].shape[-1])
    # the registered model runs end to end, and eval reports the same keys as for `ocr`
    from labelpilot.evaluation.run import evaluate_model

    r = evaluate_model(ws, model_name="codes", split="test")
    assert r["model"] == "model:codes@1" and 0 <= r["rec_line_accuracy"] <= 1

    # a second round starts from the model trained in the first (the closed loop's way):
    # its character is already known, its weights are the first round's
    again = Trainer(ws, TrainConfig(epochs=1, batch=8, eval_every=2, name="codes2",
                                    base="codes"), run_dir=tmp_path / "run2").run()
    assert again.new_characters == []
    second = load_ocr("codes2", ws.models_dir)
    assert second.charset == model.charset
    with pytest.raises(LabelPilotError, match="not an OCR model"):
        Trainer(ws, TrainConfig(epochs=1, base="graphcut"), run_dir=tmp_path / "run3")


def test_training_resumes_from_its_checkpoint(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, rec_dataset(tmp_path / "d", {"train": 24, "val": 8}), format="ppocr-rec")
    calls = {"n": 0}

    def stop_after_two_steps() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    cfg = TrainConfig(epochs=3, batch=8, eval_every=1, name="first")
    # stopped (a cancel) after two steps: nothing registered, the checkpoint kept
    with pytest.raises(TrainingCancelled):
        Trainer(ws, cfg, run_dir=tmp_path / "run", cancelled=stop_after_two_steps).run()
    assert not (ws.models_dir / "first").exists()
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert saved["state"]["step"] == 2
    before = [h["step"] for h in saved["state"]["history"]]
    cfg2 = TrainConfig(epochs=3, batch=8, eval_every=1, name="second")
    second = Trainer(ws, cfg2, run_dir=tmp_path / "run").run(resume=True)
    assert second.steps == 9  # 3 epochs of 3 steps: the 2 already done are not redone
    assert [h["step"] for h in second.history][:2] == before == [1, 2]


def test_test_split_is_never_trained_on(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, rec_dataset(tmp_path / "d", {"train": 30, "test": 10}, seed=3),
                   format="ppocr-rec")
    test_texts = {ln.split("\t")[1].strip() for ln in
                  (tmp_path / "d" / "test_rec_gt.txt").read_text().splitlines()}
    train_texts = {ln.split("\t")[1].strip() for ln in
                   (tmp_path / "d" / "train_rec_gt.txt").read_text().splitlines()}
    train, val, _ = Trainer(ws, TrainConfig(), run_dir=tmp_path / "run").data()
    seen = [ln.text for ln in train + val]
    assert len(train) + len(val) == 30 and len(val) == 8  # val carved from train
    assert not set(map(id, train)) & set(map(id, val))
    assert set(seen) <= train_texts and len(set(seen) & (test_texts - train_texts)) == 0


def test_clear_errors_before_any_training(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace(task="ocr", labels=["text"])
    with pytest.raises(LabelPilotError, match="the train split has 0 accepted text lines"):
        Trainer(ws, TrainConfig(), run_dir=tmp_path / "run").data()
    import_dataset(ws, rec_dataset(tmp_path / "d", {"train": 10}), format="ppocr-rec")
    with pytest.raises(LabelPilotError, match=r"10 accepted train lines are too few .* at least 16"):
        Trainer(ws, TrainConfig(), run_dir=tmp_path / "run").data()
    with ws.transaction() as conn:
        kinds.submit(conn, kind="train-ocr-rec", params={"epochs": 1}, user="a")
    from labelpilot.jobs.train import ensure_no_other_training

    with ws.engine.connect() as conn, pytest.raises(LabelPilotError, match="already queued"):
        ensure_no_other_training(conn)


def test_train_from_the_api_as_a_job(make_workspace, tmp_path: Path) -> None:
    import time

    from fastapi.testclient import TestClient

    from labelpilot.server.app import create_app
    from tests.server.conftest import PASSWORD, add_users

    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, rec_dataset(tmp_path / "d", {"train": 16, "val": 8}), format="ppocr-rec")
    add_users(ws)
    with TestClient(create_app(ws)) as client:
        def token(user: str) -> dict[str, str]:
            t = client.post("/api/auth/token", data={"username": user, "password": PASSWORD})
            return {"Authorization": f"Bearer {t.json()['access_token']}"}

        assert client.post("/api/train", json={"epochs": 1}, headers=token("reviewer")).status_code == 403
        h = token("admin")
        job = client.post("/api/train", json={"epochs": 1, "name": "api-model"}, headers=h)
        assert job.status_code == 202, job.text
        again = client.post("/api/train", json={"epochs": 1}, headers=h)
        assert again.status_code == 400 and "already queued or running" in again.json()["detail"]

        def finish(job_id: int) -> dict[str, Any]:
            deadline = time.monotonic() + 120
            while (j := client.get(f"/api/jobs/{job_id}", headers=h).json())["status"] in (
                    "queued", "running"):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert j["status"] == "done", j
            return dict(j["result"])

        first = finish(job.json()["id"])
        assert first["model"] == "api-model"
        assert first["rescoring_job"] is None  # nothing was selected with it

        # a selection scored by the model; a new version of it runs that selection again
        for k in range(3):
            write_image(tmp_path / "pool" / f"p{k}.png", 96, 32, seed=50 + k)
        import_dataset(ws, tmp_path / "pool", format="images")

        sel = client.post("/api/select", headers=h, json={
            "strategy": "uncertainty", "budget": 2, "model": "api-model"})
        assert sel.status_code == 202, sel.text
        assert finish(sel.json()["id"])["model"] == "model:api-model@1"
        second = client.post("/api/train", json={"epochs": 1, "name": "api-model"}, headers=h)
        rescored = finish(second.json()["id"])["rescoring_job"]
        assert rescored is not None
        again = finish(rescored)
        assert again["model"] == "model:api-model@2" and again["strategy"] == "uncertainty"
        assert len(again["selected"]) == 2
    assert (ws.models_dir / "api-model" / "manifest.json").is_file()
