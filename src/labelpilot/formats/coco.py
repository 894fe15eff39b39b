"""COCO object detection / instance segmentation / keypoints JSON.

Boxes are `[x, y, w, h]`; a `segmentation` is a list of polygons (one annotation made of
several parts becomes one LabelPilot annotation per part, sharing a `group`, as CVAT does),
an uncompressed RLE (`counts` list) or a compressed RLE string. Text lines keep their
transcription in an extra `text` key; a `score` key marks a model's proposal.
Keypoints (`person_keypoints_*.json`): each labelled keypoint (v > 0) becomes a point of
the instance's class with attributes {"keypoint": name, "visibility": v}, sharing the
instance's `group`; the category's `keypoints` and `skeleton` are the class's keypoint
schema, kept by the workspace and written back on export.
Export: one `annotations/instances_<split>.json` per split with its images under
`images/<split>/` (Datumaro's layout; images without a split are the `default` subset),
or `annotations/instances.json` and `images/` when no image has a split.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from labelpilot.annotations import Annotation, Box, Mask, Point, Polygon, Polyline, Quad
from labelpilot.errors import FormatError, ValidationError
from labelpilot.formats.base import (
    Dataset,
    DatasetItem,
    ImageLocator,
    copy_image,
    default_roots,
    expect,
    expect_size,
    is_number,
    list_files,
    read_json,
    split_named,
    write_json,
)
from labelpilot.geometry import rle

# COCO's other annotation files: read by no LabelPilot reader (yet), said so by name.
_OTHER_KINDS = {"captions": "captions", "panoptic": "panoptic segmentation",
                "image_info": "image lists without labels", "stuff": "stuff segmentation"}


def _split_of(subset: str) -> str | None:
    """`train2017`, `val`, `Validation`, `test-dev` -> the split; `default` -> None."""
    m = re.match(r"[a-z]+", subset.lower())
    return split_named(m.group(0)) if m else None


def _annotation_files(source: Path, warnings: list[str]) -> list[tuple[Path, str]]:
    """The instances files of a COCO folder with their subset names (`instances_val.json`
    -> `val`; Roboflow's `valid/_annotations.coco.json` -> `valid`); the other COCO files
    found beside them are named in `warnings` as skipped."""
    if source.is_file():
        return [(source, "")]
    found = list_files(source, [".json"], pattern="*.json")
    candidates = [p for p in found
                  if p.parent in (source, source / "annotations")
                  or p.name == "_annotations.coco.json"]
    if not candidates:
        raise FormatError("no COCO JSON file found (looked for annotations/*.json, *.json "
                          "and <split>/_annotations.coco.json)", path=source)
    out = []
    for path in candidates:
        stem = path.name.removesuffix(".coco.json").removesuffix(".json")
        kind = next((k for k in _OTHER_KINDS if stem.lower().startswith(k)), None)
        if kind is not None:
            warnings.append(f"{path.relative_to(source)} holds {_OTHER_KINDS[kind]}, which "
                            "LabelPilot does not import; skipped")
            continue
        if stem == "_annotations":  # Roboflow: the folder is the subset
            subset = path.parent.name if path.parent != source else ""
        else:
            subset = re.sub(r"^(instances|person_keypoints)_?", "", stem, flags=re.IGNORECASE)
        out.append((path, subset))
    if not out:
        raise FormatError("no COCO instances file found: only " + ", ".join(
            p.name for p in candidates), path=source,
            hint="LabelPilot imports instances files (boxes, polygons, masks)")
    return out


class Coco:
    name = "coco"
    description = "COCO JSON: boxes, polygons, RLE masks, keypoints; a file per split"

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        warnings: list[str] = []
        files = _annotation_files(source, warnings)
        items: list[DatasetItem] = []
        labels: dict[str, None] = {}
        schemas: dict[str, dict[str, Any]] = {}
        roots = default_roots(source, images_dir)
        base = source if source.is_dir() else source.parent
        for path, subset in files:
            doc = read_json(path)
            if len(files) > 1 and not (isinstance(doc, dict)
                                       and isinstance(doc.get("images"), list)):
                warnings.append(f"{path.relative_to(source)}: not a COCO annotation file "
                                "(no 'images' list); skipped")
                continue
            # A subset's images first: images/<subset>/ (Datumaro), <subset>/ (COCO's
            # train2017/), the JSON's own folder (Roboflow).
            mine = [base / "images" / subset, base / subset] if subset else []
            locator = ImageLocator([*mine, path.parent, *roots])
            got, names = self._load_file(path, doc, locator,
                                         _split_of(subset) if subset else None, schemas)
            items += got
            labels.update(dict.fromkeys(names))
        return Dataset(items, list(labels), warnings, keypoints=schemas)

    def _load_file(self, path: Path, doc: Any, locator: ImageLocator, split: str | None,
                   schemas: dict[str, dict[str, Any]]) -> tuple[list[DatasetItem], list[str]]:
        expect(isinstance(doc, dict), "the top level must be an object with 'images', "
               "'annotations' and 'categories'", path=path)
        for key in ("images", "categories"):
            expect(isinstance(doc.get(key), list), f"'{key}' must be a list", path=path,
                   where=key)
        anns = doc.get("annotations", [])
        expect(isinstance(anns, list), "'annotations' must be a list", path=path,
               where="annotations")
        cats: dict[Any, str] = {}
        for i, c in enumerate(doc["categories"]):
            where = f"categories[{i}]"
            expect(isinstance(c, dict) and "id" in c and isinstance(c.get("name"), str),
                   "each category needs an 'id' and a 'name'", path=path, where=where)
            cats[c["id"]] = c["name"]
            schema = _schema(c, path, where)
            if schema is not None and schemas.setdefault(c["name"], schema) != schema:
                raise FormatError(f"category {c['name']!r} has other keypoints than in "
                                  "another file of this dataset", path=path, where=where)
        items: dict[Any, DatasetItem] = {}
        for i, im in enumerate(doc["images"]):
            where = f"images[{i}]"
            expect(isinstance(im, dict) and "id" in im and isinstance(im.get("file_name"), str),
                   "each image needs an 'id' and a 'file_name'", path=path, where=where)
            w, h = im.get("width"), im.get("height")
            expect(isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0,
                   "'width' and 'height' must be positive integers", path=path, where=where)
            found = locator.find(im["file_name"], label_file=path)
            expect_size(w, h, path=path, where=where)
            items[im["id"]] = DatasetItem(name=im["file_name"], path=found, width=w, height=h,
                                          split=split)
        next_group = 1
        for i, a in enumerate(anns):
            if not isinstance(a, dict):
                raise FormatError("each annotation must be an object", path=path,
                                  where=f"annotations[{i}]")
            get = a.get
            item = items.get(get("image_id"))
            if item is None:
                raise FormatError(f"image_id {get('image_id')!r} is not in 'images'",
                                  path=path, where=f"annotations[{i}].image_id")
            label = cats.get(get("category_id"))
            if label is None:
                raise FormatError(f"category_id {get('category_id')!r} is not in 'categories'",
                                  path=path, where=f"annotations[{i}].category_id")
            try:
                keypoints = _keypoints(a, schemas.get(label))
                shapes = [] if keypoints and get("bbox") is None and not get("segmentation") \
                    else _shapes(a, item)
                attrs = get("attributes")
                extra: dict[str, Any] = dict(attrs) if isinstance(attrs, dict) else {}
                if get("iscrowd"):
                    extra["iscrowd"] = 1
                score, text = get("score"), get("text")
                predicted = score is not None
                status = "predicted" if predicted else "accepted"
                origin = get("source", "model:coco@1" if predicted else "human")
                group = None
                if len(shapes) > 1 or keypoints:
                    group = next_group
                    next_group += 1
                for shape in shapes:
                    if text is not None and isinstance(shape, Polygon) and len(shape.points) == 4:
                        shape = Quad(shape.points)  # a text line
                    item.annotations.append(Annotation(
                        label, shape, text, extra if len(shapes) == 1 else dict(extra), score,
                        origin, status, group))
                for name, x, y, v in keypoints:
                    item.annotations.append(Annotation(
                        label, Point(x, y), attributes={"keypoint": name, "visibility": v},
                        score=score, source=origin, status=status, group=group))
            except ValidationError as e:
                raise FormatError(e.message, path=path, where=f"annotations[{i}]") from None
        return list(items.values()), list(dict.fromkeys(cats.values()))

    def save(self, dataset: Dataset, dest: Path) -> None:
        labels = dataset.all_labels()
        cat_ids = {name: i + 1 for i, name in enumerate(labels)}
        schemas = _export_schemas(dataset)
        by_split: dict[str | None, list[DatasetItem]] = {}
        for item in dataset.items:
            by_split.setdefault(item.split, []).append(item)
        categories = []
        for n, i in cat_ids.items():
            cat: dict[str, Any] = {"id": i, "name": n, "supercategory": ""}
            if n in schemas:
                cat.update(schemas[n])
            categories.append(cat)
        one_file = set(by_split) == {None}
        ann_id = 1
        img_id = 1
        for split, items in by_split.items():
            subset = split or "default"
            images, anns = [], []
            for item in items:
                assert item.width is not None and item.height is not None
                images.append({"id": img_id, "file_name": item.name, "width": item.width,
                               "height": item.height})
                folder = dest / "images" if one_file else dest / "images" / subset
                copy_image(dataset, item, folder / item.name)
                for rec in _item_records(item, dataset, schemas):
                    rec.update(id=ann_id, image_id=img_id, category_id=cat_ids[rec.pop("label")])
                    ann_id += 1
                    anns.append(rec)
                img_id += 1
            name = "instances.json" if one_file else f"instances_{subset}.json"
            write_json(dest / "annotations" / name, {
                "info": {"description": "exported by LabelPilot"},
                "images": images, "annotations": anns, "categories": categories})


def _export_schemas(dataset: Dataset) -> dict[str, dict[str, Any]]:
    """The keypoint schemas to write: the dataset's, and for a class whose points name
    keypoints without a schema, those names in the order first met."""
    schemas = {k: dict(v) for k, v in dataset.keypoints.items()}
    found: dict[str, dict[str, None]] = {}
    for item in dataset.items:
        for a in item.annotations:
            name = a.attributes.get("keypoint")
            if isinstance(a.shape, Point) and isinstance(name, str) and a.label not in schemas:
                found.setdefault(a.label, {})[name] = None
    for label, names in found.items():
        schemas[label] = {"keypoints": list(names), "skeleton": []}
    return schemas


def _item_records(item: DatasetItem, dataset: Dataset, schemas: dict[str, dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    """One image's COCO annotation records (with a `label` key for the category): the
    instances, each with its group's keypoints, and instances made of keypoints alone."""
    assert item.width is not None and item.height is not None
    grouped: dict[int, list[Annotation]] = {}
    singles: list[list[Annotation]] = []
    points: dict[tuple[Any, str], list[Annotation]] = {}
    for a in item.annotations:
        if isinstance(a.shape, Polyline):
            dataset.leave_out("COCO has no open lines (polylines)")
        elif isinstance(a.shape, Point):
            name = a.attributes.get("keypoint")
            if a.label in schemas and name in schemas[a.label]["keypoints"]:
                points.setdefault((a.group if a.group is not None else id(a), a.label),
                                  []).append(a)
            else:
                dataset.leave_out("COCO holds a point only as a keypoint of its class")
        elif a.group is not None and isinstance(a.shape, Polygon) and not a.shape.holes:
            grouped.setdefault(a.group, []).append(a)
        else:
            singles.append([a])
    out = []
    for parts in [*singles, *grouped.values()]:
        rec = _record(parts, item.width, item.height)
        assert rec is not None
        rec["label"] = parts[0].label
        pts = points.pop((parts[0].group, parts[0].label), None) \
            if parts[0].group is not None else None
        if pts:
            rec.update(_keypoint_fields(pts, schemas[parts[0].label]))
        out.append(rec)
    for (_, label), pts in points.items():  # keypoints without an instance shape
        xs, ys = [p.shape.bbox()[0] for p in pts], [p.shape.bbox()[1] for p in pts]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        rec = {"iscrowd": 0, "segmentation": [], "area": (x2 - x1) * (y2 - y1),
               "bbox": [x1, y1, x2 - x1, y2 - y1], "label": label,
               **_keypoint_fields(pts, schemas[label])}
        if pts[0].score is not None:
            rec["score"] = pts[0].score
        out.append(rec)
    return out


def _keypoint_fields(pts: list[Annotation], schema: dict[str, Any]) -> dict[str, Any]:
    names = schema["keypoints"]
    flat: list[float] = [0] * (3 * len(names))
    for p in pts:
        i = names.index(p.attributes["keypoint"])
        x, y = p.shape.bbox()[:2]
        v = p.attributes.get("visibility", 2)
        flat[3 * i: 3 * i + 3] = [x, y, v if v in (1, 2) else 2]
    return {"keypoints": flat, "num_keypoints": sum(1 for v in flat[2::3] if v)}


def _schema(c: dict[str, Any], path: Path, where: str) -> dict[str, Any] | None:
    """A keypoint category's schema: {"keypoints": names, "skeleton": 1-based pairs}."""
    names = c.get("keypoints")
    if names is None:
        return None
    expect(isinstance(names, list) and bool(names) and all(isinstance(n, str) and n
                                                           for n in names)
           and len(set(names)) == len(names),
           "'keypoints' must be a list of distinct keypoint names", path=path,
           where=f"{where}.keypoints")
    skeleton = c.get("skeleton") or []
    ok = isinstance(skeleton, list) and all(
        isinstance(e, list) and len(e) == 2 and all(
            isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= len(names) for i in e)
        for e in skeleton)
    expect(ok, f"'skeleton' must be pairs of keypoint numbers 1..{len(names)}", path=path,
           where=f"{where}.skeleton")
    return {"keypoints": list(names), "skeleton": [list(e) for e in skeleton]}


def _keypoints(a: dict[str, Any], schema: dict[str, Any] | None
               ) -> list[tuple[str, float, float, int]]:
    """An annotation's labelled keypoints: (name, x, y, visibility) for v > 0."""
    flat = a.get("keypoints")
    if flat is None:
        return []
    if schema is None:
        raise ValidationError("has 'keypoints' but its category names none (no 'keypoints' "
                              "list in the category)")
    names = schema["keypoints"]
    if not (isinstance(flat, list) and len(flat) == 3 * len(names)
            and all(map(is_number, flat))):
        raise ValidationError(f"'keypoints' must be {3 * len(names)} numbers (x, y, v for "
                              f"each of the category's {len(names)} keypoints)")
    out = []
    for i, name in enumerate(names):
        x, y, v = flat[3 * i: 3 * i + 3]
        if v not in (0, 1, 2):
            raise ValidationError(f"keypoint {name!r} has visibility {v}; COCO's are 0 (not "
                                  "labelled), 1 (labelled, hidden) and 2 (visible)")
        if v:
            out.append((name, x, y, int(v)))
    return out


def _shapes(a: dict[str, Any], item: DatasetItem) -> list[Any]:
    seg = a.get("segmentation")
    h, w = item.height or 0, item.width or 0
    if seg is not None and not isinstance(seg, list | dict):
        raise ValidationError("'segmentation' must be a list of polygons or an RLE object, "
                              f"not {type(seg).__name__}")
    if isinstance(seg, list) and seg:
        out = []
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or not all(map(is_number, poly)):
                raise ValidationError("a segmentation polygon must be a flat list of at least "
                                      "3 (x, y) number pairs")
            out.append(Polygon(tuple(zip(poly[0::2], poly[1::2], strict=True))))
        return out
    if isinstance(seg, dict):
        counts, size = seg.get("counts"), seg.get("size")
        if not (isinstance(size, list) and len(size) == 2):
            raise ValidationError("RLE segmentation needs 'size': [height, width]")
        if list(size) != [h, w]:
            raise ValidationError(f"RLE size {size} does not match the image's [{h}, {w}]")
        if isinstance(counts, list):
            return [Mask(rle.compress_counts(rle.check_counts(counts, h * w)), h, w)]
        if isinstance(counts, str):
            return [Mask(counts, h, w)]  # checked there, without decoding
        raise ValidationError("RLE 'counts' must be a list of runs or a compressed string")
    bbox = a.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(is_number, bbox))):
        raise ValidationError("'bbox' must be 4 numbers: x, y, width, height")
    return [Box.from_xywh(*bbox)]


def _record(parts: list[Annotation], width: int, height: int) -> dict[str, Any] | None:
    a = parts[0]
    shape = a.shape
    attrs = a.attributes
    rec: dict[str, Any] = {"iscrowd": 1 if attrs.get("iscrowd") else 0}
    kind = shape.type
    if kind == "box":
        rec["segmentation"] = []
        rec["area"] = shape.area()
    elif kind == "polygon" and not shape.holes:  # type: ignore[union-attr]
        rec["segmentation"] = [[c for p in part.shape.points for c in p]  # type: ignore[union-attr]
                               for part in parts]
        rec["area"] = sum(part.shape.area() for part in parts)
    elif kind in ("quad", "rotated_box"):
        rec["segmentation"] = [[c for p in shape.corners() for c in p]]  # type: ignore[union-attr]
        rec["area"] = shape.area()
    elif kind == "polygon":
        # COCO polygons cannot have holes: write the exact region as RLE instead.
        m = rle.from_polygons([shape.points], height, width, shape.holes)  # type: ignore[union-attr]
        rec["segmentation"] = {"size": [height, width], "counts": rle.encode(m)}
        rec["area"] = float(m.sum())
    elif kind == "mask":
        rec["segmentation"] = {"size": [shape.height, shape.width],  # type: ignore[union-attr]
                               "counts": shape.rle}  # type: ignore[union-attr]
        rec["area"] = shape.area()
    else:
        return None  # points have no COCO instance form
    if len(parts) > 1:
        xs = [b for p in parts for b in p.shape.bbox()]
        x1, y1 = min(xs[0::4]), min(xs[1::4])
        x2, y2 = max(xs[2::4]), max(xs[3::4])
    else:
        x1, y1, x2, y2 = shape.bbox()
    rec["bbox"] = [x1, y1, x2 - x1, y2 - y1]
    if a.text is not None:
        rec["text"] = a.text
    if a.score is not None:
        rec["score"] = a.score
    if attrs and (len(attrs) > 1 or "iscrowd" not in attrs):
        rec["attributes"] = {k: v for k, v in attrs.items() if k != "iscrowd"}
    return rec
