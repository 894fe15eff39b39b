"""The OCR plug-in: a DB text detector, an orientation classifier and a CTC recognizer.

The embedded default runs the PP-OCRv6 small detector and recognizer (and the 0/180
degree line classifier) that the `rapidocr` wheel ships; LabelPilot owns the pipeline
around them:

- the detector's input size follows the image (small images are not blown up to a
  736-pixel short side; large ones are capped), so small pages cost a fraction;
- text lines are cropped with a perspective warp from their quads (vertical lines are
  turned), classified for 180-degree rotation in one batch, and recognized in batches of
  crops of similar width (one padded tensor per batch, not one run per line);
- results are quads in reading order with a transcription and a score each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from labelpilot.annotations import Annotation, Quad
from labelpilot.errors import ModelError, ValidationError
from labelpilot.geometry.crops import is_vertical, rectify
from labelpilot.models.base import ModelSpec
from labelpilot.models.batching import Batching
from labelpilot.models.manifest import ModelManifest
from labelpilot.models.runtime import OrtSession

TEXT_LABEL = "text"


@dataclass
class OcrSettings:
    # Detector input: the short side is brought to `det_min_side` (as PaddleOCR and
    # rapidocr do), the long side capped at `det_max_side`. `FAST` halves the detector's
    # pixels for a small loss on small scene text (see benchmarks/ocr_throughput.py).
    det_max_side: int = 2000
    det_min_side: int = 736
    det_thresh: float = 0.3
    det_box_thresh: float = 0.5
    det_unclip_ratio: float = 1.6
    det_max_candidates: int = 1000
    # Lines the recognizer is less sure of than this are dropped (rapidocr's text_score);
    # kept lines under `low_confidence` are flagged for reviewers.
    text_score: float = 0.5
    low_confidence: float = 0.8
    use_cls: bool = True
    cls_thresh: float = 0.9
    rec_height: int = 48
    rec_batch: int = 16
    # Crops wider than this (in units of the line height) are recognized alone.
    rec_max_ratio: float = 40.0
    extra: dict[str, Any] = field(default_factory=dict)


FAST = {"det_min_side": 480, "det_max_side": 960}


@dataclass
class TextLine:
    points: np.ndarray  # (4, 2) float, clockwise from the reading top-left
    det_score: float
    text: str = ""
    score: float = 0.0
    # the smallest gap between the best and the second-best character over the line's
    # kept time steps (CTC top-2 margin): near 0, the recognizer nearly read another text
    margin: float = 1.0


class OcrModel:
    """Detect + (classify) + recognize. `predict(image_bgr) -> [Annotation]`."""

    def __init__(self, manifest: ModelManifest, *, threads: int | None = None,
                 device: str = "auto", settings: OcrSettings | None = None) -> None:
        self.manifest = manifest
        self.spec = ModelSpec(manifest.name, manifest.version, "ocr", (TEXT_LABEL,),
                              manifest.description)
        self.settings = settings or OcrSettings(**manifest.preprocessing)
        def session(role: str) -> OrtSession:
            path, sha = manifest.file(role)
            return OrtSession(path, sha256=sha, threads=threads, device=device)

        self.det = session("det")
        self.rec = session("rec")
        self.cls = session("cls") if "cls" in manifest.files and self.settings.use_cls else None
        self.charset = self._charset(manifest)

    def _charset(self, manifest: ModelManifest) -> list[str]:
        if "dict" in manifest.files:
            path, _ = manifest.file("dict")
            chars = path.read_text(encoding="utf-8").splitlines()
        else:
            meta = self.rec.metadata.get("character")
            if not meta:
                raise ModelError(f"recognizer {self.rec.path} carries no character list and "
                                 "the manifest names no 'dict' file")
            chars = meta.splitlines()
        classes = int(self.rec.session.get_outputs()[0].shape[-1])
        # CTC: class 0 is the blank; PaddleOCR appends a space as the last class.
        table = ["", *chars]
        if classes == len(table) + 1:
            table.append(" ")
        if classes != len(table):
            raise ModelError(f"recognizer {self.rec.path} has {classes} classes but its "
                             f"character list gives {len(table)}")
        return table

    # --- detection ----------------------------------------------------------------

    def _det_size(self, h: int, w: int) -> tuple[int, int]:
        s = self.settings
        scale = min(1.0, s.det_max_side / max(h, w))
        if min(h, w) * scale < s.det_min_side:
            scale = min(s.det_min_side / min(h, w), s.det_max_side / max(h, w))
        rh = max(32, round(h * scale / 32) * 32)
        rw = max(32, round(w * scale / 32) * 32)
        return rh, rw

    def det_input(self, image: np.ndarray) -> np.ndarray:
        """The detector's input tensor for an image (1, 3, H, W), sized by `_det_size`."""
        rh, rw = self._det_size(*image.shape[:2])
        x = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray((x.astype(np.float32) * (2 / 255.0) - 1.0)
                                    .transpose(2, 0, 1)[None])

    def detect(self, image: np.ndarray) -> list[TextLine]:
        h, w = image.shape[:2]
        x = self.det_input(image)
        rh, rw = x.shape[2:]
        prob = self.det(x)[0][0, 0]
        return self._boxes(prob, w / rw, h / rh, w, h)

    def _boxes(self, prob: np.ndarray, sx: float, sy: float, w: int, h: int) -> list[TextLine]:
        import pyclipper

        s = self.settings
        bitmap = cv2.dilate((prob > s.det_thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        lines = []
        for contour in contours[: s.det_max_candidates]:
            rect = cv2.minAreaRect(contour)
            if min(rect[1]) < 3:
                continue
            box = cv2.boxPoints(rect)
            score = _box_score(prob, box)
            if score < s.det_box_thresh:
                continue
            area = cv2.contourArea(box)
            length = cv2.arcLength(box, True)
            if length <= 0:
                continue
            offset = pyclipper.PyclipperOffset()
            offset.AddPath(box.astype(np.int64).tolist(), pyclipper.JT_ROUND,
                           pyclipper.ET_CLOSEDPOLYGON)
            expanded = offset.Execute(area * s.det_unclip_ratio / length)
            if not expanded:
                continue
            rect2 = cv2.minAreaRect(np.asarray(expanded[0], dtype=np.float32))
            if min(rect2[1]) < 5:
                continue
            pts = cv2.boxPoints(rect2)
            pts[:, 0] = np.clip(pts[:, 0] * sx, 0, w)
            pts[:, 1] = np.clip(pts[:, 1] * sy, 0, h)
            lines.append(TextLine(_clockwise_from_top_left(pts), float(score)))
        return _reading_order(lines)

    # --- classification and recognition -------------------------------------------

    def _crops(self, image: np.ndarray, lines: Sequence[TextLine]) -> list[np.ndarray]:
        return [rectify(image, ln.points) for ln in lines]

    def _fix_orientation(self, crops: list[np.ndarray], lines: list[TextLine] | None) -> None:
        if self.cls is None or not crops:
            return
        for start in range(0, len(crops), 32):
            chunk = crops[start:start + 32]
            batch = np.stack([norm_pad(c, 48, 192) for c in chunk])
            probs = self.cls(batch)[0]
            for k, p in enumerate(probs):
                if int(np.argmax(p)) == 1 and p[1] > self.settings.cls_thresh:
                    i = start + k
                    crops[i] = cv2.rotate(crops[i], cv2.ROTATE_180)
                    if lines is not None:
                        lines[i].points = np.roll(lines[i].points, 2, axis=0)

    def recognize(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Transcriptions and scores for text-line crops (BGR), in the given order."""
        return [(text, score) for text, score, _ in self.recognize_detailed(crops)]

    def recognize_detailed(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float, float]]:
        """`recognize` with each line's CTC top-2 margin (see `TextLine.margin`)."""
        s = self.settings
        out: list[tuple[str, float, float]] = [("", 0.0, 0.0)] * len(crops)
        ratios = [c.shape[1] / max(1, c.shape[0]) for c in crops]
        order = sorted(range(len(crops)), key=lambda i: ratios[i])
        i = 0
        while i < len(order):
            # A batch of similar widths: padding costs compute, so cut where it would double.
            j = i + 1
            while (j < len(order) and j - i < s.rec_batch
                   and ratios[order[j]] <= max(2 * ratios[order[i]], 4.0)
                   and ratios[order[j]] <= s.rec_max_ratio):
                j += 1
            idx = order[i:j]
            width = self._rec_width(max(ratios[k] for k in idx))
            batch = np.stack([norm_pad(crops[k], s.rec_height, width) for k in idx])
            logits = self.rec(batch)[0]
            for k, decoded in zip(idx, self._decode(logits), strict=True):
                out[k] = decoded
            i = j
        return out

    def _rec_width(self, ratio: float, height: int | None = None) -> int:
        """The recognizer's input width for a line `ratio` times as wide as high."""
        height = height or self.settings.rec_height
        return max(math.ceil(ratio * height / 8) * 8, height)

    def rec_input(self, crop: np.ndarray, height: int | None = None) -> np.ndarray:
        """The recognizer's input tensor (1, 3, height, width) for one line crop, as a batch
        of one line gets it (at another input height where given)."""
        height = height or self.settings.rec_height
        ratio = min(crop.shape[1] / max(1, crop.shape[0]), self.settings.rec_max_ratio)
        return norm_pad(crop, height, self._rec_width(ratio, height))[None]

    def _decode(self, logits: np.ndarray) -> list[tuple[str, float, float]]:
        """Greedy CTC decoding of softmax outputs [B, T, C]: (text, mean probability of the
        kept characters, their smallest top-2 margin) per line."""
        best = logits.argmax(axis=2)
        top2 = np.partition(logits, -2, axis=2)[..., -2:] if logits.shape[2] > 1 \
            else np.concatenate([np.zeros_like(logits), logits], 2)
        conf = top2[..., 1]
        gap = top2[..., 1] - top2[..., 0]
        results = []
        for seq, c, g in zip(best, conf, gap, strict=True):
            keep = np.ones(len(seq), dtype=bool)
            keep[1:] = seq[1:] != seq[:-1]
            keep &= seq != 0
            chars = seq[keep]
            text = "".join(self.charset[k] for k in chars)
            score = float(c[keep].mean()) if chars.size else 0.0
            margin = float(g[keep].min()) if chars.size else 0.0
            results.append((text, score, margin))
        return results

    # --- the whole pipeline -------------------------------------------------------

    def read(self, image: np.ndarray) -> list[TextLine]:
        """Text lines in reading order; lines read with a score under `text_score` dropped.

        A vertical line may read downwards or upwards, which the small orientation
        classifier tells poorly: such lines are read both ways and the surer reading kept.
        """
        return self.read_batch([image])[0]

    def read_batch(self, images: Sequence[np.ndarray]) -> list[list[TextLine]]:
        """`read` for several images: the detector runs on each, the recognizer on the lines
        of all of them together (batches of similar widths across images)."""
        staged = [self._stage(image) for image in images]
        results = self.recognize_detailed([c for _, crops, extra, _ in staged
                                           for c in crops + extra])
        out, at = [], 0
        for lines, crops, extra, upright in staged:
            n = len(crops) + len(extra)
            out.append(self._settle(lines, upright, results[at:at + n]))
            at += n
        return out

    def _stage(self, image: np.ndarray
               ) -> tuple[list[TextLine], list[np.ndarray], list[np.ndarray], list[int]]:
        """An image's lines and their crops up to recognition: (lines, crops, the vertical
        lines' crops turned over, which lines those are)."""
        lines = self.detect(image)
        vertical = [is_vertical(ln.points) for ln in lines]
        crops = self._crops(image, lines)
        for ln, v in zip(lines, vertical, strict=True):
            if v:  # rectify turned the crop a quarter left: the text starts at corner 1
                ln.points = np.roll(ln.points, -1, axis=0)
        flat = [i for i, v in enumerate(vertical) if not v]
        flat_crops = [crops[i] for i in flat]
        flat_lines = [lines[i] for i in flat]
        self._fix_orientation(flat_crops, flat_lines)
        for i, c in zip(flat, flat_crops, strict=True):
            crops[i] = c
        upright = [i for i, v in enumerate(vertical) if v]
        extra = [cv2.rotate(crops[i], cv2.ROTATE_180) for i in upright]
        return lines, crops, extra, upright

    def _settle(self, lines: list[TextLine], upright: list[int],
                results: Sequence[tuple[str, float, float]]) -> list[TextLine]:
        """The lines with their readings (a vertical line: the surer of its two)."""
        for line, (text, score, margin) in zip(lines, results[:len(lines)], strict=True):
            line.text, line.score, line.margin = text, score, margin
        for i, (text, score, margin) in zip(upright, results[len(lines):], strict=True):
            if score > lines[i].score:
                lines[i].text, lines[i].score, lines[i].margin = text, score, margin
                lines[i].points = np.roll(lines[i].points, 2, axis=0)
        return [ln for ln in lines if ln.text.strip() and ln.score >= self.settings.text_score]

    def predict(self, image: np.ndarray, *, min_score: float = 0.0) -> list[Annotation]:
        """Text lines as `predicted` annotations of this model (quads, text, score); those
        under the low-confidence mark carry `low_confidence: true` for reviewers."""
        return self._proposals(self.read(image), min_score)

    def read_whole(self, image: np.ndarray) -> list[TextLine]:
        """The whole image read as one text line (a crop of one line, as recognition data
        sets and PPOCRLabel's recognition-only mode hold): the detector does not run; the
        crop is read upright and upside down and the surer reading kept (the orientation
        classifier turns some upright plates over), whatever its score (a person reviews
        every image of such a set; an empty reading is dropped)."""
        h, w = image.shape[:2]
        quad = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        if is_vertical(quad):  # a tall crop reads top down: the text starts top right
            quad = np.roll(quad, -1, axis=0)
        crop = rectify(image, quad.astype(np.float64))
        upright, turned = self.recognize_detailed([crop, cv2.rotate(crop, cv2.ROTATE_180)])
        line = TextLine(quad, 1.0)
        if turned[1] > upright[1]:
            line.points = np.roll(quad, -2, axis=0)  # the text starts at the bottom right
            upright = turned
        line.text, line.score, line.margin = upright
        return [line] if line.text.strip() else []

    def predict_whole(self, image: np.ndarray, *, min_score: float = 0.0) -> list[Annotation]:
        """`predict` with the whole image as one line (see `read_whole`)."""
        return self._proposals(self.read_whole(image), min_score)

    def _proposals(self, lines: list[TextLine], min_score: float) -> list[Annotation]:
        out = []
        for line in lines:
            if line.score < min_score:
                continue
            attrs: dict[str, Any] = {"det_score": round(line.det_score, 4)}
            if line.score < self.settings.low_confidence:
                attrs["low_confidence"] = True
            out.append(Annotation(
                label=TEXT_LABEL, shape=Quad(tuple(map(tuple, line.points.tolist()))),
                text=line.text, score=min(1.0, max(0.0, line.score)), source=self.spec.source,
                status="predicted", attributes=attrs))
        return out

    def enable_batching(self) -> Batching:
        """What `predict_batch` batches: the detector sees each image at its own size, one
        at a time; the recognizer reads the lines of all the images together."""
        return Batching(None, "the detector runs image by image (each at its own size); "
                              "the lines of a batch's images are recognized together")

    def predict_batch(self, images: Sequence[np.ndarray], *, min_score: float = 0.0
                      ) -> list[list[Annotation]]:
        """`predict` for several images, their lines recognized together (`read_batch`)."""
        return [self._proposals(lines, min_score) for lines in self.read_batch(images)]

    def read_quads(self, image: np.ndarray, quads: Sequence[np.ndarray]) -> list[TextLine]:
        """The lines at given quads (4 corners each, the text starting at the first), read
        with their scores and margins; the detector does not run."""
        crops = [rectify(image, np.asarray(q, np.float64)) for q in quads]
        lines = [TextLine(np.asarray(q, np.float32), 1.0) for q in quads]
        for line, (text, score, margin) in zip(lines, self.recognize_detailed(crops),
                                               strict=True):
            line.text, line.score, line.margin = text, score, margin
        return lines

    def recognize_quad(self, image: np.ndarray, corners: Sequence[tuple[float, float]]
                       ) -> tuple[str, float]:
        """Re-recognize one quad a person drew or moved (the others are not touched); its
        first corner is where the text starts."""
        h, w = image.shape[:2]
        pts = np.asarray(corners, dtype=np.float64)
        if pts.shape != (4, 2) or not np.isfinite(pts).all():
            raise ValidationError("a quad needs 4 finite (x, y) corners")
        if (pts[:, 0] < -1).any() or (pts[:, 1] < -1).any() or (pts[:, 0] > w + 1).any() \
                or (pts[:, 1] > h + 1).any():
            raise ValidationError(f"the quad {pts.tolist()} reaches outside the {w}x{h} image")
        if abs(cv2.contourArea(pts.astype(np.float32))) < 4:
            raise ValidationError(f"the quad {pts.tolist()} is degenerate (no area to read)")
        # The quad's corner order gives the reading direction (a person drew it).
        return self.recognize([rectify(image, pts)])[0]


def _box_score(prob: np.ndarray, box: np.ndarray) -> float:
    h, w = prob.shape
    xmin = int(np.clip(np.floor(box[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(box[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(box[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(box[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    shifted = box.copy()
    shifted[:, 0] -= xmin
    shifted[:, 1] -= ymin
    cv2.fillPoly(mask, [shifted.astype(np.int32)], 1)
    return float(cv2.mean(prob[ymin:ymax + 1, xmin:xmax + 1], mask)[0])


def _clockwise_from_top_left(pts: np.ndarray) -> np.ndarray:
    """Order 4 corners clockwise (image y down) starting at the reading top-left."""
    c = pts.mean(axis=0)
    ang = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
    pts = pts[np.argsort(ang)]  # clockwise on screen: increasing angle with y down
    # Start at the corner of the top edge's left end: the top edge is the longer
    # near-horizontal side for horizontal lines.
    start = int(np.argmin(pts[:, 0] + pts[:, 1]))
    return np.roll(pts, -start, axis=0).astype(np.float64)


def _reading_order(lines: list[TextLine]) -> list[TextLine]:
    """Top to bottom; within a row (centres within half a line height), left to right."""
    if not lines:
        return lines
    items = sorted(lines, key=lambda ln: (ln.points[:, 1].mean(), ln.points[:, 0].min()))
    rows: list[list[TextLine]] = []
    for ln in items:
        cy = ln.points[:, 1].mean()
        height = ln.points[:, 1].max() - ln.points[:, 1].min()
        if rows:
            last = rows[-1][-1]
            if abs(cy - last.points[:, 1].mean()) < 0.5 * max(height, 1.0):
                rows[-1].append(ln)
                continue
        rows.append([ln])
    return [ln for row in rows for ln in sorted(row, key=lambda t: t.points[:, 0].min())]


def norm_pad(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to `height` keeping the aspect ratio (at most `width` wide), scale to
    [-1, 1], pad with zeros on the right: a (3, height, width) float32 array."""
    h, w = crop.shape[:2]
    new_w = min(width, max(1, math.ceil(height * w / max(1, h))))
    resized = cv2.resize(crop, (new_w, height), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :new_w] = resized.astype(np.float32).transpose(2, 0, 1) * (2 / 255.0) - 1.0
    return out


def dictionary(manifest: ModelManifest) -> set[str]:
    """The characters a recognizer can read (its dict file, else the list its ONNX file
    carries), without starting a session."""
    if "dict" in manifest.files:
        path, _ = manifest.file("dict")
        return set(path.read_text(encoding="utf-8").splitlines()) | {" "}
    import onnx

    path, _ = manifest.file("rec")
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
            .metadata_props}
    if "character" not in meta:
        raise ModelError(f"recognizer {path} carries no character list")
    return set(meta["character"].splitlines()) | {" "}


def builtin_manifest() -> ModelManifest:
    """The embedded OCR model: the PP-OCRv6 small files inside the `rapidocr` wheel."""
    try:
        import rapidocr
    except ImportError:
        raise ModelError("the embedded OCR model comes with the rapidocr package",
                         hint="pip install rapidocr") from None
    root = Path(rapidocr.__file__).parent / "models"
    from labelpilot.models.manifest import ModelFile

    return ModelManifest(
        name="ocr", version="ppocrv6-small", task="ocr", kind="ocr",
        files={"det": ModelFile("PP-OCRv6_det_small.onnx", _RAPIDOCR_SHA["det"]),
               "rec": ModelFile("PP-OCRv6_rec_small.onnx", _RAPIDOCR_SHA["rec"]),
               "cls": ModelFile("ch_ppocr_mobile_v2.0_cls_mobile.onnx", _RAPIDOCR_SHA["cls"])},
        labels=[TEXT_LABEL], description="PP-OCRv6 small det + rec and the v2 line "
        "orientation classifier, as shipped in the rapidocr wheel", root=root)


# Checked before use: a file that differs is refused.
_RAPIDOCR_SHA = {
    "det": "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
    "rec": "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
    "cls": "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
}
