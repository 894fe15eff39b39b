from __future__ import annotations

import math

import pytest

from labelpilot.annotations import (
    Annotation,
    Box,
    Mask,
    Point,
    Polygon,
    Polyline,
    Quad,
    RotatedBox,
    shape_from_dict,
    text_corners,
    trusted_shape,
)
from labelpilot.errors import ValidationError


@pytest.mark.parametrize(("make", "message"), [
    # x2 < x1
    (lambda: Box(10, 0, 5, 5), "x2 >= x1"),
    # a coordinate that is not a number names the field
    (lambda: Box("a", 0, 5, 5), "box.x1 must be a number"),  # type: ignore[arg-type]
    # NaN is refused
    (lambda: Box(0, 0, math.nan, 5), "box.x2 must be finite"),
    # a quad has exactly four corners
    (lambda: Quad(((0, 0), (1, 0), (1, 1), (0, 1), (0, 0.5))), "exactly 4 points"),
    # a polygon needs three points
    (lambda: Polygon(((0, 0), (1, 1))), "polygon.points needs at least 3"),
    # a polyline needs two points
    (lambda: Polyline(((0, 0),)), "polyline.points needs at least 2"),
    # a point of the wrong arity names its index
    (lambda: Polygon(((0, 0), (1,), (2, 2))), "polygon.points"),  # type: ignore[arg-type]
    # negative size
    (lambda: RotatedBox(0, 0, -1, 2, 0), "w >= 0"),
    (lambda: Mask("", 0, 5), "mask size must be positive"),
    (lambda: Annotation(label="", shape=Box(0, 0, 1, 1)), "label must be a non-empty"),
    (lambda: Annotation(label="a", shape=Box(0, 0, 1, 1), score=1.5), "within [0, 1]"),
    (lambda: Annotation(label="a", shape=Box(0, 0, 1, 1), status="done"), "status must be one of"),
    (lambda: Annotation(label="a", shape=Box(0, 0, 1, 1), source="yolo"), "model:<name>@<version>"),
    (lambda: Annotation(label="a", shape=(0, 0, 1, 1)), "shape must be one of"),  # type: ignore[arg-type]
])
def test_validation_names_the_field(make, message) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make()


@pytest.mark.parametrize("shape", [
    Box(1, 2, 3, 4),
    RotatedBox(10, 10, 4, 2, 30),
    Quad(((0, 0), (4, 0), (4, 2), (0, 2))),
    Polygon(((0, 0), (10, 0), (10, 10)), holes=(((2, 2), (3, 2), (3, 3)),)),
    Mask.from_array(__import__("numpy").eye(5, dtype="uint8")),
    Point(1.5, 2.5),
    Polyline(((0, 0), (3, 4), (5, 1))),
])
def test_shape_dict_roundtrip(shape) -> None:
    assert shape_from_dict(shape.to_dict()) == shape
    assert trusted_shape(shape.to_dict()) == shape


def test_shape_from_dict_errors() -> None:
    with pytest.raises(ValidationError, match=r"shape\.type must be one of"):
        shape_from_dict({"type": "ellipse"})
    with pytest.raises(ValidationError, match="missing field 'xyxy'"):
        shape_from_dict({"type": "box"})


def test_clip_reports_movement_and_keeps_inside_shapes() -> None:
    clipped, moved = Box(-5, 2, 120, 50).clip(100, 80)
    assert moved and clipped == Box(0, 2, 100, 50)
    same, moved = Box(0, 0, 100.005, 80).clip(100, 80)  # rounding noise is not clipping
    assert not moved and same == Box(0, 0, 100.005, 80)
    quad, moved = RotatedBox(0, 0, 10, 10, 45).clip(100, 80)
    assert moved and isinstance(quad, Quad) and min(quad.bbox()) >= 0


def test_rotated_box_corners() -> None:
    r = RotatedBox(10, 10, 4, 2, 90)
    xs = sorted(round(x, 6) for x, _ in r.corners())
    ys = sorted(round(y, 6) for _, y in r.corners())
    assert xs == [9, 9, 11, 11] and ys == [8, 8, 12, 12]


def test_text_corners_of_a_polygon_is_its_min_area_rect_in_reading_order() -> None:
    poly = Polygon(((10, 10), (30, 10), (50, 10), (50, 20), (30, 20), (10, 20)))
    corners = text_corners(poly)
    assert [tuple(round(v) for v in p) for p in corners] == [(10, 10), (50, 10), (50, 20), (10, 20)]
    with pytest.raises(ValidationError, match="cannot be a text line"):
        text_corners(Point(1, 1))


def test_fingerprint_ignores_status_and_tiny_float_noise() -> None:
    a = Annotation(label="x", shape=Box(1, 2, 3, 4), text="A")
    b = Annotation(label="x", shape=Box(1.0000001, 2, 3, 4), text="A", status="predicted")
    c = Annotation(label="x", shape=Box(1, 2, 3, 4), text="B")
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


@pytest.mark.parametrize(("rle_string", "message"), [
    ("", "add up to 0 pixels"), ("0", "add up to 0 pixels"),
    ("1" * 10_000, "add up to"), ("0?", "add up to 15"),
])
def test_a_mask_whose_runs_do_not_cover_it_is_refused(rle_string: str, message: str) -> None:
    from labelpilot.annotations import Mask

    with pytest.raises(ValidationError, match=message):
        Mask(rle_string, 4, 4)


def test_rle_runs_must_be_whole_numbers() -> None:
    from labelpilot.geometry import rle

    with pytest.raises(ValidationError, match=r"run 0 is 0\.5"):
        rle.check_counts([0.5, 307199.5], 480 * 640)
    assert rle.check_counts([0, 307200.0], 480 * 640) == [0, 307200]


def test_a_polyline_is_clipped_and_has_no_area() -> None:
    line = Polyline(((-5, 2), (30, 40)))
    clipped, moved = line.clip(20, 20)
    assert moved and clipped.points == ((0, 2), (20, 20))
    assert line.area() == 0 and line.bbox() == (-5, 2, 30, 40)
    with pytest.raises(ValidationError, match="cannot be a text line"):
        text_corners(line)


def test_parts_of_one_object_make_one_box() -> None:
    from labelpilot.annotations import object_boxes

    part1 = Annotation(label="a", shape=Polygon(((0, 0), (10, 0), (10, 10))), group=7)
    part2 = Annotation(label="a", shape=Polygon(((20, 5), (30, 5), (30, 20))), group=7)
    other = Annotation(label="b", shape=Box(1, 1, 2, 2), group=7)  # same group, other class
    alone = Annotation(label="a", shape=Box(50, 50, 60, 60))
    line = Annotation(label="a", shape=Polyline(((0, 0), (5, 5))))
    got = object_boxes([part1, other, part2, alone, line])
    assert [(box, a.label) for box, a in got] == [
        ((0, 0, 30, 20), "a"), ((1, 1, 2, 2), "b"), ((50, 50, 60, 60), "a")]
