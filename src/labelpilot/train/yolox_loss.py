"""YOLOX's training targets and losses, on raw head outputs (logits).

As the reference implementation computes them (Megvii's YOLOX 0.3.0 as released on PyPI,
`YOLOXHead.get_losses`, `get_assignments` and `dynamic_k_matching`), term by term; a test
runs both on the same outputs:

- candidates: anchors whose centre lies inside a box, or within 2.5 strides of its centre;
- SimOTA: cost = BCE(sqrt(sigmoid(cls) * sigmoid(obj)), one-hot class) summed over the
  classes + 3 * -log(IoU) + 1e5 unless the anchor is both inside the box and within its
  centre region; each box takes its `dynamic_k` cheapest anchors, dynamic_k =
  max(1, int(sum of its 10 best IoUs)); an anchor wanted by several boxes goes to the
  cheapest;
- losses, each summed and divided by the number of positive anchors (at least 1):
  IoU loss 1 - IoU^2 on the positives (weight 5), objectness BCE-with-logits on every
  anchor (1 on positives), class BCE-with-logits on the positives against one-hot x the
  IoU of the matching (IoU-aware targets). The L1 term YOLOX adds for its last 15 epochs
  is left out (these runs are minutes long).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

REG_WEIGHT = 5.0
CENTRE_RADIUS = 2.5


def anchor_grid(size: tuple[int, int], strides: tuple[int, ...]) -> tuple[Any, Any]:
    """(grid [A, 2] cell x, y; stride [A]) in the order YOLOX flattens its levels;
    `size` is (width, height)."""
    import torch

    g, s = [], []
    for st in strides:
        nx, ny = size[0] // st, size[1] // st
        yy, xx = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        g.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1))
        s.append(torch.full((nx * ny,), st))
    return torch.cat(g).float(), torch.cat(s).float()


def decode_boxes(out: Any, grid: Any, stride: Any) -> Any:
    """[B, A, 4] x1, y1, x2, y2 in input pixels from the raw regression outputs."""
    import torch

    xy = (out[..., :2] + grid) * stride[:, None]
    wh = torch.exp(out[..., 2:4].clamp(max=20)) * stride[:, None]
    return torch.cat([xy - wh / 2, xy + wh / 2], -1)


def box_iou(a: Any, b: Any) -> Any:
    """IoU of every box of `a` [N, 4] with every box of `b` [M, 4] (x1, y1, x2, y2)."""
    import torch

    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter + 1e-16)


def pair_iou(a: Any, b: Any) -> Any:
    """IoU of a[i] with b[i]."""
    import torch

    lt = torch.max(a[:, :2], b[:, :2])
    rb = torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + 1e-16)


@dataclass
class Matching:
    anchors: Any  # [P] the positive anchors
    boxes: Any  # [P] the ground-truth box each one is matched to
    ious: Any  # [P] its IoU with that box when matched (the class target's weight)


def simota(pred: Any, obj: Any, cls: Any, gt: Any, labels: Any, grid: Any, stride: Any
           ) -> Matching:
    """SimOTA for one image: `pred` [A, 4] decoded boxes, `obj` [A] and `cls` [A, C]
    logits, `gt` [G, 4] boxes with class indices `labels` [G]; no gradients."""
    import torch
    import torch.nn.functional as F

    empty = torch.zeros(0, dtype=torch.long)
    with torch.no_grad():
        centres = (grid + 0.5) * stride[:, None]
        inside = ((centres[None] > gt[:, None, :2]) & (centres[None] < gt[:, None, 2:])
                  ).all(-1)  # [G, A]
        gc = (gt[:, :2] + gt[:, 2:]) / 2
        near = ((centres[None] - gc[:, None]).abs() < CENTRE_RADIUS * stride[None, :, None]
                ).all(-1)
        cand = (inside.any(0) | near.any(0)).nonzero().reshape(-1)
        if not len(cand) or not len(gt):
            return Matching(empty, empty, torch.zeros(0))
        geometry = (inside & near)[:, cand]
        ious = box_iou(gt, pred[cand])
        onehot = F.one_hot(labels, cls.shape[1]).float()
        p = (cls[cand].sigmoid() * obj[cand, None].sigmoid()).sqrt()
        cls_cost = F.binary_cross_entropy(p[None].expand(len(gt), -1, -1),
                                          onehot[:, None].expand(-1, len(cand), -1),
                                          reduction="none").sum(-1)
        cost = cls_cost + 3.0 * -torch.log(ious + 1e-8) + 1e5 * (~geometry).float()
        matching = torch.zeros_like(cost)
        k = ious.topk(min(10, len(cand)), dim=1).values.sum(1).int().clamp(min=1)
        for g in range(len(gt)):
            matching[g, cost[g].topk(int(k[g]), largest=False).indices] = 1
        shared = matching.sum(0) > 1
        if shared.any():
            cheapest = cost[:, shared].argmin(0)
            matching[:, shared] = 0
            matching[cheapest, shared] = 1
        fg = matching.sum(0) > 0
        return Matching(cand[fg], matching[:, fg].argmax(0), (matching * ious).sum(0)[fg])


def yolox_loss(out: Any, targets: list[np.ndarray], grid: Any, stride: Any
               ) -> tuple[Any, dict[str, float]]:
    """The loss of a batch of raw outputs `out` [B, A, 5 + C] (regression, objectness
    logit, class logits) against `targets` (per image [G, 5]: x1, y1, x2, y2, class), and
    its parts (iou, obj, cls: each divided by the positives; positives)."""
    import torch
    import torch.nn.functional as F

    boxes = decode_boxes(out, grid, stride)
    obj, cls = out[..., 4], out[..., 5:]
    obj_target = torch.zeros_like(obj)
    iou_terms, cls_terms, n_pos = [], [], 0
    for b, t in enumerate(targets):
        if not len(t):
            continue
        gt = torch.from_numpy(np.ascontiguousarray(t[:, :4])).float()
        labels = torch.from_numpy(np.ascontiguousarray(t[:, 4])).long()
        m = simota(boxes[b].detach(), obj[b].detach(), cls[b].detach(), gt, labels, grid,
                   stride)
        if not len(m.anchors):
            continue
        n_pos += len(m.anchors)
        obj_target[b, m.anchors] = 1.0
        iou = pair_iou(boxes[b, m.anchors], gt[m.boxes])
        iou_terms.append((1 - iou ** 2).sum())
        target = F.one_hot(labels[m.boxes], cls.shape[-1]).float() * m.ious[:, None]
        cls_terms.append(F.binary_cross_entropy_with_logits(cls[b, m.anchors], target,
                                                            reduction="sum"))
    n = max(1, n_pos)
    zero = out.sum() * 0
    loss_iou = (torch.stack(iou_terms).sum() if iou_terms else zero) / n
    loss_obj = F.binary_cross_entropy_with_logits(obj, obj_target, reduction="sum") / n
    loss_cls = (torch.stack(cls_terms).sum() if cls_terms else zero) / n
    parts = {"iou": float(loss_iou.detach()), "obj": float(loss_obj.detach()),
             "cls": float(loss_cls.detach()), "positives": float(n_pos)}
    return REG_WEIGHT * loss_iou + loss_obj + loss_cls, parts
