"""Intersection over union, one home for every shape kind: xyxy boxes (vectorised, with
COCO's crowd rule), polygons (any simple or self-touching outline), and binary masks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def box_iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """[D, G] IoU of xyxy boxes; against a crowd box, intersection over the detection's
    area (COCO)."""
    if not len(d) or not len(g):
        return np.zeros((len(d), len(g)))
    x1 = np.maximum(d[:, None, 0], g[None, :, 0])
    y1 = np.maximum(d[:, None, 1], g[None, :, 1])
    x2 = np.minimum(d[:, None, 2], g[None, :, 2])
    y2 = np.minimum(d[:, None, 3], g[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    ad = ((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]))[:, None]
    ag = ((g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]))[None, :]
    union = ad + ag - inter if crowd is None else np.where(crowd[None, :], ad, ad + ag - inter)
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def polygon_iou(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> float:
    """IoU of two outlines (corner lists); a degenerate outline has IoU 0 with anything."""
    from shapely.geometry import Polygon

    pa, pb = Polygon(a).buffer(0), Polygon(b).buffer(0)
    if pa.is_empty or pb.is_empty:
        return 0.0
    inter = pa.intersection(pb).area
    union = pa.union(pb).area
    return float(inter / union) if union > 0 else 0.0


def mask_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """IoU of two bool masks of one size, pixels under `ignore` left out; two empty masks
    agree (1.0)."""
    keep = ~ignore if ignore is not None else np.ones_like(gt, dtype=bool)
    inter = np.count_nonzero(pred & gt & keep)
    union = np.count_nonzero((pred | gt) & keep)
    return inter / union if union else 1.0
