"""Object detectors as ONNX plug-ins: preprocessing and output decoding per published layout.

Layouts (manifest `preprocessing.layout`):
- `yolox`: [1, N, 5+nc] raw grid outputs (xy = (o + grid) * stride, wh = exp(o) * stride,
  strides 8/16/32), score = objectness x class; letterbox top-left, pad 114, BGR 0-255;
- `yolov5`: [1, N, 5+nc] decoded cxcywh in input pixels, objectness and class scores;
- `yolov8`: [1, 4+nc, N] decoded cxcywh and class scores (Ultralytics v8/11 and later);
- `nanodet`: per-stride class maps (sigmoid) and GFL box distributions (reg_max+1 bins per
  side), outputs matched by shape, not by name;
- `nms_boxes`: NMS inside the graph, [K, 6] = class, score, x1, y1, x2, y2 in original
  pixels (PP-PicoDet exports with `scale_factor`);
- `boxes`: plain outputs `boxes` [N,4] (x1,y1,x2,y2 input pixels), `scores` [N], `labels` [N].
A model whose outputs fit none of these is refused at load with the shapes it has.

Tiled (sliced) inference for large images with small objects (`Tiling`): the image is cut
into overlapping square tiles, each detected at the network's input size, the boxes put
back in image coordinates and merged across the seams by class-aware NMS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from labelpilot.annotations import Annotation, Box
from labelpilot.errors import LabelPilotError, ModelError
from labelpilot.models.base import ModelSpec
from labelpilot.models.batching import Batching
from labelpilot.models.manifest import ModelManifest
from labelpilot.models.runtime import OrtSession

LAYOUTS = ("yolox", "yolov5", "yolov8", "nanodet", "nms_boxes", "boxes")


@dataclass(frozen=True)
class Tiling:
    """Square tiles of `size` pixels overlapping by `overlap` (a share of the tile)."""

    size: int
    overlap: float = 0.2

    def __post_init__(self) -> None:
        if not 64 <= self.size <= 16384:
            raise ModelError(f"a tile is 64 to 16384 pixels, not {self.size}")
        if not 0 <= self.overlap < 0.9:
            raise ModelError(f"the tiles' overlap is a share from 0 to 0.9, not {self.overlap}")

    def windows(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """(x1, y1, x2, y2) of each tile: a grid covering the image, the last row and column
        flush with its edges; one window when the image fits a tile."""
        def starts(length: int) -> list[int]:
            if length <= self.size:
                return [0]
            step = max(1, int(self.size * (1 - self.overlap)))
            out = list(range(0, length - self.size, step))
            return [*out, length - self.size]
        return [(x, y, min(width, x + self.size), min(height, y + self.size))
                for y in starts(height) for x in starts(width)]


@dataclass
class DetectSettings:
    layout: str
    input_size: tuple[int, int]  # (width, height)
    channels: str = "BGR"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: str = "letterbox"  # letterbox (top-left, keep ratio) | stretch
    pad_value: float = 114.0
    strides: tuple[int, ...] = (8, 16, 32)
    reg_max: int = 7
    score_threshold: float = 0.25
    nms_iou: float = 0.6
    max_detections: int = 100
    class_thresholds: dict[str, float] = field(default_factory=dict)
    # a detector trained on tiles (`train --tile`) sees large images in tiles of this
    # many pixels by default, as it learnt them
    tile: int | None = None
    tile_overlap: float = 0.2

    @classmethod
    def of(cls, pre: dict[str, Any]) -> DetectSettings:
        p = dict(pre)
        if p.get("layout") not in LAYOUTS:
            raise ModelError(f"unknown detector layout {p.get('layout')!r}",
                             hint=f"one of: {', '.join(LAYOUTS)}")
        p["input_size"] = tuple(int(v) for v in p["input_size"])
        for k in ("mean", "std", "strides"):
            if k in p:
                p[k] = tuple(p[k])
        return cls(**p)


@dataclass
class Prepared:
    """An image ready for the network (`x`, batch axis of 1, and the scale to the image's
    `w` x `h`), or kept whole (`image`) to run alone."""

    x: np.ndarray | None
    sx: float
    sy: float
    w: int
    h: int
    image: np.ndarray | None


@dataclass
class Detections:
    boxes: np.ndarray  # [K, 4] x1, y1, x2, y2 in image pixels
    scores: np.ndarray  # [K]
    classes: np.ndarray  # [K] model class index
    class_scores: np.ndarray | None = None  # [K, C] every class's score, where asked for


def _as_bgr8(image: np.ndarray) -> np.ndarray:
    """Any image (grey, BGRA, 16-bit) as 3-channel 8-bit BGR."""
    if image.dtype == np.uint16:
        image = (image / 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[..., 0], cv2.COLOR_GRAY2BGR)
    return image


class DetectorModel:
    """`predict(image_bgr) -> [Annotation]` (boxes labelled with the model's class names)."""

    def __init__(self, manifest: ModelManifest, *, threads: int | None = None,
                 device: str = "auto") -> None:
        self.manifest = manifest
        self.settings = DetectSettings.of(manifest.preprocessing)
        self._grids: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
        # the tiling used when none is asked for: the one the model was trained with
        self.default_tiling = Tiling(int(self.settings.tile), self.settings.tile_overlap) \
            if self.settings.tile else None
        if not manifest.labels:
            raise ModelError(f"detector {manifest.name} has no class names in its manifest")
        self.spec = ModelSpec(manifest.name, manifest.version, "detect",
                              tuple(manifest.labels), manifest.description)
        # channels with no name (a custom detector uses only some of its base's) are not
        # classes: a box takes the best of the named channels
        self._named = np.array([bool(n) for n in manifest.labels])
        self._mask = None if self._named.all() else self._named.astype(np.float32)
        path, sha = manifest.file("model")
        self.session = OrtSession(path, sha256=sha, threads=threads, device=device)
        self._check_outputs()

    # ---- checks -----------------------------------------------------------------------
    def _shapes(self) -> list[list[Any]]:
        return [list(o.shape) for o in self.session.session.get_outputs()]

    def _check_outputs(self) -> None:
        s = self.settings
        shapes = self._shapes()
        nc = len(self.manifest.labels)

        def last(i: int) -> Any:
            return shapes[i][-1] if shapes and shapes[i] else None

        ok = {
            "yolox": len(shapes) == 1 and last(0) == 5 + nc,
            "yolov5": len(shapes) == 1 and last(0) == 5 + nc,
            "yolov8": len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][1] == 4 + nc,
            "nanodet": len(shapes) == 2 * len(s.strides),
            "nms_boxes": len(shapes) in (1, 2) and last(0) == 6,
            "boxes": {o.name for o in self.session.session.get_outputs()}
                     >= {"boxes", "scores", "labels"},
        }[s.layout]
        if not ok:
            raise ModelError(
                f"{self.session.path.name}: outputs {shapes} do not fit the {s.layout!r} layout "
                f"with {nc} classes", hint="check the manifest's layout and class list")

    # ---- inference --------------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        """The network's input for a BGR image, and the scale (sx, sy) from image pixels to
        input pixels."""
        s = self.settings
        w_in, h_in = s.input_size
        h, w = image.shape[:2]
        if s.resize == "letterbox":
            r = min(w_in / w, h_in / h)
            nw, nh = max(1, round(w * r)), max(1, round(h * r))
            canvas: np.ndarray = np.full((h_in, w_in, 3), round(s.pad_value), np.uint8)
            canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
            sx = sy = r
        else:
            canvas = cv2.resize(image, (w_in, h_in), interpolation=cv2.INTER_CUBIC)
            sx, sy = w_in / w, h_in / h
        # one pass: uint8 HWC (BGR) -> float32 NCHW, channels swapped if the model wants RGB
        blob = np.asarray(cv2.dnn.blobFromImage(canvas, 1.0, swapRB=s.channels == "RGB"),
                          np.float32)
        if any(s.mean) or any(v != 1 for v in s.std):
            blob = (blob - np.array(s.mean, np.float32)[None, :, None, None]) \
                / np.array(s.std, np.float32)[None, :, None, None]
        return blob, sx, sy

    def network_input(self, image: np.ndarray) -> np.ndarray:
        """The network's input [1, 3, H, W] for any image, as `detect` makes it."""
        return self.preprocess(_as_bgr8(image))[0]

    def detect(self, image: np.ndarray, score_threshold: float | None = None,
               tiling: Tiling | None = None) -> Detections:
        """Boxes scored at least the settings' thresholds (per class), or `score_threshold`
        for every class when given; over `tiling`'s tiles (else the model's own, see
        `default_tiling`) when the image exceeds one."""
        image = _as_bgr8(image)
        tiling = tiling or self.default_tiling
        h, w = image.shape[:2]
        windows = tiling.windows(w, h) if tiling is not None else [(0, 0, w, h)]
        if len(windows) == 1:
            return self._detect_whole(image, score_threshold)
        # the whole image too, for the objects larger than a tile (SAHI's standard pass)
        whole = self._detect_whole(image, score_threshold)
        boxes, scores, classes, cut = [whole.boxes], [whole.scores], [whole.classes], \
            [np.zeros(len(whole.boxes), bool)]
        for window in windows:
            d, cut_here = self.detect_window(image, window, score_threshold)
            cut.append(cut_here)
            boxes.append(d.boxes)
            scores.append(d.scores)
            classes.append(d.classes)
        b, s, c = np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)
        keep = ~_covered_cuts(b, c, np.concatenate(cut))
        # the seams: a box found in two tiles is kept once (class-aware NMS); as many boxes
        # per tile as the model gives for one image
        return self._finish(b[keep], s[keep], c[keep], w, h, nms=True,
                            limit=self.settings.max_detections * (len(windows) + 1))

    def detect_window(self, image: np.ndarray, window: tuple[int, int, int, int],
                      score_threshold: float | None = None) -> tuple[Detections, np.ndarray]:
        """The boxes in `window` (x1, y1, x2, y2) of the image, in image coordinates, and
        which of them the window cut (they touch an edge of it inside the image)."""
        x1, y1, x2, y2 = window
        h, w = image.shape[:2]
        d = self._detect_whole(np.ascontiguousarray(_as_bgr8(image[y1:y2, x1:x2])), score_threshold)
        boxes = d.boxes + np.array([x1, y1, x1, y1], np.float32)
        return Detections(boxes, d.scores, d.classes), cut_by_window(boxes, window, w, h)

    def _detect_whole(self, image: np.ndarray, score_threshold: float | None) -> Detections:
        h, w = image.shape[:2]
        s = self.settings
        x, sx, sy = self.preprocess(image)
        if s.layout == "nms_boxes":
            feed = [x]
            if len(self.session.input_names) > 1:
                feed.append(np.array([[sy, sx]], np.float32))
            out = self.session(*feed)[0].reshape(-1, 6)
            boxes, scores, classes = out[:, 2:6].copy(), out[:, 1], out[:, 0].astype(int)
            if len(self.session.input_names) == 1:
                boxes /= np.array([sx, sy, sx, sy], np.float32)
            keep = scores >= self._thresholds(classes, score_threshold)
            return self._finish(boxes[keep], scores[keep], classes[keep], w, h, nms=False)
        return self._decode(self.session(x), sx, sy, w, h, score_threshold)

    def _decode(self, outs: Sequence[np.ndarray], sx: float, sy: float, w: int, h: int,
                score_threshold: float | None) -> Detections:
        """One image's detections from the network's outputs for it (batch axis of 1)."""
        return self._decode_classes(outs, sx, sy, w, h, score_threshold, False)

    def _decode_classes(self, outs: Sequence[np.ndarray], sx: float, sy: float, w: int,
                        h: int, score_threshold: float | None, with_classes: bool
                        ) -> Detections:
        """`_decode`, and with `with_classes` each kept box's score for every class [K, C]
        (layouts that give one class per box: that class's score alone)."""
        s = self.settings
        cls: np.ndarray | None = None
        if s.layout == "yolox":
            boxes, scores, classes, cls = self._decode_yolox(outs[0][0])
        elif s.layout == "yolov5":
            p = outs[0][0]
            cls = self._only_named(p[:, 5:] * p[:, 4:5])
            boxes, scores, classes = _cxcywh(p[:, :4]), cls.max(1), cls.argmax(1)
        elif s.layout == "yolov8":
            p = outs[0][0].T
            cls = self._only_named(p[:, 4:])
            boxes, scores, classes = _cxcywh(p[:, :4]), cls.max(1), cls.argmax(1)
        elif s.layout == "nanodet":
            boxes, scores, classes, cls = self._decode_nanodet(outs)
        else:  # boxes
            named = dict(zip(self.session.output_names, outs, strict=True))
            boxes = named["boxes"].reshape(-1, 4)
            scores = named["scores"].reshape(-1)
            classes = named["labels"].reshape(-1).astype(int)
        keep = (scores >= self._thresholds(classes, score_threshold)) & self._named[np.clip(classes, 0,
                                                                         len(self._named) - 1)]
        boxes = boxes[keep] / np.array([sx, sy, sx, sy], np.float32)
        rows = None
        if with_classes:
            rows = cls[keep] if cls is not None else _one_hot(scores[keep], classes[keep],
                                                              len(self.manifest.labels))
        return self._finish(boxes, scores[keep], classes[keep], w, h, nms=True,
                            class_scores=rows)

    def _thresholds(self, classes: np.ndarray, fixed: float | None = None) -> np.ndarray:
        s = self.settings
        if fixed is not None:
            return np.full(classes.shape, fixed, np.float32)
        if not s.class_thresholds:
            return np.full(classes.shape, s.score_threshold, np.float32)
        names = self.manifest.labels
        table = np.array([s.class_thresholds.get(n, s.score_threshold) for n in names], np.float32)
        return table[np.clip(classes, 0, len(names) - 1)]

    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The anchor points and strides of the input size (made once per size: they were
        a fifth of a served request's decoding)."""
        key = (tuple(self.settings.input_size), tuple(self.settings.strides))
        cached = self._grids.get(key)
        if cached is not None:
            return cached
        w_in, h_in = self.settings.input_size
        grids, strides = [], []
        for st in self.settings.strides:
            gy, gx = np.mgrid[0:h_in // st, 0:w_in // st]
            grids.append(np.stack([gx.ravel(), gy.ravel()], 1))
            strides.append(np.full(gx.size, st))
        made = (np.concatenate(grids).astype(np.float32),
                np.concatenate(strides).astype(np.float32))
        for a in made:
            a.setflags(write=False)
        self._grids[key] = made
        return made

    def _only_named(self, cls: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Class scores [N, C] with the unnamed channels zeroed (`mask`: which to keep)."""
        mask = self._mask if mask is None else mask
        return cls if mask is None else cls * mask

    def _decode_yolox(self, p: np.ndarray, mask: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Boxes, scores, classes and every class's score of the grid's predictions."""
        grid, stride = self._grid()
        if grid.shape[0] != p.shape[0]:
            raise ModelError(f"{self.session.path.name}: {p.shape[0]} predictions, but the "
                             f"strides {self.settings.strides} at {self.settings.input_size} "
                             f"give {grid.shape[0]}")
        xy = (p[:, :2] + grid) * stride[:, None]
        wh = np.exp(np.clip(p[:, 2:4], -10, 10)) * stride[:, None]
        cls = self._only_named(p[:, 5:] * p[:, 4:5], mask)
        return _cxcywh(np.concatenate([xy, wh], 1)), cls.max(1), cls.argmax(1), cls

    def _decode_nanodet(self, outs: Sequence[np.ndarray]
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        s = self.settings
        nc = len(self.manifest.labels)
        bins = s.reg_max + 1
        cls_maps = sorted((o.reshape(-1, nc) for o in outs if o.shape[-1] == nc),
                          key=lambda a: -a.shape[0])
        reg_maps = sorted((o.reshape(-1, 4 * bins) for o in outs if o.shape[-1] == 4 * bins),
                          key=lambda a: -a.shape[0])
        if len(cls_maps) != len(s.strides) or len(reg_maps) != len(s.strides):
            raise ModelError(f"{self.session.path.name}: outputs {[o.shape for o in outs]} are "
                             f"not {len(s.strides)} class maps of {nc} and box maps of {4 * bins}")
        w_in, h_in = s.input_size
        all_b, all_s, all_c, all_m = [], [], [], []
        for st, cm, rm in zip(s.strides, cls_maps, reg_maps, strict=True):
            gh, gw = int(np.ceil(h_in / st)), int(np.ceil(w_in / st))
            gy, gx = np.mgrid[0:gh, 0:gw]
            cx, cy = (gx.ravel() + 0.5) * st, (gy.ravel() + 0.5) * st
            d = rm.reshape(-1, 4, bins)
            d = np.exp(d - d.max(-1, keepdims=True))
            d = (d / d.sum(-1, keepdims=True)) @ np.arange(bins, dtype=np.float32) * st
            all_b.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1))
            cm = self._only_named(cm)
            all_s.append(cm.max(1))
            all_c.append(cm.argmax(1))
            all_m.append(cm)
        return (np.concatenate(all_b), np.concatenate(all_s), np.concatenate(all_c),
                np.concatenate(all_m))

    def decode_yolox_grid(self, p: np.ndarray, *, scale: tuple[float, float],
                          size: tuple[int, int], class_mask: np.ndarray | None = None,
                          min_score: float = 0.0) -> Detections:
        """Detections from a raw YOLOX grid output `p` [N, 5+C] for a `preprocess`ed image of
        `size` (w, h) at `scale` (sx, sy): what a trainer's own module gives, decoded and
        suppressed as `detect` does. `class_mask` keeps some channels only."""
        boxes, scores, classes, _ = self._decode_yolox(p, class_mask)
        keep = scores >= min_score
        sx, sy = scale
        return self._finish(boxes[keep] / np.array([sx, sy, sx, sy], np.float32), scores[keep],
                            classes[keep], size[0], size[1], nms=True)

    def _finish(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, w: int,
                h: int, *, nms: bool, limit: int | None = None,
                class_scores: np.ndarray | None = None) -> Detections:
        """Boxes clipped to the image, suppressed and ordered by score (with their
        `class_scores` rows where given)."""
        boxes = boxes.astype(np.float32).reshape(-1, 4)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        ok = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        boxes, scores, classes = boxes[ok], scores[ok].astype(np.float32), classes[ok]
        rows = class_scores[ok] if class_scores is not None else None
        if nms and len(boxes):
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
            kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), classes.tolist(),
                                           0.0, self.settings.nms_iou)
            idx = np.array(kept, int).reshape(-1)
            boxes, scores, classes = boxes[idx], scores[idx], classes[idx]
            rows = rows[idx] if rows is not None else None
        order = np.argsort(-scores)[: limit or self.settings.max_detections]
        return Detections(boxes[order], scores[order], classes[order].astype(int),
                          rows[order] if rows is not None else None)

    def detect_classes(self, image: np.ndarray, score_threshold: float) -> Detections:
        """The whole image's boxes scored at least `score_threshold`, each with its score
        for every class of the model (`class_scores` [K, C]: what active learning reads)."""
        image = _as_bgr8(image)
        h, w = image.shape[:2]
        if self.settings.layout == "nms_boxes":
            d = self._detect_whole(image, score_threshold)
            d.class_scores = _one_hot(d.scores, d.classes, len(self.manifest.labels))
            return d
        x, sx, sy = self.preprocess(image)
        return self._decode_classes(self.session(x), sx, sy, w, h, score_threshold, True)

    # ---- batches (the model server) ------------------------------------------------------
    BATCH_LAYOUTS = ("yolox", "yolov5", "yolov8")

    def enable_batching(self) -> Batching:
        """Run `predict_batch`'s images as one batch where the graph can take one (see
        `OrtSession.enable_batching`); layouts whose outputs carry no batch axis stay one
        image at a time."""
        if self.settings.layout not in self.BATCH_LAYOUTS:
            self.session.batching = Batching(
                1, f"one image at a time: the {self.settings.layout} layout's outputs have "
                   "no batch axis")
            return self.session.batching
        return self.session.enable_batching()

    def predict_batch(self, images: Sequence[np.ndarray], *, min_score: float = 0.0
                      ) -> list[list[Annotation]]:
        """`predict` for several images: one network run for all of them where batching is
        enabled (tiled images and single-image graphs run one at a time)."""
        items = [self.prepare(im) for im in images]
        return [self.finish(p, r, min_score)
                for p, r in zip(items, self.run_prepared(items), strict=True)]

    # The three stages of `predict_batch`, for a server that prepares and finishes images
    # in the requests' threads and runs only the network in its batching thread.
    def prepare(self, image: np.ndarray) -> Prepared:
        """An image made ready for `run_prepared`: its network input where it can join a
        batch, else the image itself (run whole, alone)."""
        image = _as_bgr8(image)
        h, w = image.shape[:2]
        alone = (self.session.batching.max_batch == 1
                 or (self.default_tiling is not None
                     and len(self.default_tiling.windows(w, h)) > 1))
        if alone:
            return Prepared(None, 1.0, 1.0, w, h, image)
        x, sx, sy = self.preprocess(image)
        return Prepared(x, sx, sy, w, h, None)

    def run_prepared(self, items: Sequence[Prepared]) -> list[Any]:
        """The network's outputs for each prepared image (one run for those that batch),
        or the finished proposals of those that run alone."""
        out: list[Any] = [None] * len(items)
        batch = [k for k, p in enumerate(items) if p.x is not None]
        if batch:
            outs = self.session(np.concatenate([items[k].x for k in batch]))  # type: ignore[misc]
            for j, k in enumerate(batch):
                out[k] = [o[j:j + 1] for o in outs]
        for k, p in enumerate(items):
            if p.image is not None:
                out[k] = self.predict(p.image)
        return out

    def finish(self, p: Prepared, outputs: Any, min_score: float = 0.0) -> list[Annotation]:
        """The proposals of a prepared image from what `run_prepared` gave for it."""
        if p.image is not None:
            return [a for a in outputs if (a.score or 0.0) >= min_score]
        return self._proposals(self._decode(outputs, p.sx, p.sy, p.w, p.h, None), min_score)

    def threshold_for(self, label: str) -> float:
        """The score at which this model shows a detection of class `label`."""
        return self.settings.class_thresholds.get(label, self.settings.score_threshold)

    def predict(self, image: np.ndarray, *, min_score: float = 0.0,
                score_threshold: float | None = None,
                tiling: Tiling | None = None) -> list[Annotation]:
        """Detections as proposals: those the model shows (its thresholds), or every one
        scored at least `score_threshold` (evaluation's protocol); tiled with `tiling`."""
        return self._proposals(self.detect(image, score_threshold, tiling), min_score)

    def _proposals(self, d: Detections, min_score: float) -> list[Annotation]:
        out = []
        for b, sc, c in zip(d.boxes, d.scores, d.classes, strict=True):
            if sc < min_score:
                continue
            out.append(Annotation(label=self.manifest.labels[int(c)],
                                  shape=Box(*(float(v) for v in b)),
                                  score=float(min(1.0, max(0.0, sc))), source=self.spec.source,
                                  status="predicted"))
        return out


def check_tiling(tile: int | None, overlap: float, kind: str, sides: list[int]) -> Tiling | None:
    """The tiling asked for, checked: detectors only, and a tile smaller than the largest
    of the images (`sides`: each image's long side) or it would do nothing."""
    if tile is None:
        return None
    if kind != "detect":
        raise LabelPilotError(f"tiling is for detectors; this is a {kind} model",
                              hint="leave out --tile")
    tiling = Tiling(int(tile), float(overlap))
    if sides and tile >= max(sides):
        raise LabelPilotError(f"a tile of {tile} px is not smaller than any image (the largest "
                              f"is {max(sides)} px): tiling would change nothing",
                              hint="use a smaller --tile, or leave it out")
    return tiling


def cut_by_window(boxes: np.ndarray, window: tuple[int, int, int, int], width: int,
                  height: int, margin: float = 2.0) -> np.ndarray:
    """Which boxes (image coordinates) found in `window` of a `width` x `height` image
    touch one of the window's edges that lie inside the image: parts of objects the
    window cut."""
    x1, y1, x2, y2 = window
    b = boxes
    return (((b[:, 0] <= x1 + margin) & (x1 > 0)) | ((b[:, 1] <= y1 + margin) & (y1 > 0))
            | ((b[:, 2] >= x2 - margin) & (x2 < width)) | ((b[:, 3] >= y2 - margin) & (y2 < height)))


def _covered_cuts(boxes: np.ndarray, classes: np.ndarray, cut: np.ndarray,
                  share: float = 0.6) -> np.ndarray:
    """Which cut boxes (parts of an object at a tile's edge) lie mostly (`share` of their
    area) inside another box of their class: those are dropped for the whole one."""
    out = np.zeros(len(boxes), bool)
    for i in np.nonzero(cut)[0]:
        same = (classes == classes[i]) & (np.arange(len(boxes)) != i)
        if not same.any():
            continue
        o = boxes[same]
        ix = np.clip(np.minimum(o[:, 2], boxes[i, 2]) - np.maximum(o[:, 0], boxes[i, 0]), 0, None)
        iy = np.clip(np.minimum(o[:, 3], boxes[i, 3]) - np.maximum(o[:, 1], boxes[i, 1]), 0, None)
        area = max(1e-6, float((boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])))
        bigger = (o[:, 2] - o[:, 0]) * (o[:, 3] - o[:, 1]) > area
        out[i] = bool(((ix * iy / area >= share) & bigger).any())
    return out


def _one_hot(scores: np.ndarray, classes: np.ndarray, n: int) -> np.ndarray:
    """Class score rows for boxes that carry one class each: that class's score."""
    out = np.zeros((len(scores), max(n, 1)), np.float32)
    if len(scores):
        out[np.arange(len(scores)), np.clip(classes, 0, max(n, 1) - 1)] = scores
    return out


def _cxcywh(b: np.ndarray) -> np.ndarray:
    return np.concatenate([b[:, :2] - b[:, 2:4] / 2, b[:, :2] + b[:, 2:4] / 2], 1)
