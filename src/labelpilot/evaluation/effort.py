"""A simulated annotator: the actions (clicks, key presses, drags, typed characters) and the
seconds a person spends in LabelPilot's editor to get an image's labels right, by hand
and when reviewing a model's proposals, with the ground truth as the oracle.

Time model (seconds), from published measurements where there are some and from the
Keystroke-Level Model (Card, Moran and Newell, "The Keystroke-Level Model for User
Performance Time with Interactive Systems", CACM 1980) for the rest:

- drawing a box by hand: 34.5 s (ImageNet's protocol, drawing plus quality checks; Su,
  Deng and Fei-Fei, "Crowdsourcing Annotations for Visual Object Detection", AAAI
  workshops 2012, as quoted by Papadopoulos et al. 2017); with extreme clicking 7.0 s
  (Papadopoulos, Uijlings, Keller and Ferrari, "Extreme clicking for efficient object
  annotation", ICCV 2017). Both are reported; the action counts do not depend on them.
- checking a proposal: M = 1.35 s (KLM's mental preparation) per shape looked at.
- a click or a drag handle grabbed: P + B = 1.1 + 0.1 s; a drag: P + B + P + B = 2.4 s.
- a key press: K = 0.28 s (KLM's average non-secretarial typist, 40 words a minute), plus
  M when it is a decision (accept, reject, a class).
- a typed character: K = 0.28 s.
- a polygon vertex: P + B = 1.2 s (the issue's "about 1 s"; COCO's instance polygons
  took 79 s each on average, Lin et al., "Microsoft COCO", ECCV 2014).

How a person works (the rules each function applies):

- Detection, by hand: per box a class key, a drag and one corrective drag (3 actions;
  34.5 s, or 7 s with extreme clicking, plus the class decision).
  Reviewing proposals: each proposal is looked at; a proposal matching a true box (IoU
  >= 0.5) of the right class and tight (IoU >= 0.85) is left for the bulk accept; a loose
  one is clicked and a corner dragged (two drags below IoU 0.7); a wrong class is
  clicked and a class key pressed; a proposal matching nothing is clicked and rejected
  (R). A true box nothing proposed: click to box (one click on it); what comes back is
  fixed like a proposal, or drawn by hand when it misses. Then Ctrl+A and Enter accept
  the image's proposals (2 keys).
- OCR, by hand: per line a quad (4 clicks), the transcription typed, Enter.
  Reviewing: a proposal matching a true line (IoU >= 0.5, ICDAR's rule for a found line)
  with the exact text is left for the bulk accept; a wrong text on a misplaced quad (IoU
  < 0.7) gets its corners dragged (a click, two drags), after which the line is read
  again (the editor re-recognizes a moved quad); a wrong text is clicked, the cursor
  placed (1 click) and the characters fixed (the edit distance: one action per character
  typed or deleted); a false line is clicked and rejected; a missed line is drawn (4
  clicks), read at once, and fixed. Ctrl+A and Enter accept the rest. Lines marked
  don't-care (`###`) are skipped. For recognition sets, whose true quad is the whole
  crop (`crops=True`), a proposal lying within the crop (80% of its area inside) matches
  it: the line is the crop, a tighter quad round its text is the same line.
- Segmentation, by hand: a polygon with the fewest vertices whose IoU with the true mask
  reaches the target (90%), then Enter and a class key.
  With the smart mask: the clicks RITM's protocol needs to reach the target (NoC), then
  Enter and a class key; an object never reached in the click budget is drawn by hand
  after the clicks were spent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from labelpilot.evaluation.ocr import edit_distance
from labelpilot.geometry.iou import box_iou, mask_iou, polygon_iou

# --- the time model (seconds) ---------------------------------------------------------
M = 1.35  # mental preparation: a look and a decision
K = 0.28  # a key press or a typed character
CLICK = 1.2  # point and click
DRAG = 2.4  # point, press, point, release
BOX_BY_HAND = 34.5
BOX_EXTREME = 7.0
VERTEX = 1.2

TIGHT = 0.85  # a box this close needs no fixing
LOOSE = 0.7  # below this a box or quad needs two drags (two corners)
MATCH = 0.5


@dataclass
class Effort:
    """Actions by kind, seconds, and the labels they made right."""

    actions: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    labels: int = 0
    # the seconds with boxes drawn by extreme clicking instead (detection only)
    seconds_extreme: float = 0.0

    def add(self, kind: str, n: int = 1, seconds: float = 0.0) -> None:
        if n:
            self.actions[kind] += n
        self.seconds += seconds
        self.seconds_extreme += seconds

    def __iadd__(self, other: Effort) -> Effort:
        self.actions.update(other.actions)
        self.seconds += other.seconds
        self.seconds_extreme += other.seconds_extreme
        self.labels += other.labels
        return self

    @property
    def total(self) -> int:
        return sum(self.actions.values())

    def per_label(self) -> float:
        return self.total / max(1, self.labels)

    def public(self) -> dict[str, float | int | dict[str, int]]:
        return {"labels": self.labels, "actions": self.total,
                "actions_per_label": round(self.per_label(), 3),
                "seconds": round(self.seconds, 1),
                "seconds_per_label": round(self.seconds / max(1, self.labels), 2),
                "by_kind": dict(self.actions)}


def _greedy_pairs(iou: np.ndarray) -> list[tuple[float, int, int]]:
    """(IoU, proposal, truth) pairs matched greedily, the best first, each side once,
    those under MATCH left out."""
    pairs = sorted(((float(iou[i, j]), i, j) for i in range(iou.shape[0])
                    for j in range(iou.shape[1]) if iou[i, j] >= MATCH), reverse=True)
    out: list[tuple[float, int, int]] = []
    used_p: set[int] = set()
    used_g: set[int] = set()
    for v, i, j in pairs:
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            out.append((v, i, j))
    return out


def _box_by_hand(e: Effort) -> None:
    e.add("key", 1, M + K)  # the class
    e.add("drag", 2)  # the box and one correction
    e.seconds += BOX_BY_HAND
    e.seconds_extreme += BOX_EXTREME


# --- detection -------------------------------------------------------------------------

Box = tuple[float, float, float, float]


def detection_by_hand(gt: Sequence[tuple[Box, str]]) -> Effort:
    e = Effort(labels=len(gt))
    for _ in gt:
        _box_by_hand(e)
    return e


def _fix_box(e: Effort, iou: float, right_class: bool) -> None:
    """A proposal or click-to-box answer that matches a true box: what fixing it takes."""
    if iou < TIGHT or not right_class:
        e.add("click", 1, CLICK)  # select it
    if iou < TIGHT:
        e.add("drag", 1 if iou >= LOOSE else 2, DRAG * (1 if iou >= LOOSE else 2))
    if not right_class:
        e.add("key", 1, M + K)


def detection_reviewed(gt: Sequence[tuple[Box, str]], proposals: Sequence[tuple[Box, str]],
                       click_box: Callable[[Box], tuple[Box, str] | None]) -> Effort:
    """Review an image's proposals (see the module); `click_box(true box)` is the smart
    tool's answer to a click in the middle of a box nothing proposed (None: nothing)."""
    e = Effort(labels=len(gt))
    e.seconds += M * len(proposals)  # every proposal is looked at
    e.seconds_extreme += M * len(proposals)
    g = np.array([b for b, _ in gt], np.float64).reshape(-1, 4)
    p = np.array([b for b, _ in proposals], np.float64).reshape(-1, 4)
    iou = box_iou(p, g) if len(p) and len(g) else np.zeros((len(p), len(g)))
    pairs = _greedy_pairs(iou)
    matched = {i for _, i, _ in pairs}
    taken = {j for _, _, j in pairs}
    for v, i, j in pairs:
        _fix_box(e, v, proposals[i][1] == gt[j][1])
    for i in range(len(p)):
        if i not in matched:
            e.add("click", 1, CLICK)
            e.add("key", 1, M + K)  # R: rejected
    for j in range(len(g)):
        if j in taken:
            continue
        e.add("click", 1, CLICK)  # click to box
        got = click_box(gt[j][0])
        v = float(box_iou(np.array([got[0]]), g[j:j + 1])[0, 0]) if got is not None else 0.0
        if got is not None and v >= MATCH:
            _fix_box(e, v, got[1] == gt[j][1])
        else:
            if got is not None:
                e.add("key", 1, K)  # the wrong answer deleted
            _box_by_hand(e)
    if len(proposals) or len(g) > len(taken):
        e.add("key", 2, M + 2 * K)  # Ctrl+A, Enter
    return e


# --- OCR -------------------------------------------------------------------------------

Quad = Sequence[tuple[float, float]]


def ocr_by_hand(gt: Sequence[tuple[Quad, str]]) -> Effort:
    e = Effort(labels=len(gt))
    for _, text in gt:
        e.add("click", 4, 4 * CLICK)
        e.add("char", len(text), K * len(text) + M)
        e.add("key", 1, K)
    return e


def _fix_text(e: Effort, read: str, truth: str) -> None:
    d = edit_distance(read, truth)
    if d:
        e.add("click", 1, CLICK)  # the cursor placed
        e.add("char", d, K * d + M)


def _inside(p: Quad, g: Quad) -> float:
    """The share of quad `p`'s area inside quad `g`."""
    from shapely.geometry import Polygon

    a, b = Polygon(p).buffer(0), Polygon(g).buffer(0)
    return float(a.intersection(b).area / a.area) if a.area > 0 else 0.0


def ocr_reviewed(gt: Sequence[tuple[Quad, str]], proposals: Sequence[tuple[Quad, str]],
                 reread: Callable[[Quad], str], *, crops: bool = False) -> Effort:
    """Review an image's OCR proposals (see the module); `reread(quad)` is the editor's
    reading of a quad a person moved or drew; `crops`: the true quads are whole crops."""
    e = Effort(labels=len(gt))
    e.seconds += M * len(proposals)
    e.seconds_extreme += M * len(proposals)
    iou = np.array([[1.0 if crops and _inside(p, g) >= 0.8 else polygon_iou(p, g)
                     for g, _ in gt] for p, _ in proposals]).reshape(len(proposals), len(gt))
    pairs = _greedy_pairs(iou)
    matched = {i for _, i, _ in pairs}
    taken = {j for _, _, j in pairs}
    for v, i, j in pairs:
        text = proposals[i][1]
        if text != gt[j][1]:
            e.add("click", 1, CLICK)
            if v < LOOSE:  # the quad misses part of the line: moved, read again
                e.add("drag", 2, 2 * DRAG)
                text = reread(gt[j][0])
        _fix_text(e, text, gt[j][1])
    for i in range(len(proposals)):
        if i not in matched:
            e.add("click", 1, CLICK)
            e.add("key", 1, M + K)
    for j in range(len(gt)):
        if j not in taken:
            e.add("click", 4, 4 * CLICK)
            _fix_text(e, reread(gt[j][0]), gt[j][1])
    if len(proposals) or len(gt) > len(taken):
        e.add("key", 2, M + 2 * K)
    return e


# --- segmentation ------------------------------------------------------------------------


def polygon_vertices(mask: np.ndarray, target: float = 0.9, ignore: np.ndarray | None = None
                     ) -> int:
    """The fewest vertices of a polygon (the largest outline, simplified) whose IoU with
    `mask` reaches `target`; the unsimplified outline's count when none does."""
    m = mask.astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 0
    outline = max(contours, key=cv2.contourArea)

    def iou_at(eps: float) -> tuple[float, int]:
        poly = cv2.approxPolyDP(outline, eps, True)
        canvas = np.zeros_like(m)
        cv2.fillPoly(canvas, [poly], 1)
        return mask_iou(canvas.astype(bool), mask.astype(bool), ignore), len(poly)

    lo, hi = 0.0, float(max(mask.shape))
    best = len(outline)
    for _ in range(24):  # bisect the tolerance: more tolerance, fewer vertices
        mid = (lo + hi) / 2
        v, n = iou_at(mid)
        if v >= target:
            best = min(best, n)
            lo = mid
        else:
            hi = mid
    return max(3, best)


def segment_by_hand(vertices: int) -> Effort:
    e = Effort(labels=1)
    e.add("click", vertices, VERTEX * vertices)
    e.add("key", 2, M + 2 * K)  # Enter, the class
    return e


def segment_with_clicks(clicks: int, reached: bool, vertices: int) -> Effort:
    """The smart mask: `clicks` to the target (`reached`), else those clicks spent and the
    polygon drawn by hand."""
    e = Effort(labels=1)
    e.add("click", clicks, (CLICK + M) * clicks)
    if not reached:
        e += segment_by_hand(vertices)
        e.labels = 1
        return e
    e.add("key", 2, M + 2 * K)
    return e
