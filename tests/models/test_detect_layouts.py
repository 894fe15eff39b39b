"""The Ultralytics and plain-boxes output layouts, with small ONNX graphs whose outputs are
known boxes (built with torch here: no such pretrained files are shipped)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from labelpilot.errors import ModelError
from labelpilot.models.manifest import ModelFile, ModelManifest
from labelpilot.models.registry import load_detector
from labelpilot.models.runtime import sha256_file

torch = pytest.importorskip("torch")
NC = 3
LABELS = ["cat", "dog", "bird"]


class Fixed(torch.nn.Module):  # type: ignore[misc,name-defined]
    """Returns constant outputs (plus 0 x the image so the graph keeps its input)."""

    def __init__(self, *outs: np.ndarray) -> None:
        super().__init__()
        self.outs = [torch.from_numpy(o) for o in outs]

    def forward(self, image):  # type: ignore[no-untyped-def]
        z = image.mean() * 0
        res = tuple(o + z.to(o.dtype) for o in self.outs)
        return res if len(res) > 1 else res[0]


def export(tmp: Path, name: str, layout: str, outs: list[np.ndarray], names: list[str],
           size: int = 320) -> Path:
    folder = tmp / name
    folder.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Fixed(*outs), (torch.zeros(1, 3, size, size),), str(folder / "m.onnx"),
                          input_names=["images"], output_names=names, dynamo=False,
                          opset_version=17)
    m = ModelManifest(name=name, version="1", task="detect", kind="detect",
                      files={"model": ModelFile("m.onnx", sha256_file(folder / "m.onnx"))},
                      labels=LABELS, preprocessing={"layout": layout, "input_size": [size, size],
                                                    "score_threshold": 0.5, "nms_iou": 0.5},
                      root=folder)
    (folder / "manifest.json").write_bytes(m.to_json())
    return folder


def image() -> np.ndarray:
    return np.zeros((160, 320, 3), np.uint8)  # letterboxed: scale 1, no offset


def test_yolov8_layout(tmp_path: Path) -> None:
    p = np.zeros((1, 4 + NC, 5), np.float32)
    p[0, :4, 0] = [100, 50, 40, 20]  # cx, cy, w, h
    p[0, 4 + 1, 0] = 0.9  # dog
    p[0, :4, 1] = [102, 51, 40, 20]  # a duplicate, lower: removed by NMS
    p[0, 4 + 1, 1] = 0.8
    p[0, :4, 2] = [200, 100, 20, 20]
    p[0, 4 + 2, 2] = 0.4  # under the threshold
    export(tmp_path, "v8", "yolov8", [p], ["output0"])
    got = load_detector("v8", tmp_path).predict(image())
    assert [(a.label, round(a.score or 0.0, 2)) for a in got] == [("dog", 0.9)]
    assert got[0].shape.bbox() == pytest.approx((80, 40, 120, 60))


def test_yolov5_layout(tmp_path: Path) -> None:
    p = np.zeros((1, 4, 5 + NC), np.float32)
    p[0, 0, :5] = [100, 50, 40, 20, 0.9]
    p[0, 0, 5 + 0] = 0.8  # cat: 0.72
    p[0, 1, :5] = [100, 50, 40, 20, 0.9]
    p[0, 1, 5 + 2] = 0.9  # bird at the same place: another class, kept
    export(tmp_path, "v5", "yolov5", [p], ["output"])
    got = load_detector("v5", tmp_path).predict(image())
    assert sorted((a.label, round(a.score or 0.0, 2)) for a in got) == [("bird", 0.81), ("cat", 0.72)]


def test_plain_boxes_layout(tmp_path: Path) -> None:
    boxes = np.array([[10, 10, 50, 40], [60, 20, 90, 80]], np.float32)
    scores = np.array([0.95, 0.3], np.float32)
    labels = np.array([2, 0], np.int64)
    export(tmp_path, "plain", "boxes", [boxes, scores, labels], ["boxes", "scores", "labels"])
    got = load_detector("plain", tmp_path).predict(image())
    assert [(a.label, a.shape.bbox()) for a in got] == [("bird", (10, 10, 50, 40))]


def test_unknown_layouts_and_shapes_are_refused(tmp_path: Path) -> None:
    p = np.zeros((1, 8, 9), np.float32)  # 8 rows: not 4 + 3 classes
    export(tmp_path, "odd", "yolov8", [p], ["output0"])
    with pytest.raises(ModelError, match=r"outputs \[\[1, 8, 9\]\] do not fit the 'yolov8' layout"):
        load_detector("odd", tmp_path)
    m = ModelManifest.load(tmp_path / "odd" / "manifest.json")
    m.preprocessing["layout"] = "ssd"
    m.name = "odd2"
    (tmp_path / "odd2").mkdir()
    m.files["model"].path = str(tmp_path / "odd" / "m.onnx")
    (tmp_path / "odd2" / "manifest.json").write_bytes(m.to_json())
    with pytest.raises(ModelError, match="unknown detector layout 'ssd'"):
        load_detector("odd2", tmp_path)
