"""The standard click simulator of interactive-segmentation evaluation, and its metrics.

The protocol of RITM's evaluation (Sofiiuk et al., 2021): each next click goes to the pixel
deepest inside the error region (by distance transform), into the false negatives when
they hold the deeper point, else into the false positives; positive or negative accordingly.
Pixels of the ignore region count for neither IoU nor the error regions. NoC@t is the number
of interactions until IoU >= t (the maximum when never reached).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from labelpilot.geometry.iou import mask_iou
from labelpilot.models.base import Click, Prompt


def _deepest(region: np.ndarray) -> tuple[float, int, int]:
    padded = np.pad(region.astype(np.uint8), 1)
    dt = cv2.distanceTransform(padded, cv2.DIST_L2, 0)[1:-1, 1:-1]
    peak = float(dt.max())
    ys, xs = np.nonzero(dt == peak)
    return peak, int(ys[0]), int(xs[0])


def next_click(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> Click:
    keep = ~ignore if ignore is not None else np.ones_like(gt, dtype=bool)
    fn = gt & ~pred & keep
    fp = ~gt & pred & keep
    fn_d, fn_y, fn_x = _deepest(fn)
    fp_d, fp_y, fp_x = _deepest(fp)
    if fn_d > fp_d:
        return Click(float(fn_x), float(fn_y), True)
    return Click(float(fp_x), float(fp_y), False)


def gt_box(gt: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(gt)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


@dataclass
class InstanceTrace:
    name: str
    ious: list[float] = field(default_factory=list)  # after each interaction
    latencies_ms: list[float] = field(default_factory=list)

    def noc(self, threshold: float, max_clicks: int) -> int:
        for i, v in enumerate(self.ious[:max_clicks]):
            if v >= threshold:
                return i + 1
        return max_clicks

    def iou_at(self, n: int) -> float:
        if not self.ious:
            return 0.0
        return self.ious[min(n, len(self.ious)) - 1]


Predictor = Callable[[Prompt], np.ndarray]


def simulate(predict: Predictor, gt: np.ndarray, *, ignore: np.ndarray | None = None,
             first: str = "click", max_clicks: int = 20, stop_at: float | None = None,
             name: str = "") -> InstanceTrace:
    """Run one instance: `predict(prompt)` returns a bool mask; the trace has IoU per step.

    `first="box"` starts from the object's bounding box (one interaction). `stop_at` ends
    early, after the fifth interaction, once IoU reaches it (NoC up to that threshold and
    mIoU@1/3/5 are unaffected); later steps repeat the last IoU.
    """
    trace = InstanceTrace(name)
    prompt = Prompt()
    pred = np.zeros_like(gt, dtype=bool)
    if first == "box":
        prompt.box = gt_box(gt)
    for step in range(max_clicks):
        if step > 0 or first != "box":
            prompt.clicks.append(next_click(pred, gt, ignore))
        prompt.previous = pred if step > 0 else None
        t0 = time.perf_counter()
        pred = predict(Prompt(list(prompt.clicks), prompt.box, prompt.previous))
        trace.latencies_ms.append((time.perf_counter() - t0) * 1000)
        trace.ious.append(mask_iou(pred, gt, ignore))
        if stop_at is not None and step >= 4 and trace.ious[-1] >= stop_at:
            trace.ious += [trace.ious[-1]] * (max_clicks - step - 1)
            break
    return trace


def summarize(traces: Iterable[InstanceTrace], max_clicks: int) -> dict[str, float]:
    ts = list(traces)
    lat = np.array([v for t in ts for v in t.latencies_ms] or [0.0])
    out: dict[str, float] = {
        "instances": len(ts),
        "noc85": float(np.mean([t.noc(0.85, max_clicks) for t in ts])),
        "noc90": float(np.mean([t.noc(0.90, max_clicks) for t in ts])),
    }
    for n in (1, 3, 5):
        out[f"miou_at_{n}"] = float(np.mean([t.iou_at(n) for t in ts]))
    out["click_latency_p50_ms"] = float(np.percentile(lat, 50))
    out["click_latency_p95_ms"] = float(np.percentile(lat, 95))
    return out


def miou_curve(traces: Iterable[InstanceTrace], max_clicks: int) -> list[float]:
    ts = list(traces)
    return [float(np.mean([t.iou_at(n) for t in ts])) for n in range(1, max_clicks + 1)]
