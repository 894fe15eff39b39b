"""COCO-style detection metrics: AP per class at IoU 0.50:0.05:0.95 (101-point interpolated
precision, up to 100 detections per image, crowd regions ignored), mAP@0.5, mAP@0.5:0.95,
and the accept rate: the share of ground-truth boxes a reviewer could accept as proposed
(a detection of the right class at IoU >= 0.7, above the model's score threshold).
Checked against pycocotools in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelpilot.geometry.iou import box_iou

THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALLS = np.linspace(0.0, 1.0, 101)


@dataclass
class GtBox:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    label: str
    crowd: bool = False


@dataclass
class DetBox:
    box: tuple[float, float, float, float]
    label: str
    score: float
    # shown by the model as a proposal (its score reaches the model's threshold): only
    # these count for the accept rate; every detection counts for mAP
    shown: bool = True


def _match(dets: list[DetBox], gts: list[GtBox], t: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matched, ignored) per detection (sorted by score) for one image and class, and
    which ground-truth boxes were taken (in the order given)."""
    order = np.argsort([-x.score for x in dets], kind="stable")
    dets = [dets[i] for i in order]
    # non-crowd ground truth first, as COCO sorts it
    g_order = sorted(range(len(gts)), key=lambda i: gts[i].crowd)
    gts = [gts[i] for i in g_order]
    d = np.array([x.box for x in dets], float).reshape(-1, 4)
    g = np.array([x.box for x in gts], float).reshape(-1, 4)
    crowd = np.array([x.crowd for x in gts], bool)
    ious = box_iou(d, g, crowd)
    taken = np.zeros(len(gts), bool)
    matched = np.zeros(len(dets), bool)
    ignored = np.zeros(len(dets), bool)
    for i in range(len(dets)):
        best, best_j = min(t, 1 - 1e-10), -1
        for j in range(len(gts)):
            if taken[j] and not crowd[j]:
                continue
            if best_j > -1 and not crowd[best_j] and crowd[j]:
                break
            if ious[i, j] < best:
                continue
            best, best_j = ious[i, j], j
        if best_j == -1:
            continue
        if crowd[best_j]:
            ignored[i] = True
        else:
            matched[i] = True
            taken[best_j] = True
    given = np.zeros(len(gts), bool)
    given[np.array(g_order, int)] = taken
    return matched, ignored, given


def average_precision(per_image: Sequence[tuple[list[DetBox], list[GtBox]]], label: str,
                      t: float, max_dets: int = 100) -> float | None:
    """AP of one class at IoU `t` over the images; None when the class has no ground truth."""
    scores, tps, ign = [], [], []
    n_gt = 0
    for dets, gts in per_image:
        # COCO keeps the best `max_dets` of each class in each image
        d = sorted((x for x in dets if x.label == label), key=lambda x: -x.score)[:max_dets]
        g = [x for x in gts if x.label == label]
        n_gt += sum(1 for x in g if not x.crowd)
        if not d:
            continue
        m, i, _ = _match(d, g, t)
        s = sorted(x.score for x in d)[::-1]
        scores += s
        tps += list(m)
        ign += list(i)
    if n_gt == 0:
        return None
    if not scores:
        return 0.0
    order = np.argsort(-np.array(scores), kind="mergesort")
    tp = np.array(tps)[order]
    keep = ~np.array(ign)[order]
    tp = tp[keep]
    fp = ~tp
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, np.finfo(float).eps)
    # make precision monotone (from the right), then sample at the 101 recall points
    for k in range(len(precision) - 1, 0, -1):
        precision[k - 1] = max(precision[k - 1], precision[k])
    idx = np.searchsorted(recall, RECALLS, side="left")
    sampled = np.array([precision[i] if i < len(precision) else 0.0 for i in idx])
    return float(sampled.mean())


def mistakes(dets: list[DetBox], gts: list[GtBox], iou: float = 0.5
             ) -> tuple[list[GtBox], list[DetBox]]:
    """What a reviewer of one image would have to fix in the proposals the model shows:
    the ground-truth boxes that no shown detection of their class finds at `iou` (misses),
    and the shown detections that find none (false alarms; one on a crowd region is
    neither), matched as for AP: the highest score first."""
    missed: list[GtBox] = []
    false: list[DetBox] = []
    for lab in {g.label for g in gts} | {d.label for d in dets if d.shown}:
        d = sorted((x for x in dets if x.shown and x.label == lab), key=lambda x: -x.score)
        g = [x for x in gts if x.label == lab]
        matched, ignored, taken = _match(d, g, iou)  # d is in _match's (score) order
        missed += [x for x, t in zip(g, taken, strict=True) if not t and not x.crowd]
        false += [x for x, m, ig in zip(d, matched, ignored, strict=True) if not m and not ig]
    return missed, false


THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def choose_thresholds(per_image: Sequence[tuple[list[DetBox], list[GtBox]]],
                      min_boxes: int = 5, iou: float = 0.5) -> dict[str, Any]:
    """Display thresholds that balance a reviewer's two chores, boxes to draw (misses) and
    proposals to delete (false alarms): per class, the score on THRESHOLD_GRID with the
    best F1 at `iou` over the images (detections of every score given, matched as for AP);
    on a plateau of equal F1, its middle. A class with fewer than `min_boxes` ground-truth
    boxes gets none of its own (the threshold over all classes applies). Returns
    {"score_threshold", "class_thresholds", "f1": {class or "all": F1 at its threshold}}."""
    found: dict[str, list[tuple[float, bool]]] = {}
    n_gt: dict[str, int] = {}
    for dets, gts in per_image:
        for lab in {g.label for g in gts} | {d.label for d in dets}:
            d = sorted((x for x in dets if x.label == lab), key=lambda x: -x.score)
            g = [x for x in gts if x.label == lab]
            n_gt[lab] = n_gt.get(lab, 0) + sum(1 for x in g if not x.crowd)
            matched, ignored, _ = _match(d, g, iou)
            found.setdefault(lab, []).extend(
                (x.score, bool(m)) for x, m, ig in zip(d, matched, ignored, strict=True)
                if not ig)

    def best(pairs: list[tuple[float, bool]], gt: int) -> tuple[float, float]:
        scores = np.array([p[0] for p in pairs], float)
        tp = np.array([p[1] for p in pairs], bool)
        f1 = []
        for t in THRESHOLD_GRID:
            shown = scores >= t
            hits = int((shown & tp).sum())
            f1.append(2 * hits / (2 * hits + int((shown & ~tp).sum()) + gt - hits)
                      if gt or shown.any() else 0.0)
        top = np.flatnonzero(np.isclose(f1, max(f1)))
        k = int(top[len(top) // 2])
        return float(THRESHOLD_GRID[k]), float(f1[k])

    everything = [p for pairs in found.values() for p in pairs]
    overall, f1_all = best(everything, sum(n_gt.values()))
    chosen, f1s = {}, {"all": round(f1_all, 4)}
    for lab in sorted(found):
        if n_gt.get(lab, 0) >= min_boxes:
            chosen[lab], f1 = best(found[lab], n_gt[lab])
            f1s[lab] = round(f1, 4)
    return {"score_threshold": overall, "class_thresholds": chosen, "f1": f1s}


def evaluate_detections(per_image: Sequence[tuple[list[DetBox], list[GtBox]]],
                        accept_threshold: float = 0.0, accept_iou: float = 0.7) -> dict[str, Any]:
    labels = sorted({g.label for _, gts in per_image for g in gts if not g.crowd})
    per_class: dict[str, dict[str, float]] = {}
    for lab in labels:
        aps = [average_precision(per_image, lab, float(t)) for t in THRESHOLDS]
        vals = [a for a in aps if a is not None]
        if vals:
            per_class[lab] = {"ap50": float(aps[0] or 0.0), "ap50_95": float(np.mean(vals)),
                              "instances": sum(1 for _, gts in per_image for g in gts
                                               if g.label == lab and not g.crowd)}
    # accept rate: one detection per ground-truth box, greedily by score; precision: the
    # share of the shown proposals that find a box of their class (IoU 0.5)
    hit = total = shown = false = 0
    for dets, gts in per_image:
        shown += sum(1 for x in dets if x.shown)
        false += len(mistakes(dets, gts)[1])
        real = [g for g in gts if not g.crowd]
        total += len(real)
        for lab in {g.label for g in real}:
            d = [x for x in dets if x.label == lab and x.shown and x.score >= accept_threshold]
            g = [x for x in real if x.label == lab]
            if d:
                m, _, _ = _match(d, g, accept_iou)
                hit += int(m.sum())
    return {
        "map50": float(np.mean([c["ap50"] for c in per_class.values()])) if per_class else 0.0,
        "map50_95": float(np.mean([c["ap50_95"] for c in per_class.values()]))
        if per_class else 0.0,
        "accept_rate": hit / total if total else 0.0,
        "precision": (shown - false) / shown if shown else 0.0,
        "ground_truth_boxes": total,
        "per_class": per_class,
    }
