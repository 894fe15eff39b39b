"""One vocabulary of shapes and annotations for formats, models, store, API and UI.

Coordinates are pixels in the displayed orientation of the image (EXIF orientation is
applied once, at import), origin at the top-left corner, x to the right, y down. Every
shape validates itself at construction and says which field was wrong and why.

Example:
    >>> box = Box(10, 20, 110, 70)
    >>> Annotation(label="cat", shape=box).shape.bbox()
    (10.0, 20.0, 110.0, 70.0)
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

from labelpilot.errors import ValidationError
from labelpilot.geometry import rle

if TYPE_CHECKING:
    import numpy as np

XY: TypeAlias = tuple[float, float]

STATUSES = ("predicted", "accepted", "edited", "rejected")
# An image: new, pre-labeled by a model, in review (claimed, or sent back to its annotator),
# submitted by its annotator for review, done (a reviewer decided every label).
REVIEW_STATES = ("new", "prelabeled", "in_review", "submitted", "done")
SPLITS = ("train", "val", "test")
TASKS = ("ocr", "detect", "segment", "classify")

Status = Literal["predicted", "accepted", "edited", "rejected"]
ReviewState = Literal["new", "prelabeled", "in_review", "submitted", "done"]
Split = Literal["train", "val", "test"]

_SOURCE_RE = re.compile(r"^(human|model:[^@\s]+@[^@\s]+)$")
# Coordinates this far outside the image are rounding noise, not an error worth reporting.
_CLIP_TOLERANCE = 0.01


def _num(value: object, name: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number, but got {value!r}") from None
    if not math.isfinite(out):
        raise ValidationError(f"{name} must be finite, but got {value!r}")
    return out


def _points(value: Iterable[Sequence[float]], name: str, *, min_count: int) -> tuple[XY, ...]:
    try:
        pts = tuple([(float(x), float(y)) for x, y in value])  # type: ignore[misc]
        ok = math.isfinite(sum([x + y for x, y in pts]))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        # Slow path, only to say exactly which value is wrong.
        try:
            pts = tuple((_num(p[0], f"{name}[{i}].x"), _num(p[1], f"{name}[{i}].y"))
                        for i, p in enumerate(value))
        except (TypeError, IndexError):
            raise ValidationError(
                f"{name} must be a sequence of (x, y) pairs, but got {value!r:.80}"
            ) from None
        for i, p in enumerate(value):
            if len(p) != 2:
                raise ValidationError(f"{name}[{i}] must be an (x, y) pair, but got {p!r}")
    if len(pts) < min_count:
        raise ValidationError(f"{name} needs at least {min_count} points, but got {len(pts)}")
    return pts


def _clamp(v: float, hi: float) -> float:
    return 0.0 if v < 0 else hi if v > hi else v


def _clamp_points(points: tuple[XY, ...], width: int, height: int) -> tuple[tuple[XY, ...], bool]:
    x1, y1, x2, y2 = _bbox_of(points)
    if x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height:
        return points, False
    out = tuple((_clamp(x, width), _clamp(y, height)) for x, y in points)
    moved = any(abs(a[0] - b[0]) > _CLIP_TOLERANCE or abs(a[1] - b[1]) > _CLIP_TOLERANCE
                for a, b in zip(points, out, strict=True))
    return out, moved


def _bbox_of(points: Sequence[XY]) -> tuple[float, float, float, float]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _polygon_area(points: Sequence[XY]) -> float:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    # Shoelace formula, each sum in one pass of C-level map.
    s = sum(map(operator.mul, xs, ys[1:] + ys[:1])) - sum(map(operator.mul, xs[1:] + xs[:1], ys))
    return abs(s) / 2


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box, `xyxy` in pixels."""

    x1: float
    y1: float
    x2: float
    y2: float
    type: ClassVar[str] = "box"

    def __post_init__(self) -> None:
        for name in ("x1", "y1", "x2", "y2"):
            object.__setattr__(self, name, _num(getattr(self, name), f"box.{name}"))
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValidationError(
                f"box must have x2 >= x1 and y2 >= y1, but got xyxy="
                f"({self.x1}, {self.y1}, {self.x2}, {self.y2})"
            )

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        return cls(x, y, float(x) + float(w), float(y) + float(h))

    def bbox(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def corners(self) -> tuple[XY, ...]:
        return ((self.x1, self.y1), (self.x2, self.y1), (self.x2, self.y2), (self.x1, self.y2))

    def area(self) -> float:
        return (self.x2 - self.x1) * (self.y2 - self.y1)

    def clip(self, width: int, height: int) -> tuple[Box, bool]:
        (a, b), moved = _clamp_points(((self.x1, self.y1), (self.x2, self.y2)), width, height)
        return (Box(a[0], a[1], b[0], b[1]) if moved else self), moved

    def to_dict(self) -> dict[str, Any]:
        return {"type": "box", "xyxy": [self.x1, self.y1, self.x2, self.y2]}


@dataclass(frozen=True, slots=True)
class RotatedBox:
    """Box of size `w` x `h` centred on (`cx`, `cy`), turned `angle` degrees clockwise."""

    cx: float
    cy: float
    w: float
    h: float
    angle: float
    type: ClassVar[str] = "rotated_box"

    def __post_init__(self) -> None:
        for name in ("cx", "cy", "w", "h", "angle"):
            object.__setattr__(self, name, _num(getattr(self, name), f"rotated_box.{name}"))
        if self.w < 0 or self.h < 0:
            raise ValidationError(
                f"rotated_box needs w >= 0 and h >= 0, but got w={self.w}, h={self.h}"
            )

    def corners(self) -> tuple[XY, ...]:
        """Corners clockwise from the (unrotated) top-left one."""
        a = math.radians(self.angle)
        c, s = math.cos(a), math.sin(a)
        out = []
        for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            x, y = dx * self.w / 2, dy * self.h / 2
            out.append((self.cx + x * c - y * s, self.cy + x * s + y * c))
        return tuple(out)

    def bbox(self) -> tuple[float, float, float, float]:
        return _bbox_of(self.corners())

    def area(self) -> float:
        return self.w * self.h

    def clip(self, width: int, height: int) -> tuple[Shape, bool]:
        pts, moved = _clamp_points(self.corners(), width, height)
        return (Quad(pts) if moved else self), moved

    def to_dict(self) -> dict[str, Any]:
        return {"type": "rotated_box", "cxcywha": [self.cx, self.cy, self.w, self.h, self.angle]}


@dataclass(frozen=True, slots=True)
class Quad:
    """Quadrilateral: four corners, in reading order (top-left, top-right, ...) for text."""

    points: tuple[XY, ...]
    type: ClassVar[str] = "quad"

    def __post_init__(self) -> None:
        pts = _points(self.points, "quad.points", min_count=4)
        if len(pts) != 4:
            raise ValidationError(f"quad.points must have exactly 4 points, but got {len(pts)}")
        object.__setattr__(self, "points", pts)

    def corners(self) -> tuple[XY, ...]:
        return self.points

    def bbox(self) -> tuple[float, float, float, float]:
        return _bbox_of(self.points)

    def area(self) -> float:
        return _polygon_area(self.points)

    def clip(self, width: int, height: int) -> tuple[Quad, bool]:
        pts, moved = _clamp_points(self.points, width, height)
        return (Quad(pts) if moved else self), moved

    def to_dict(self) -> dict[str, Any]:
        return {"type": "quad", "points": self.points}


@dataclass(frozen=True, slots=True)
class Polygon:
    """Simple polygon (at least 3 points) with optional holes."""

    points: tuple[XY, ...]
    holes: tuple[tuple[XY, ...], ...] = ()
    type: ClassVar[str] = "polygon"

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _points(self.points, "polygon.points", min_count=3))
        object.__setattr__(self, "holes", tuple(
            _points(h, f"polygon.holes[{i}]", min_count=3) for i, h in enumerate(self.holes)
        ))

    def bbox(self) -> tuple[float, float, float, float]:
        return _bbox_of(self.points)

    def area(self) -> float:
        return _polygon_area(self.points) - sum(_polygon_area(h) for h in self.holes)

    def clip(self, width: int, height: int) -> tuple[Polygon, bool]:
        pts, moved = _clamp_points(self.points, width, height)
        holes = []
        for h in self.holes:
            hp, hm = _clamp_points(h, width, height)
            holes.append(hp)
            moved = moved or hm
        return (Polygon(pts, tuple(holes)) if moved else self), moved

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "polygon", "points": self.points}
        if self.holes:
            d["holes"] = self.holes
        return d


@dataclass(frozen=True, slots=True)
class Mask:
    """Binary mask over the whole image as COCO compressed RLE (column-major runs)."""

    rle: str
    height: int
    width: int
    type: ClassVar[str] = "mask"

    def __post_init__(self) -> None:
        if not isinstance(self.rle, str):
            raise ValidationError(f"mask.rle must be a COCO compressed RLE string, got {self.rle!r:.40}")
        if int(self.height) <= 0 or int(self.width) <= 0:
            raise ValidationError(
                f"mask size must be positive, but got height={self.height}, width={self.width}"
            )
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "width", int(self.width))
        # the runs must cover the mask exactly: checked here, where masks are made, so that
        # no stored mask can fail an export later
        rle.check_counts(rle.decompress_counts(self.rle), self.height * self.width)

    @classmethod
    def from_array(cls, array: Any) -> Mask:
        h, w = array.shape[:2]
        return cls(rle.encode(array), h, w)

    def to_array(self) -> Any:
        return rle.decode(self.rle, self.height, self.width)

    def bbox(self) -> tuple[float, float, float, float]:
        return rle.bbox(self.rle, self.height, self.width)

    def area(self) -> float:
        return float(rle.area(self.rle))

    def clip(self, width: int, height: int) -> tuple[Mask, bool]:
        if (width, height) != (self.width, self.height):
            raise ValidationError(
                f"mask is {self.width}x{self.height} but its image is {width}x{height}"
            )
        return self, False

    def to_dict(self) -> dict[str, Any]:
        return {"type": "mask", "rle": self.rle, "size": [self.height, self.width]}


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    type: ClassVar[str] = "point"

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", _num(self.x, "point.x"))
        object.__setattr__(self, "y", _num(self.y, "point.y"))

    def bbox(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x, self.y)

    def area(self) -> float:
        return 0.0

    def clip(self, width: int, height: int) -> tuple[Point, bool]:
        (p,), moved = _clamp_points(((self.x, self.y),), width, height)
        return (Point(*p) if moved else self), moved

    def to_dict(self) -> dict[str, Any]:
        return {"type": "point", "xy": [self.x, self.y]}


@dataclass(frozen=True, slots=True)
class Polyline:
    """An open line through at least two points (a lane, a crack, a wire): no area."""

    points: tuple[XY, ...]
    type: ClassVar[str] = "polyline"

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _points(self.points, "polyline.points", min_count=2))

    def bbox(self) -> tuple[float, float, float, float]:
        return _bbox_of(self.points)

    def area(self) -> float:
        return 0.0

    def clip(self, width: int, height: int) -> tuple[Polyline, bool]:
        pts, moved = _clamp_points(self.points, width, height)
        return (Polyline(pts) if moved else self), moved

    def to_dict(self) -> dict[str, Any]:
        return {"type": "polyline", "points": self.points}


Shape: TypeAlias = Box | RotatedBox | Quad | Polygon | Mask | Point | Polyline
SHAPE_TYPES: dict[str, type] = {
    c.type: c  # type: ignore[attr-defined]
    for c in (Box, RotatedBox, Quad, Polygon, Mask, Point, Polyline)
}
# Shapes without an area: no region for detection, segmentation or a text line.
NO_AREA = ("point", "polyline")


_SHAPE_CLASSES = tuple(SHAPE_TYPES.values())


def shape_from_dict(d: dict[str, Any]) -> Shape:
    """Inverse of `Shape.to_dict()`; raises `ValidationError` naming the bad field."""
    if not isinstance(d, dict):
        raise ValidationError(f"shape must be an object, but got {type(d).__name__}")
    kind = d.get("type")
    try:
        if kind == "box":
            return Box(*d["xyxy"])
        if kind == "rotated_box":
            return RotatedBox(*d["cxcywha"])
        if kind == "quad":
            return Quad(d["points"])
        if kind == "polygon":
            return Polygon(d["points"], tuple(d.get("holes") or ()))
        if kind == "mask":
            return Mask(d["rle"], *d["size"])
        if kind == "point":
            return Point(*d["xy"])
        if kind == "polyline":
            return Polyline(d["points"])
    except KeyError as e:
        raise ValidationError(f"{kind} shape is missing field {e.args[0]!r}") from None
    except TypeError as e:
        raise ValidationError(f"{kind} shape has the wrong number of values: {e}") from None
    raise ValidationError(
        f"shape.type must be one of {sorted(SHAPE_TYPES)}, but got {kind!r}"
    )


def text_corners(shape: Shape) -> tuple[XY, ...]:
    """Four corners for a text line, whatever shape it was drawn with.

    A polygon with more than four points is replaced by its minimum-area rectangle.
    """
    if isinstance(shape, Quad | RotatedBox | Box):
        return shape.corners()
    if isinstance(shape, Polygon):
        if len(shape.points) == 4:
            return shape.points
        import cv2
        import numpy as np

        rect = cv2.minAreaRect(np.asarray(shape.points, dtype=np.float32))
        pts = cv2.boxPoints(rect)
        return _reading_order(tuple((float(x), float(y)) for x, y in pts))
    raise ValidationError(f"a {shape.type} cannot be a text line; draw a quad or polygon")


def mask_to_polygons(mask: np.ndarray, tolerance: float = 1.0, min_area: float = 4.0
                     ) -> list[Polygon]:
    """One polygon per outer contour of a bool mask, its holes kept; Douglas-Peucker
    `tolerance` in pixels (0 keeps every contour pixel)."""
    from labelpilot.geometry.contours import mask_outlines

    return [Polygon(outer, holes) for outer, holes in mask_outlines(mask, tolerance, min_area)]


def object_boxes(anns: Iterable[Annotation]) -> list[tuple[tuple[float, float, float, float], Annotation]]:
    """Each object's box: an annotation's bounding box, or the union of the boxes of the
    parts that share a group and a class (COCO's multi-polygon objects come in as parts);
    shapes without an area are not objects. The annotation given with a box is the
    object's first part."""
    out: list[tuple[tuple[float, float, float, float], Annotation]] = []
    by_group: dict[tuple[int, str], int] = {}
    for a in anns:
        if a.shape.type in NO_AREA:
            continue
        box = a.shape.bbox()
        key = (a.group, a.label) if a.group is not None else None
        if key is not None and key in by_group:
            i = by_group[key]
            (x1, y1, x2, y2), first = out[i]
            out[i] = ((min(x1, box[0]), min(y1, box[1]), max(x2, box[2]), max(y2, box[3])), first)
            continue
        if key is not None:
            by_group[key] = len(out)
        out.append((box, a))
    return out


def region_corners(shape: Shape) -> tuple[XY, ...]:
    """A shape's outline for overlap tests: a text line's four corners, else its box's."""
    try:
        return text_corners(shape)
    except ValidationError:
        return Box(*shape.bbox()).corners()


def _reading_order(pts: tuple[XY, ...]) -> tuple[XY, ...]:
    # Start from the corner nearest the top-left, keep clockwise order.
    start = min(range(4), key=lambda i: pts[i][0] + pts[i][1])
    ordered = pts[start:] + pts[:start]
    # cv2.boxPoints may run counter-clockwise; make it clockwise (image y points down).
    if _signed_area(ordered) < 0:
        ordered = (ordered[0], ordered[3], ordered[2], ordered[1])
    return ordered


def _signed_area(points: Sequence[XY]) -> float:
    s = 0.0
    for i in range(len(points)):
        x1, y1 = points[i]
        x2, y2 = points[(i + 1) % len(points)]
        s += x1 * y2 - x2 * y1
    return s / 2


@dataclass(slots=True)
class Annotation:
    """One label on one image.

    Args:
        label: the label class name.
        shape: where it is.
        text: transcription, for text lines.
        attributes: free-form extras (format-specific flags, `iscrowd`, ...).
        score: model confidence in [0, 1]; None for human labels.
        source: `human` or `model:<name>@<version>`.
        status: `predicted`, `accepted`, `edited` or `rejected`.
        group: annotations that form one object (COCO multi-part polygons, CVAT groups).
        version: optimistic-concurrency counter, bumped by the store on every update.
    """

    label: str
    shape: Shape
    text: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    source: str = "human"
    status: str = "accepted"
    group: int | None = None
    id: int | None = None
    version: int = 1
    created_by: str | None = None
    created_at: datetime | None = None
    updated_by: str | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValidationError(f"label must be a non-empty string, but got {self.label!r}")
        if not isinstance(self.shape, _SHAPE_CLASSES):
            raise ValidationError(
                f"shape must be one of {sorted(SHAPE_TYPES)}, but got {type(self.shape).__name__}"
            )
        if self.text is not None and not isinstance(self.text, str):
            raise ValidationError(f"text must be a string or None, but got {self.text!r}")
        if self.score is not None:
            s = _num(self.score, "score")
            if not 0.0 <= s <= 1.0:
                raise ValidationError(f"score must be within [0, 1], but got {s}")
            self.score = s
        if self.status not in STATUSES:
            raise ValidationError(f"status must be one of {STATUSES}, but got {self.status!r}")
        if self.source != "human" and (not isinstance(self.source, str)
                                       or not _SOURCE_RE.match(self.source)):
            raise ValidationError(
                f"source must be 'human' or 'model:<name>@<version>', but got {self.source!r}"
            )
        if not isinstance(self.attributes, dict):
            raise ValidationError(f"attributes must be a dict, but got {type(self.attributes).__name__}")

    def fingerprint(self) -> tuple[Any, ...]:
        """What makes two annotations the same label (for de-duplication on re-import)."""
        return (self.label, _shape_key(self.shape), self.text or None)


def _shape_key(shape: Shape) -> tuple[Any, ...]:
    d = shape.to_dict()
    return tuple((k, _round(v)) for k, v in sorted(d.items()))


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 3)
    if isinstance(v, list | tuple):
        return tuple(_round(x) for x in v)
    return v


# --- Trusted construction -----------------------------------------------------------
# Rows read back from the store were validated when written; re-validating 200,000 of them
# on every export would dominate its cost, so these build the objects without checks.


def _pts(raw: list[list[float]]) -> tuple[XY, ...]:
    return tuple(map(tuple, raw))  # type: ignore[arg-type]


_set = object.__setattr__


def trusted_shape(d: dict[str, Any]) -> Shape:
    """`shape_from_dict` without validation, for data the store already validated."""
    kind = d["type"]
    if kind == "polygon":
        poly = object.__new__(Polygon)
        _set(poly, "points", _pts(d["points"]))
        _set(poly, "holes", tuple(_pts(h) for h in d.get("holes", ())))
        return poly
    if kind == "box":
        box = object.__new__(Box)
        x1, y1, x2, y2 = d["xyxy"]
        _set(box, "x1", x1)
        _set(box, "y1", y1)
        _set(box, "x2", x2)
        _set(box, "y2", y2)
        return box
    if kind == "polyline":
        line = object.__new__(Polyline)
        _set(line, "points", _pts(d["points"]))
        return line
    if kind == "quad":
        quad = object.__new__(Quad)
        _set(quad, "points", _pts(d["points"]))
        return quad
    return shape_from_dict(d)


def trusted_annotation(**values: Any) -> Annotation:
    """`Annotation(...)` without validation, for data the store already validated."""
    obj = object.__new__(Annotation)
    get = values.get
    obj.label = values["label"]
    obj.shape = values["shape"]
    obj.text = get("text")
    obj.attributes = get("attributes") or {}
    obj.score = get("score")
    obj.source = get("source", "human")
    obj.status = get("status", "accepted")
    obj.group = get("group")
    obj.id = get("id")
    obj.version = get("version", 1)
    obj.created_by = get("created_by")
    obj.created_at = get("created_at")
    obj.updated_by = get("updated_by")
    obj.updated_at = get("updated_at")
    return obj
