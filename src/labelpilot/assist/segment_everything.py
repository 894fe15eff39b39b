"""Segment everything: masks proposed for a whole image (or a box in it).

SAM-family models and the graph cut answer a grid of single-click prompts (points already
inside a proposal are skipped); overlapping answers are dropped by mask non-maximum
suppression (IoU 0.7), tiny ones and those over half the image too (background).
Semantic helpers propose each connected region of each class, labelled by class.
"""

from __future__ import annotations

import cv2
import numpy as np

from labelpilot.geometry.iou import mask_iou
from labelpilot.models.base import Click, InteractiveSegmenter, MaskProposal, Prompt
from labelpilot.models.semantic import SemanticSegmenter


def segment_everything(segmenter: InteractiveSegmenter, image: np.ndarray, *,
                       box: tuple[float, ...] | None = None, grid: int = 8,
                       min_area_frac: float = 0.001, nms_iou: float = 0.7,
                       min_quality: float = 0.0) -> list[tuple[MaskProposal, str | None]]:
    """(mask, label or None) pairs, best first."""
    h, w = image.shape[:2]
    emb = segmenter.embed(image)
    x1, y1, x2, y2 = box if box is not None else (0, 0, w, h)
    if isinstance(segmenter, SemanticSegmenter):
        cls, conf = segmenter.class_map(emb)
        out = []
        region = np.zeros((h, w), bool)
        region[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = True
        for c in np.unique(cls[region]):
            if segmenter.background is not None and int(c) == int(segmenter.background):
                continue
            n, lab = cv2.connectedComponents(((cls == c) & region).astype(np.uint8), connectivity=8)
            for k in range(1, n):
                m = lab == k
                if m.sum() >= min_area_frac * h * w:
                    label = segmenter.labels[int(c)] if int(c) < len(segmenter.labels) else None
                    out.append((MaskProposal(m, float(conf[m].mean())), label))
        return sorted(out, key=lambda p: -(p[0].quality or 0.0))
    kept: list[MaskProposal] = []
    covered = np.zeros((h, w), bool)
    for gy in range(grid):
        for gx in range(grid):
            x = min(x1 + (gx + 0.5) * (x2 - x1) / grid, w - 1)
            y = min(y1 + (gy + 0.5) * (y2 - y1) / grid, h - 1)
            if covered[int(y), int(x)]:  # already inside a proposal: no new prompt there
                continue
            for p in segmenter.predict(emb, Prompt([Click(float(x), float(y))])):
                area = np.count_nonzero(p.mask)
                # a model without a quality estimate is not filtered by one
                if not (min_area_frac * h * w <= area < 0.5 * h * w) or (
                        p.quality is not None and p.quality < min_quality):
                    continue
                if all(mask_iou(p.mask, k.mask) < nms_iou for k in kept):
                    kept.append(p)
                    covered |= p.mask
                break  # the best acceptable answer for this point
    kept.sort(key=lambda p: (-(p.quality or 0.0), -np.count_nonzero(p.mask)))
    return [(k, None) for k in kept]
