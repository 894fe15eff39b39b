"""Files written the way the real tools write them, and the real datasets under shared/."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from labelpilot.annotations import Box, Mask, Point, Polygon, Polyline, Quad, RotatedBox
from labelpilot.formats import get_format
from labelpilot.transfer import export_dataset, import_dataset, workspace_stats
from tests.conftest import write_image

DATA = Path(__file__).resolve().parents[1] / "data"


def copy_data(name: str, tmp_path: Path, images: dict[str, tuple[int, int]]) -> Path:
    dest = tmp_path / name
    shutil.copytree(DATA / name, dest)
    for i, (rel, (w, h)) in enumerate(images.items()):
        write_image(dest / rel, w, h, seed=i)
    return dest


def test_cvat_xml(tmp_path: Path) -> None:
    src = copy_data("cvat", tmp_path, {"images/board_a.png": (64, 48),
                                       "images/board_b.png": (64, 48)})
    ds = get_format("cvat").load(src)
    assert ds.labels == ["text", "chip"]
    a, b = ds.items
    assert (a.split, b.split) == ("train", "val")
    kinds = [(x.label, type(x.shape).__name__) for x in a.annotations]
    assert kinds == [("chip", "Box"), ("chip", "RotatedBox"), ("text", "Quad"), ("chip", "Point"),
                     ("chip", "Polyline")]
    assert a.annotations[4].shape == Polyline(((1, 1), (5, 5)))
    assert a.annotations[0].shape == Box(4.5, 6, 30.25, 20)
    rot = a.annotations[1].shape
    assert isinstance(rot, RotatedBox) and (rot.cx, rot.cy, rot.w, rot.h, rot.angle) == (
        40, 25, 20, 10, 15.5)
    assert a.annotations[1].attributes == {"occluded": True}
    assert a.annotations[2].text == "U12 74HC595"
    assert not any("polyline" in w for w in ds.warnings)
    # a <tag> is the image's tag, not a skipped element
    assert not any("<tag>" in w for w in ds.warnings)
    assert (a.tags, b.tags) == (["chip"], [])
    (m,) = b.annotations
    assert isinstance(m.shape, Mask)
    arr = m.shape.to_array()
    assert arr.sum() == 7 and arr[12, 13:15].tolist() == [1, 1] and arr[14, 13:16].tolist() == [1, 1, 1]


def test_label_studio_ocr_template_and_predictions(tmp_path: Path) -> None:
    src = copy_data("labelstudio", tmp_path, {"panel.png": (64, 48)})
    ds = get_format("labelstudio").load(src)
    (item,) = ds.items
    assert item.name == "panel.png" and item.path == src / "panel.png"
    text, logo, pred = item.annotations
    assert (text.label, text.text, text.shape) == ("Text", "LOT 2024-17", Box(6.4, 6, 22.4, 15.6))
    assert isinstance(logo.shape, Polygon) and logo.shape.points[1] == (48, 24)
    assert (pred.status, pred.score, pred.source) == ("predicted", 0.61, "model:yolo_v8n@1")
    assert isinstance(pred.shape, RotatedBox) and pred.shape.angle == 30
    # Label Studio rotates about the top-left corner: that corner stays where it was drawn.
    np.testing.assert_allclose(pred.shape.corners()[0], (32, 12), atol=1e-9)


def test_voc_as_labelimg_writes_it(tmp_path: Path) -> None:
    src = copy_data("voc", tmp_path, {"JPEGImages/part_001.png": (64, 48)})
    (item,) = get_format("voc").load(src).items
    assert [(a.label, a.shape.bbox(), a.attributes) for a in item.annotations] == [
        ("screw", (3, 4, 20, 30), {"difficult": 1, "truncated": 0}),
        ("washer", (30, 10, 64, 48), {"difficult": 0, "truncated": 1}),
    ]


def test_ppocrlabel_as_the_tool_writes_it(tmp_path: Path) -> None:
    src = copy_data("ppocrlabel", tmp_path, {"imgs/tag_1.png": (64, 48), "imgs/tag_2.png": (64, 48)})
    a, b = get_format("ppocrlabel").load(src / "imgs").items
    assert (a.review_state, b.review_state) == ("done", None)  # Windows paths in fileState
    assert [type(x.shape).__name__ for x in a.annotations] == ["Quad", "Polygon"]
    assert b.annotations[0].attributes == {"difficult": True} and b.annotations[0].text == "###"


def test_yolo_ultralytics_layout(tmp_path: Path) -> None:
    src = copy_data("yolo", tmp_path, {"images/train/b1.png": (80, 40),
                                       "images/val/b2.png": (80, 40)})
    ds = get_format("yolo").load(src)
    assert ds.labels == ["bolt", "nut"]
    b1, b2 = ds.items
    assert (b1.split, b2.split) == ("train", "val")
    assert b1.annotations[0].shape.bbox() == pytest.approx((30, 10, 50, 30))
    assert isinstance(b2.annotations[0].shape, Polygon) and b2.annotations[0].label == "nut"


def test_coco128_imports_and_exports_faithfully(make_workspace, shared: Path, tmp_path: Path) -> None:
    src = shared / "datasets" / "coco128" / "annotations" / "instances_train2017.json"
    doc = json.loads(src.read_text())
    ws = make_workspace()
    r = import_dataset(ws, src, format="coco")
    parts = sum(len(a["segmentation"]) if isinstance(a["segmentation"], list) else 1
                for a in doc["annotations"])
    assert (r.images_added, r.annotations_added) == (128, parts)
    export_dataset(ws, tmp_path / "out", format="coco")
    out = json.loads((tmp_path / "out" / "annotations" / "instances.json").read_text())
    assert len(out["annotations"]) == len(doc["annotations"])  # parts regrouped into one object
    names = {c["id"]: c["name"] for c in doc["categories"]}
    out_names = {c["id"]: c["name"] for c in out["categories"]}
    files = {i["id"]: i["file_name"] for i in doc["images"]}
    out_files = {i["id"]: i["file_name"] for i in out["images"]}

    def bbox(a):
        if a["iscrowd"]:  # COCO's stated crowd boxes are 1 px short; take the mask's own
            seg = a["segmentation"]
            rle = ({"size": seg["size"], "counts": seg["counts"].encode()}
                   if isinstance(seg["counts"], str) else coco_mask.frPyObjects(seg, *seg["size"]))
            return coco_mask.toBbox(rle).tolist()
        return a["bbox"]

    def keyed(anns, cats, fnames):
        return Counter((fnames[a["image_id"]], cats[a["category_id"]], a["iscrowd"],
                        tuple(round(v) for v in bbox(a))) for a in anns)

    assert keyed(out["annotations"], out_names, out_files) == keyed(
        doc["annotations"], names, files)
    crowd = [a for a in out["annotations"] if a["iscrowd"]]
    assert len(crowd) == 10 and all(isinstance(a["segmentation"], dict) for a in crowd)


def test_icdar2015_from_mmocr(make_workspace, shared: Path) -> None:
    toy = shared / "datasets" / "mmocr_toy"
    ws = make_workspace(task="ocr", labels=["text"])
    r = import_dataset(ws, toy / "icdar2015_toy_gt" / "annotations" / "test", format="icdar",
                       images_dir=toy / "det_toy_dataset" / "imgs" / "test")
    assert r.images_added == 10
    gt1 = (toy / "icdar2015_toy_gt" / "annotations" / "test" / "gt_img_1.txt").read_text(
        encoding="utf-8-sig").splitlines()
    ds = get_format("icdar").load(toy / "icdar2015_toy_gt" / "annotations" / "test",
                                  images_dir=toy / "det_toy_dataset" / "imgs" / "test")
    item = next(i for i in ds.items if i.name == "img_1.jpg")
    assert [a.text for a in item.annotations] == [ln.split(",", 8)[8] for ln in gt1]
    assert isinstance(item.annotations[0].shape, Quad)
    assert item.annotations[0].shape.points[0] == (377, 117)  # the BOM did not eat a digit
    s = workspace_stats(ws)
    assert s["annotations_by_label"] == {"text": r.annotations_added}


def test_labelme_from_mmocr(shared: Path) -> None:
    toy = shared / "datasets" / "mmocr_toy"
    ds = get_format("labelme").load(toy / "icdar2015_toy_gt" / "labelme",
                                    images_dir=toy / "det_toy_dataset" / "imgs" / "test")
    assert len(ds.items) == 10 and all(i.path and i.path.is_file() for i in ds.items)
    item = next(i for i in ds.items if i.name == "img_1.jpg")
    assert item.annotations[0].label == "Genaxis Theatre"
    assert isinstance(item.annotations[0].shape, Polygon)


def test_lpr_plates_recognition_set(make_workspace, shared: Path, tmp_path: Path) -> None:
    plates = shared / "datasets" / "lpr_plates"
    ws = make_workspace(task="ocr", labels=["text"])
    r = import_dataset(ws, plates, format="ppocr-rec")
    lines = {s: (plates / f"{s}_rec_gt.txt").read_text(encoding="utf-8").splitlines()
             for s in ("train", "test")}
    assert (r.images_added, r.annotations_added) == (1000, 1000)
    s = workspace_stats(ws)
    assert s["images_by_split"] == {"test": len(lines["test"]), "train": len(lines["train"])}
    out = tmp_path / "rec"
    export_dataset(ws, out, format="ppocr-rec", split="test")
    exported = (out / "test_rec_gt.txt").read_text(encoding="utf-8").splitlines()
    assert sorted(ln.split("\t", 1)[1] for ln in exported) == sorted(
        ln.split("\t", 1)[1] for ln in lines["test"])
    # Each crop comes back at the size of the original plate image.
    from PIL import Image

    first = exported[0].split("\t")[0]
    assert Image.open(out / first).size == (94, 24)


def test_ppocrlabel_export_crops_every_line(make_workspace, tmp_path: Path) -> None:
    src = copy_data("ppocrlabel", tmp_path, {"imgs/tag_1.png": (64, 48), "imgs/tag_2.png": (64, 48)})
    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, src / "imgs", format="ppocrlabel")
    out = tmp_path / "out"
    export_dataset(ws, out, format="ppocrlabel")
    rec = (out / "images" / "rec_gt.txt").read_text(encoding="utf-8").splitlines()
    assert [ln.split("\t")[1] for ln in rec] == ["SN 00417", "MADE IN EU", "###"]
    from PIL import Image

    crop0 = Image.open(out / "images" / rec[0].split("\t")[0])
    assert crop0.size == (36, 10)  # rectified from the quad (4,5)-(40,15)
    state = (out / "images" / "fileState.txt").read_text(encoding="utf-8")
    assert state.count("\t1") == 1 and "tag_1.png" in state


def test_point_and_mask_kinds_are_typed(tmp_path: Path) -> None:
    # guard against a loader returning the wrong shape class for CVAT points
    src = copy_data("cvat", tmp_path, {"images/board_a.png": (64, 48),
                                       "images/board_b.png": (64, 48)})
    a, _ = get_format("cvat").load(src).items
    assert isinstance(a.annotations[3].shape, Point)


def test_ppocrlabel_export_writes_training_lists_per_split(make_workspace, tmp_path: Path) -> None:
    src = copy_data("ppocrlabel", tmp_path, {"imgs/tag_1.png": (64, 48), "imgs/tag_2.png": (64, 48)})
    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, src / "imgs", format="ppocrlabel", split="train")
    out = tmp_path / "out"
    export_dataset(ws, out, format="ppocrlabel")
    det = (out / "images" / "det_gt_train.txt").read_text(encoding="utf-8").splitlines()
    assert len(det) == 2 and all(ln.startswith("images/") for ln in det)
    rec = (out / "images" / "train_rec_gt.txt").read_text(encoding="utf-8").splitlines()
    assert [ln.split("\t")[1] for ln in rec] == ["SN 00417", "MADE IN EU", "###"]
    assert not (out / "images" / "det_gt_test.txt").exists()
