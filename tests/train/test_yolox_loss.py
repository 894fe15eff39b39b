"""The detector trainer's targets and losses against the reference: YOLOX 0.3.0's own
`YOLOXHead.get_losses` (its source from PyPI, fetched by `make reference`), run on the
same raw outputs of one image and of a batch."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

REFERENCE = Path(__file__).resolve().parents[2] / ".venv" / "reference" / "yolox-0.3.0"


def _reference_head(num_classes: int) -> Any:
    """YOLOX's head class from its released source. Only the modules the loss needs are
    loaded (torchvision, which does not load beside this torch, and loguru are stood in
    for: the loss uses neither)."""
    if not (REFERENCE / "yolox" / "models" / "yolo_head.py").is_file():
        pytest.skip("the YOLOX reference is not fetched (make reference)")
    saved = {k: sys.modules.get(k) for k in ("torchvision", "loguru", "yolox", "yolox.utils",
                                             "yolox.models")}
    try:
        sys.modules["torchvision"] = types.ModuleType("torchvision")
        loguru = types.ModuleType("loguru")
        loguru.logger = None  # type: ignore[attr-defined]
        sys.modules["loguru"] = loguru
        for name in ("yolox", "yolox.models"):
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(REFERENCE / name.replace(".", "/"))]
            sys.modules[name] = pkg
        utils = types.ModuleType("yolox.utils")
        for part in ("boxes", "compat"):
            spec = importlib.util.spec_from_file_location(
                f"yolox.utils.{part}", REFERENCE / "yolox" / "utils" / f"{part}.py")
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            utils.__dict__.update({k: v for k, v in vars(mod).items() if not k.startswith("_")})
        sys.modules["yolox.utils"] = utils
        from yolox.models.yolo_head import YOLOXHead  # type: ignore[import-not-found]

        return YOLOXHead(num_classes, width=0.25, depthwise=True)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _case(seed: int, batch: int, classes: int) -> tuple[Any, list[np.ndarray]]:
    """Raw outputs at 416 px (offsets, log sizes, logits in the ranges a detector gives)
    and a few boxes per image, one image without any."""
    from labelpilot.train.yolox_loss import anchor_grid

    g = torch.Generator().manual_seed(seed)
    grid, _ = anchor_grid((416, 416), (8, 16, 32))
    out = torch.cat([torch.rand(batch, len(grid), 2, generator=g),
                     torch.randn(batch, len(grid), 2, generator=g) * 0.7 + 1.0,
                     torch.randn(batch, len(grid), 1 + classes, generator=g) * 2 - 3], -1)
    rng = np.random.default_rng(seed)
    targets = []
    for b in range(batch):
        n = 0 if b == batch - 1 and batch > 1 else int(rng.integers(1, 6))
        xy = rng.uniform(0, 300, (n, 2))
        wh = rng.uniform(6, 200, (n, 2))
        t = np.concatenate([xy, np.minimum(xy + wh, 416), rng.integers(0, classes, (n, 1))], 1)
        targets.append(t.astype(np.float32))
    return out, targets


def _reference_loss(head: Any, out: Any, targets: list[np.ndarray]) -> tuple[float, ...]:
    """The reference's (loss, 5 x IoU loss, objectness loss, class loss) for the same
    outputs: its decoded boxes (cx, cy, w, h) and its label layout (class, cx, cy, w, h)."""
    from labelpilot.train.yolox_loss import anchor_grid, decode_boxes

    grid, stride = anchor_grid((416, 416), (8, 16, 32))
    xyxy = decode_boxes(out, grid, stride)
    cxcywh = torch.cat([(xyxy[..., :2] + xyxy[..., 2:]) / 2, xyxy[..., 2:] - xyxy[..., :2]], -1)
    outputs = torch.cat([cxcywh, out[..., 4:]], -1)
    most = max(1, max(len(t) for t in targets))
    labels = torch.zeros(len(targets), most, 5)
    for b, t in enumerate(targets):
        for i, (x1, y1, x2, y2, c) in enumerate(t):
            labels[b, i] = torch.tensor([c, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    loss, iou, obj, cls, _, _ = head.get_losses(
        None, [grid[None, :, 0]], [grid[None, :, 1]], [stride[None]], labels, outputs, None,
        torch.float32)
    return float(loss), float(iou), float(obj), float(cls)


@pytest.mark.parametrize(("seed", "batch", "classes"), [(0, 1, 1), (1, 4, 3), (2, 3, 80)])
def test_the_loss_is_yolox_term_by_term(seed: int, batch: int, classes: int) -> None:
    from labelpilot.train.yolox_loss import REG_WEIGHT, anchor_grid, yolox_loss

    head = _reference_head(classes)
    out, targets = _case(seed, batch, classes)
    grid, stride = anchor_grid((416, 416), (8, 16, 32))
    loss, parts = yolox_loss(out, targets, grid, stride)
    ref_loss, ref_iou, ref_obj, ref_cls = _reference_loss(head, out, targets)
    assert parts["positives"] > 0
    assert REG_WEIGHT * parts["iou"] == pytest.approx(ref_iou, rel=1e-4)
    assert parts["obj"] == pytest.approx(ref_obj, rel=1e-4)
    assert parts["cls"] == pytest.approx(ref_cls, rel=1e-4)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-4)


def test_the_loss_trains_what_it_should() -> None:
    """The gradients go where YOLOX sends them: objectness everywhere, class and box terms
    only at the positive anchors; an image without boxes only teaches 'nothing here'."""
    from labelpilot.train.yolox_loss import anchor_grid, simota, yolox_loss

    out, targets = _case(3, 2, 2)
    out.requires_grad_(True)
    grid, stride = anchor_grid((416, 416), (8, 16, 32))
    loss, _ = yolox_loss(out, targets, grid, stride)
    loss.backward()
    assert out.grad is not None
    from labelpilot.train.yolox_loss import decode_boxes

    boxes = decode_boxes(out.detach(), grid, stride)
    m = simota(boxes[0], out[0, :, 4].detach(), out[0, :, 5:].detach(),
               torch.from_numpy(targets[0][:, :4]), torch.from_numpy(targets[0][:, 4]).long(),
               grid, stride)
    positive = torch.zeros(len(grid), dtype=torch.bool)
    positive[m.anchors] = True
    g = out.grad[0]
    assert (g[positive, 5:].abs().sum(-1) > 0).all() and (g[~positive, 5:] == 0).all()
    assert (g[~positive, :4] == 0).all() and (g[:, 4] != 0).all()
    assert (out.grad[1, :, 5:] == 0).all() and (out.grad[1, :, 4] > 0).all()  # all pushed down
    # each positive anchor lies in its box or near its centre, each box has one at least
    centres = (grid[m.anchors] + 0.5) * stride[m.anchors, None]
    gt = torch.from_numpy(targets[0][:, :4])[m.boxes]
    gc = (gt[:, :2] + gt[:, 2:]) / 2
    inside = ((centres > gt[:, :2]) & (centres < gt[:, 2:])).all(-1)
    near = ((centres - gc).abs() < 2.5 * stride[m.anchors, None]).all(-1)
    assert (inside | near).all() and set(m.boxes.tolist()) == set(range(len(targets[0])))
