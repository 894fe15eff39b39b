"""The `masks` format: binary, instance-id and palette PNGs, ignore values, labels.txt."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from labelpilot.errors import FormatError
from labelpilot.formats import configured, get_format
from labelpilot.formats.masks import shape_mask
from labelpilot.transfer import export_dataset, import_dataset
from tests.conftest import write_image


def layout(tmp: Path) -> Path:
    (tmp / "images").mkdir(parents=True)
    (tmp / "masks").mkdir()
    return tmp


def test_binary_mask_with_an_ignore_band(tmp_path: Path) -> None:
    src = layout(tmp_path / "src")
    write_image(src / "images" / "a.jpg", 40, 30)
    m = np.zeros((30, 40), np.uint8)
    m[5:25, 5:35] = 128  # GrabCut's uncertain band
    m[7:23, 7:33] = 255
    cv2.imwrite(str(src / "masks" / "a.bmp"), m)
    ds = configured(get_format("masks"), {"ignore_value": 128}).load(src)
    (item,) = ds.items
    obj, ign = item.annotations
    assert obj.label == "object" and obj.attributes == {}
    assert (shape_mask(obj.shape, 40, 30) == (m == 255)).all()
    assert ign.attributes == {"ignore": True} and (shape_mask(ign.shape, 40, 30) == (m == 128)).all()
    # without --ignore-value, 128 is just another instance
    plain = get_format("masks").load(src)
    assert [a.attributes for a in plain.items[0].annotations] == [{"value": 128}, {"value": 255}]


def test_palette_instances_and_labels_txt(tmp_path: Path) -> None:
    src = layout(tmp_path / "src")
    write_image(src / "images" / "b.png", 20, 20)
    ids = np.zeros((20, 20), np.uint8)
    ids[1:5, 1:5] = 1
    ids[10:15, 10:18] = 2
    ids[0, 19] = 255  # VOC's void
    im = Image.fromarray(ids, mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3 - 3) + [224, 224, 192])
    im.save(src / "masks" / "b.png")
    (src / "labels.txt").write_text("cat\ndog\n")
    ds = configured(get_format("masks"), {"ignore_value": 255}).load(src)
    anns = ds.items[0].annotations
    assert [a.label for a in anns] == ["cat", "dog", "ignore"]
    assert [int(shape_mask(a.shape, 20, 20).sum()) for a in anns] == [16, 40, 1]
    assert ds.labels == ["cat", "dog", "ignore"]


def test_missing_masks_and_bad_files_are_reported(tmp_path: Path) -> None:
    src = layout(tmp_path / "src")
    write_image(src / "images" / "c.png", 10, 10)
    write_image(src / "images" / "d.png", 10, 10, seed=1)
    (src / "masks" / "d.png").write_bytes(b"not a png")
    with pytest.raises(FormatError, match=r"d\.png.*not a readable mask"):
        get_format("masks").load(src)
    (src / "masks" / "d.png").unlink()
    ds = get_format("masks").load(src)
    assert len(ds.items) == 2 and any("no mask" in w for w in ds.warnings)
    cv2.imwrite(str(src / "masks" / "c.png"), np.full((10, 10), 3, np.uint8))
    (src / "labels.txt").write_text("one\n")
    with pytest.raises(FormatError, match=r"value 3 has no line in labels\.txt"):
        get_format("masks").load(src)
    with pytest.raises(FormatError, match="no images/ folder"):
        get_format("masks").load(tmp_path)
    with pytest.raises(Exception, match="takes no options"):
        configured(get_format("coco"), {"ignore_value": 1})


def test_import_export_round_trip(make_workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = layout(tmp_path / "src")
    write_image(src / "images" / "e.png", 50, 40)
    ids = np.zeros((40, 50), np.uint8)
    cv2.circle(ids, (15, 20), 8, 1, -1)
    cv2.rectangle(ids, (30, 5), (45, 30), 2, -1)
    ids[0:2, :] = 128
    cv2.imwrite(str(src / "masks" / "e.png"), ids)
    ws = make_workspace(task="segment")
    rep = import_dataset(ws, src, format="masks", options={"ignore_value": 128})
    assert rep.annotations_added == 3
    export_dataset(ws, tmp_path / "out", format="masks", options={"ignore_value": 128})
    back = cv2.imread(str(tmp_path / "out" / "masks" / "e.png"), cv2.IMREAD_UNCHANGED)
    assert back is not None and np.array_equal(back, ids)
    assert (tmp_path / "out" / "images" / "e.png").is_file()
