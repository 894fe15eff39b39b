"""Union and difference of two shapes of one image (the editor's merge and subtract).

Boxes, quads, rotated boxes and polygons combine exactly (shapely): a result in one piece
is a polygon with its holes; a result in several pieces, or one that involves a mask, is a
mask (pixels, the image's size)."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelpilot.annotations import Box, Mask, Point, Polygon, Polyline, Quad, RotatedBox, Shape
from labelpilot.errors import ValidationError
from labelpilot.geometry import rle

OPS = ("union", "subtract")
_POLYGONAL = (Box, Quad, Polygon, RotatedBox)


def _outline(s: Shape) -> tuple[list[Any], list[list[Any]]]:
    if isinstance(s, Polygon):
        return list(s.points), [list(h) for h in s.holes]
    if isinstance(s, Quad):
        return list(s.points), []
    if isinstance(s, Box | RotatedBox):
        return list(s.corners()), []
    raise ValidationError(f"a {s.type} has no outline")


def _raster(s: Shape, height: int, width: int) -> np.ndarray:
    if isinstance(s, Mask):
        return np.asarray(s.to_array(), dtype=bool)
    outer, holes = _outline(s)
    return rle.from_polygons([outer], height, width, holes=holes).astype(bool)


def combine(a: Shape, b: Shape, op: str, *, width: int, height: int) -> Shape:
    """`a` with `b` added (union) or taken away (subtract)."""
    if op not in OPS:
        raise ValidationError(f"op must be one of {', '.join(OPS)}, not {op!r}")
    for s in (a, b):
        if isinstance(s, Point | Polyline):
            raise ValidationError(f"a {s.type} has no area to merge or subtract")
    if isinstance(a, _POLYGONAL) and isinstance(b, _POLYGONAL):
        from shapely.geometry import Polygon as ShapelyPolygon

        pa, pb = (ShapelyPolygon(*_outline(s)).buffer(0) for s in (a, b))
        r = pa.union(pb) if op == "union" else pa.difference(pb)
        if r.is_empty or r.area < 1e-6:
            raise ValidationError("nothing would be left of the shape")
        if r.geom_type == "Polygon":
            return Polygon(tuple(r.exterior.coords)[:-1],
                           tuple(tuple(h.coords)[:-1] for h in r.interiors))
    ma, mb = _raster(a, height, width), _raster(b, height, width)
    m = ma | mb if op == "union" else ma & ~mb
    if not m.any():
        raise ValidationError("nothing would be left of the shape")
    return Mask.from_array(m.astype(np.uint8))
