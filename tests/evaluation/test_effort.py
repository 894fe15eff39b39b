"""The simulated annotator's rules on hand-made cases: perfect, loose, wrong and missing
proposals cost what the module says, and never more than drawing by hand."""

from __future__ import annotations

import numpy as np
import pytest

from labelpilot.evaluation.effort import (
    detection_by_hand,
    detection_reviewed,
    ocr_by_hand,
    ocr_reviewed,
    polygon_vertices,
    segment_by_hand,
    segment_with_clicks,
)

GT = [((10.0, 10.0, 60.0, 60.0), "cat"), ((100.0, 20.0, 180.0, 90.0), "dog"),
      ((200.0, 200.0, 260.0, 240.0), "cat")]


def never(_box):  # type: ignore[no-untyped-def]
    return None


def test_perfect_proposals_cost_two_keys_per_image() -> None:
    e = detection_reviewed(GT, GT, never)
    assert e.total == 2 and e.actions["key"] == 2 and e.labels == 3
    hand = detection_by_hand(GT)
    assert hand.total == 9 and hand.seconds == pytest.approx(3 * (34.5 + 1.35 + 0.28))
    assert hand.seconds_extreme == pytest.approx(3 * (7.0 + 1.35 + 0.28))
    assert e.seconds < hand.seconds_extreme


def test_each_kind_of_mistake_costs_its_fix() -> None:
    loose = ((14.0, 10.0, 70.0, 60.0), "cat")  # IoU 0.77: one drag
    wrong = ((100.0, 20.0, 180.0, 90.0), "cat")  # right box, wrong class
    ghost = ((300.0, 300.0, 340.0, 340.0), "dog")  # matches nothing
    e = detection_reviewed(GT, [loose, wrong, ghost], never)
    # loose: click + drag; wrong: click + key; ghost: click + R; the missed cat: a click
    # to box that finds nothing, then drawn by hand (key + 2 drags); Ctrl+A Enter
    assert e.actions == {"click": 4, "drag": 3, "key": 5}
    found = detection_reviewed(GT, [loose, wrong, ghost],
                               lambda b: (b, "cat"))  # click to box finds it exactly
    assert found.actions == {"click": 4, "drag": 1, "key": 4}
    assert found.total < e.total < detection_by_hand(GT).total + 6


def test_ocr_review_counts_typed_characters() -> None:
    q1 = [(0.0, 0.0), (100.0, 0.0), (100.0, 20.0), (0.0, 20.0)]
    q2 = [(0.0, 40.0), (100.0, 40.0), (100.0, 60.0), (0.0, 60.0)]
    gt = [(q1, "HELLO"), (q2, "WORLD42")]
    hand = ocr_by_hand(gt)
    assert hand.actions == {"click": 8, "char": 12, "key": 2}
    assert ocr_reviewed(gt, gt, lambda q: "").total == 2
    # one letter wrong: a click on the line, one for the cursor, one character
    e = ocr_reviewed(gt, [(q1, "HELL0"), (q2, "WORLD42")], lambda q: "")
    assert e.actions == {"click": 2, "char": 1, "key": 2}
    # the second line missed: drawn (4 clicks) and read at once, right
    e = ocr_reviewed(gt, [(q1, "HELLO")], lambda q: "WORLD42")
    assert e.actions == {"click": 4, "key": 2}
    # a quad on half its line: moved (a click, 2 drags), read again, right
    half = [(50.0, 0.0), (100.0, 0.0), (100.0, 20.0), (50.0, 20.0)]
    e = ocr_reviewed(gt[:1], [(half, "LO")], lambda q: "HELLO")
    assert e.actions == {"click": 1, "drag": 2, "key": 2}
    # ... but read right there, it is a found line (ICDAR's IoU 0.5): accepted
    assert ocr_reviewed(gt[:1], [(half, "HELLO")], lambda q: "").total == 2
    # a recognition crop: a tight quad inside the crop is the crop's line
    crop = [(0.0, 0.0), (100.0, 0.0), (100.0, 40.0), (0.0, 40.0)]
    tight = [(20.0, 10.0), (70.0, 10.0), (70.0, 30.0), (20.0, 30.0)]  # IoU 0.25
    assert ocr_reviewed([(crop, "AB1")], [(tight, "AB1")], lambda q: "", crops=True).total == 2
    # as a plain line it is a false one: rejected (2), the line drawn (4), typed (1 + 3), 2
    assert ocr_reviewed([(crop, "AB1")], [(tight, "AB1")], lambda q: "").total == 12
    # on a third of it: no match; rejected (click, R), the line drawn (4 clicks)
    third = [(66.0, 0.0), (100.0, 0.0), (100.0, 20.0), (66.0, 20.0)]
    e = ocr_reviewed(gt[:1], [(third, "O")], lambda q: "HELLO")
    assert e.actions == {"click": 5, "key": 3}
    shifted = [(10.0, 0.0), (100.0, 0.0), (100.0, 20.0), (10.0, 20.0)]  # IoU 0.9
    assert ocr_reviewed(gt[:1], [(shifted, "ELLO")], lambda q: "HELLO").actions == {
        "click": 2, "char": 1, "key": 2}


def test_polygon_vertices_to_reach_the_target() -> None:
    square = np.zeros((100, 100), bool)
    square[20:80, 20:80] = True
    assert polygon_vertices(square) == 4
    disk = np.zeros((200, 200), np.uint8)
    import cv2

    cv2.circle(disk, (100, 100), 80, 1, -1)
    n90, n99 = polygon_vertices(disk.astype(bool), 0.9), polygon_vertices(disk.astype(bool), 0.99)
    assert 5 <= n90 < n99
    hand = segment_by_hand(n90)
    assert hand.total == n90 + 2
    assert segment_with_clicks(2, True, n90).total == 4
    # never reached: the clicks are spent and the polygon drawn anyway
    assert segment_with_clicks(20, False, n90).total == 20 + n90 + 2
