"""Models LabelPilot knows how to fetch: files (URL + SHA-256), kind, preprocessing, labels.

`labelpilot models add DIR NAME [--from PATH|URL]` installs an entry into the workspace's
model folder. Every file is checked against its SHA-256 before it is kept, whether it came
from the URL, another URL or a local file. The URLs point at the authors' releases where
those publish ONNX, otherwise at the public conversion named in the entry; they could not be
fetched from the machines this was built on, so the SHA-256 (of the files the project tested)
is what guarantees a download is the tested model.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelpilot.errors import LabelPilotError, ModelError
from labelpilot.models.manifest import ModelFile, ModelManifest
from labelpilot.models.runtime import sha256_file

PASCAL_VOC = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
              "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
              "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


@dataclass(frozen=True)
class CatalogueFile:
    role: str
    filename: str
    url: str
    sha256: str


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    task: str
    kind: str
    description: str
    files: tuple[CatalogueFile, ...]
    labels: tuple[str, ...] = ()
    preprocessing: dict[str, Any] = field(default_factory=dict)
    licence: str = ""


_PINTO = "https://github.com/PINTO0309/PINTO_model_zoo/raw/main"

# COCO's 80 detection classes in the order the detectors output them, spelled as COCO's
# JSON spells them (darknet's coco.names says motorbike, aeroplane, sofa, tvmonitor...)
COCO80_NAMES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone',
    'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush',
)

_MEAN_STD = {"mean": [103.53, 116.28, 123.675], "std": [57.375, 57.12, 58.395]}  # BGR order

CATALOGUE: dict[str, CatalogueEntry] = {e.name: e for e in [
    CatalogueEntry(
        "yolox-nano", "detect", "detect", "YOLOX-Nano, COCO 80 classes, 416x416 (Megvii release)",
        (CatalogueFile("model", "yolox_nano_416.onnx",
                       "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/"
                       "0.1.1rc0/yolox_nano.onnx",
                       "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"),),
        COCO80_NAMES,
        {"layout": "yolox", "input_size": [416, 416], "channels": "BGR", "resize": "letterbox",
         "pad_value": 114.0, "strides": [8, 16, 32], "score_threshold": 0.3, "nms_iou": 0.65},
        "Apache-2.0"),
    CatalogueEntry(
        "nanodet-m", "detect", "detect", "NanoDet-m, COCO 80 classes, 320x320 (RangiLyu release)",
        (CatalogueFile("model", "nanodet_m_320.onnx",
                       "https://github.com/RangiLyu/nanodet/releases/download/v0.0.1/"
                       "nanodet_m.onnx",
                       "c59b6c947ce475d27023327808aed655fa000981fe144c4fd2026828999e19f8"),),
        COCO80_NAMES,
        {"layout": "nanodet", "input_size": [320, 320], "channels": "BGR", "resize": "stretch",
         **_MEAN_STD, "strides": [8, 16, 32], "reg_max": 7, "score_threshold": 0.3,
         "nms_iou": 0.6},
        "Apache-2.0"),
    CatalogueEntry(
        "picodet-xs", "detect", "detect",
        "PP-PicoDet-XS, COCO 80 classes, 320x320, NMS in the graph (PaddleDetection)",
        (CatalogueFile("model", "picodet_xs_320_lcnet_postprocessed.onnx",
                       "https://paddledet.bj.bcebos.com/deploy/third_engine/"
                       "picodet_xs_320_lcnet_postprocessed.onnx",
                       "3b8e7687122d70b1615734827b19f28e24cde83cb59b4d27845a3566da4b8510"),),
        COCO80_NAMES,
        {"layout": "nms_boxes", "input_size": [320, 320], "channels": "RGB", "resize": "stretch",
         "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
         "score_threshold": 0.3},
        "Apache-2.0"),
    CatalogueEntry(
        "person-detector", "detect", "detect", "lightweight one-class person detector (YOLOX head)",
        (CatalogueFile("model", "lightweight_person_detector.onnx",
                       f"{_PINTO}/343_LightWeight-Person-Detector/lightweight_person_detector.onnx",
                       "4bf5f704cd3bd900645a4303e0934ede13d9fb2135058b38005f4c2886c68576"),),
        ("person",),
        {"layout": "yolox", "input_size": [192, 192], "channels": "BGR", "resize": "letterbox",
         "pad_value": 114.0, "strides": [8, 16, 32], "score_threshold": 0.3, "nms_iou": 0.6},
        "Apache-2.0"),
    CatalogueEntry(
        "deeplabv3-pascal", "segment", "semantic",
        "DeepLabV3 MobileNetV2, Pascal VOC 21 classes, 257x257 (TFLite model, ONNX conversion)",
        (CatalogueFile("model", "deeplabv3_mnv2_pascal_257.onnx",
                       f"{_PINTO}/026_mobile-deeplabv3-plus/01_float32/deeplabv3_257_mv_gpu.onnx",
                       "48a46b346ca7e2e96760b8a10a302046a3b5a9ce55e59d4c659c36d9cbd44118"),),
        tuple(PASCAL_VOC),
        {"input_size": [257, 257], "layout": "NHWC", "channels": "RGB", "mean": [127.5] * 3,
         "std": [127.5] * 3, "output": "logits", "background": 0, "target": None},
        "Apache-2.0"),
    CatalogueEntry(
        "selfie-person", "segment", "semantic",
        "MediaPipe selfie segmentation (person), 256x256",
        (CatalogueFile("model", "seg_selfie_segmentation.onnx",
                       f"{_PINTO}/109_Selfie_Segmentation/saved_model_256x256/model_float32.onnx",
                       "1511ab5564cb0ae179cba9bcad6ad931003ccc71656f11fd270967023678c6a5"),),
        ("background", "person"),
        {"input_size": [256, 256], "layout": "NHWC", "channels": "RGB", "mean": [0.0] * 3,
         "std": [255.0] * 3, "output": "sigmoid", "background": 0, "target": 1},
        "Apache-2.0"),
    CatalogueEntry(
        "meet-person", "segment", "semantic",
        "MediaPipe Meet segmentation (person), 256x144",
        (CatalogueFile("model", "seg_mediapipe_meet.onnx",
                       f"{_PINTO}/082_MediaPipe_Meet_Segmentation/saved_model_144x256/"
                       "model_float32.onnx",
                       "7f785cf032261a07af7b845f891cab30da3f0757c7b362310e089e3aa8e8860a"),),
        ("background", "person"),
        {"input_size": [256, 144], "layout": "NHWC", "channels": "RGB", "mean": [0.0] * 3,
         "std": [255.0] * 3, "output": "logits", "background": 0, "target": 1},
        "Apache-2.0"),
    CatalogueEntry(
        "road-adas", "segment", "semantic",
        "OpenVINO road-segmentation-adas-0001: background, road, curb, marking; 896x512",
        (CatalogueFile("model", "road_segmentation_adas_0001.onnx",
                       f"{_PINTO}/136_road-segmentation-adas-0001/saved_model/model_float32.onnx",
                       "931f80db4faa9eb37fafaaec35cdd6c7498a0b8afb45e335a535da028d27e50a"),),
        ("background", "road", "curb", "marking"),
        {"input_size": [896, 512], "layout": "NHWC", "channels": "BGR", "mean": [0.0] * 3,
         "std": [1.0] * 3, "output": "softmax", "background": 0, "target": None},
        "Apache-2.0"),
]}


def entry(name: str) -> CatalogueEntry:
    e = CATALOGUE.get(name)
    if e is None:
        raise LabelPilotError(f"no catalogue model {name!r}",
                              hint=f"known: {', '.join(sorted(CATALOGUE))}")
    return e


def _fetch(src: str, dest: Path, timeout: float = 60) -> None:
    """Copy a local path or download an http(s)/file URL to `dest`."""
    parsed = urllib.parse.urlparse(src)
    if parsed.scheme in ("http", "https", "file"):
        try:
            with urllib.request.urlopen(src, timeout=timeout) as r, open(dest, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)
        except OSError as e:
            raise ModelError(f"could not download {src}: {e}",
                             hint="check the network, or download it yourself and pass "
                                  "--from PATH") from None
        return
    path = Path(src).expanduser()
    if not path.is_file():
        raise ModelError(f"{path} does not exist")
    shutil.copyfile(path, dest)


def _weights_out_of_inputs(path: Path) -> bool:
    """Some exports (PP-PicoDet's) declare their weights as graph inputs too, which keeps
    ONNX Runtime from folding constants; drop those inputs (1.5x faster). Needs `onnx`
    (the [train] extra); without it the file stays as downloaded."""
    try:
        import onnx
    except ImportError:
        return False
    model = onnx.load(str(path))
    weights = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) == len(model.graph.input):
        return False
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnx.save(model, str(path))
    return True


def install(models_dir: Path, name: str, source: str | None = None) -> ModelManifest:
    """Install catalogue model `name` into `models_dir/name` (atomic: nothing is left on
    failure). `source`: a local file or folder (files found by their catalogue names) or
    a URL to use instead of the catalogue's (one-file models)."""
    e = entry(name)
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=models_dir))
    try:
        files = {}
        for f in e.files:
            src = f.url
            if source is not None:
                p = Path(source).expanduser()
                if p.is_dir():
                    src = str(p / f.filename)
                elif len(e.files) == 1:
                    src = source
                else:
                    raise ModelError(f"{name} has {len(e.files)} files; --from must be a folder "
                                     "holding " + ", ".join(x.filename for x in e.files))
            dest = tmp / f.filename
            _fetch(src, dest)
            got = sha256_file(dest)
            if got != f.sha256:
                raise ModelError(f"{src} has SHA-256 {got}, but the catalogue's {name} "
                                 f"{f.role} file is {f.sha256}",
                                 hint="it is another version or a damaged download; nothing "
                                      "was installed")
            sha = f.sha256
            if f.filename.endswith(".onnx") and _weights_out_of_inputs(dest):
                sha = sha256_file(dest)  # the optimised copy; the download was checked above
            files[f.role] = ModelFile(f.filename, sha, f.url)
        manifest = ModelManifest(name=e.name, version="1", task=e.task, kind=e.kind,
                                 files=files, labels=list(e.labels),
                                 preprocessing=dict(e.preprocessing),
                                 description=f"{e.description} ({e.licence})")
        (tmp / "manifest.json").write_bytes(manifest.to_json())
        out = models_dir / name
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        return ModelManifest.load(out / "manifest.json")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
