"""The `masks` format: binary, instance-id and palette PNGs, ignore values, labels.txt."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from labelpilot.errors import FormatError
from labelpilot.formats import configured, get_format
from labelpilot.formats.segmaps import shape_mask
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
    (src / "labels.txt").write_text("one\ntwo\n")
    with pytest.raises(FormatError, match=r"value 3 has no line in labels\.txt \(2 classes\)"):
        get_format("masks").load(src)
    # a file naming one class: every value is an instance of it
    (src / "labels.txt").write_text("one\n")
    (ann,) = get_format("masks").load(src).items[0].annotations
    assert (ann.label, ann.attributes) == ("one", {"value": 3})
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


def _rgb(path: Path, regions: list[tuple[tuple[int, int, int, int], tuple[int, int, int]]],
         size: tuple[int, int] = (20, 16), fill: tuple[int, int, int] = (0, 0, 0)) -> None:
    """An RGB mask: a fill colour, then (x1, y1, x2, y2) rectangles in colours."""
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[:] = fill
    for (x1, y1, x2, y2), c in regions:
        arr[y1:y2, x1:x2] = c
    Image.fromarray(arr, mode="RGB").save(path)


def test_colour_masks_without_a_colour_map_lose_no_colour(tmp_path: Path) -> None:
    src = layout(tmp_path / "src")
    write_image(src / "images" / "a.png", 20, 16)
    write_image(src / "images" / "b.png", 20, 16, seed=1)
    # a: black background, two colours; b: no black at all (the lowest colour, blue, is a
    # region like any other, not the background)
    _rgb(src / "masks" / "a.png", [((0, 0, 5, 5), (255, 0, 0)), ((10, 10, 20, 16), (0, 128, 0))])
    _rgb(src / "masks" / "b.png", [((0, 0, 10, 16), (255, 0, 0))], fill=(0, 0, 255))
    ds = get_format("masks").load(src)
    got = {it.name: sorted((a.attributes["color"], int(shape_mask(a.shape, 20, 16).sum()))
                           for a in it.annotations) for it in ds.items}
    assert got == {"a.png": [("#008000", 60), ("#ff0000", 25)],
                   "b.png": [("#0000ff", 160), ("#ff0000", 160)]}


def test_dataset_meta_json_maps_colours_to_classes(tmp_path: Path) -> None:
    # Datumaro's common semantic segmentation layout
    src = layout(tmp_path / "src")
    write_image(src / "images" / "a.png", 20, 16)
    (src / "dataset_meta.json").write_text(
        '{"label_map": {"0": "background", "1": "road", "2": "car"}, "background_label": "0",'
        ' "segmentation_colors": [[0, 0, 0], [128, 64, 128], [0, 0, 142]]}')
    _rgb(src / "masks" / "a.png", [((0, 8, 20, 16), (128, 64, 128)), ((2, 2, 6, 6), (0, 0, 142)),
                                   ((15, 0, 16, 1), (224, 224, 192))])  # VOC's void colour
    ds = get_format("masks").load(src)
    anns = ds.items[0].annotations
    assert [(a.label, a.attributes, int(shape_mask(a.shape, 20, 16).sum())) for a in anns] == [
        ("road", {}, 160), ("car", {}, 16), ("ignore", {"ignore": True}, 1)]
    assert ds.labels[:2] == ["road", "car"]
    # a colour the map lacks is named, with where it is
    _rgb(src / "masks" / "a.png", [((3, 4, 5, 5), (1, 2, 3))])
    with pytest.raises(FormatError, match=r"a\.png: colour #010203 at \(3, 4\) is not in "
                                          r"dataset_meta\.json"):
        get_format("masks").load(src)
    (src / "dataset_meta.json").write_text('{"label_map": {"0": "background", "x": "car"}}')
    with pytest.raises(FormatError, match=r"dataset_meta\.json, at label_map: 'label_map' must "
                                          "map mask values"):
        get_format("masks").load(src)


def test_voc_labelmap_with_palette_masks(tmp_path: Path) -> None:
    # CVAT's and Datumaro's labelmap.txt: the line's place is the palette index
    src = layout(tmp_path / "src")
    write_image(src / "images" / "a.png", 20, 20)
    (src / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                      "cat:128,0,0::\ndog:0,128,0::\n")
    ids = np.zeros((20, 20), np.uint8)
    ids[1:5, 1:5] = 2
    ids[10:12, 10:12] = 255
    im = Image.fromarray(ids, mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3 - 3) + [224, 224, 192])
    im.save(src / "masks" / "a.png")
    ds = configured(get_format("masks"), {"ignore_value": 255}).load(src)
    assert [(a.label, int(shape_mask(a.shape, 20, 20).sum()))
            for a in ds.items[0].annotations] == [("dog", 16), ("ignore", 4)]
    assert ds.labels == ["cat", "dog", "ignore"]  # every declared class, used or not


def test_labelme2voc_class_names_are_not_shifted(tmp_path: Path) -> None:
    # labelme2voc: class_names.txt starts with _background_ (value 0); its labels.txt also
    # starts with __ignore__ (-1, saved as 255)
    src = layout(tmp_path / "src")
    write_image(src / "images" / "a.png", 20, 20)
    ids = np.zeros((20, 20), np.uint8)
    ids[0:4, 0:4] = 1
    ids[10:15, 10:15] = 2
    ids[19, :] = 255
    cv2.imwrite(str(src / "masks" / "a.png"), ids)
    (src / "class_names.txt").write_text("_background_\nperson\nbottle\n")
    with pytest.raises(FormatError, match=r"value 255 has no line in class_names\.txt \(3 "
                                          r"classes\)\n  hint: .* or import with "
                                          "--ignore-value 255"):
        get_format("masks").load(src)
    ds = configured(get_format("masks"), {"ignore_value": 255}).load(src)
    assert [a.label for a in ds.items[0].annotations] == ["person", "bottle", "ignore"]
    (src / "class_names.txt").write_text("__ignore__\n_background_\nperson\nbottle\n")
    ds = get_format("masks").load(src)
    assert [(a.label, int(shape_mask(a.shape, 20, 20).sum()))
            for a in ds.items[0].annotations] == [("person", 16), ("bottle", 25), ("ignore", 20)]
    assert ds.labels == ["person", "bottle", "ignore"]


def test_an_export_imports_back_with_default_options(make_workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = layout(tmp_path / "src")
    write_image(src / "images" / "a.png", 30, 20)
    ids = np.zeros((20, 30), np.uint8)
    ids[2:8, 2:8] = 1
    ids[10:18, 10:28] = 2
    ids[0, :] = 255
    cv2.imwrite(str(src / "masks" / "a.png"), ids)
    (src / "labels.txt").write_text("__ignore__\n_background_\ncat\ndog\n")
    ws = make_workspace(task="segment")
    assert import_dataset(ws, src, format="masks").annotations_added == 3
    export_dataset(ws, tmp_path / "out", format="masks")
    assert (tmp_path / "out" / "labels.txt").read_text() == "__ignore__\n_background_\ncat\ndog\n"
    back = get_format("masks").load(tmp_path / "out")
    assert sorted((a.label, int(shape_mask(a.shape, 30, 20).sum()))
                  for a in back.items[0].annotations) == [
        ("cat", 36), ("dog", 144), ("ignore", 30)]
