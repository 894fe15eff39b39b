"""Model optimization (issue 18): an INT8 variant of a detector, calibrated on the
workspace's own images, scored and timed against the original, kept only if it passes the
gate; the kept variant is what loading the model runs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from labelpilot.errors import LabelPilotError
from labelpilot.models.catalogue import install
from labelpilot.models.manifest import ModelManifest
from labelpilot.optimize.gate import OptimizeConfig, optimize_model
from labelpilot.transfer import import_dataset
from labelpilot.workspace import Workspace
from tests.coco128 import coco_subset


def _workspace(tmp_path: Path, shared: Path, train: int = 10, test: int = 6) -> Workspace:
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["person"])
    for split, d in coco_subset(shared, tmp_path / "c", ["person"], train, test).items():
        import_dataset(ws, d / "a.json", format="coco", split=split, images_dir=d / "images")
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    return ws


def test_the_prediction_layers_are_the_yolox_heads_last_convolutions(shared: Path) -> None:
    import onnx

    from labelpilot.optimize.quantize import prediction_layers
    from labelpilot.train.detect import find_yolox_head

    proto = onnx.load(str(shared / "models" / "yolox_nano_416.onnx"))
    last = set(prediction_layers(proto))
    head = find_yolox_head(proto)
    # the box, objectness and class convolutions of the three output levels
    by_weights = {n.name for n in proto.graph.node if n.op_type == "Conv"
                  and n.input[1] in head.preds}
    assert len(last) == 9 and last == by_weights


def test_a_variant_that_passes_the_gate_is_kept_and_run(make_workspace, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                        shared: Path) -> None:
    from labelpilot.models.detect import DetectorModel
    from labelpilot.models.registry import list_models, load_detector
    from tests.coco128 import detect_workspace

    # SQLite and PostgreSQL
    ws = detect_workspace(make_workspace, tmp_path, shared, ["person"], classes=["person"],
                          train=10, test=6)
    before = (ws.models_dir / "yolox-nano" / "manifest.json").read_bytes()
    # a gate nothing passes: refused with the figures, nothing written
    refused = optimize_model(ws, "yolox-nano", OptimizeConfig(min_speedup=100, max_loss=100))
    (t,) = refused["tries"]  # too slow: keeping layers in float would not make it faster
    assert not refused["kept"] and not t["kept"] and "at least 100x asked" in t["reason"]
    assert refused["split"] == "test" and refused["calibration"]["images"] == 10
    assert (ws.models_dir / "yolox-nano" / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in (ws.models_dir / "yolox-nano").iterdir()) == [
        "manifest.json", "yolox_nano_416.onnx"]
    # a gate it passes (any speed, up to 10 points): kept and recorded
    got = optimize_model(ws, "yolox-nano", OptimizeConfig(min_speedup=0.01, max_loss=10,
                                                          calibrate_on="train"))
    print(json.dumps(got["tries"], indent=1))
    assert got["kept"]
    kept = got["tries"][-1]
    assert kept["size_bytes"] < got["fp32"]["size_bytes"]  # INT8 weights
    assert abs(kept["loss_points"]) <= 10 and kept["ms_per_image"] > 0
    m = ModelManifest.load(ws.models_dir / "yolox-nano" / "manifest.json")
    v = m.variants["int8-cpu"]
    assert v["files"]["model"]["path"] == "model.int8.onnx" and v["device"] == "cpu"
    assert kept["metric"] == "map50" and kept["role"] == "model"
    assert v["metric"]["fp32"] == got["fp32"]["map50"] and v["metric"]["value"] == kept["value"]
    assert got["variant"]["speedup"] == kept["speedup"]  # one file: the stage is the whole path
    assert v["calibration"] == {"split": "train", "images": 10, "method": "percentile"}
    (info,) = [i for i in list_models(ws.models_dir) if i.name == "yolox-nano"]
    assert "int8-cpu" in info.variants and "files" not in info.variants["int8-cpu"]
    # loading the model runs the variant: the same detections as measured
    model = load_detector("yolox-nano", ws.models_dir)
    assert model.manifest.files["model"].path == "model.int8.onnx"
    from labelpilot.store import repo

    with ws.engine.connect() as conn:
        rows, _ = repo.confirmed_labels(conn, "test")
    img = ws.blobs.load_image(rows[0])
    int8 = model.detect(img)
    fp32 = DetectorModel(m, threads=1).detect(img)
    assert len(int8.boxes) and abs(len(int8.boxes) - len(fp32.boxes)) <= 2
    assert np.abs(int8.boxes[0] - fp32.boxes[0]).max() < 8
    # a variant file that fails its checksum is said and not run: the original runs
    path = ws.models_dir / "yolox-nano" / "model.int8.onnx"
    path.write_bytes(path.read_bytes()[:-10])
    from labelpilot.models.registry import serving_manifest

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        chosen = serving_manifest(m)
    assert chosen.files["model"].path == "yolox_nano_416.onnx"
    assert any("int8-cpu variant cannot be used" in str(w.message) for w in said)


def test_what_cannot_be_optimized_is_said(tmp_path: Path, shared: Path) -> None:
    ws = _workspace(tmp_path, shared, train=5, test=2)
    with pytest.raises(LabelPilotError, match="has 5 images with accepted labels; at least 8"):
        optimize_model(ws, "yolox-nano", OptimizeConfig())
    with pytest.raises(LabelPilotError, match="--calibrate-on must be train or val"):
        optimize_model(ws, "yolox-nano", OptimizeConfig(calibrate_on="test"))
    with pytest.raises(LabelPilotError, match="unknown calibration method 'kl'"):
        optimize_model(ws, "yolox-nano", OptimizeConfig(method="kl"))
    with pytest.raises(LabelPilotError, match="FP16 variants are for GPUs"):
        optimize_model(ws, "yolox-nano", OptimizeConfig(fp16=True))
    with pytest.raises(LabelPilotError, match="CUDAExecutionProvider is not available"):
        optimize_model(ws, "yolox-nano", OptimizeConfig(device="cuda"))
    with pytest.raises(LabelPilotError, match="graphcut is built in"):
        optimize_model(ws, "graphcut", OptimizeConfig())
    bare = Workspace.create(tmp_path / "bare", task="detect", labels=["person"])
    install(bare.models_dir, "yolox-nano", str(shared / "models"))
    with pytest.raises(LabelPilotError, match="no test or val split with accepted labels"):
        optimize_model(bare, "yolox-nano", OptimizeConfig())
    # scored on val (there is no test split): it cannot calibrate on val too
    d = coco_subset(shared, tmp_path / "v", ["person"], 2, 0)["train"]
    import_dataset(bare, d / "a.json", format="coco", split="val", images_dir=d / "images")
    with pytest.raises(LabelPilotError, match="scored on the val split, so it cannot"):
        optimize_model(bare, "yolox-nano", OptimizeConfig(calibrate_on="val"))
    assert not list((ws.models_dir / "yolox-nano").glob(".optimize*"))


def test_optimize_from_the_cli(tmp_path: Path, shared: Path) -> None:
    from tests.cli.test_cli import run

    ws = _workspace(tmp_path, shared)
    ws.close()
    root = tmp_path / "ws"
    code, out, err = run("models", "optimize", root, "yolox-nano", "--min-speedup", "100",
                         "--max-loss", "100", "--json")
    assert code == 0, err
    got = json.loads(out)  # nothing else on stdout (the calibrators' chatter is kept off it)
    assert got["status"] == "done" and not got["kept"] and got["tries"][0]["speedup"] > 0
    code, out, err = run("models", "optimize", root, "yolox-nano", "--min-speedup", "0.01",
                         "--max-loss", "100", "--method", "minmax")
    assert code == 0, err
    said = " ".join(out.split())
    assert "Kept (model: INT8, the body through)" in said and "runs this variant" in said
    code, out, _ = run("models", "list", root, "--json")
    (listed,) = [m for m in json.loads(out) if m["name"] == "yolox-nano"]
    assert listed["variants"]["int8-cpu"]["metric"]["name"] == "map50"
    code, _, err = run("models", "optimize", root, "yolox-nano", "--fp16")
    assert code != 0 and "FP16 variants are for GPUs" in err


def test_a_graph_with_nms_inside_is_quantized_and_still_loads(tmp_path: Path,
                                                            shared: Path) -> None:
    """PP-PicoDet's export runs NMS in the graph (tensors that change size from image to
    image, which the histogram calibrators cannot take): the body is calibrated and
    quantized alone, so percentile calibration works, and the float tail is put back:
    the variant keeps the model's inputs, outputs and layout (its accuracy is the gate's
    business: see the benchmark)."""
    from labelpilot.models.detect import DetectorModel
    from labelpilot.models.registry import get_manifest
    from labelpilot.models.runtime import sha256_file
    from labelpilot.optimize.quantize import quantize_int8
    from tests.imaging import read_bgr

    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["person"])
    install(ws.models_dir, "picodet-xs", str(shared / "models"))
    m = get_manifest("picodet-xs", ws.models_dir)
    src, _ = m.file("model")
    fp32 = DetectorModel(m, threads=1)
    photos = sorted((shared / "datasets" / "coco128" / "train2017").glob("*.jpg"))[:6]
    feeds = []
    for p in photos:
        x, sx, sy = fp32.preprocess(read_bgr(p))
        feeds.append({fp32.session.input_names[0]: x,
                      fp32.session.input_names[1]: np.array([[sy, sx]], np.float32)})
    out = tmp_path / "int8.onnx"
    floats, used = quantize_int8(src, out, feeds, method="percentile")
    assert used == "percentile" and floats == []
    import onnx

    q = onnx.load(str(out))
    ops = {n.op_type for n in q.graph.node}
    assert "QuantizeLinear" in ops and "NonMaxSuppression" in ops
    original = onnx.load(str(src))
    assert [i.name for i in q.graph.input] == [i.name for i in original.graph.input]
    assert [o.name for o in q.graph.output] == [o.name for o in original.graph.output]
    # the NMS and the decoding before it are not quantized
    made_by = {o: n for n in q.graph.node for o in n.output}
    nms = next(n for n in q.graph.node if n.op_type == "NonMaxSuppression")
    assert all(made_by[i].op_type != "DequantizeLinear" for i in nms.input if i in made_by)
    int8 = DetectorModel(m.with_variant_files({"model": (out, sha256_file(out))}), threads=1)
    int8.detect(read_bgr(photos[0]))  # loads and runs as the model's layout
