"""Segment everything: masks proposed for a whole image (or a box in it), as a job.

SAM-family models and the graph cut answer a grid of single-click prompts (points already
inside a proposal are skipped); overlapping answers are dropped by mask non-maximum
suppression (IoU 0.7), tiny ones and those over half the image too (background).
Semantic helpers propose each connected region of each class, labelled by class.
Proposals are stored as `predicted` polygons with the model as source, with the same
re-run rules as autolabel (a person's or a rejected label is never overwritten).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelpilot.annotations import Annotation
from labelpilot.errors import LabelPilotError
from labelpilot.jobs import JobContext, register_job
from labelpilot.segment.base import Click, MaskProposal, Prompt
from labelpilot.segment.session import mask_to_polygons


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = int(np.count_nonzero(a & b))
    return inter / max(1, int(np.count_nonzero(a | b)))


def segment_everything(segmenter: Any, image: np.ndarray, *, box: tuple[float, ...] | None = None,
                       grid: int = 8, min_area_frac: float = 0.001, nms_iou: float = 0.7,
                       min_quality: float = 0.0) -> list[tuple[MaskProposal, str | None]]:
    """(mask, label or None) pairs, best first."""
    h, w = image.shape[:2]
    emb = segmenter.embed(image)
    x1, y1, x2, y2 = box if box is not None else (0, 0, w, h)
    from labelpilot.segment.semantic import SemanticSegmenter

    if isinstance(segmenter, SemanticSegmenter):
        import cv2

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
        return sorted(out, key=lambda p: -p[0].quality)
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
                if not (min_area_frac * h * w <= area < 0.5 * h * w) or p.quality < min_quality:
                    continue
                if all(_mask_iou(p.mask, k.mask) < nms_iou for k in kept):
                    kept.append(p)
                    covered |= p.mask
                break  # the best acceptable answer for this point
    kept.sort(key=lambda p: (-p.quality, -np.count_nonzero(p.mask)))
    return [(k, None) for k in kept]


@register_job("segment-everything")
def run_segment_everything(ctx: JobContext) -> dict[str, Any]:
    from labelpilot.models.registry import load_model, segmenter_manifest
    from labelpilot.prelabel import _targets, load_rgb, store_for_job

    p = ctx.params
    manifest = segmenter_manifest(p.get("model"), ctx.ws.models_dir)
    seg = load_model(manifest.name, ctx.ws.models_dir, threads=1)
    label = p.get("label") or "object"
    box = tuple(p["box"]) if p.get("box") else None
    with ctx.ws.engine.connect() as conn:
        rows = _targets(conn, p.get("images", "new"))
    if p.get("image_ids"):
        wanted = set(p["image_ids"])
        rows = [r for r in rows if r.id in wanted]
    ctx.set_total(len(rows))
    totals = {"added": 0, "replaced": 0, "covered": 0, "skipped_done": 0}
    failed = []
    for row in rows:
        if ctx.is_finished(str(row.id)):
            continue
        try:
            image = load_rgb(ctx.ws, row)
        except LabelPilotError as e:
            failed.append(e.message)
            continue
        grid = int(p.get("grid", 4 if manifest.kind == "graphcut" else 8))
        found = segment_everything(seg, image, box=box, grid=grid,
                                   min_quality=float(p.get("min_quality", 0.0)))
        anns = []
        for prop, cls in found:
            for poly in mask_to_polygons(prop.mask, float(p.get("tolerance", 1.0))):
                anns.append(Annotation(label=cls or label, shape=poly, score=prop.quality,
                                       source=manifest.source, status="predicted"))
        store_for_job(ctx, row.id, anns, totals)
    return {"model": manifest.source, "images": len(rows), **totals, "failed_images": failed}
