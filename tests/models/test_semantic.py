"""Class-specific helpers: the real pretrained segmentation models on real COCO images."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from labelpilot.evaluation.clicker import gt_box
from labelpilot.geometry.iou import mask_iou as iou
from labelpilot.jobs.segment_everything import segment_everything
from labelpilot.models.base import Click, Prompt
from labelpilot.models.catalogue import install
from labelpilot.models.registry import load_segmenter
from tests.imaging import read_bgr
from tests.scenes import deepest


def person(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    """The COCO-MVal person instance that covers the largest share of its image."""
    d = shared / "datasets" / "coco_mval"
    gts = {p.stem: read_bgr(d / "gt" / f"{p.stem}.png", cv2.IMREAD_GRAYSCALE) > 0
           for p in sorted((d / "img").glob("person*.jpg"))}
    name = max(gts, key=lambda k: float(np.mean(gts[k])))
    img = read_bgr(d / "img" / f"{name}.jpg")[..., ::-1]
    return np.ascontiguousarray(img), np.asarray(gts[name])


@pytest.mark.parametrize("name,file", [
    ("deeplabv3-pascal", "deeplabv3_mnv2_pascal_257.onnx"),
    ("selfie-person", "seg_selfie_segmentation.onnx"),
])
def test_a_click_on_a_person_gives_the_person(shared: Path, tmp_path: Path, name: str,
                                              file: str) -> None:
    install(tmp_path, name, str(shared / "models" / file))
    seg = load_segmenter(name, tmp_path)
    img, gt = person(shared)
    emb = seg.embed(img)
    m = seg.predict(emb, Prompt([Click(*deepest(gt))]))[0]
    assert m.mask.shape == gt.shape and m.quality is not None and 0 < m.quality <= 1
    assert iou(m.mask, gt) > 0.4  # a helper, not a perfect mask: well over chance
    boxed = seg.predict(emb, Prompt(box=gt_box(gt)))[0].mask
    assert not boxed[~_box_mask(gt)].any()  # nothing outside the box


def _box_mask(gt: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in gt_box(gt))
    out = np.zeros_like(gt)
    out[y1:y2, x1:x2] = True
    return out


def test_segment_everything_labels_regions_by_class(shared: Path, tmp_path: Path) -> None:
    install(tmp_path, "deeplabv3-pascal", str(shared / "models" / "deeplabv3_mnv2_pascal_257.onnx"))
    seg = load_segmenter("deeplabv3-pascal", tmp_path)
    img, gt = person(shared)
    found = segment_everything(seg, img)
    labels = [lab for _, lab in found]
    assert "person" in labels and "background" not in labels
    best = max((iou(p.mask, gt), lab) for p, lab in found)
    assert best[1] == "person" and best[0] > 0.4
