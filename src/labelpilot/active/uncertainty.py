"""How unsure a model is about an image: a score in [0, 1] (higher: labeling it teaches
the model more), the parts it is made of, and the reason in words for the editor.

OCR: the lowest line confidence, the smallest CTC top-2 margin (a character nearly read
as another) and the lines near the low-confidence mark. Detection: the class entropy and
top-2 margin of its boxes, the boxes near their class's display threshold, and how much
the boxes of the image and of its mirror image disagree. Segmentation (an interactive
segmenter answering a grid of clicks, as segment everything prompts it): the masks' own
quality estimate (SAM's predicted IoU, a semantic helper's confidence), the disagreement
between the masks one click gets (SAM answers three), and how much the answer changes
when the click moves a little (any segmenter, the graph cut too). Each part is in [0, 1];
the score is their mean, and the reason names the largest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelpilot.geometry.iou import box_iou, mask_iou
from labelpilot.models.base import Click, InteractiveSegmenter, Prompt
from labelpilot.models.detect import DetectorModel
from labelpilot.models.ocr import TextLine

# boxes scored under this are noise, not doubt
DETECT_FLOOR = 0.1
# a box this close to its class's display threshold may be shown or not: a coin toss
NEAR_THRESHOLD = 0.15
# an OCR line this close to the low-confidence mark
NEAR_LOW = 0.1
# no part this large: the reason says the model is sure of the image
SURE = 0.2


@dataclass
class Informativeness:
    score: float
    parts: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {k: round(v, 4) for k, v in self.parts.items()} | self.details


def _count_part(n: int) -> float:
    """0 for none, 0.5 for one, 0.75 for two...: more is more, with a ceiling."""
    return 1.0 - 0.5 ** n


def score_lines(lines: Sequence[TextLine], *, low_confidence: float) -> Informativeness:
    """An OCR model's doubt about an image from its read lines."""
    if not lines:
        return Informativeness(0.5, {"no_text": 0.5}, "the model found no text to read",
                               {"lines": 0})
    worst = min(lines, key=lambda ln: ln.score)
    tightest = min(lines, key=lambda ln: ln.margin)
    near = sum(abs(ln.score - low_confidence) < NEAR_LOW for ln in lines)
    parts = {"low_confidence": 1.0 - worst.score, "ctc_margin": 1.0 - tightest.margin,
             "near_threshold": _count_part(near)}
    words = {
        "low_confidence": f"lowest line confidence {worst.score:.2f} ({worst.text!r})",
        "ctc_margin": f"a character of {tightest.text!r} nearly read as another "
                      f"(top-2 margin {tightest.margin:.2f})",
        "near_threshold": f"{near} line(s) near the low-confidence mark {low_confidence:g}",
    }
    top = max(parts, key=lambda k: parts[k])
    reason = words[top] if parts[top] >= SURE else (
        f"the model is sure of it ({len(lines)} line(s), the lowest confidence "
        f"{worst.score:.2f})")
    return Informativeness(float(np.mean(list(parts.values()))), parts, reason,
                           {"lines": len(lines)})


def _entropy_margin(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each box's class entropy (normalised to [0, 1]) and top-2 score margin."""
    n = rows.shape[1]
    if n < 2:
        return np.zeros(len(rows)), rows[:, 0] if len(rows) else np.zeros(0)
    p = rows / np.clip(rows.sum(1, keepdims=True), 1e-9, None)
    ent = -(p * np.log(np.clip(p, 1e-12, None))).sum(1) / np.log(n)
    top = np.sort(rows, axis=1)[:, -2:]
    return ent, top[:, 1] - top[:, 0]


def _flip_disagreement(model: DetectorModel, image: np.ndarray, shown: Any,
                       shown_thr: np.ndarray) -> float:
    """1 - the mean best IoU of each shown box (of the image and of its mirror image)
    with a box of its class in the other: 0 when both agree, 1 when nothing matches."""
    w = image.shape[1]
    mirror = model.detect_classes(image[:, ::-1].copy(), DETECT_FLOOR)
    boxes = mirror.boxes.copy()
    boxes[:, [0, 2]] = w - mirror.boxes[:, [2, 0]]
    thr_m = np.array([model.threshold_for(model.manifest.labels[int(c)]) for c in mirror.classes])
    a_keep = shown.scores >= shown_thr
    b_keep = mirror.scores >= thr_m if len(thr_m) else np.zeros(0, bool)
    a, ac = shown.boxes[a_keep], shown.classes[a_keep]
    b, bc = boxes[b_keep], mirror.classes[b_keep]
    if not len(a) and not len(b):
        return 0.0
    if not len(a) or not len(b):
        return 1.0
    iou = box_iou(a, b) * (ac[:, None] == bc[None, :])
    best = np.concatenate([iou.max(1), iou.max(0)])
    return float(1.0 - best.mean())


def score_detections(model: DetectorModel, image: np.ndarray, *, flip: bool = True
                     ) -> Informativeness:
    """A detector's doubt about an image (see the module)."""
    found = model.detect_classes(image, DETECT_FLOOR)
    labels = model.manifest.labels
    rows = found.class_scores if found.class_scores is not None else np.zeros((0, 1))
    thr = np.array([model.threshold_for(labels[int(c)]) for c in found.classes], np.float32)
    # the class doubt of the boxes shown or nearly shown (a faint box's margin is small
    # whatever its class)
    relevant = found.scores >= thr - NEAR_THRESHOLD if len(thr) else np.zeros(0, bool)
    ent, margin = _entropy_margin(rows[relevant])
    rows = rows[relevant]
    near = int((np.abs(found.scores - thr) < NEAR_THRESHOLD).sum()) if len(thr) else 0
    parts = {"class_entropy": float(ent.max()) if len(ent) else 0.0,
             "class_margin": float(1.0 - margin.min()) if len(margin) else 0.0,
             "near_threshold": _count_part(near)}
    if flip:
        parts["flip_disagreement"] = _flip_disagreement(model, image, found, thr)
    details: dict[str, Any] = {"boxes": int((found.scores >= thr).sum()) if len(thr) else 0}
    words = {"near_threshold": f"{near} box(es) scored near their class's display threshold",
             "flip_disagreement": f"the mirror image's boxes disagree "
                                  f"(disagreement {parts.get('flip_disagreement', 0):.2f})"}
    if len(ent):
        k = int(ent.argmax())
        order = np.argsort(-rows[k])[:2]
        words["class_entropy"] = (f"a box torn between classes "
                                  f"({', '.join(labels[int(i)] for i in order)}; entropy "
                                  f"{ent[k]:.2f})")
        j = int(margin.argmin())
        order = np.argsort(-rows[j])[:2]
        words["class_margin"] = (f"a box nearly another class ({labels[int(order[0])]} over "
                                 f"{labels[int(order[-1])]} by {margin[j]:.2f})"
                                 if rows.shape[1] > 1 else
                                 f"a {labels[int(order[0])]} box scored only {margin[j]:.2f}")
    top = max(parts, key=lambda key: parts[key])
    reason = words.get(top, "") if parts[top] >= SURE else ""
    if not reason:
        reason = f"the model is sure of it ({details['boxes']} box(es) shown)"
    return Informativeness(float(np.mean(list(parts.values()))), parts, reason, details)


# segmentation: clicks on a grid of this many per side, each also moved by this share of
# the image's longer side
MASK_GRID = 3
MASK_JITTER = 0.02


def score_masks(segmenter: InteractiveSegmenter, image: np.ndarray, *, grid: int = MASK_GRID,
                jitter: float = MASK_JITTER) -> Informativeness:
    """An interactive segmenter's doubt about an image (`image`: RGB; see the module)."""
    h, w = image.shape[:2]
    emb = segmenter.embed(image)
    step = jitter * max(h, w)
    quality: list[float] = []
    disagree: list[float] = []
    unstable: list[float] = []
    for gy in range(grid):
        for gx in range(grid):
            x, y = (gx + 0.5) * w / grid, (gy + 0.5) * h / grid
            answers = segmenter.predict(emb, Prompt([Click(float(x), float(y))]))
            if not answers:
                continue
            best = answers[0]
            if best.quality is not None:
                quality.append(float(best.quality))
            if len(answers) > 1:
                pairs = [mask_iou(a.mask, b.mask) for i, a in enumerate(answers)
                         for b in answers[i + 1:]]
                disagree.append(1.0 - float(np.mean(pairs)))
            moved = segmenter.predict(emb, Prompt([Click(float(min(w - 1, x + step)),
                                                         float(min(h - 1, y + step)))]))
            if moved:
                unstable.append(1.0 - mask_iou(best.mask, moved[0].mask))
    parts: dict[str, float] = {}
    words: dict[str, str] = {}
    if quality:
        parts["mask_quality"] = 1.0 - float(np.mean(quality))
        words["mask_quality"] = f"the model rates its masks low (mean quality " \
                                f"{np.mean(quality):.2f})"
    if disagree:
        parts["mask_disagreement"] = float(np.mean(disagree))
        words["mask_disagreement"] = f"a click's masks disagree (mean IoU between them " \
                                     f"{1 - parts['mask_disagreement']:.2f})"
    if unstable:
        parts["click_instability"] = float(np.mean(unstable))
        words["click_instability"] = f"a mask changes when its click moves a little " \
                                     f"(IoU {1 - parts['click_instability']:.2f})"
    details = {"clicks": grid * grid}
    if not parts:
        return Informativeness(0.5, {"no_masks": 0.5}, "the model found nothing to segment",
                               details)
    top = max(parts, key=lambda k: parts[k])
    reason = words[top] if parts[top] >= SURE else "the model is sure of it (its masks " \
        "agree and hold when a click moves)"
    return Informativeness(float(np.mean(list(parts.values()))), parts, reason, details)
