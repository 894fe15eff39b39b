import numpy as np
import pytest

from labelpilot.evaluation.clicker import InstanceTrace, gt_box, next_click, simulate, summarize
from labelpilot.geometry.iou import mask_iou as iou
from labelpilot.models.base import Prompt


def test_next_click_goes_deepest_into_the_larger_error() -> None:
    gt = np.zeros((50, 60), bool)
    gt[10:40, 10:50] = True
    pred = np.zeros_like(gt)
    c = next_click(pred, gt)
    # the deepest points of a 40x30 rectangle: 15 px from the long sides; the first of them
    assert c.positive and (c.x, c.y) == (24.0, 24.0)
    # a big false positive outside the object: the next click is negative, inside it
    pred = gt.copy()
    pred[0:50, 52:60] = True
    pred[0:8, 0:60] = True
    c = next_click(pred, gt)
    assert not c.positive and not gt[int(c.y), int(c.x)] and pred[int(c.y), int(c.x)]


def test_ignore_region_counts_for_nothing() -> None:
    gt = np.zeros((20, 20), bool)
    gt[5:15, 5:15] = True
    ignore = np.zeros_like(gt)
    ignore[4:16, 4:16] = True
    ignore[6:14, 6:14] = False
    pred = np.zeros_like(gt)
    pred[4:16, 4:16] = True  # one pixel too big all round: inside the ignore band
    assert iou(pred, gt, ignore) == 1.0
    assert iou(pred, gt) < 1.0


def test_simulate_counts_interactions_and_box_first() -> None:
    gt = np.zeros((40, 40), bool)
    gt[10:30, 10:30] = True
    seen: list[Prompt] = []

    def predict(p: Prompt) -> np.ndarray:
        seen.append(p)
        # a model that needs three clicks to get it right
        return gt if len(p.clicks) >= 3 else np.zeros_like(gt)

    t = simulate(predict, gt, max_clicks=5)
    assert t.noc(0.9, 5) == 3 and t.ious[:3] == [0.0, 0.0, 1.0]
    seen.clear()
    t = simulate(predict, gt, first="box", max_clicks=5)
    assert seen[0].box == gt_box(gt) == (10.0, 10.0, 30.0, 30.0) and not seen[0].clicks
    assert t.noc(0.9, 5) == 4  # the box, then three clicks


def test_noc_is_the_maximum_when_never_reached() -> None:
    t = InstanceTrace("x", ious=[0.1, 0.5, 0.8])
    assert t.noc(0.9, 3) == 3 and t.iou_at(5) == pytest.approx(0.8)
    s = summarize([t, InstanceTrace("y", ious=[0.95, 0.95, 0.95], latencies_ms=[1, 2, 3])], 3)
    assert s["noc90"] == 2.0 and s["miou_at_1"] == pytest.approx(0.525)
