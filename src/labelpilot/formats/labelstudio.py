"""Label Studio JSON export (a list of tasks).

Reads `rectangle(labels)` (with rotation about the top-left corner, as Label Studio draws
it), `polygon(labels)`, `brushlabels` (rle-pack RLE), `keypoint(labels)`, and `textarea`
results that share a region `id` (the OCR template's transcriptions); `ellipse(labels)`
becomes a 32-point polygon. Coordinates are percentages of `original_width` /
`original_height`. `annotations` are human labels (every annotator's, marked with
`completed_by` when there are several), `predictions` are model proposals (kept with
their score). A folder of several exports reads them all; choices of the whole image are
its tags (and tags are written as choices); other result types (ratings) are counted as
skipped.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from labelpilot.annotations import Annotation, Box, Mask, Point, Polygon, Polyline, Quad, RotatedBox
from labelpilot.errors import FormatError, ValidationError
from labelpilot.formats.base import (
    Dataset,
    DatasetItem,
    ImageLocator,
    copy_image,
    default_roots,
    image_size,
    list_files,
    read_json,
    write_json,
)
from labelpilot.geometry import rle

_GEOMETRY = {"rectangle", "rectanglelabels", "polygon", "polygonlabels", "brushlabels",
             "keypoint", "keypointlabels", "ellipse", "ellipselabels"}


def _image_ref(data: dict[str, Any]) -> str | None:
    ref = data.get("image") or next((v for v in data.values() if isinstance(v, str)), None)
    if not isinstance(ref, str):
        return None
    url = urlparse(ref)
    if url.path.startswith("/data/local-files"):
        d = parse_qs(url.query).get("d")
        if d:
            return unquote(d[0])
    return unquote(url.path or ref)


class LabelStudio:
    name = "labelstudio"
    description = "Label Studio JSON: rectangle, polygon, brush RLE, keypoint, textarea"

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        paths = [source] if source.is_file() else [
            p for p in list_files(source, [".json"]) if p.parent == source]
        if not paths:
            raise FormatError("no Label Studio JSON file found", path=source)
        locator = ImageLocator(default_roots(source, images_dir))
        items: list[DatasetItem] = []
        skipped: Counter[str] = Counter()
        for path in paths:  # several exports of one project: every one is read
            items += self._load_file(path, locator, skipped)
        warnings = [f"skipped {n} Label Studio result(s) of type {kind!r}: not a shape "
                    "LabelPilot keeps" for kind, n in sorted(skipped.items())]
        return Dataset(items, warnings=warnings)

    def _load_file(self, path: Path, locator: ImageLocator, skipped: Counter[str]
                   ) -> list[DatasetItem]:
        doc = read_json(path)
        tasks = [doc] if isinstance(doc, dict) else doc
        if not isinstance(tasks, list):
            raise FormatError("expected a list of tasks", path=path)
        items = []
        for t, task in enumerate(tasks):
            where = f"[{t}]"
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                raise FormatError("each task needs a 'data' object", path=path, where=where)
            ref = _image_ref(task["data"])
            if ref is None:
                raise FormatError("task data names no image", path=path, where=where + ".data")
            name = Path(ref).name
            found = locator.find(ref.lstrip("/"), label_file=path)
            if found is None and "-" in name:
                # Label Studio prefixes uploads with an 8-character id: 1a2b3c4d-photo.jpg
                found = locator.find(name.split("-", 1)[1], label_file=path)
                name = name.split("-", 1)[1] if found else name
            item = DatasetItem(name=name, path=found)
            groups: list[tuple[str, Any, str | None, Any]] = []
            anns = task.get("annotations", []) or []
            if not isinstance(anns, list):
                raise FormatError("'annotations' must be a list", path=path,
                                  where=where + ".annotations")
            # every annotator's work is kept, each marked with who made it
            for k, a in enumerate(anns):
                if isinstance(a, dict) and not a.get("was_cancelled"):
                    groups.append((f"{where}.annotations[{k}]", a, None, a.get("completed_by")))
            for p, pred in enumerate(task.get("predictions", []) or []):
                model = pred.get("model_version") if isinstance(pred, dict) else None
                groups.append((f"{where}.predictions[{p}]", pred, model or "labelstudio",
                               None))
            several = sum(1 for g in groups if g[2] is None) > 1
            for gwhere, group, model, who in groups:
                results = group.get("result") if isinstance(group, dict) else None
                if not isinstance(results, list):
                    raise FormatError("'result' must be a list", path=path, where=gwhere)
                try:
                    regions = _regions(results, item, model, group.get("score"), skipped)
                except (ValidationError, KeyError, TypeError, ValueError) as e:
                    msg = e.message if isinstance(e, ValidationError) else \
                        f"a result lacks or mistypes a value ({type(e).__name__}: {e})"
                    raise FormatError(msg, path=path, where=gwhere + ".result") from None
                if several and who is not None:
                    for r in regions:
                        r.attributes["annotator"] = _who(who)
                item.annotations += regions
            items.append(item)
        return items

    def save(self, dataset: Dataset, dest: Path) -> None:
        tasks = []
        for i, item in enumerate(dataset.items, start=1):
            name = item.name.replace("/", "__")
            copy_image(dataset, item, dest / "images" / name)
            human: list[dict[str, Any]] = []
            predicted: list[dict[str, Any]] = []
            for j, a in enumerate(item.annotations):
                if isinstance(a.shape, Polyline):
                    dataset.leave_out("Label Studio has no open lines (polylines) on images")
                    continue
                out = predicted if a.status == "predicted" else human
                out += _results(a, f"r{i}_{j}", item)
            if item.tags:
                human.append({"id": f"t{i}", "type": "choices", "from_name": "tags",
                              "to_name": "image", "value": {"choices": list(item.tags)}})
            task: dict[str, Any] = {"id": i, "data": {"image": f"images/{name}"},
                                    "annotations": [{"result": human}] if human else []}
            if predicted:
                scores = [a.score for a in item.annotations if a.score is not None]
                task["predictions"] = [{"model_version": "labelpilot", "result": predicted,
                                        "score": min(scores) if scores else None}]
            tasks.append(task)
        write_json(dest / "tasks.json", tasks, indent=True)


def _who(who: Any) -> str:
    """`completed_by` as Label Studio writes it: a user id, or an object with the email."""
    if isinstance(who, dict):
        return str(who.get("email") or who.get("id") or who)
    return str(who)


def _regions(results: list[dict[str, Any]], item: DatasetItem, model: str | None,
             group_score: float | None, skipped: Counter[str]) -> list[Annotation]:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for k, r in enumerate(results):
        if not isinstance(r, dict):
            raise ValidationError(f"result {k} is not an object")
        by_id.setdefault(str(r.get("id", f"#{k}")), []).append(r)
    out = []
    for parts in by_id.values():
        geo = next((r for r in parts if r.get("type") in _GEOMETRY), None)
        if geo is None:
            # choices of the whole image are its tags; ratings and other per-image
            # results are not shapes: counted
            for r in parts:
                choices = r.get("value", {}).get("choices") if isinstance(r.get("value"), dict) else None
                if r.get("type") == "choices" and isinstance(choices, list):
                    item.tags += [str(c) for c in choices if str(c).strip() and str(c) not in item.tags]
                elif r.get("type") != "textarea":
                    skipped[str(r.get("type"))] += 1
            continue
        label = None
        text = None
        for r in parts:
            v = r.get("value", {})
            for key, val in v.items():
                if key.endswith("labels") and isinstance(val, list) and val:
                    label = str(val[0])
            if r.get("type") == "textarea":
                texts = v.get("text") or []
                text = "\n".join(texts) if isinstance(texts, list) else str(texts)
        w = geo.get("original_width")
        h = geo.get("original_height")
        if not (isinstance(w, int) and isinstance(h, int)):
            size = image_size(item)
            if size is None:
                continue
            w, h = size
        item.width, item.height = w, h
        shape = _shape(geo, w, h)
        if text is not None and isinstance(shape, Polygon) and len(shape.points) == 4:
            shape = Quad(shape.points)  # a text line drawn as a 4-point polygon
        score = geo.get("score", group_score)
        out.append(Annotation(
            label=label or "object", shape=shape, text=text, score=score,
            status="predicted" if model is not None else "accepted",
            source=f"model:{_slug(model)}@1" if model is not None else "human"))
    return out


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s) or "labelstudio"


def _shape(r: dict[str, Any], w: int, h: int) -> Any:
    v = r["value"]
    kind = r["type"]
    if kind.startswith("rectangle"):
        x, y = v["x"] * w / 100, v["y"] * h / 100
        bw, bh = v["width"] * w / 100, v["height"] * h / 100
        rot = float(v.get("rotation") or 0)
        if abs(rot) < 1e-9:
            return Box(x, y, x + bw, y + bh)
        a = math.radians(rot)
        cx = x + (bw / 2) * math.cos(a) - (bh / 2) * math.sin(a)
        cy = y + (bw / 2) * math.sin(a) + (bh / 2) * math.cos(a)
        return RotatedBox(cx, cy, bw, bh, rot)
    if kind.startswith("polygon"):
        return Polygon(tuple((px * w / 100, py * h / 100) for px, py in v["points"]))
    if kind.startswith("ellipse"):
        return _ellipse(v, w, h)
    if kind == "brushlabels":
        if v.get("format") != "rle":
            raise ValidationError(f"brush format {v.get('format')!r} is not supported (only rle)")
        return Mask.from_array(rle.ls_mask_decode(v["rle"], h, w))
    return Point(v["x"] * w / 100, v["y"] * h / 100)


def _ellipse(v: dict[str, Any], w: int, h: int, n: int = 32) -> Polygon:
    """An ellipse (centre x, y and radii in percent, rotated clockwise in degrees about the
    centre) as the polygon of `n` points around it."""
    cx, cy = v["x"] * w / 100, v["y"] * h / 100
    rx, ry = v["radiusX"] * w / 100, v["radiusY"] * h / 100
    if not (rx > 0 and ry > 0):
        raise ValidationError(f"an ellipse needs positive radii, not {rx:g} x {ry:g}")
    a = math.radians(float(v.get("rotation") or 0))
    pts = []
    for k in range(n):
        t = 2 * math.pi * k / n
        ex, ey = rx * math.cos(t), ry * math.sin(t)
        pts.append((cx + ex * math.cos(a) - ey * math.sin(a),
                    cy + ex * math.sin(a) + ey * math.cos(a)))
    return Polygon(tuple(pts))


def _results(a: Annotation, rid: str, item: DatasetItem) -> list[dict[str, Any]]:
    return ls_results(a, rid, item.width or 1, item.height or 1)


def ls_results(a: Annotation, rid: str, w: int, h: int, *, from_name: str = "label",
               to_name: str = "image", text_from: str | None = "transcription",
               labelled: bool = True) -> list[dict[str, Any]]:
    """Label Studio result items for one annotation (region id `rid`, image `w` x `h`):
    its shape under control `from_name` of image `to_name` (`labelled`: the shape's
    `<X>Labels` type with the label; else the bare `<X>` tool's), and its transcription
    under the TextArea `text_from` when it has one."""
    shape = a.shape
    base = {"id": rid, "from_name": from_name, "to_name": to_name, "original_width": w,
            "original_height": h, "image_rotation": 0}
    value: dict[str, Any]
    if isinstance(shape, Box):
        kind = "rectangle"
        value = {"x": shape.x1 / w * 100, "y": shape.y1 / h * 100,
                 "width": (shape.x2 - shape.x1) / w * 100,
                 "height": (shape.y2 - shape.y1) / h * 100, "rotation": 0}
    elif isinstance(shape, RotatedBox):
        kind = "rectangle"
        x0, y0 = shape.corners()[0]
        value = {"x": x0 / w * 100, "y": y0 / h * 100, "width": shape.w / w * 100,
                 "height": shape.h / h * 100, "rotation": shape.angle % 360}
    elif isinstance(shape, Quad | Polygon):
        kind = "polygon"
        pts = shape.points
        value = {"points": [[x / w * 100, y / h * 100] for x, y in pts], "closed": True}
    elif isinstance(shape, Mask):
        kind = "brush"
        value = {"format": "rle", "rle": rle.ls_mask_encode(shape.to_array())}
    else:
        assert isinstance(shape, Point), shape.type  # polylines are left out by the caller
        kind = "keypoint"
        value = {"x": shape.x / w * 100, "y": shape.y / h * 100, "width": 0.5}
    if labelled:
        kind += "labels"
        value[kind] = [a.label]
    out = [{**base, "type": kind, "value": value}]
    if a.score is not None:
        out[0]["score"] = a.score
    if a.text is not None and text_from is not None:
        tv = {k: v for k, v in value.items() if k != kind}
        out.append({**base, "from_name": text_from, "type": "textarea",
                    "value": {**tv, "text": [a.text]}})
    return out
