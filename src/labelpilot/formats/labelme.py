"""LabelMe JSON (also what X-AnyLabeling writes): one JSON per image.

Shapes: `rectangle` -> box, `polygon` -> polygon (quad if `text` is set and it has 4
points), `rotation` (X-AnyLabeling) -> quad, `point` -> point, `circle` -> 32-gon, `mask`
(base64 PNG of the shape's box) -> mask. `line`/`linestrip` are skipped with a warning.
The transcription lives in `description`, as X-AnyLabeling writes OCR results.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.annotations import Annotation, Box, Mask, Point, Polygon, Quad, RotatedBox
from labelpilot.errors import FormatError, ValidationError
from labelpilot.formats.base import (
    Dataset,
    DatasetItem,
    ImageLocator,
    copy_image,
    default_roots,
    expect,
    expect_size,
    list_files,
    open_mask_image,
    read_json,
    write_json,
)


class LabelMe:
    name = "labelme"
    description = "LabelMe / X-AnyLabeling JSON, one file per image"

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        files = [source] if source.is_file() else list_files(source, {".json"})
        if not files:
            raise FormatError("no LabelMe JSON files found", path=source)
        locator = ImageLocator(default_roots(source, images_dir))
        ds = Dataset()
        skipped: dict[str, int] = {}
        for f in files:
            doc = read_json(f)
            expect(isinstance(doc, dict) and isinstance(doc.get("shapes"), list),
                   "not a LabelMe file: expected an object with a 'shapes' list", path=f)
            image_path = doc.get("imagePath")
            data = None
            if doc.get("imageData"):
                try:
                    data = base64.b64decode(doc["imageData"], validate=True)
                except (ValueError, TypeError):
                    raise FormatError("imageData is not valid base64", path=f,
                                      where="imageData") from None
            found = None
            if isinstance(image_path, str) and image_path:
                found = locator.find(image_path, label_file=f)
                name = Path(image_path.replace("\\", "/")).name
            else:
                name = f"{f.stem}.png" if data else f.stem
            if found is None and data is None:
                ds.warnings.append(f"{f}: image {image_path!r} not found next to it")
            rel = (found.parent.relative_to(locator.roots[0]) / found.name).as_posix() \
                if found is not None and found.is_relative_to(locator.roots[0]) else name
            w, h = doc.get("imageWidth"), doc.get("imageHeight")
            if isinstance(w, int) and isinstance(h, int):
                expect_size(w, h, path=f, where="imageWidth/imageHeight")
            item = DatasetItem(name=rel, path=found, data=None if found else data,
                               width=w if isinstance(w, int) else None,
                               height=h if isinstance(h, int) else None)
            for i, s in enumerate(doc["shapes"]):
                where = f"shapes[{i}]"
                try:
                    ann = _annotation(s, item)
                except (ValidationError, KeyError, TypeError, ValueError) as e:
                    msg = e.message if isinstance(e, ValidationError) else f"bad shape ({e})"
                    raise FormatError(msg, path=f, where=where) from None
                if ann is None:
                    kind = str(s.get("shape_type"))
                    skipped[kind] = skipped.get(kind, 0) + 1
                    continue
                item.annotations.append(ann)
            ds.items.append(item)
        for kind, n in skipped.items():
            ds.warnings.append(f"skipped {n} LabelMe '{kind}' shape(s): no LabelPilot equivalent")
        return ds

    def save(self, dataset: Dataset, dest: Path) -> None:
        for item in dataset.items:
            copy_image(dataset, item, dest / item.name)
            shapes = [_shape_dict(a) for a in item.annotations]
            write_json((dest / item.name).with_suffix(".json"), {
                "version": "5.4.1", "flags": {}, "shapes": shapes,
                "imagePath": Path(item.name).name, "imageData": None,
                "imageHeight": item.height, "imageWidth": item.width,
            }, indent=True)


def _annotation(s: dict[str, Any], item: DatasetItem) -> Annotation | None:
    if not isinstance(s, dict):
        raise ValidationError("each shape must be an object")
    label = s.get("label")
    kind = s.get("shape_type") or "polygon"
    pts: Any = s.get("points") or []
    text = s.get("description") or None
    attrs: dict[str, Any] = {k: v for k, v in (s.get("flags") or {}).items()}
    if s.get("difficult"):
        attrs["difficult"] = True
    shape: Any
    if kind == "rectangle":
        if len(pts) == 4:
            pts = [pts[0], pts[2]]
        (xa, ya), (xb, yb) = pts
        shape = Box(min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))
    elif kind == "polygon":
        shape = Quad(pts) if text is not None and len(pts) == 4 else Polygon(pts)
    elif kind == "rotation":
        shape = Quad(pts)
    elif kind == "point":
        shape = Point(*pts[0])
    elif kind == "circle":
        (cx, cy), (px, py) = pts
        r = math.hypot(px - cx, py - cy)
        shape = Polygon(tuple((cx + r * math.cos(t), cy + r * math.sin(t))
                              for t in np.linspace(0, 2 * math.pi, 32, endpoint=False)))
    elif kind == "mask":
        shape = _mask(s, item)
    else:
        return None
    score = s.get("score")
    return Annotation(label=label if isinstance(label, str) else "", shape=shape, text=text, attributes=attrs,
                      group=s.get("group_id"), score=score,
                      status="predicted" if score is not None else "accepted",
                      source="model:labelme@1" if score is not None else "human")


def _mask(s: dict[str, Any], item: DatasetItem) -> Mask:

    if item.width is None or item.height is None:
        raise ValidationError("a mask shape needs imageWidth and imageHeight")
    # the crop covers the shape's box: never more pixels than its image
    with open_mask_image(base64.b64decode(s["mask"]),
                         max_pixels=item.width * item.height) as im:
        crop = np.asarray(im.convert("L")) > 0
    (x1, y1), _ = s["points"]
    full = np.zeros((item.height, item.width), dtype=np.uint8)
    x1, y1 = round(x1), round(y1)
    h, w = crop.shape
    full[y1:y1 + h, x1:x1 + w] = crop[: item.height - y1, : item.width - x1]
    return Mask.from_array(full)


def _shape_dict(a: Annotation) -> dict[str, Any]:
    shape = a.shape
    d: dict[str, Any] = {"label": a.label, "group_id": a.group, "description": a.text or "",
                         "flags": {k: v for k, v in a.attributes.items() if isinstance(v, bool)}}
    if isinstance(shape, Box):
        d.update(shape_type="rectangle", points=[[shape.x1, shape.y1], [shape.x2, shape.y2]])
    elif isinstance(shape, Polygon):
        d.update(shape_type="polygon", points=[list(p) for p in shape.points])
    elif isinstance(shape, Quad | RotatedBox):
        d.update(shape_type="polygon", points=[list(p) for p in shape.corners()])
    elif isinstance(shape, Point):
        d.update(shape_type="point", points=[[shape.x, shape.y]])
    elif isinstance(shape, Mask):
        from PIL import Image

        arr = shape.to_array()
        x1, y1, x2, y2 = (int(v) for v in shape.bbox())
        buf = io.BytesIO()
        Image.fromarray((arr[y1:y2, x1:x2] * 255).astype(np.uint8)).save(buf, format="PNG")
        d.update(shape_type="mask", points=[[x1, y1], [x2 - 1, y2 - 1]],
                 mask=base64.b64encode(buf.getvalue()).decode())
    if a.score is not None:
        d["score"] = a.score
    return d
