"""LabelMe JSON (also what X-AnyLabeling writes): one JSON per image.

Shapes: `rectangle` -> box, `polygon` -> polygon (quad if `text` is set and it has 4
points), `rotation` (X-AnyLabeling) -> quad, `point` -> point, `circle` -> 32-gon, `mask`
(base64 PNG of the shape's box) -> mask, `line`/`linestrip` -> polyline (written back as
`linestrip`).
The transcription lives in `description`, as X-AnyLabeling writes OCR results.
"""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.annotations import Annotation, Box, Mask, Point, Polygon, Polyline, Quad, RotatedBox
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
    open_mask_image,
    read_json,
    write_json,
)
from labelpilot.imageio import IMAGE_SUFFIXES


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
        flagged = 0
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
                found = _find_image(image_path, f, locator)
                name = Path(image_path.replace("\\", "/")).name
            else:
                name = f.stem
            if data and (found is None or Path(name).suffix.lower() not in IMAGE_SUFFIXES):
                # the embedded image, named after the JSON (an imagePath naming the JSON
                # itself must not become the image's name: its export would overwrite it)
                name, found = f"{f.stem}{_suffix_of(data)}", None
            if doc.get("flags") and isinstance(doc["flags"], dict):
                flagged += 1
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
                except _Unusable as e:  # labelme opens these; LabelPilot cannot keep them
                    ds.warnings.append(f"{f}: {where}: {e}; skipped")
                    continue
                except ValidationError as e:
                    raise FormatError(e.message, path=f, where=where) from None
                except (KeyError, TypeError, ValueError) as e:
                    raise FormatError(f"the shape cannot be read ({type(e).__name__}: {e})",
                                      path=f, where=where) from None
                if ann is None:
                    kind = str(s.get("shape_type"))
                    skipped[kind] = skipped.get(kind, 0) + 1
                    continue
                item.annotations.append(ann)
            ds.items.append(item)
        for kind, n in skipped.items():
            ds.warnings.append(f"skipped {n} LabelMe '{kind}' shape(s): no LabelPilot equivalent")
        if flagged:
            ds.warnings.append(f"{flagged} file(s) set image-level flags: LabelPilot keeps "
                               "flags on shapes only, so these were not imported")
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


class _Unusable(ValidationError):
    """A shape labelme itself opens but LabelPilot cannot keep: skipped with a warning."""


# how many points each shape type takes
_COUNTS = {"rectangle": (2, 4), "point": (1,), "circle": (2,), "mask": (2,), "rotation": (4,),
           "line": (2,)}


def _points(s: dict[str, Any], kind: str) -> list[tuple[float, float]]:
    raw = s.get("points")
    if not isinstance(raw, list) or not all(
            isinstance(p, list | tuple) and len(p) == 2 and all(map(is_number, p))
            for p in raw):
        raise ValidationError("'points' must be a list of [x, y] number pairs")
    pts = [(float(x), float(y)) for x, y in raw]
    want = _COUNTS.get(kind)
    if want is not None and len(pts) not in want:
        raise ValidationError(f"a {kind} takes {' or '.join(map(str, want))} point(s), not "
                              f"{len(pts)}")
    if kind == "polygon" and len(pts) < 3:
        raise _Unusable(f"a polygon of {len(pts)} point(s) has no area")
    if kind == "linestrip" and len(pts) < 2:
        raise _Unusable(f"a linestrip of {len(pts)} point(s) is no line")
    return pts


def _annotation(s: dict[str, Any], item: DatasetItem) -> Annotation | None:
    if not isinstance(s, dict):
        raise ValidationError("each shape must be an object")
    label = s.get("label")
    kind = s.get("shape_type") or "polygon"
    if kind not in ("rectangle", "polygon", "rotation", "point", "circle", "mask", "line",
                    "linestrip"):
        return None
    pts: Any = _points(s, kind)
    text = s.get("description") or None
    flags = s.get("flags")
    if flags is not None and not isinstance(flags, dict):
        raise ValidationError(f"'flags' must be an object, not {type(flags).__name__}")
    group = s.get("group_id")
    if group is not None and not (is_number(group) and isinstance(group, int)):
        raise ValidationError(f"'group_id' must be an integer or null, not {group!r}")
    attrs: dict[str, Any] = dict(flags or {})
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
    elif kind in ("line", "linestrip"):
        shape = Polyline(tuple(pts))
    elif kind == "circle":
        (cx, cy), (px, py) = pts
        r = math.hypot(px - cx, py - cy)
        shape = Polygon(tuple((cx + r * math.cos(t), cy + r * math.sin(t))
                              for t in np.linspace(0, 2 * math.pi, 32, endpoint=False)))
    else:
        shape = _mask(s, item, pts[0])
    score = s.get("score")
    return Annotation(label=label if isinstance(label, str) else "", shape=shape, text=text, attributes=attrs,
                      group=group, score=score,
                      status="predicted" if score is not None else "accepted",
                      source="model:labelme@1" if score is not None else "human")


def _mask(s: dict[str, Any], item: DatasetItem, corner: tuple[float, float]) -> Mask:
    if item.width is None or item.height is None:
        raise ValidationError("a mask shape needs imageWidth and imageHeight")
    if not isinstance(s.get("mask"), str):
        raise ValidationError("a mask shape needs 'mask': a base64 PNG")
    try:
        png = base64.b64decode(s["mask"], validate=True)
    except ValueError:
        raise ValidationError("'mask' is not valid base64") from None
    # the crop covers the shape's box: never more pixels than its image
    try:
        with open_mask_image(png, max_pixels=item.width * item.height) as im:
            crop = np.asarray(im.convert("L")) > 0
    except OSError:
        raise ValidationError("'mask' is not a readable PNG") from None
    full = np.zeros((item.height, item.width), dtype=np.uint8)
    x1, y1 = round(corner[0]), round(corner[1])
    h, w = crop.shape
    # the part of the crop inside the image (labelme draws what lies outside nowhere)
    ya, xa = max(0, y1), max(0, x1)
    yb, xb = min(item.height, y1 + h), min(item.width, x1 + w)
    if ya >= yb or xa >= xb:
        raise _Unusable("the mask lies wholly outside its image")
    full[ya:yb, xa:xb] = crop[ya - y1:yb - y1, xa - x1:xb - x1]
    return Mask.from_array(full)


def _find_image(image_path: str, label_file: Path, locator: ImageLocator) -> Path | None:
    """The image an `imagePath` names: relative to its JSON first (labelme writes
    `../images/x.jpg`), which may climb folders as long as it stays inside the import,
    then as any other label file's name."""
    rel = image_path.replace("\\", "/")
    if not rel.startswith("/") and ".." in rel.split("/"):
        near = Path(os.path.normpath(label_file.parent.resolve() / rel))
        for root in locator.roots:
            if near.is_relative_to(root) and near.is_file():
                return locator.find(near.relative_to(root).as_posix(), label_file=label_file)
    return locator.find(image_path, label_file=label_file)


def _suffix_of(data: bytes) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "PNG").lower()
    except (UnidentifiedImageError, OSError):
        return ".png"  # the import's image check then names the file
    return {"jpeg": ".jpg", "tiff": ".tif"}.get(fmt, f".{fmt}")


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
    elif isinstance(shape, Polyline):
        d.update(shape_type="linestrip", points=[list(p) for p in shape.points])
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
