"""OCR evaluation: detection P/R/H at IoU 0.5, recognition on ground-truth quads
(accuracy, CER), and the end-to-end accept rate (lines right with zero edits)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from labelpilot.geometry.iou import polygon_iou

IGNORE_TEXT = "###"


@dataclass
class GtLine:
    points: Sequence[tuple[float, float]]
    text: str

    @property
    def ignore(self) -> bool:
        return self.text == IGNORE_TEXT or bool(self.text == "")


@dataclass
class PredLine:
    points: Sequence[tuple[float, float]]
    text: str


def edit_distance(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def match(gt: Sequence[GtLine], pred: Sequence[PredLine], iou: float = 0.5
          ) -> tuple[list[tuple[int, int]], set[int]]:
    """Greedy one-to-one matching by IoU: (gt index, pred index) pairs over the threshold,
    and the predictions that fall on don't-care lines (counted neither way)."""
    pairs = sorted(((polygon_iou(g.points, p.points), gi, pi) for gi, g in enumerate(gt)
                    for pi, p in enumerate(pred)), reverse=True)
    used_g: set[int] = set()
    used_p: set[int] = set()
    out = []
    dont_care: set[int] = set()
    for value, gi, pi in pairs:
        if value < iou:
            break
        if gi in used_g or pi in used_p:
            continue
        used_g.add(gi)
        used_p.add(pi)
        if gt[gi].ignore:
            dont_care.add(pi)
        else:
            out.append((gi, pi))
    return out, dont_care


def evaluate(gt: Sequence[Sequence[GtLine]], pred: Sequence[Sequence[PredLine]],
             rec_on_gt: Sequence[Sequence[str]]) -> dict[str, float | int]:
    """`gt`, `pred` and `rec_on_gt` are per image; `rec_on_gt[i][j]` is what the
    recognizer read from the crop of `gt[i][j]`."""
    tp = n_pred = n_gt = exact = chars = errors = accepted = 0
    for g, p, r in zip(gt, pred, rec_on_gt, strict=True):
        pairs, dont_care = match(g, p)
        tp += len(pairs)
        n_pred += len(p) - len(dont_care)
        care = [k for k, line in enumerate(g) if not line.ignore]
        n_gt += len(care)
        for k in care:
            truth = g[k].text
            exact += r[k] == truth
            errors += edit_distance(r[k], truth)
            chars += max(1, len(truth))
        accepted += sum(p[pi].text == g[gi].text for gi, pi in pairs)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gt if n_gt else 0.0
    hmean = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"images": len(gt), "lines": n_gt, "det_precision": precision, "det_recall": recall,
            "det_hmean": hmean, "rec_line_accuracy": exact / n_gt if n_gt else 0.0,
            "rec_cer": errors / chars if chars else 0.0,
            "e2e_accept_rate": accepted / n_gt if n_gt else 0.0}
