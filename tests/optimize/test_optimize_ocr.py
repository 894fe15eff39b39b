"""Model optimization of OCR models (issue 18): the recognizer's output layer pruned to the
characters in use, INT8 calibrated on inputs of varying size, and the built-in OCR model
through the gate into a workspace copy whose kept variant is what loading it runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from labelpilot.errors import LabelPilotError, ModelError
from labelpilot.models.manifest import ModelManifest
from labelpilot.optimize.gate import OptimizeConfig, optimize_model
from labelpilot.transfer import import_dataset
from labelpilot.workspace import Workspace


def _line(text: str) -> np.ndarray:
    """A dark line of text on a light background, as a scanned label prints it."""
    import cv2

    img = np.full((48, 24 * len(text) + 24, 3), 245, np.uint8)
    cv2.putText(img, text, (10, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (20, 20, 20), 2,
                cv2.LINE_AA)
    return img


def test_pruning_keeps_the_characters_in_use_and_their_scores(tmp_path: Path) -> None:
    from labelpilot.models.ocr import OcrModel, builtin_manifest
    from labelpilot.models.runtime import sha256_file
    from labelpilot.optimize.prune import prune_recognizer

    base = builtin_manifest()
    fp32 = OcrModel(base, threads=1)
    used = "LOT0123456789 -/"
    dst = tmp_path / "rec.onnx"
    p = prune_recognizer(base.file("rec")[0], dst, fp32.charset, used)
    assert p.classes_before == len(fp32.charset) == 18710
    assert p.space and sorted(p.characters) == sorted(set(used) - {" "})
    table = tmp_path / "dict.txt"
    table.write_text("".join(f"{c}\n" for c in p.characters), encoding="utf-8")
    pruned = OcrModel(base.with_variant_files({"rec": (dst, sha256_file(dst)),
                                               "dict": (table, sha256_file(table))}), threads=1)
    assert pruned.charset == ["", *p.characters, " "]
    x = fp32.rec_input(_line("LOT 2024-07/15"))
    (full,) = fp32.rec(x)
    (small,) = pruned.rec(x)
    keep = [fp32.charset.index(c) for c in pruned.charset[1:-1]]
    keep = [0, *keep, len(fp32.charset) - 1]
    # the same scores for the kept classes, renormalized by the softmax over them
    want = full[..., keep] / full[..., keep].sum(-1, keepdims=True)
    assert small.shape[-1] == len(keep) and np.allclose(small, want, atol=1e-4)
    (read_small, _), = pruned.recognize([_line("LOT 2024-07/15")])
    assert read_small == "LOT 2024-07/15"
    with pytest.raises(ModelError, match="nothing to keep"):
        prune_recognizer(base.file("rec")[0], tmp_path / "none.onnx", fp32.charset, "\x00\x01")


def test_a_recognizer_with_its_height_left_free_reads_smaller_lines(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from labelpilot.models.ocr import OcrModel, OcrSettings, builtin_manifest
    from labelpilot.models.runtime import sha256_file
    from labelpilot.optimize.prune import free_height

    base = builtin_manifest()
    dst = tmp_path / "rec.onnx"
    free_height(base.file("rec")[0], dst)
    small = OcrModel(base.with_variant_files({"rec": (dst, sha256_file(dst))}), threads=1,
                     settings=OcrSettings(rec_height=32))
    x = small.rec_input(_line("LOT 2024-07/15"))
    assert x.shape[2] == 32
    (read, score), = small.recognize([_line("LOT 2024-07/15")])
    assert read == "LOT 2024-07/15" and score > 0.8
    # a graph that fixes the height inside (a reshape to 3 x 48 rows) is refused
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="r")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 48, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 144, None])],
        [numpy_helper.from_array(np.array([1, 144, -1], np.int64), "shape")])
    fixed = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(fixed))
    with pytest.raises(ModelError, match="does not run at input height 32"):
        free_height(fixed, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_calibration_on_inputs_of_varying_size_uses_every_input(tmp_path: Path) -> None:
    """Inputs of varying size are calibrated with MinMax a few at a time and the ranges
    merged: the largest activation, in the first input only, sets the scale."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from labelpilot.optimize.quantize import quantize_int8

    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
         helper.make_node("Relu", ["y"], ["z"], name="relu")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, None, None])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 1, None, None])], [w])
    src = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(src))
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.uniform(0, 1, (1, 1, 8 + k, 8 + 2 * k)).astype(np.float32)}
             for k in range(8)]
    feeds[0]["x"][0, 0, 0, 0] = 100.0
    dst = tmp_path / "q.onnx"
    _, used = quantize_int8(src, dst, feeds, method="percentile")
    assert used == "minmax"  # histograms need one size
    q = onnx.load(str(dst))
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    (scale,) = [inits[n.input[1]] for n in q.graph.node if n.op_type == "QuantizeLinear"
                and n.output[0] in {m.input[0] for m in q.graph.node if m.output[0] == "y"}]
    assert float(scale) == pytest.approx(100 / 255, rel=0.01)


def _ocr_workspace(tmp_path: Path, shared: Path) -> Workspace:
    """The 10 ICDAR 2015 samples: 8 to calibrate on (train), 2 to score (test)."""
    from labelpilot.splits import assign_splits
    from labelpilot.store import repo

    toy = shared / "datasets" / "mmocr_toy"
    ws = Workspace.create(tmp_path / "ws", task="ocr", labels=["text"])
    import_dataset(ws, toy / "icdar2015_toy_gt" / "annotations" / "test", format="icdar",
                   split="train", images_dir=toy / "det_toy_dataset" / "imgs" / "test")
    with ws.transaction() as conn:
        rows = sorted(repo.list_images(conn, "train"), key=lambda r: r.file_name)
        assign_splits(conn, user=None, split="test",
                      image_ids=[r.id for r in rows if r.file_name in ("img_1.jpg", "img_5.jpg")])
    return ws


def test_the_builtin_ocr_model_through_the_gate(tmp_path: Path, shared: Path) -> None:
    from labelpilot.models.ocr import builtin_manifest
    from labelpilot.models.registry import list_models, load_ocr

    ws = _ocr_workspace(tmp_path, shared)
    # a gate nothing passes (the detector alone, to keep the test short): every try
    # refused with its figures, nothing written
    # (MinMax: the histogram methods cost minutes at the detector's input size)
    refused = optimize_model(ws, "ocr", OptimizeConfig(min_speedup=100, max_loss=100,
                                                       images=4, method="minmax", prune=False,
                                                       only="det"))
    print(json.dumps(refused["tries"], indent=1))
    assert not refused["kept"] and refused["kind"] == "ocr"
    assert set(refused["fp32"]) == {"det_hmean", "size_bytes"}  # the role tried
    tried = {(t["role"], t["quantized"]): t for t in refused["tries"]}
    # the careful INT8 try is skipped: the first kept the accuracy and was too slow
    assert list(tried) == [("det", "INT8, the body through")]
    assert all("at least 100x asked" in t["reason"] and not t["kept"] for t in tried.values())
    assert not (ws.models_dir / "ocr").exists()
    assert not list(ws.models_dir.glob(".optimize*"))
    # a gate everything passes: of each role's tries the fastest is kept, one variant of both
    got = optimize_model(ws, "ocr", OptimizeConfig(min_speedup=0.01, max_loss=100, images=8,
                                                   method="minmax"))
    print(json.dumps(got["tries"], indent=1))
    assert got["kept"]
    rec_tries = [t for t in got["tries"] if t["role"] == "rec"]
    assert [t["quantized"] for t in rec_tries] == [
        "INT8, the body through", "output layer pruned to the characters in use",
        "output layer pruned to the characters in use, then INT8 (prediction layers in float)",
        "input height 32", "input height 32, then INT8 (prediction layers in float)",
        "input height 32, output layer pruned to the characters in use",
        "input height 32, output layer pruned to the characters in use, then INT8 (prediction "
        "layers in float)"]
    (rec_kept,) = [t for t in rec_tries if t["kept"]]
    assert rec_kept["speedup"] == max(t["speedup"] for t in rec_tries)
    assert all(f"but try {rec_kept['try']} is faster" in t["reason"] for t in rec_tries
               if t is not rec_kept)
    pruned = rec_tries[1]
    assert pruned["classes"][0] == 18710 and 20 < pruned["classes"][1] < 100
    m = ModelManifest.load(ws.models_dir / "ocr" / "manifest.json")
    (name, v), = m.variants.items()
    assert name == f"{v['precision']}-cpu" and {"det", "rec"} <= set(v["files"])
    assert v["roles"]["rec"]["quantized"] == rec_kept["quantized"]
    assert v["size_bytes"] < v["fp32_size_bytes"] and v["ms_per_image"] > 0
    assert set(v["metrics"]) == {"det_hmean", "rec_line_accuracy"}
    lower = "input height 32" in rec_kept["quantized"]
    assert v["preprocessing"] == ({"rec_height": 32} if lower else {})
    # the workspace copy stands for the built-in model: its files by absolute path
    assert m.file("det")[0] == builtin_manifest().file("det")[0].resolve()
    (info,) = [i for i in list_models(ws.models_dir) if i.name == "ocr"]
    assert not info.builtin and "int8-cpu" in info.variants
    model = load_ocr("ocr", ws.models_dir, threads=1)
    assert model.manifest.files["det"].path == "det.int8.onnx"
    assert model.manifest.files["rec"].path == v["files"]["rec"]["path"]
    assert model.settings.rec_height == (32 if lower else 48)
    # what loading runs is what was measured: the kept recognizer's line accuracy
    from labelpilot.evaluation.run import evaluate_model

    again = evaluate_model(ws, model_name="ocr", split="test")
    assert again["model"] == "model:ocr@ppocrv6-small"
    assert abs(again["rec_line_accuracy"] - rec_kept["value"]) <= 1 / again["lines"]
    names = {p.name for p in (ws.models_dir / "ocr").iterdir()}
    assert names == {"manifest.json", *(f["path"] for f in v["files"].values())}
    # the recognizer alone again: the detector's INT8 file, kept before, stays in the variant
    det_sha = v["files"]["det"]["sha256"]
    rec_only = optimize_model(ws, "ocr", OptimizeConfig(min_speedup=0.01, max_loss=100,
                                                        images=4, method="minmax",
                                                        prune=False, only="rec"))
    assert {t["role"] for t in rec_only["tries"]} == {"rec"} and rec_only["kept"]
    m = ModelManifest.load(ws.models_dir / "ocr" / "manifest.json")
    (v,) = m.variants.values()
    assert v["files"]["det"]["sha256"] == det_sha and "det: INT8, the body through (kept " \
        "before)" in v["quantized"]
    assert set(v["roles"]) == {"det", "rec"}
    names = {p.name for p in (ws.models_dir / "ocr").iterdir()}  # the old rec files removed
    assert names == {"manifest.json", *(f["path"] for f in v["files"].values())}
    with pytest.raises(LabelPilotError, match="no 'model' file to optimize"):
        optimize_model(ws, "ocr", OptimizeConfig(images=8, only="model"))


def test_optimize_ocr_from_the_cli_refuses_a_scored_split_without_text(tmp_path: Path,
                                                                       shared: Path) -> None:
    from tests.cli.test_cli import run

    ws = _ocr_workspace(tmp_path, shared)
    from labelpilot.splits import assign_splits

    with ws.transaction() as conn:
        assign_splits(conn, user=None, split="val", image_ids=None)
    ws.close()
    shutil.rmtree(tmp_path / "unused", ignore_errors=True)
    code, _, err = run("models", "optimize", tmp_path / "ws", "ocr", "--calibrate-on", "train")
    assert code != 0 and "has 0 images with accepted labels; at least 8" in err
