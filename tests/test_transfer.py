"""Import and export end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from labelpilot.errors import FormatError, LabelPilotError, UnsafePathError
from labelpilot.formats import get_format
from labelpilot.transfer import export_dataset, import_dataset, workspace_stats
from tests.conftest import write_image


def coco_dir(root: Path, n_images: int = 3, *, boxes: list[list[float]] | None = None,
             extra: dict[str, Any] | None = None, seed0: int = 0) -> Path:
    """A COCO folder as people hand them over: annotations/x.json + images/."""
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for i in range(n_images):
        write_image(root / "images" / f"im{i}.png", 64, 48, seed=seed0 + i)
        images.append({"id": i + 1, "file_name": f"im{i}.png", "width": 64, "height": 48})
        each: list[list[float]] = boxes or [[2, 3, 10, 12], [20, 20, 5, 6]]
        for j, b in enumerate(each):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1 + j % 2,
                         "bbox": b, "area": b[2] * b[3], "iscrowd": 0, "segmentation": []})
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
    doc.update(extra or {})
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances.json").write_text(json.dumps(doc))
    return root


def blob_files(ws) -> list[Path]:
    # the stored files and any temporary ones (the store's lock file aside)
    return sorted(p for p in ws.blobs.root.glob("*/*") if p.is_file())


def snapshot(ws) -> tuple[dict[str, Any], list[Path], list[str]]:
    return workspace_stats(ws), blob_files(ws), list(ws.config.labels)


def test_import_then_stats(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace(labels=["cat"])
    r = import_dataset(ws, coco_dir(tmp_path / "c"), format="coco", split="train")
    assert (r.images_added, r.annotations_added, r.labels_added) == (3, 6, ["dog"])
    s = workspace_stats(ws)
    assert s["images"] == 3 and s["annotations"] == 6
    assert s["annotations_by_status"] == {"accepted": 6}
    assert s["annotations_by_source"] == {"human": 6}
    assert s["annotations_by_label"] == {"cat": 3, "dog": 3}
    assert s["images_by_review_state"] == {"new": 3}
    assert s["images_by_split"] == {"train": 3}
    assert ws.config.labels == ["cat", "dog"]  # the toml lists every class in use
    assert len(blob_files(ws)) == 3


def test_reimport_is_deduplicated(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    src = coco_dir(tmp_path / "c")
    import_dataset(ws, src, format="coco")
    again = import_dataset(ws, src, format="coco")
    assert (again.images_added, again.images_already_present) == (0, 3)
    assert (again.annotations_added, again.annotations_already_present) == (0, 6)
    # The same images and boxes through another format are still the same labels.
    out = tmp_path / "lm"
    get_format("labelme").save(get_format("coco").load(src), out)
    third = import_dataset(ws, out, format="labelme")
    assert (third.images_added, third.annotations_added) == (0, 0)
    assert workspace_stats(ws)["annotations"] == 6


def test_corrupt_image_refuses_the_whole_import(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    import_dataset(ws, coco_dir(tmp_path / "first", 1, seed0=50), format="coco")
    before = snapshot(ws)
    src = coco_dir(tmp_path / "c", 4)
    data = (src / "images" / "im2.png").read_bytes()
    (src / "images" / "im2.png").write_bytes(data[: len(data) // 3])  # truncated
    with pytest.raises(LabelPilotError, match=r"1 of 4 images cannot be imported") as e:
        import_dataset(ws, src, format="coco")
    assert "im2.png" in str(e.value) and "--skip-invalid" in str(e.value.hint)
    assert snapshot(ws) == before  # no rows, no blobs, no labels
    r = import_dataset(ws, src, format="coco", skip_invalid=True)
    assert r.images_added == 3 and len(r.invalid_images) == 1 and "im2.png" in r.invalid_images[0]


def test_missing_image_is_reported(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    src = coco_dir(tmp_path / "c", 2)
    (src / "images" / "im1.png").unlink()
    with pytest.raises(LabelPilotError, match=r"im1\.png: image file not found"):
        import_dataset(ws, src, format="coco")


def test_failure_while_writing_rolls_back_rows_and_blobs(make_workspace, tmp_path: Path,
                                                         monkeypatch) -> None:
    ws = make_workspace()
    before = snapshot(ws)
    from labelpilot.store import repo

    def boom(conn, rows):
        raise RuntimeError("disk full")

    monkeypatch.setattr(repo, "insert_annotations", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        import_dataset(ws, coco_dir(tmp_path / "c"), format="coco")
    assert snapshot(ws) == before


def test_malformed_label_file_changes_nothing(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    src = coco_dir(tmp_path / "c", 2, extra={"annotations": [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 2, 2]}]})
    with pytest.raises(FormatError,
                       match=r"instances.json, at annotations\[0\].category_id: category_id 7"):
        import_dataset(ws, src, format="coco")
    assert snapshot(ws)[0]["images"] == 0 and blob_files(ws) == []


def test_boxes_without_area_are_said_and_not_stored(make_workspace, tmp_path: Path) -> None:
    """A box of no width or height, as written or once clipped to its 64x48 image (one
    wholly outside it), is nothing to review or train on: skipped, and said by file."""
    ws = make_workspace()
    r = import_dataset(ws, coco_dir(tmp_path / "c", 1, boxes=[[10, 10, 0, 5], [3, 4, 5, 0],
                                                               [70, 10, 5, 5], [1, 1, 2, 2]]),
                       format="coco")
    assert r.annotations_added == 1 and r.clipped == 0
    (said,) = [w for w in r.warnings if "no area" in w]
    assert said.startswith("im0.png: 3 box(es) with no area")
    out = tmp_path / "out"
    export_dataset(ws, out, format="coco")
    assert [a["bbox"] for a in json.loads(
        (out / "annotations" / "instances.json").read_text())["annotations"]] == [[1, 1, 2, 2]]


def test_coordinates_outside_are_clipped_and_counted(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    r = import_dataset(ws, coco_dir(tmp_path / "c", 1, boxes=[[-5, 2, 20, 10], [50, 40, 30, 30],
                                                               [1, 1, 2, 2]]),
                       format="coco")
    assert r.clipped == 2 and r.annotations_added == 3
    assert any("2 annotation(s) reached outside" in w for w in r.warnings)
    out = tmp_path / "out"
    export_dataset(ws, out, format="coco")
    boxes = sorted(a["bbox"] for a in json.loads(
        (out / "annotations" / "instances.json").read_text())["annotations"])
    assert boxes == [[0, 2, 15, 10], [1, 1, 2, 2], [50, 40, 14, 8]]


def test_unknown_label_strict(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace(labels=["cat"])
    with pytest.raises(LabelPilotError, match="label classes not in the workspace: dog"):
        import_dataset(ws, coco_dir(tmp_path / "c"), format="coco", strict=True)
    assert snapshot(ws)[0]["images"] == 0 and blob_files(ws) == []


def test_path_escaping_the_import_folder_is_refused(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    write_image(tmp_path / "secret.png")
    src = coco_dir(tmp_path / "data" / "c", 1)
    doc = json.loads((src / "annotations" / "instances.json").read_text())
    doc["images"][0]["file_name"] = "../../../secret.png"
    (src / "annotations" / "instances.json").write_text(json.dumps(doc))
    with pytest.raises(UnsafePathError, match="leads outside the import folder"):
        import_dataset(ws, src, format="coco")
    # A link inside the folder that points outside is refused too.
    doc["images"][0]["file_name"] = "link.png"
    (src / "annotations" / "instances.json").write_text(json.dumps(doc))
    os.symlink(tmp_path / "secret.png", src / "images" / "link.png")
    with pytest.raises(UnsafePathError, match="outside"):
        import_dataset(ws, src, format="coco")
    assert snapshot(ws)[0]["images"] == 0


def test_zip_import_and_zip_slip(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    src = coco_dir(tmp_path / "c", 2)
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for p in src.rglob("*"):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    assert import_dataset(ws, good, format="coco").images_added == 2
    wrapped = tmp_path / "wrapped.zip"  # one top folder, as most exports are zipped
    src3 = coco_dir(tmp_path / "d", 1, seed0=9)
    with zipfile.ZipFile(wrapped, "w") as zf:
        for p in src3.rglob("*"):
            if p.is_file():
                zf.write(p, "export/" + p.relative_to(src3).as_posix())
    assert import_dataset(ws, wrapped, format="coco").images_added == 1
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../outside.txt", "x")
    with pytest.raises(UnsafePathError, match="outside the folder"):
        import_dataset(ws, evil, format="coco")
    assert not (tmp_path / "outside.txt").exists()


def test_same_name_different_content_gets_a_unique_name(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    import_dataset(ws, coco_dir(tmp_path / "a", 1, seed0=1), format="coco")
    import_dataset(ws, coco_dir(tmp_path / "b", 1, seed0=2), format="coco")
    out = tmp_path / "out"
    export_dataset(ws, out, format="images")
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2 and "im0.png" in names
    assert any(n.startswith("im0-") and n.endswith(".png") for n in names)


def test_export_filters_by_status_and_split(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    import_dataset(ws, coco_dir(tmp_path / "a", 2, seed0=10), format="coco", split="train")
    pred = coco_dir(tmp_path / "b", 1, seed0=20, boxes=[[1, 1, 5, 5]])
    doc = json.loads((pred / "annotations" / "instances.json").read_text())
    doc["annotations"][0]["score"] = 0.4
    (pred / "annotations" / "instances.json").write_text(json.dumps(doc))
    import_dataset(ws, pred, format="coco", split="test")
    s = workspace_stats(ws)
    assert s["annotations_by_status"] == {"accepted": 4, "predicted": 1}
    assert s["annotations_by_source"] == {"human": 4, "model:coco@1": 1}

    def exported(dest: str, **kw: Any) -> tuple[int, int]:
        r = export_dataset(ws, tmp_path / dest, format="coco", **kw)
        return r.images, r.annotations

    assert exported("acc") == (3, 4)
    assert exported("all", status="all") == (3, 5)
    assert exported("test", status="all", split="test") == (1, 1)
    assert exported("train", split="train") == (2, 4)


def test_export_refuses_non_empty_and_leaves_nothing_on_failure(make_workspace, tmp_path: Path,
                                                               monkeypatch) -> None:
    ws = make_workspace()
    import_dataset(ws, coco_dir(tmp_path / "a", 1), format="coco")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(LabelPilotError, match="exists and is not empty"):
        export_dataset(ws, tmp_path / "full", format="coco")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    fmt = get_format("yolo")

    def broken(dataset, dest):
        (dest / "half.txt").write_text("half")
        raise RuntimeError("crash")

    monkeypatch.setattr(fmt, "save", broken)
    with pytest.raises(RuntimeError):
        export_dataset(ws, tmp_path / "out", format="yolo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "full", "ws"]


def test_import_does_not_round_trip_per_annotation(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()

    def statements(src: Path) -> int:
        count = 0

        def on_exec(*_a: Any) -> None:
            nonlocal count
            count += 1

        event.listen(ws.engine, "before_cursor_execute", on_exec)
        try:
            import_dataset(ws, src, format="coco")
        finally:
            event.remove(ws.engine, "before_cursor_execute", on_exec)
        return count

    few = statements(coco_dir(tmp_path / "few", 2, boxes=[[1, 1, 2, 2]], seed0=0))
    many = statements(coco_dir(tmp_path / "many", 2, boxes=[[i % 50, i // 50, 2, 2] for i in range(400)],
                               seed0=5))
    assert workspace_stats(ws)["annotations"] == 2 + 800
    assert many <= few + 2, (few, many)


def test_pixel_limit_from_the_workspace(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    ws.config.max_pixels = 1000
    with pytest.raises(LabelPilotError, match="over the limit of 1,000"):
        import_dataset(ws, coco_dir(tmp_path / "a", 1), format="coco")


def test_labels_only_export(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    import_dataset(ws, coco_dir(tmp_path / "a", 2), format="coco")
    export_dataset(ws, tmp_path / "out", format="coco", include_images=False)
    assert [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
            if p.is_file()] == ["annotations/instances.json"]


def test_worker_processes_check_images_and_clean_up(make_workspace, tmp_path: Path,
                                                    monkeypatch) -> None:
    # Large imports check images in worker processes; force that path on a small one.
    from labelpilot import transfer

    monkeypatch.setattr(transfer, "_PROCESS_POOL_MIN", 2)
    monkeypatch.setattr(transfer, "_CHUNK_IMAGES", 2)
    ws = make_workspace()
    before = snapshot(ws)
    src = coco_dir(tmp_path / "c", 7)
    data = (src / "images" / "im5.png").read_bytes()
    (src / "images" / "im5.png").write_bytes(data[:100])
    with pytest.raises(LabelPilotError, match=r"1 of 7 images cannot be imported"):
        import_dataset(ws, src, format="coco")
    assert snapshot(ws) == before  # blobs stored by the workers were removed
    r = import_dataset(ws, src, format="coco", skip_invalid=True)
    assert (r.images_added, r.annotations_added) == (6, 12)
    assert len(blob_files(ws)) == 6


def test_link_mode_shares_the_file_and_copy_mode_does_not(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    src = coco_dir(tmp_path / "c", 2)
    import_dataset(ws, src, format="coco", link=True)
    original = src / "images" / "im0.png"
    stored = [p for p in blob_files(ws) if p.read_bytes() == original.read_bytes()]
    assert len(stored) == 1 and stored[0].stat().st_ino == original.stat().st_ino
    ws2 = make_workspace(name="ws2")
    import_dataset(ws2, src, format="coco")
    assert all(p.stat().st_ino != original.stat().st_ino for p in blob_files(ws2))


def test_a_zip_bomb_is_refused_before_unpacking(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace()
    src = coco_dir(tmp_path / "c", 1)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in src.rglob("*"):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
        with zf.open("images/zeros.bin", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(300):  # 300 MiB of zeros: a few hundred kB compressed
                member.write(block)
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(UnsafePathError, match=r"zeros\.bin.*over 200x: refused as a zip bomb"):
        import_dataset(ws, bomb, format="coco")
    assert snapshot(ws)[0]["images"] == 0


def _yolo_set(root: Path, items: list[tuple[str, str, int, str]]) -> Path:
    """An Ultralytics folder: (split, file name, image seed, label line) per image."""
    (root / "data.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, dog]\n")
    for split, name, seed, line in items:
        write_image(root / "images" / split / name, 64, 48, seed=seed)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split / name).with_suffix(".txt").write_text(line + "\n")
    return root


def _images(ws) -> dict[str, tuple[str | None, list[str], str]]:  # type: ignore[no-untyped-def]
    """file name -> (split, labels, sha256) of every stored image."""
    from labelpilot.transfer import export_items

    ds, _ = export_items(ws, status="all", split=None, include_images=False)
    # an item's path is its blob, named by the content hash
    return {it.name: (it.split, sorted(a.label for a in it.annotations),
                      it.path.stem if it.path else "")
            for it in ds.items}


def test_identical_bytes_under_two_names_stay_two_images(make_workspace, tmp_path: Path
                                                         ) -> None:  # type: ignore[no-untyped-def]
    # Roboflow-style duplicates: the same picture as a.png in train and as a-copy.png in
    # val, and once more as b.png in both splits, each time with its own labels.
    src = _yolo_set(tmp_path / "y", [("train", "a.png", 1, "0 0.5 0.5 0.2 0.2"),
                                      ("val", "a-copy.png", 1, "1 0.5 0.5 0.4 0.4"),
                                      ("train", "b.png", 2, "0 0.3 0.3 0.2 0.2"),
                                      ("val", "b.png", 2, "1 0.3 0.3 0.2 0.2")])
    ws = make_workspace(labels=["cat", "dog"])
    r = import_dataset(ws, src, format="yolo")
    assert (r.images_added, r.images_already_present, r.annotations_added) == (4, 0, 4)
    assert any("named <split>/<name>" in w for w in r.warnings)
    got = _images(ws)
    assert {k: v[:2] for k, v in got.items()} == {
        "a.png": ("train", ["cat"]), "a-copy.png": ("val", ["dog"]),
        "b.png": ("train", ["cat"]), "val/b.png": ("val", ["dog"])}
    assert got["a.png"][2] == got["a-copy.png"][2]
    assert len(blob_files(ws)) == 2  # the storage is shared, the items are not
    # the same import again: every image is there already, nothing is added
    again = import_dataset(ws, src, format="yolo")
    assert (again.images_added, again.images_already_present) == (0, 4)
    assert (again.annotations_added, again.annotations_already_present) == (0, 4)
    # another picture under a taken name is another image, under the name and its hash
    other = _yolo_set(tmp_path / "z", [("train", "a.png", 9, "1 0.5 0.5 0.2 0.2")])
    third = import_dataset(ws, other, format="yolo")
    assert third.images_added == 1
    renamed = [n for n in _images(ws) if n.startswith("a-") and n != "a-copy.png"]
    assert len(renamed) == 1 and _images(ws)[renamed[0]][:2] == ("train", ["dog"])
    assert import_dataset(ws, other, format="yolo").images_already_present == 1
    # a COCO export holds the named images, a file per split, and reads back whole
    out = tmp_path / "coco"
    export_dataset(ws, out, format="coco", status="all")
    docs = {p.name: json.loads(p.read_text()) for p in (out / "annotations").glob("*.json")}
    assert sorted(docs) == ["instances_train.json", "instances_val.json"]
    assert sorted(im["file_name"] for d in docs.values() for im in d["images"]) == sorted(
        _images(ws))
    back = get_format("coco").load(out)
    assert sorted((it.split, it.name) for it in back.items) == sorted(
        (v[0], k) for k, v in _images(ws).items())
