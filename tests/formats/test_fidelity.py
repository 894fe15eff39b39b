"""Import fidelity (issue 15): datasets laid out as Datumaro, MMDetection, Roboflow and CVAT
write them import whole, with their splits, or say what they skipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labelpilot.annotations import Polygon, Polyline
from labelpilot.errors import FormatError, LabelPilotError
from labelpilot.formats import get_format
from labelpilot.store import repo
from labelpilot.transfer import export_dataset, import_dataset
from tests.conftest import write_image


def _coco_doc(entries: list[tuple[str, list[float], str]]) -> dict[str, Any]:
    """(file name, box, class) per image, one box each."""
    cats = sorted({c for _, _, c in entries})
    return {
        "images": [{"id": i + 1, "file_name": f, "width": 64, "height": 48}
                   for i, (f, _, _) in enumerate(entries)],
        "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": cats.index(c) + 1,
                         "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
                        for i, (_, b, c) in enumerate(entries)],
        "categories": [{"id": k + 1, "name": c} for k, c in enumerate(cats)]}


def datumaro_coco(root: Path) -> Path:
    """Datumaro's COCO export: annotations/instances_<subset>.json, images/<subset>/; the
    same file name in two subsets holds two different pictures. Beside them, the captions
    and panoptic files COCO itself ships."""
    write_image(root / "images" / "train" / "000001.jpg", 64, 48, seed=1)
    write_image(root / "images" / "train" / "000002.jpg", 64, 48, seed=2)
    write_image(root / "images" / "val" / "000001.jpg", 64, 48, seed=3)
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "instances_train.json").write_text(json.dumps(_coco_doc([
        ("000001.jpg", [1, 1, 10, 10], "bolt"), ("000002.jpg", [2, 2, 8, 8], "nut")])))
    (ann / "instances_val.json").write_text(json.dumps(_coco_doc([
        ("000001.jpg", [5, 5, 20, 20], "washer")])))
    (ann / "captions_train.json").write_text(json.dumps({"images": [], "annotations": [
        {"id": 1, "image_id": 1, "caption": "a bolt"}]}))
    (ann / "panoptic_val.json").write_text(json.dumps(_coco_doc([])))
    return root


def test_a_coco_folder_with_one_file_per_subset_imports_every_subset(tmp_path: Path) -> None:
    ds = get_format("coco").load(datumaro_coco(tmp_path / "d"))
    got = sorted((it.split, it.name, it.path.parent.name if it.path else None,
                  [a.label for a in it.annotations]) for it in ds.items)
    assert got == [("train", "000001.jpg", "train", ["bolt"]),
                   ("train", "000002.jpg", "train", ["nut"]),
                   ("val", "000001.jpg", "val", ["washer"])]
    assert sorted(ds.labels) == ["bolt", "nut", "washer"]
    assert sorted(ds.warnings) == [
        "annotations/captions_train.json holds captions, which LabelPilot does not import; "
        "skipped",
        "annotations/panoptic_val.json holds panoptic segmentation, which LabelPilot does not "
        "import; skipped"]


def test_subsets_reach_the_workspace_with_their_own_pictures(make_workspace, tmp_path: Path
                                                              ) -> None:  # type: ignore[no-untyped-def]
    from labelpilot.transfer import export_items

    ws = make_workspace(labels=["bolt"])
    report = import_dataset(ws, datumaro_coco(tmp_path / "d"), format="coco")
    assert (report.images_added, report.annotations_added) == (3, 3)
    assert any("holds captions, which LabelPilot does not import" in w for w in report.warnings)
    ds, _ = export_items(ws, status="all", split=None, include_images=False)
    by_label = {it.annotations[0].label: (it.split, it.path.stem if it.path else "")
                for it in ds.items}
    assert by_label["bolt"][0] == "train" and by_label["washer"][0] == "val"
    assert by_label["bolt"][1] != by_label["washer"][1]  # two pictures, not one


def test_roboflow_coco_export_reads_each_split_folder(tmp_path: Path) -> None:
    root = tmp_path / "rf"
    for split, seed in (("train", 1), ("valid", 2), ("test", 3)):
        write_image(root / split / f"img_{split}.jpg", 64, 48, seed=seed)
        (root / split / "_annotations.coco.json").write_text(json.dumps(_coco_doc([
            (f"img_{split}.jpg", [1, 1, 5, 5], "crack")])))
    (root / "README.roboflow.txt").write_text("exported from roboflow")
    ds = get_format("coco").load(root)
    assert sorted((it.split, it.name) for it in ds.items) == [
        ("test", "img_test.jpg"), ("train", "img_train.jpg"), ("val", "img_valid.jpg")]
    assert all(it.path is not None for it in ds.items) and ds.warnings == []


def test_mmdetection_layout_with_coco_folder_names(tmp_path: Path) -> None:
    # MMDetection / COCO: annotations/instances_train2017.json and train2017/ beside it
    root = tmp_path / "mm"
    write_image(root / "train2017" / "a.jpg", 64, 48, seed=1)
    write_image(root / "val2017" / "a.jpg", 64, 48, seed=2)
    (root / "annotations").mkdir(parents=True)
    for subset, label in (("train2017", "cat"), ("val2017", "dog")):
        (root / "annotations" / f"instances_{subset}.json").write_text(json.dumps(_coco_doc([
            ("a.jpg", [1, 1, 5, 5], label)])))
    ds = get_format("coco").load(root)
    assert sorted((it.split, it.path.parent.name if it.path else None, it.annotations[0].label)
                  for it in ds.items) == [("train", "train2017", "cat"), ("val", "val2017", "dog")]


def test_a_folder_of_other_coco_files_only_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "c" / "annotations").mkdir(parents=True)
    (tmp_path / "c" / "annotations" / "captions_val2017.json").write_text("{}")
    with pytest.raises(FormatError, match=r"no COCO instances file found: only "
                                          r"captions_val2017\.json"):
        get_format("coco").load(tmp_path / "c")


def _cvat_image(i: int, name: str, subset: str, label: str) -> str:
    return (f'<image id="{i}" name="{name}" subset="{subset}" width="64" height="48">'
            f'<box label="{label}" occluded="0" xtl="1" ytl="1" xbr="9" ybr="9" z_order="0"/>'
            "</image>")


def test_a_cvat_project_export_pairs_each_subset_with_its_own_images(
        make_workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # CVAT's project export: one annotations.xml, images/<Subset>/<name>, the same names
    # in every subset
    root = tmp_path / "cvat-project"
    rows: list[str] = []
    for k, (subset, label) in enumerate((("Train", "bolt"), ("Validation", "nut"),
                                         ("Test", "washer"))):
        for j in range(2):
            write_image(root / "images" / subset / f"frame_{j}.png", 64, 48, seed=10 * k + j)
            rows.append(_cvat_image(len(rows), f"frame_{j}.png", subset, label))
    (root / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>'
        + "".join(rows) + "</annotations>")
    ds = get_format("cvat").load(root)
    assert sorted((it.split, it.path.parent.name if it.path else None,
                   it.annotations[0].label) for it in ds.items) == [
        ("test", "Test", "washer"), ("test", "Test", "washer"),
        ("train", "Train", "bolt"), ("train", "Train", "bolt"),
        ("val", "Validation", "nut"), ("val", "Validation", "nut")]
    ws = make_workspace(labels=["bolt"])
    report = import_dataset(ws, root, format="cvat")
    assert (report.images_added, report.annotations_added) == (6, 6)


def test_image_tags_come_in_from_cvat_and_go_out_to_cvat_and_label_studio(
        make_workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # CVAT writes a whole-image label as <tag> (its label listed among the task's labels)
    root = tmp_path / "cvat-tags"
    write_image(root / "images" / "a.png", 64, 48, seed=1)
    write_image(root / "images" / "b.png", 64, 48, seed=2)
    (root / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>'
        '<image id="0" name="a.png" width="64" height="48">'
        '<tag label="night" source="manual"/><tag label="blurry" source="manual"/>'
        '<box label="bolt" occluded="0" xtl="1" ytl="1" xbr="9" ybr="9" z_order="0"/></image>'
        '<image id="1" name="b.png" width="64" height="48"/></annotations>')
    ws = make_workspace(labels=["bolt"])
    report = import_dataset(ws, root, format="cvat")
    assert report.warnings == [] and report.annotations_added == 1
    with ws.engine.connect() as conn:
        assert repo.tags_in_use(conn) == ["blurry", "night"]
    export_dataset(ws, tmp_path / "out-cvat", format="cvat")
    back = {it.name: it.tags for it in get_format("cvat").load(tmp_path / "out-cvat").items}
    assert back == {"a.png": ["night", "blurry"], "b.png": []}
    # the tags are labels of the CVAT task, as CVAT needs them to import the file
    xml = (tmp_path / "out-cvat" / "annotations.xml").read_text()
    assert "<name>night</name>" in xml and "<name>bolt</name>" in xml
    # Label Studio: the tags are the image's choices
    export_dataset(ws, tmp_path / "out-ls", format="labelstudio")
    tasks = json.loads((tmp_path / "out-ls" / "tasks.json").read_text())
    choices = [r for t in tasks for a in t["annotations"] for r in a["result"]
               if r["type"] == "choices"]
    assert [c["value"]["choices"] for c in choices] == [["night", "blurry"]]
    ls = {it.name: it.tags for it in get_format("labelstudio").load(tmp_path / "out-ls").items}
    assert sorted(ls.values()) == [[], ["night", "blurry"]]


def test_a_tag_over_the_limits_is_refused_by_item(make_workspace, tmp_path: Path
                                                   ) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "cvat-bad-tag"
    write_image(root / "images" / "a.png", 64, 48, seed=1)
    (root / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>'
        f'<image id="0" name="a.png" width="64" height="48"><tag label="{"x" * 300}"/></image>'
        "</annotations>")
    ws = make_workspace(labels=["bolt"])
    with pytest.raises(LabelPilotError, match=r"a\.png: a tag is a non-empty string"):
        import_dataset(ws, root, format="cvat")
    with ws.engine.connect() as conn:
        assert repo.stats(conn)["images"] == 0


def cvat_video(root: Path) -> Path:
    """CVAT for video 1.1 as CVAT exports a 6-frame task with images: frames as
    images/frame_000000.PNG, a car track given at keyframes 0 and 4 (frames between
    not written, as Datumaro writes them), out of view from frame 5; a person track with
    a point present on frames 1-2 (outside on 3); a polyline track from frame 0 (held to
    the last frame); an ellipse track, which has no LabelPilot shape."""
    for f in range(6):
        write_image(root / "images" / f"frame_{f:06d}.PNG", 64, 48, seed=f)
    (root / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version><meta>'
        "<task><size>6</size><mode>interpolation</mode><start_frame>0</start_frame>"
        "<stop_frame>5</stop_frame><labels><label><name>car</name></label><label><name>"
        "person</name></label></labels><original_size><width>64</width><height>48</height>"
        "</original_size></task></meta>"
        '<track id="3" label="car" source="manual">'
        '<box frame="0" outside="0" occluded="0" keyframe="1" xtl="0" ytl="0" xbr="10" '
        'ybr="10" z_order="0"><attribute name="color">red</attribute></box>'
        '<box frame="4" outside="0" occluded="1" keyframe="1" xtl="20" ytl="8" xbr="30" '
        'ybr="18" z_order="0"><attribute name="color">red</attribute></box>'
        '<box frame="5" outside="1" occluded="0" keyframe="1" xtl="20" ytl="8" xbr="30" '
        'ybr="18" z_order="0"/></track>'
        '<track id="7" label="person" source="manual">'
        '<points frame="1" outside="0" occluded="0" keyframe="1" points="5,5" z_order="0"/>'
        '<points frame="3" outside="1" occluded="0" keyframe="1" points="5,5" z_order="0"/>'
        "</track>"
        '<track id="8" label="car" source="manual">'
        '<polyline frame="0" outside="0" occluded="0" keyframe="1" points="1,1;5,5" '
        'z_order="0"/></track>'
        '<track id="9" label="car" source="manual">'
        '<ellipse frame="0" outside="0" occluded="0" keyframe="1" cx="10" cy="10" rx="3" '
        'ry="2" z_order="0"/></track></annotations>')
    return root


def test_cvat_for_video_tracks_become_per_frame_annotations(make_workspace, tmp_path: Path
                                                            ) -> None:  # type: ignore[no-untyped-def]
    root = cvat_video(tmp_path / "video")
    ds = get_format("cvat").load(root)
    got = {it.name: [(a.label, a.attributes.get("track_id"),
                      tuple(round(v, 2) for v in a.shape.bbox())) for a in it.annotations]
           for it in ds.items}
    line = ("car", "8", (1, 1, 5, 5))
    assert got == {
        "frame_000000.PNG": [("car", "3", (0, 0, 10, 10)), line],
        "frame_000001.PNG": [("car", "3", (5, 2, 15, 12)), ("person", "7", (5, 5, 5, 5)), line],
        "frame_000002.PNG": [("car", "3", (10, 4, 20, 14)), ("person", "7", (5, 5, 5, 5)), line],
        "frame_000003.PNG": [("car", "3", (15, 6, 25, 16)), line],
        "frame_000004.PNG": [("car", "3", (20, 8, 30, 18)), line],
        "frame_000005.PNG": [line]}
    assert {type(a.shape).__name__ for it in ds.items for a in it.annotations
            if a.attributes.get("track_id") == "8"} == {"Polyline"}
    car4 = ds.items[4].annotations[0]
    assert car4.attributes == {"color": "red", "occluded": True, "track_id": "3"}
    assert ds.warnings == ["skipped 1 CVAT <ellipse> element(s) of tracks: no LabelPilot "
                           "equivalent"]
    ws = make_workspace(labels=["car"])
    report = import_dataset(ws, root, format="cvat")
    assert (report.images_added, report.annotations_added) == (6, 13)
    # a shape on a frame the task does not have is refused by place
    xml = root / "annotations.xml"
    xml.write_text(xml.read_text().replace('frame="4"', 'frame="40"'))
    with pytest.raises(FormatError, match=r"annotations\.xml, at track\[0\]/box\[1\]: bad "
                                          r"values \(frame '40' is not one of the task's "
                                          r"frames 0-5\)"):
        get_format("cvat").load(root)
    # without frame files, the meta's frame count decides, within a limit
    xml.write_text(xml.read_text().replace('frame="40"', 'frame="4"').replace(
        "<stop_frame>5</stop_frame>", "<stop_frame>99999999999</stop_frame>"))
    for f in (root / "images").iterdir():
        f.unlink()
    with pytest.raises(FormatError, match=r"the task has 100,000,000,000 frames, over the "
                                          "limit of 1,000,000"):
        get_format("cvat").load(root)
    xml.write_text(xml.read_text().replace("<original_size>", "<x>").replace(
        "</original_size>", "</x>"))
    with pytest.raises(FormatError, match=r"needs the frame size"):
        get_format("cvat").load(root)


def _voc_xml(name: str, difficult: str = "0") -> str:
    return (f"<annotation><filename>{name}</filename><size><width>64</width>"
            "<height>48</height><depth>3</depth></size><object><name>cat</name>"
            f"<difficult>{difficult}</difficult><bndbox><xmin>1</xmin><ymin>2</ymin>"
            "<xmax>20</xmax><ymax>30</ymax></bndbox></object></annotation>")


def test_voc_images_listed_without_an_xml_come_in_without_labels(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    write_image(root / "JPEGImages" / "a.jpg", 64, 48, seed=1)
    write_image(root / "JPEGImages" / "b.jpg", 64, 48, seed=2)
    (root / "Annotations" / "a.xml").write_text(_voc_xml("a.jpg"))
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nb\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("c\n")
    ds = get_format("voc").load(root)
    assert sorted((it.name, it.split, len(it.annotations)) for it in ds.items) == [
        ("a.jpg", "train", 1), ("b.jpg", "train", 0)]
    assert ds.warnings == ["ImageSets/Main/val.txt: 'c' has neither an XML in Annotations/ "
                           "nor an image in JPEGImages/; skipped"]
    # a flag that is not 0 or 1 is refused where it is
    (root / "Annotations" / "a.xml").write_text(_voc_xml("a.jpg", difficult="a"))
    with pytest.raises(FormatError, match=r"a\.xml.*object\[0\]/difficult.*must be 0 or 1"):
        get_format("voc").load(root)


def _ls_rect(rid: str, label: str, x: float) -> dict[str, Any]:
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": 64, "original_height": 48,
            "value": {"x": x, "y": 10, "width": 20, "height": 20, "rotation": 0,
                      "rectanglelabels": [label]}}


def test_label_studio_exports_keep_every_file_annotator_and_ellipse(tmp_path: Path) -> None:
    root = tmp_path / "ls"
    write_image(root / "a.png", 64, 48, seed=1)
    write_image(root / "b.png", 64, 48, seed=2)
    ellipse = {"id": "e1", "type": "ellipselabels", "from_name": "label", "to_name": "image",
               "original_width": 64, "original_height": 48,
               "value": {"x": 50, "y": 50, "radiusX": 25, "radiusY": 10, "rotation": 90,
                         "ellipselabels": ["washer"]}}
    choice = {"id": "c1", "type": "choices", "from_name": "quality", "to_name": "image",
              "value": {"choices": ["blurry"]}}
    (root / "export-1.json").write_text(json.dumps([{
        "id": 1, "data": {"image": "/data/upload/1/a.png"},
        "annotations": [
            {"id": 10, "completed_by": 1, "result": [_ls_rect("r1", "bolt", 10), choice]},
            {"id": 11, "completed_by": {"id": 2, "email": "b@example.com"},
             "result": [_ls_rect("r2", "nut", 40), ellipse]},
            {"id": 12, "completed_by": 3, "was_cancelled": True,
             "result": [_ls_rect("r3", "ghost", 0)]}]}]))
    (root / "export-2.json").write_text(json.dumps([{
        "id": 2, "data": {"image": "/data/upload/1/b.png"},
        "annotations": [{"id": 20, "completed_by": 1, "result": [_ls_rect("r4", "bolt", 5)]}]}]))
    ds = get_format("labelstudio").load(root)
    by_name = {it.name: it for it in ds.items}
    assert sorted(by_name) == ["a.png", "b.png"]
    a = by_name["a.png"].annotations
    assert [(x.label, x.attributes.get("annotator")) for x in a] == [
        ("bolt", "1"), ("nut", "b@example.com"), ("washer", "b@example.com")]
    # the ellipse: a polygon around (32, 24), turned upright (radius 16 across, 4.8 down,
    # rotated by 90 degrees)
    ring = a[2].shape
    assert isinstance(ring, Polygon)
    xs = [p[0] for p in ring.points]
    ys = [p[1] for p in ring.points]
    assert len(xs) == 32 and abs(min(xs) - (32 - 4.8)) < 0.1 and abs(max(ys) - (24 + 16)) < 0.1
    # one annotator: no annotator attribute needed
    assert by_name["b.png"].annotations[0].attributes == {}
    # the image's choices are its tags
    assert by_name["a.png"].tags == ["blurry"] and by_name["b.png"].tags == []
    assert ds.warnings == []


def test_labelme_files_as_labelme_opens_them(tmp_path: Path) -> None:
    import base64
    import io

    from PIL import Image

    root = tmp_path / "lm"
    (root / "json").mkdir(parents=True)
    write_image(root / "images" / "x.jpg", 64, 48, seed=1)
    mask = io.BytesIO()
    Image.new("L", (10, 10), 255).save(mask, format="PNG")
    # labelme's own regression layout: the image one folder up, in images/
    (root / "json" / "x.json").write_text(json.dumps({
        "imagePath": "../images/x.jpg", "imageData": None, "imageWidth": 64,
        "imageHeight": 48, "flags": {"blurry": True}, "shapes": [
            {"label": "a", "shape_type": "polygon", "points": [[1, 1], [9, 9]]},
            {"label": "b", "shape_type": "mask", "points": [[58, 40], [67, 49]],
             "mask": base64.b64encode(mask.getvalue()).decode()},
            {"label": "c", "shape_type": "rectangle", "points": [[1, 1], [9, 9]],
             "group_id": 3}]}))
    # an embedded image whose imagePath names the JSON itself
    jpg = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 10, 10)).save(jpg, format="JPEG")
    (root / "json" / "y.json").write_text(json.dumps({
        "imagePath": "y.json", "imageData": base64.b64encode(jpg.getvalue()).decode(),
        "imageWidth": 32, "imageHeight": 24, "shapes": [
            {"label": "c", "shape_type": "point", "points": [[3, 4]]}]}))
    ds = get_format("labelme").load(root)
    by = {it.name: it for it in ds.items}
    assert sorted(by) == ["images/x.jpg", "y.jpg"]
    x = by["images/x.jpg"]
    assert x.path == (root / "images" / "x.jpg").resolve()
    # the 2-point polygon is skipped with a word; the mask is cut at the image's border
    assert [a.label for a in x.annotations] == ["b", "c"] and x.annotations[1].group == 3
    assert x.annotations[0].shape.bbox() == (58, 40, 64, 48)
    assert any("shapes[0]: a polygon of 2 point(s) has no area; skipped" in w
               for w in ds.warnings)
    assert any("1 file(s) set image-level flags" in w for w in ds.warnings)
    y = by["y.jpg"]
    assert y.path is None and y.data == jpg.getvalue()
    # exported, the embedded image and its labels are two files
    out = tmp_path / "out"
    get_format("labelme").save(ds, out)
    assert (out / "y.jpg").read_bytes() == jpg.getvalue()
    assert json.loads((out / "y.json").read_text())["shapes"][0]["label"] == "c"


@pytest.mark.parametrize(("fmt", "reason"), [
    ("coco", "COCO holds a point only as a keypoint of its class"),
    ("voc", "VOC holds boxes, not points"),
    ("yolo", "YOLO has no line for a point"),
    ("ppocrlabel", "PPOCRLabel holds text lines, not points")])
def test_an_export_counts_what_it_wrote_and_says_what_it_left_out(
        tmp_path: Path, fmt: str, reason: str) -> None:
    from labelpilot.transfer import export_dataset
    from labelpilot.workspace import Workspace

    src = tmp_path / "lm"
    write_image(src / "a.png", 64, 48, seed=1)
    (src / "a.json").write_text(json.dumps({
        "imagePath": "a.png", "imageWidth": 64, "imageHeight": 48, "shapes": [
            {"label": "text", "shape_type": "polygon", "description": "AB12",
             "points": [[1, 1], [30, 1], [30, 10], [1, 10]]},
            {"label": "text", "shape_type": "polygon", "description": "CD34",
             "points": [[1, 20], [30, 20], [30, 30], [1, 30]]},
            {"label": "text", "shape_type": "point", "points": [[50, 40]]}]}))
    ws = Workspace.create(tmp_path / "ws", task="ocr", labels=["text"])
    import_dataset(ws, src, format="labelme")
    with ws.transaction() as conn:
        from labelpilot.store import images as image_rows

        image_rows.set_image(conn, 1, review_state="done")
    out = tmp_path / "out"
    report = export_dataset(ws, out, format=fmt)
    assert report.annotations == 2
    assert report.warnings[0] == f"1 annotation(s) left out: {reason}"
    if fmt == "coco":
        doc = json.loads((out / "annotations" / "instances.json").read_text())
        assert len(doc["annotations"]) == 2
    if fmt == "ppocrlabel":
        # fileState.txt names the images where the export is, not where it was staged
        (line,) = (out / "images" / "fileState.txt").read_text().splitlines()
        assert line == f"{(out / 'images' / 'a.png').resolve()}\t1"
    ws.close()


def _polyline_workspace(tmp_path: Path, make_workspace: Any) -> Any:
    """A workspace with one image: a LabelMe linestrip (a polyline) and a box."""
    src = tmp_path / "lm-lines"
    write_image(src / "a.png", 64, 48, seed=1)
    (src / "a.json").write_text(json.dumps({
        "imagePath": "a.png", "imageWidth": 64, "imageHeight": 48, "shapes": [
            {"label": "crack", "shape_type": "linestrip", "points": [[2, 3], [20, 9], [40, 30]]},
            {"label": "crack", "shape_type": "rectangle", "points": [[5, 5], [15, 12]]}]}))
    ws = make_workspace(labels=["crack"])
    report = import_dataset(ws, src, format="labelme")
    assert report.annotations_added == 2 and report.warnings == []
    return ws


@pytest.mark.parametrize("fmt", ["cvat", "labelme"])
def test_polylines_go_out_and_come_back(make_workspace, tmp_path: Path, fmt: str
                                        ) -> None:  # type: ignore[no-untyped-def]
    ws = _polyline_workspace(tmp_path, make_workspace)
    out = tmp_path / "out"
    report = export_dataset(ws, out, format=fmt, status="all")
    assert report.annotations == 2 and report.warnings == []
    (item,) = get_format(fmt).load(out).items
    lines = [a.shape for a in item.annotations if isinstance(a.shape, Polyline)]
    assert lines == [Polyline(((2, 3), (20, 9), (40, 30)))]


@pytest.mark.parametrize(("fmt", "reason"), [
    ("coco", "COCO has no open lines (polylines)"),
    ("voc", "VOC holds boxes, not polylines"),
    ("yolo", "YOLO has no line for a polyline"),
    ("labelstudio", "Label Studio has no open lines (polylines) on images"),
    ("icdar", "ICDAR holds text lines, not polylines"),
    ("masks", "a polyline covers no pixel")])
def test_formats_without_lines_say_they_left_the_polyline_out(
        make_workspace, tmp_path: Path, fmt: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    ws = _polyline_workspace(tmp_path, make_workspace)
    report = export_dataset(ws, tmp_path / "out", format=fmt, status="all")
    assert f"1 annotation(s) left out: {reason}" in report.warnings, report.warnings


def test_icdar_2013_files_and_quoted_transcriptions(tmp_path: Path) -> None:
    root = tmp_path / "icdar"
    write_image(root / "img_1.jpg", 64, 48, seed=1)
    write_image(root / "img_2.jpg", 64, 48, seed=2)
    write_image(root / "img_3.jpg", 64, 48, seed=3)
    # 2013 training files are space separated, test files comma separated
    (root / "gt_img_1.txt").write_text('3 4 40 20 "Footpath"\n5 25 30 40 "say \\"hi\\""\n')
    (root / "gt_img_2.txt").write_text('3, 4, 40, 20, "Tiredness"\n')
    # 2015 with quotes from some tools, and the ignore marker
    (root / "gt_img_3.txt").write_text('1,1,20,1,20,9,1,9,"LOT 12"\n1,20,9,20,9,30,1,30,###\n')
    ds = get_format("icdar").load(root)
    got = {it.name: [(a.shape.bbox(), a.text) for a in it.annotations] for it in ds.items}
    assert got == {
        "img_1.jpg": [((3, 4, 40, 20), "Footpath"), ((5, 25, 30, 40), 'say "hi"')],
        "img_2.jpg": [((3, 4, 40, 20), "Tiredness")],
        "img_3.jpg": [((1, 1, 20, 9), "LOT 12"), ((1, 20, 9, 30), "###")]}
    (root / "gt_img_2.txt").write_text('40 4 3 20 "backwards"\n')
    with pytest.raises(FormatError, match=r"gt_img_2\.txt, line 1: an ICDAR 2013 box needs"):
        get_format("icdar").load(root)


def test_roboflow_yolo_paths_and_ultralytics_image_lists(tmp_path: Path) -> None:
    from labelpilot.errors import UnsafePathError

    # Roboflow's YOLO export: data.yaml in the dataset folder says ../train/images
    rf = tmp_path / "rf"
    for split, seed, cls in (("train", 1, 0), ("valid", 2, 1)):
        write_image(rf / split / "images" / f"{split}.jpg", 64, 48, seed=seed)
        (rf / split / "labels").mkdir(parents=True)
        (rf / split / "labels" / f"{split}.txt").write_text(f"{cls} 0.5 0.5 0.2 0.2\n")
    (rf / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\n"
                                  "nc: 2\nnames: ['crack', 'dent']\n")
    ds = get_format("yolo").load(rf)
    assert sorted((it.split, it.name, it.annotations[0].label) for it in ds.items) == [
        ("train", "train.jpg", "crack"), ("val", "valid.jpg", "dent")]
    # Ultralytics image lists: train.txt names the images, relative to the list
    ul = tmp_path / "ul"
    for name, seed in (("a.jpg", 1), ("b.jpg", 2), ("c.jpg", 3)):
        write_image(ul / "images" / "all" / name, 64, 48, seed=seed)
        (ul / "labels" / "all").mkdir(parents=True, exist_ok=True)
        (ul / "labels" / "all" / name).with_suffix(".txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (ul / "train.txt").write_text("./images/all/a.jpg\n./images/all/b.jpg\n")
    (ul / "val.txt").write_text("images/all/c.jpg\n")
    (ul / "data.yaml").write_text("train: train.txt\nval: val.txt\nnames: [crack]\n")
    ds = get_format("yolo").load(ul)
    assert sorted((it.split, it.name, len(it.annotations)) for it in ds.items) == [
        ("train", "a.jpg", 1), ("train", "b.jpg", 1), ("val", "c.jpg", 1)]
    (ul / "val.txt").write_text("../../etc/passwd.jpg\n")
    with pytest.raises(UnsafePathError, match=r"val\.txt, line 1: '\.\./\.\./etc/passwd\.jpg' "
                                              r"leads outside"):
        get_format("yolo").load(ul)


def cvat_yolo11(root: Path) -> Path:
    """CVAT's and Datumaro's "YOLO 1.1" export (the Darknet layout): obj.data, obj.names,
    train.txt / valid.txt with `data/`-prefixed paths, each image's .txt beside it."""
    for subset, name, seed, line in (("train", "a.jpg", 1, "0 0.5 0.5 0.25 0.5\n"),
                                     ("train", "b.jpg", 2, ""),
                                     ("valid", "c.jpg", 3, "1 0.25 0.25 0.1 0.1\n")):
        write_image(root / f"obj_{subset}_data" / name, 64, 48, seed=seed)
        if line:
            (root / f"obj_{subset}_data" / name).with_suffix(".txt").write_text(line)
    (root / "obj.names").write_text("crack\ndent\n")
    (root / "obj.data").write_text("classes = 2\ntrain = data/train.txt\n"
                                   "valid = data/valid.txt\nnames = data/obj.names\n"
                                   "backup = backup/\n")
    (root / "train.txt").write_text("data/obj_train_data/a.jpg\ndata/obj_train_data/b.jpg\n")
    (root / "valid.txt").write_text("data/obj_valid_data/c.jpg\n")
    return root


def test_yolo_1_1_darknet_layout_imports_with_its_subsets(tmp_path: Path) -> None:
    from labelpilot.errors import UnsafePathError

    root = cvat_yolo11(tmp_path / "y")
    ds = get_format("yolo").load(root)
    got = sorted((it.split, it.name, [(a.label, tuple(round(v) for v in a.shape.bbox()))
                                      for a in it.annotations]) for it in ds.items)
    assert got == [("train", "a.jpg", [("crack", (24, 12, 40, 36))]), ("train", "b.jpg", []),
                   ("val", "c.jpg", [("dent", (13, 10, 19, 14))])]
    assert ds.labels == ["crack", "dent"] and ds.warnings == []
    # without obj.data's lists the obj_<subset>_data folders are read
    (root / "obj.data").unlink()
    assert sorted((it.split, it.name) for it in get_format("yolo").load(root).items) == [
        ("train", "a.jpg"), ("train", "b.jpg"), ("val", "c.jpg")]
    # a listed image that is not there is named; one that leads outside is refused
    (root / "obj.data").write_text("classes = 3\ntrain = data/train.txt\nnames = obj.names\n")
    (root / "train.txt").write_text("data/obj_train_data/a.jpg\ndata/obj_train_data/gone.jpg\n")
    ds = get_format("yolo").load(root)
    assert [it.name for it in ds.items] == ["a.jpg"]
    assert ds.warnings == [
        "obj.data says classes = 3 but obj.names names 2; the names are used",
        "train.txt, line 2: 'data/obj_train_data/gone.jpg' is not in the dataset; skipped"]
    (root / "train.txt").write_text("../../etc/x.jpg\n")
    with pytest.raises(UnsafePathError, match=r"train\.txt, line 1: '\.\./\.\./etc/x\.jpg' "
                                              "leads outside"):
        get_format("yolo").load(root)
    (root / "train.txt").write_bytes(b"data/obj_train_data/\x00a.jpg\n")
    with pytest.raises(FormatError, match=r"train\.txt, line 1: a path cannot hold a NUL"):
        get_format("yolo").load(root)
    (root / "obj.data").write_text("classes 2\n")
    with pytest.raises(FormatError, match=r"obj\.data, line 1: expected 'key = value'"):
        get_format("yolo").load(root)


def test_yolo_obb_reads_and_writes_oriented_boxes(tmp_path: Path) -> None:
    from labelpilot.annotations import Annotation, Box, Quad, RotatedBox
    from labelpilot.formats.base import Dataset, DatasetItem

    root = tmp_path / "obb"
    write_image(root / "images" / "train" / "a.jpg", 100, 50, seed=1)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text(
        "0 0.1 0.2 0.5 0.1 0.6 0.6 0.2 0.7\n1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n")
    (root / "data.yaml").write_text("train: images/train\nnames: [ship, plane]\n")
    ds = get_format("yolo-obb").load(root)
    shapes = [a.shape for a in ds.items[0].annotations if isinstance(a.shape, Quad)]
    assert len(shapes) == 2
    assert [tuple(round(v) for xy in s.points for v in xy) for s in shapes] == [
        (10, 10, 50, 5, 60, 30, 20, 35), (10, 5, 30, 5, 30, 15, 10, 15)]
    # the segment reader takes the same 8 values as a polygon, as Ultralytics segment does
    assert isinstance(get_format("yolo-seg").load(root).items[0].annotations[0].shape,
                      Polygon)
    # export: quads and rotated boxes keep their corners; a polygon gets its smallest
    # rotated rectangle; the file reads back as the same quads
    item = DatasetItem("b.jpg", path=root / "images" / "train" / "a.jpg", width=100,
                       height=50, split="train", annotations=[
                           Annotation("ship", RotatedBox(50, 25, 40, 10, 30)),
                           Annotation("plane", Box(10, 10, 30, 20)),
                           Annotation("plane", Polygon(((10, 10), (40, 10), (40, 40),
                                                        (10, 40), (25, 25))))])
    out = tmp_path / "out"
    get_format("yolo-obb").save(Dataset([item], ["ship", "plane"]), out)
    back = get_format("yolo-obb").load(out).items[0].annotations
    assert [a.label for a in back] == ["ship", "plane", "plane"]
    rot = RotatedBox(50, 25, 40, 10, 30).corners()
    assert isinstance(back[0].shape, Quad)
    assert [(round(x, 2), round(y, 2)) for x, y in back[0].shape.points] == [
        (round(x, 2), round(y, 2)) for x, y in rot]
    assert back[1].shape.bbox() == pytest.approx((10, 10, 30, 20), abs=1e-3)
    assert back[2].shape.bbox() == pytest.approx((10, 10, 40, 40), abs=1e-3)


def _palette_png(path: Path, arr: Any) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr.astype("uint8"), mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3 - 3) + [224, 224, 192])
    im.save(path)


def voc_segmentation(root: Path) -> Path:
    """VOC's segmentation layout: an image with boxes and both masks (instance i is the
    XML's i-th object), and one with a class mask only, listed in ImageSets/Segmentation."""
    import numpy as np

    write_image(root / "JPEGImages" / "2007_000032.jpg", 40, 30, seed=1)
    write_image(root / "JPEGImages" / "2007_000033.jpg", 40, 30, seed=2)
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "2007_000032.xml").write_text(
        "<annotation><filename>2007_000032.jpg</filename><size><width>40</width>"
        "<height>30</height><depth>3</depth></size><segmented>1</segmented>"
        "<object><name>aeroplane</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>12</xmax>"
        "<ymax>10</ymax></bndbox></object>"
        "<object><name>person</name><bndbox><xmin>20</xmin><ymin>15</ymin><xmax>30</xmax>"
        "<ymax>25</ymax></bndbox></object></annotation>")
    obj = np.zeros((30, 40), int)
    obj[2:10, 2:12] = 1
    obj[15:25, 20:30] = 2
    obj[14, 20:30] = 255  # void border
    cls = np.where(obj == 1, 1, np.where(obj == 2, 15, obj))
    _palette_png(root / "SegmentationObject" / "2007_000032.png", obj)
    _palette_png(root / "SegmentationClass" / "2007_000032.png", cls)
    only = np.zeros((30, 40), int)
    only[0:5, 0:40] = 12  # dog
    _palette_png(root / "SegmentationClass" / "2007_000033.png", only)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000032\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000033\n")
    return root


def test_voc_segmentation_masks_import_as_masks(tmp_path: Path) -> None:
    from labelpilot.annotations import Box, Mask
    from labelpilot.formats.segmaps import shape_mask

    root = voc_segmentation(tmp_path / "voc")
    ds = get_format("voc").load(root)
    got = {it.name: (it.split, [(a.label, a.shape.type, a.group, int(shape_mask(a.shape, 40, 30).sum()))
                                for a in it.annotations]) for it in ds.items}
    assert got == {
        "2007_000032.jpg": ("train", [("aeroplane", "box", 1, 99), ("person", "box", 2, 121),
                                      ("aeroplane", "mask", 1, 80), ("person", "mask", 2, 100),
                                      ("ignore", "mask", None, 10)]),
        "2007_000033.jpg": ("val", [("dog", "mask", None, 200)])}
    assert ds.items[0].annotations[4].attributes == {"ignore": True}
    assert isinstance(ds.items[0].annotations[0].shape, Box)
    assert isinstance(ds.items[0].annotations[2].shape, Mask)
    # CVAT's and Datumaro's labelmap.txt names the values instead of VOC's 21 classes
    (root / "labelmap.txt").write_text("background:0,0,0::\nplane:128,0,0::\n")
    with pytest.raises(FormatError, match=r"2007_000032\.png: instance 2's pixels have class "
                                          "value 15 in SegmentationClass, which names no "
                                          "class of labelmap.txt"):
        get_format("voc").load(root)
    (root / "SegmentationObject" / "2007_000032.png").unlink()
    (root / "SegmentationClass" / "2007_000032.png").unlink()
    with pytest.raises(FormatError, match=r"2007_000033\.png: class value 12 names no class "
                                          r"of labelmap\.txt \(2 classes\)"):
        get_format("voc").load(root)
    (root / "labelmap.txt").write_text("background:0,0,0::\n" + "x:1,1,1::\n" * 11 + "bone::\n")
    assert [(a.label, a.shape.type) for a in get_format("voc").load(root).items[1].annotations
            ] == [("bone", "mask")]


KEYPOINT_NAMES = ["nose", "left_eye", "right_eye"]


def coco_keypoints(root: Path) -> Path:
    """COCO's person_keypoints layout: a category with keypoint names and a 1-based
    skeleton; an instance with a box, a polygon and 3 keypoints (one not labelled)."""
    write_image(root / "images" / "val" / "p.jpg", 64, 48, seed=1)
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "person_keypoints_val.json").write_text(json.dumps({
        "images": [{"id": 7, "file_name": "p.jpg", "width": 64, "height": 48}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person",
                        "keypoints": KEYPOINT_NAMES, "skeleton": [[1, 2], [1, 3]]}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0,
                         "bbox": [10, 5, 30, 40], "area": 1200, "num_keypoints": 2,
                         "segmentation": [[10, 5, 40, 5, 40, 45, 10, 45]],
                         "keypoints": [20, 10, 2, 18, 8, 1, 0, 0, 0]}]}))
    return root


def test_coco_keypoints_import_as_grouped_points_and_export_back(make_workspace, tmp_path: Path
                                                                 ) -> None:  # type: ignore[no-untyped-def]
    from labelpilot.transfer import export_dataset

    src = coco_keypoints(tmp_path / "kp")
    ds = get_format("coco").load(src)
    (item,) = ds.items
    assert item.split == "val" and ds.warnings == []
    got = [(a.label, a.shape.type, a.group, a.attributes) for a in item.annotations]
    assert got == [("person", "polygon", 1, {}),
                   ("person", "point", 1, {"keypoint": "nose", "visibility": 2}),
                   ("person", "point", 1, {"keypoint": "left_eye", "visibility": 1})]
    assert ds.keypoints == {"person": {"keypoints": KEYPOINT_NAMES, "skeleton": [[1, 2], [1, 3]]}}
    # through a workspace and back: the schema is kept, the points rejoin their instance
    ws = make_workspace(task="detect")
    rep = import_dataset(ws, src, format="coco")
    assert rep.annotations_added == 3
    out = tmp_path / "out"
    export = export_dataset(ws, out, format="coco")
    assert export.annotations == 3 and export.warnings == []
    doc = json.loads((out / "annotations" / "instances_val.json").read_text())
    (cat,) = doc["categories"]
    assert (cat["keypoints"], cat["skeleton"]) == (KEYPOINT_NAMES, [[1, 2], [1, 3]])
    (ann,) = doc["annotations"]
    assert ann["keypoints"] == [20, 10, 2, 18, 8, 1, 0, 0, 0] and ann["num_keypoints"] == 2
    assert ann["segmentation"] == [[10, 5, 40, 5, 40, 45, 10, 45]]
    # pycocotools reads it (COCO's own keypoint tooling)
    from pycocotools.coco import COCO

    coco = COCO(str(out / "annotations" / "instances_val.json"))
    assert coco.loadAnns(coco.getAnnIds())[0]["num_keypoints"] == 2


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["annotations"][0].update(keypoints=[1, 2, 2]),
     r"at annotations\[0\]: 'keypoints' must be 9 numbers \(x, y, v for each of the "
     r"category's 3 keypoints\)"),
    (lambda d: d["annotations"][0].update(keypoints=[1, 2, 3, 0, 0, 0, 0, 0, 0]),
     r"at annotations\[0\]: keypoint 'nose' has visibility 3"),
    (lambda d: d["categories"][0].update(skeleton=[[1, 4]]),
     r"at categories\[0\]\.skeleton: 'skeleton' must be pairs of keypoint numbers 1\.\.3"),
    (lambda d: d["categories"][0].pop("keypoints"),
     r"at annotations\[0\]: has 'keypoints' but its category names none"),
])
def test_malformed_coco_keypoints_are_refused_by_place(tmp_path: Path, change: Any,
                                                       message: str) -> None:
    src = coco_keypoints(tmp_path / "kp")
    f = src / "annotations" / "person_keypoints_val.json"
    doc = json.loads(f.read_text())
    change(doc)
    f.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=message):
        get_format("coco").load(src)


def test_a_file_name_with_a_line_break_stays_on_its_line(make_workspace, tmp_path: Path
                                                         ) -> None:  # type: ignore[no-untyped-def]
    # found by the fuzz test: a listed problem's name broke the message's layout
    from labelpilot.errors import LabelPilotError

    root = tmp_path / "c"
    write_image(root / "images" / "a.png", 64, 48, seed=1)
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances.json").write_text(json.dumps(_coco_doc([
        ("a.png", [1, 1, 5, 5], "x"), ("b.p\ng", [1, 1, 5, 5], "x")])))
    ws = make_workspace()
    with pytest.raises(LabelPilotError) as e:
        import_dataset(ws, root, format="coco")
    _head, *listed = e.value.message.split("\n")
    assert listed and all(ln.startswith("  ") for ln in listed)
    assert "b.p\\ng: image file not found" in e.value.message
