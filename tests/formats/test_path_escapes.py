"""An import reads nothing outside the folder it is given, whatever the label files name
and whatever links the folder holds (absolute names, linked folders, linked files), and
its errors do not tell whether a path outside exists."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from labelpilot.errors import LabelPilotError, UnsafePathError
from labelpilot.transfer import import_dataset, workspace_stats
from tests.conftest import write_image
from tests.test_transfer import coco_dir


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A readable image outside every import folder: importing it would succeed."""
    return write_image(tmp_path / "outside" / "secret.png", 64, 48, seed=99)


def _images(ws) -> int:  # type: ignore[no-untyped-def]
    return int(workspace_stats(ws)["images"])


def _coco_naming(src: Path, name: str) -> Path:
    doc = json.loads((src / "annotations" / "instances.json").read_text())
    doc["images"][0]["file_name"] = name
    (src / "annotations" / "instances.json").write_text(json.dumps(doc))
    return src


def test_absolute_coco_names_are_not_read_and_tell_nothing(make_workspace, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                           secret: Path) -> None:
    ws = make_workspace()
    messages = []
    for i, name in enumerate([str(secret), "/etc/passwd", "/no/such/file.png"]):
        src = _coco_naming(coco_dir(tmp_path / f"c{i}", 1, seed0=10 * i), name)
        (src / "images" / "im0.png").unlink()
        with pytest.raises(LabelPilotError) as e:
            import_dataset(ws, src, format="coco")
        messages.append(e.value.message.replace(name, "NAME"))
    # the same words whether the file exists outside, exists but is no image, or not at all
    assert len(set(messages)) == 1 and "NAME: image file not found" in messages[0]
    assert _images(ws) == 0


def test_absolute_voc_and_cvat_names_are_not_read(make_workspace, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                  secret: Path) -> None:
    ws = make_workspace(labels=["cat"])
    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "Annotations" / "a.xml").write_text(
        f"<annotation><filename>{secret}</filename><size><width>64</width><height>48</height>"
        "</size><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>"
        "<ymax>9</ymax></bndbox></object></annotation>")
    cvat = tmp_path / "cvat"
    cvat.mkdir()
    (cvat / "annotations.xml").write_text(
        f'<annotations><image id="0" name="{secret}" width="64" height="48">'
        '<box label="cat" xtl="1" ytl="1" xbr="9" ybr="9" occluded="0"/></image></annotations>')
    for src, fmt in ((voc, "voc"), (cvat, "cvat")):
        with pytest.raises(LabelPilotError, match="image file not found"):
            import_dataset(ws, src, format=fmt)
    assert _images(ws) == 0


def test_a_linked_folder_inside_a_coco_folder_is_not_followed(make_workspace, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                              secret: Path) -> None:
    ws = make_workspace()
    src = _coco_naming(coco_dir(tmp_path / "c", 1), "ext/secret.png")
    (src / "images" / "im0.png").unlink()
    os.symlink(secret.parent, src / "images" / "ext")
    with pytest.raises(LabelPilotError, match="image file not found"):
        import_dataset(ws, src, format="coco")
    assert _images(ws) == 0


def _yolo(root: Path) -> Path:
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "data.yaml").write_text("train: images/train\nnames: [cat]\n")
    write_image(root / "images" / "train" / "a.png")
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return root


def test_linked_files_in_a_yolo_folder_are_refused(make_workspace, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                   secret: Path) -> None:
    ws = make_workspace()
    src = _yolo(tmp_path / "y")
    os.symlink(secret, src / "images" / "train" / "evil.png")
    with pytest.raises(UnsafePathError, match=r"evil\.png is a link to outside"):
        import_dataset(ws, src, format="yolo")
    (src / "images" / "train" / "evil.png").unlink()
    # a label file linked to a file outside is refused too
    (tmp_path / "outside" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (src / "labels" / "train" / "a.txt").unlink()
    os.symlink(tmp_path / "outside" / "a.txt", src / "labels" / "train" / "a.txt")
    with pytest.raises(UnsafePathError, match=r"a\.txt is a link to outside"):
        import_dataset(ws, src, format="yolo")
    assert _images(ws) == 0
    # a link that stays inside the folder is fine
    (src / "labels" / "train" / "a.txt").unlink()
    (src / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    os.symlink(src / "images" / "train" / "a.png", src / "images" / "train" / "b.png")
    # (b.png is another item with a.png's bytes: an image of its own, sharing the file)
    assert import_dataset(ws, src, format="yolo").images_added == 2
    assert len(list(ws.blobs.root.glob("*/*.png"))) == 1


@pytest.mark.parametrize("fmt", ["images", "masks", "labelme", "icdar"])
def test_folder_walking_formats_refuse_links_to_outside(make_workspace, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                        secret: Path, fmt: str) -> None:
    ws = make_workspace()
    src = tmp_path / fmt
    if fmt == "images":
        write_image(src / "a.png")
        link = src / "b.png"
    elif fmt == "masks":
        write_image(src / "images" / "a.png")
        write_image(src / "masks" / "a.png")
        link = src / "images" / "b.png"
    elif fmt == "labelme":
        src.mkdir()
        (tmp_path / "outside" / "x.json").write_text('{"shapes": []}')
        secret = tmp_path / "outside" / "x.json"
        link = src / "x.json"
    else:
        src.mkdir()
        (tmp_path / "outside" / "gt_x.txt").write_text("1,1,9,1,9,9,1,9,hi\n")
        secret = tmp_path / "outside" / "gt_x.txt"
        link = src / "gt_x.txt"
    os.symlink(secret, link)
    with pytest.raises(UnsafePathError, match="is a link to outside"):
        import_dataset(ws, src, format=fmt)
    assert _images(ws) == 0
