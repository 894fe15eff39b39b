"""save -> load gives the same annotations, for every registered format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelpilot.annotations import Annotation, Box, Mask, Point, Polygon, Quad, RotatedBox
from labelpilot.formats import get_format, list_formats
from labelpilot.formats.base import Dataset, DatasetItem
from tests.conftest import write_image

W, H = 80, 60


def _mask() -> Mask:
    m = np.zeros((H, W), dtype=np.uint8)
    m[10:30, 20:50] = 1
    m[15:20, 30:35] = 0  # a hole
    return Mask.from_array(m)


BOX = Annotation(label="car", shape=Box(5.5, 6.25, 40.0, 30.75))
BOX2 = Annotation(label="person", shape=Box(50, 10, 70, 55))
POLY = Annotation(label="person", shape=Polygon(((10, 10), (30, 12), (25, 40), (8, 35))))
ROT = Annotation(label="car", shape=RotatedBox(40, 30, 20, 10, 30))
QUAD_TEXT = Annotation(label="text", shape=Quad(((10, 10), (50, 12), (49, 22), (9, 20))),
                       text="LOT 42A, 2024")
QUAD_TEXT_INT = Annotation(label="text", shape=Quad(((10, 10), (50, 12), (49, 22), (9, 20))),
                           text="###")
POINT = Annotation(label="person", shape=Point(12.5, 40.25))
MASK = Annotation(label="car", shape=_mask())
_m2 = np.zeros((H, W), dtype=np.uint8)
_m2[35:55, 55:75] = 1
MASK2 = Annotation(label="person", shape=Mask.from_array(_m2))
PRED = Annotation(label="car", shape=Box(1, 2, 20, 22), score=0.75, status="predicted",
                  source="model:x@1")
GROUP = [Annotation(label="car", shape=Polygon(((1, 1), (10, 1), (10, 10))), group=1),
         Annotation(label="car", shape=Polygon(((20, 20), (30, 20), (30, 30))), group=1)]

# What each format keeps losslessly, and how close coordinates come back (pixels).
CASES: dict[str, tuple[list[Annotation], float]] = {
    "coco": ([BOX, POLY, MASK, QUAD_TEXT, *GROUP], 1e-6),
    "yolo": ([BOX, BOX2], 1e-3),
    "yolo-seg": ([POLY], 1e-3),
    "yolo-obb": ([Annotation(label="car", shape=Quad(((10, 10), (50, 12), (49, 22), (9, 20))))],
                 1e-3),
    "voc": ([BOX, BOX2], 1e-3),
    "labelme": ([BOX, POLY, POINT, QUAD_TEXT, MASK], 1e-6),
    "ppocrlabel": ([QUAD_TEXT, QUAD_TEXT_INT], 1e-2),
    "icdar": ([QUAD_TEXT, QUAD_TEXT_INT], 0.5),
    "labelstudio": ([BOX, ROT, POLY, QUAD_TEXT, MASK, POINT, PRED], 1e-6),
    "cvat": ([BOX, ROT, POLY, QUAD_TEXT, POINT, MASK], 5e-3),
    "images": ([], 0),
    "masks": ([MASK, MASK2], 0),
}
SPLITS_KEPT = {"coco", "yolo", "yolo-seg", "yolo-obb", "voc", "cvat"}


def test_every_format_has_a_case() -> None:
    # a new format must add its round-trip case here
    assert set(list_formats()) == set(CASES) | {"ppocr-rec"}


def _key(a: Annotation) -> Any:
    return (a.label, a.shape.type, a.text, tuple(round(v, 1) for v in a.shape.bbox()))


def _coords(a: Annotation) -> np.ndarray:
    s = a.shape
    if isinstance(s, Mask):
        return s.to_array().astype(float).ravel()
    if isinstance(s, RotatedBox):
        return np.array([s.cx, s.cy, s.w, s.h, s.angle % 360])
    if isinstance(s, Polygon | Quad):
        return np.array(s.points, dtype=float).ravel()
    return np.array(s.bbox())


def assert_same(expected: list[Annotation], got: list[Annotation], tol: float) -> None:
    assert len(got) == len(expected), [_key(a) for a in got]
    for e, g in zip(sorted(expected, key=_key), sorted(got, key=_key), strict=True):
        assert (g.label, g.shape.type, g.text) == (e.label, e.shape.type, e.text)
        np.testing.assert_allclose(_coords(g), _coords(e), atol=tol)
        assert g.score == pytest.approx(e.score) if e.score is not None else g.score is None
        assert g.status == e.status
        if e.group is not None:
            assert g.group is not None


@pytest.mark.parametrize("name", sorted(CASES))
def test_roundtrip(name: str, tmp_path: Path) -> None:
    anns, tol = CASES[name]
    items = []
    for i, split in enumerate(["train", "val"]):
        img = write_image(tmp_path / "src" / f"img{i}.png", W, H, seed=i)
        items.append(DatasetItem(name=f"img{i}.png", path=img, width=W, height=H,
                                 split=split, annotations=list(anns)))
    fmt = get_format(name)
    fmt.save(Dataset(items, ["car", "person", "text"]), tmp_path / "out")
    back = fmt.load(tmp_path / "out")
    by_stem = {Path(it.name).stem: it for it in back.items}
    assert sorted(by_stem) == ["img0", "img1"]
    for item in items:
        got = by_stem[item.stem]
        assert got.path is not None and item.path is not None
        assert got.path.read_bytes() == item.path.read_bytes()
        assert_same(item.annotations, got.annotations, tol)
        if name in SPLITS_KEPT:
            assert got.split == item.split


def test_ppocr_rec_roundtrip(tmp_path: Path) -> None:
    items = []
    for i, split in enumerate(["train", "test"]):
        img = write_image(tmp_path / "src" / f"crop{i}.png", 100, 32, seed=i)
        items.append(DatasetItem(name=f"crop{i}.png", path=img, width=100, height=32,
                                 split=split, annotations=[Annotation(
                                     label="text", shape=Quad(((0, 0), (100, 0), (100, 32), (0, 32))),
                                     text=f"AB{i} 77")]))
    fmt = get_format("ppocr-rec")
    fmt.save(Dataset(items), tmp_path / "out")
    back = fmt.load(tmp_path / "out")
    assert [(it.split, it.annotations[0].text) for it in back.items] == \
        [("train", "AB0 77"), ("test", "AB1 77")]
    for it in back.items:
        assert it.annotations[0].shape.bbox() == (0, 0, 100, 32)  # crop kept its size


@pytest.mark.parametrize("fmt", ["voc", "cvat"])
def test_xml_exports_parse_whatever_the_labels_hold(tmp_path: Path, fmt: str) -> None:
    """Control characters (from an imported label file) make XML ill-formed: they are
    written as U+FFFD and the export says so."""
    from labelpilot.formats.base import parse_xml

    item = DatasetItem(name="a.png", width=64, height=48, annotations=[
        Annotation(label="ca\x00t", shape=Box(1, 2, 30, 40), text="bell\x07")])
    ds = Dataset([item], labels=["ca\x00t"])
    ds.include_images = False
    get_format(fmt).save(ds, tmp_path / "out")
    xml = next((tmp_path / "out").rglob("*.xml"))
    names = [el.text for el in parse_xml(xml).iter("name")] + \
        [el.get("label") for el in parse_xml(xml).iter("box")]
    assert "ca\ufffdt" in names
    assert any("U+FFFD" in w for w in ds.warnings)
