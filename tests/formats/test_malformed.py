"""Each malformed input gives a FormatError that names the file and the line or field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from labelpilot.errors import FormatError
from labelpilot.formats import get_format
from tests.conftest import write_image


def _w(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _folder(make: Path, source: Path) -> Path:
    make.mkdir()
    return source


def _coco(tmp: Path, **override: object) -> Path:
    doc: dict[str, object] = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}],
           "categories": [{"id": 1, "name": "cat"}]}
    doc.update(override)
    return _w(tmp / "c.json", json.dumps(doc))


def _yolo(tmp: Path, line: str, yaml: str = "train: images/train\nnames: [a, b]\n") -> Path:
    write_image(tmp / "images" / "train" / "x.png")
    _w(tmp / "data.yaml", yaml)
    _w(tmp / "labels" / "train" / "x.txt", "0 0.5 0.5 0.1 0.1\n" + line)
    return tmp


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<annotation><filename>&lol2;</filename></annotation>"""

# (format, make the bad input in a temp dir, what the message must say)
CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    # truncated JSON
    ("coco", lambda t: _w(t / "c.json", '{"images": [{"id": 1'), r"c\.json: not valid JSON"),
    # images is not a list
    ("coco", lambda t: _coco(t, images={}), r"c\.json, at images: 'images' must be a list"),
    # a bbox with 3 numbers
    ("coco", lambda t: _coco(t, annotations=[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}]),
     r"at annotations\[0\]: 'bbox' must be"),
    # a bbox of booleans, a segmentation that is a string (both once accepted silently)
    ("coco", lambda t: _coco(t, annotations=[{"image_id": 1, "category_id": 1,
                                              "bbox": [True, 0, 5, 5]}]),
     r"at annotations\[0\]: 'bbox' must be 4 numbers"),
    ("coco", lambda t: _coco(t, annotations=[{"image_id": 1, "category_id": 1,
                                              "bbox": [0, 0, 5, 5], "segmentation": "a"}]),
     r"at annotations\[0\]: 'segmentation' must be a list of polygons or an RLE object, "
     r"not str"),
    # an RLE whose size is not the image's
    ("coco", lambda t: _coco(t, annotations=[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],
                                              "segmentation": {"size": [10, 10], "counts": "0"}}]),
     r"at annotations\[0\]: RLE size \[10, 10\] does not match"),
    # a box with negative width
    ("coco", lambda t: _coco(t, annotations=[{"image_id": 1, "category_id": 1, "bbox": [5, 5, -3, 2]}]),
     r"at annotations\[0\]: box must have x2 >= x1"),
    ("yolo", lambda t: t, r"no data\.yaml \(Ultralytics\) or obj\.data \(Darknet\) found"),
    ("yolo", lambda t: _yolo(t, "", yaml="names: [a\n"),
     r"data\.yaml, line 2: not valid YAML \(expected .,. or .\]., but got .<stream end>.\)"),
    # class index beyond names
    ("yolo", lambda t: _yolo(t, "5 0.5 0.5 0.1 0.1\n"),
     r"x\.txt, line 2: class 5 is not among the dataset's 2 class names \(0-1\)"),
    ("yolo", lambda t: _yolo(t, "0 0.5 abc 0.1 0.1\n"), r"x\.txt, line 2: expected 'class x y"),
    ("yolo", lambda t: _yolo(t, "0 0.5 0.5 0.1\n"), r"x\.txt, line 2: expected 4 box values"),
    # train folder outside the dataset
    ("yolo", lambda t: _yolo(t, "", yaml="train: ../../etc\nnames: [a]\n"), "leads outside"),
    # an odd number of polygon values
    ("yolo-seg", lambda t: _yolo(t, "1 0.1 0.1 0.5 0.1 0.5\n"), r"x\.txt, line 2: expected 4 box values"),
    ("yolo-obb", lambda t: _yolo(t, "1 0.1 0.1 0.5 0.1 0.5 0.5 0.1 nan\n"),
     r"x\.txt, line 2: quad\.points\[3\]\.y must be finite, but got nan"),
    ("voc", lambda t: _w(t / "Annotations" / "a.xml", "<annotation><object>\n<name>x</name>"),
     r"a\.xml, line 2: not well-formed XML"),
    ("voc", lambda t: _w(t / "Annotations" / "a.xml",
                         "<annotation><filename>a.png</filename><object><name>x</name></object>"
                         "</annotation>"), r"a\.xml, at object\[0\]: object has no <bndbox>"),
    ("voc", lambda t: _w(t / "Annotations" / "a.xml",
                         "<annotation><object><name>x</name><bndbox><xmin>a</xmin></bndbox></object>"
                         "</annotation>"), r"at object\[0\]/bndbox: bndbox values must be numbers"),
    # entity expansion (billion laughs) is refused, not expanded
    ("voc", lambda t: _w(t / "Annotations" / "a.xml", BOMB), r"a\.xml: refused XML"),
    ("labelme", lambda t: _w(t / "a.json", '{"shapes": 3}'), r"a\.json: not a LabelMe file"),
    ("labelme", lambda t: _w(t / "a.json", '{"shapes": [], "imageData": "###"}'),
     r"a\.json, at imageData: imageData is not valid base64"),
    # (a 2-point polygon, which labelme opens, is skipped with a warning: test_fidelity)
    ("labelme", lambda t: _w(t / "a.json", json.dumps({"shapes": [
        {"label": "a", "shape_type": "rectangle", "points": []}]})),
     r"a\.json, at shapes\[0\]: a rectangle takes 2 or 4 point\(s\), not 0"),
    ("labelme", lambda t: _w(t / "a.json", json.dumps({"shapes": [
        {"label": "a", "shape_type": "polygon", "points": [[0, 0], [1, True], [2, 2]]}]})),
     r"a\.json, at shapes\[0\]: 'points' must be a list of \[x, y\] number pairs"),
    ("labelme", lambda t: _w(t / "a.json", json.dumps({"shapes": [
        {"label": "a", "shape_type": "point", "points": [[1, 1]], "flags": ["x"]}]})),
     r"a\.json, at shapes\[0\]: 'flags' must be an object, not list"),
    ("labelme", lambda t: _w(t / "a.json", json.dumps({"shapes": [
        {"label": "a", "shape_type": "point", "points": [[1, 1]], "group_id": "1"}]})),
     r"a\.json, at shapes\[0\]: 'group_id' must be an integer or null, not '1'"),
    ("ppocrlabel", lambda t: _w(t / "Label.txt", "imgs/a.png [1]\n"),
     r"Label\.txt, line 1: expected 'image_path<TAB>"),
    ("ppocrlabel", lambda t: _w(t / "Label.txt", "imgs/a.png\t[{\"points\": \n"),
     r"Label\.txt, line 1: the label list is not valid JSON"),
    ("ppocrlabel", lambda t: _w(t / "Label.txt", 'imgs/a.png\t[]\nimgs/b.png\t[{"transcription": "x"}]\n'),
     r"Label\.txt, line 2, at \[0\]: each label needs 'points'"),
    ("ppocr-rec", lambda t: _w(t / "rec_gt.txt", "a.png\tAB\nb.png AB\n"),
     r"rec_gt\.txt, line 2: expected 'crop_path<TAB>text'"),
    ("icdar", lambda t: _w(t / "gt_a.txt", "1,2,3,4,5,6,7,8,ok\n1,2,3,4\n"),
     r"gt_a\.txt, line 2: expected 8 coordinates"),
    ("icdar", lambda t: _w(t / "gt_a.txt", "1,2,3,x,5,6,7,8,t\n"),
     r"gt_a\.txt, line 1: coordinates must be numbers"),
    ("labelstudio", lambda t: _w(t / "p.json", '"hello"'), r"p\.json: expected a list of tasks"),
    ("labelstudio", lambda t: _w(t / "p.json", '[{"id": 1}]'),
     r"p\.json, at \[0\]: each task needs a 'data' object"),
    ("labelstudio", lambda t: _w(t / "p.json", json.dumps([{"data": {"image": "a.png"}, "annotations": [
        {"result": [{"id": "1", "type": "brushlabels", "original_width": 4, "original_height": 4,
                     "value": {"format": "rle", "rle": [0, 0, 0, 8, 224, 0, 0], "brushlabels": ["a"]}}]}]}])),
     r"p\.json, at \[0\]\.annotations\[0\]\.result: Label Studio (brush )?RLE"),
    ("cvat", lambda t: _w(t / "annotations.xml", "<root/>"),
     r"annotations\.xml: the root element is <root>"),
    ("cvat", lambda t: _w(t / "annotations.xml", '<annotations><image id="0" name="a.png"/></annotations>'),
     r"annotations\.xml, at image\[0\]: <image> needs integer width"),
    ("cvat", lambda t: _w(t / "annotations.xml", '<annotations><image id="0" name="a.png" width="9" '
                          'height="9"><polygon label="a" points="1,2;x"/></image></annotations>'),
     r"at image\[0\]/polygon\[0\]: bad values"),
    ("images", lambda t: _folder(t / "empty", t / "empty"), "no images"),
    ("masks", lambda t: _folder(t / "images", t), "no masks/ folder"),
]


@pytest.mark.parametrize(("fmt", "make", "message"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_malformed(fmt: str, make: Callable[[Path], Path], message: str, tmp_path: Path) -> None:
    source = make(tmp_path)
    with pytest.raises(FormatError, match=message):
        get_format(fmt).load(source if source.is_file() and fmt not in ("yolo", "voc") else
                             source if fmt != "voc" else tmp_path)


def test_every_format_has_a_malformed_case() -> None:
    from labelpilot.formats import list_formats

    assert {c[0] for c in CASES} == set(list_formats())
