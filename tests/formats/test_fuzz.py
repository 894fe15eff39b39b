"""Fuzzing every reader (issue 15): a valid export of each format, its label files mutated
by hypothesis (bytes replaced, cut, dropped, and values people and tools get wrong spliced
in), imported into a workspace. Each must import faithfully or refuse in one clean line
naming the problem, leaving the workspace as it was: never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelpilot.annotations import Annotation, Box, Mask, Point, Polygon, Quad
from labelpilot.errors import LabelPilotError
from labelpilot.formats import get_format
from labelpilot.formats.base import Dataset, DatasetItem
from labelpilot.imageio import IMAGE_SUFFIXES
from labelpilot.transfer import import_dataset, workspace_stats
from labelpilot.workspace import Workspace
from tests.conftest import write_image

# Values that break readers: wrong types, huge and negative numbers, paths out, markup,
# control characters, deep nesting, unbalanced brackets.
TOKENS = [b"null", b"-1", b"1e309", b"NaN", b"true", b'"[/x]"', b"[]", b"{}", b'"a"',
          b"../../etc/passwd", b"/etc/passwd", b"\x00", b"\xff\xfe", b"[" * 50, b"]", b"}",
          b"<", b"</image>", b"\t", b"\n", b",", b" ", b"99999999999999999999", b"0",
          b"###", b'"', b"\\"]


def _mask() -> Mask:
    m = np.zeros((48, 64), dtype=np.uint8)
    m[10:30, 20:50] = 1
    return Mask.from_array(m)


def _source(tmp: Path, fmt: str) -> Path:
    """A small valid dataset in `fmt`, as LabelPilot's own export writes it."""
    write_image(tmp / "src-img" / "a.png", 64, 48, seed=1)
    write_image(tmp / "src-img" / "b.png", 64, 48, seed=2)
    anns = {
        "a.png": [Annotation("car", Box(2, 3, 30, 20)),
                  Annotation("text", Quad(((5, 25), (40, 25), (40, 35), (5, 35))), text="AB 12"),
                  Annotation("person", Polygon(((40, 5), (60, 8), (55, 30))))],
        "b.png": [Annotation("car", _mask()), Annotation("person", Point(10, 10))]}
    items = [DatasetItem(name=n, path=tmp / "src-img" / n, width=64, height=48,
                         split="train" if n == "a.png" else "val", annotations=a)
             for n, a in anns.items()]
    out = tmp / "src"
    if fmt == "yolo-darknet":
        return _darknet(Dataset(items, ["car", "person", "text"]), out)
    if fmt == "voc-seg":  # VOC with class masks named by CVAT's labelmap.txt
        get_format("voc").save(Dataset(items, ["car", "person", "text"]), out)
        from PIL import Image

        cls = np.zeros((48, 64), np.uint8)
        cls[3:20, 2:30] = 1
        cls[25:35, 5:40] = 3
        cls[0, :] = 255
        (out / "SegmentationClass").mkdir()
        im = Image.fromarray(cls, mode="P")
        im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 0, 0, 128] + [0] * (251 * 3)
                      + [224, 224, 192])
        im.save(out / "SegmentationClass" / "a.png")
        (out / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n"
                                          "background:0,0,0::\ncar:128,0,0::\n"
                                          "person:0,128,0::\ntext:0,0,128::\n")
        return out
    if fmt == "coco-keypoints":  # an instance with keypoints and its class's skeleton
        items[0].annotations = [
            Annotation("person", Box(2, 3, 30, 20), group=1),
            Annotation("person", Point(10, 8), attributes={"keypoint": "head", "visibility": 2},
                       group=1),
            Annotation("person", Point(12, 18), attributes={"keypoint": "foot",
                                                            "visibility": 1}, group=1)]
        get_format("coco").save(Dataset(items, ["car", "person"], keypoints={"person": {
            "keypoints": ["head", "foot"], "skeleton": [[1, 2]]}}), out)
        return out
    if fmt == "cvat-video":  # tracks over frames, as CVAT for video 1.1 writes them
        from tests.formats.test_fidelity import cvat_video

        return cvat_video(out)
    if fmt == "masks-meta":  # the class map as Datumaro's dataset_meta.json
        get_format("masks").save(Dataset(items, ["car", "person", "text"]), out)
        names = [n for n in (out / "labels.txt").read_text().split() if n != "__ignore__"]
        (out / "labels.txt").unlink()
        (out / "dataset_meta.json").write_text(json.dumps({
            "label_map": {str(i): n for i, n in enumerate(names)}, "background_label": "0",
            "segmentation_colors": [[i, 0, 0] for i in range(len(names))]}))
        return out
    get_format(fmt).save(Dataset(items, ["car", "person", "text"]), out)
    return out


def _darknet(dataset: Dataset, out: Path) -> Path:
    """The YOLO export rearranged as CVAT's YOLO 1.1 (Darknet) layout."""
    staging = out.parent / "yolo"
    get_format("yolo").save(dataset, staging)
    for split, subset in (("train", "train"), ("val", "valid")):
        listed = []
        for img in sorted((staging / "images" / split).glob("*")):
            (out / f"obj_{subset}_data").mkdir(parents=True, exist_ok=True)
            img.rename(out / f"obj_{subset}_data" / img.name)
            txt = staging / "labels" / split / f"{img.stem}.txt"
            txt.rename(out / f"obj_{subset}_data" / txt.name)
            listed.append(f"data/obj_{subset}_data/{img.name}\n")
        (out / f"{subset}.txt").write_text("".join(listed))
    (out / "obj.names").write_text("car\nperson\ntext\n")
    (out / "obj.data").write_text("classes = 3\ntrain = data/train.txt\n"
                                  "valid = data/valid.txt\nnames = data/obj.names\n")
    return out


def _label_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()
                  and p.suffix.lower() not in IMAGE_SUFFIXES)


def _mutate(data: bytes, draw: Any) -> bytes:
    kind = draw(st.sampled_from(["replace", "cut", "drop", "splice", "splice"]))
    if not data:
        return draw(st.binary(max_size=20))
    at = draw(st.integers(0, len(data) - 1))
    if kind == "cut":
        return data[:at]
    end = draw(st.integers(at, min(len(data), at + 12)))
    if kind == "drop":
        return data[:at] + data[end:]
    if kind == "replace":
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[end:]
    return data[:at] + draw(st.sampled_from(TOKENS)) + data[end:]


def _snapshot(ws: Workspace) -> tuple[Any, ...]:
    return (workspace_stats(ws), sorted(p.name for p in ws.blobs.root.glob("*/*")),
            list(ws.config.labels))


FORMATS = ["coco", "cvat", "icdar", "labelme", "labelstudio", "ppocrlabel", "voc", "yolo",
           "yolo-seg", "yolo-obb", "yolo-darknet", "masks",
           "masks-meta", "voc-seg", "coco-keypoints", "ppocr-rec", "cvat-video"]


READER = {"yolo-darknet": "yolo", "masks-meta": "masks", "voc-seg": "voc",
          "coco-keypoints": "coco", "cvat-video": "cvat"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_label_files_import_or_refuse_cleanly(fmt: str, tmp_path: Path) -> None:
    source = _source(tmp_path, fmt)
    files = _label_files(source)
    assert files, f"{fmt} wrote no label file"
    original = {p: p.read_bytes() for p in files}
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["car"])
    seen = {"ok": 0, "refused": 0}

    @settings(max_examples=100, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(files))
        mutated = _mutate(original[target], data.draw)
        for p, content in original.items():
            p.write_bytes(mutated if p == target else content)
        before = _snapshot(ws)
        try:
            import_dataset(ws, source, format=READER.get(fmt, fmt))
        except LabelPilotError as e:
            seen["refused"] += 1
            # a clean message that says what (one line, or a headline with one indented line
            # per file it lists): no Python internals, nothing half-written
            head, *listed = e.message.split("\n")
            assert head and all(ln.startswith("  ") for ln in listed), e.message
            assert "Traceback" not in e.message and "object at 0x" not in e.message
            assert _snapshot(ws) == before, e.message
        else:
            seen["ok"] += 1

    try:
        run()
    finally:
        ws.close()
    # the mutations reached both outcomes' code, not only one
    assert seen["refused"] > 0 and seen["ok"] > 0, seen
