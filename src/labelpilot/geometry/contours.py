"""Outlines of binary masks: outer contours with their holes, simplified."""

from __future__ import annotations

import cv2
import numpy as np

Outline = tuple[tuple[float, float], ...]


def mask_outlines(mask: np.ndarray, tolerance: float = 1.0, min_area: float = 4.0
                  ) -> list[tuple[Outline, tuple[Outline, ...]]]:
    """(outline, holes) per outer contour of a mask; Douglas-Peucker `tolerance` in pixels
    (0 keeps every contour pixel); outlines under `min_area` square pixels are dropped."""
    m = np.ascontiguousarray(mask.astype(np.uint8))
    contours, hierarchy = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return []
    hier = hierarchy[0]

    def simplify(c: np.ndarray) -> Outline | None:
        if tolerance > 0:
            c = cv2.approxPolyDP(c, tolerance, True)
        if len(c) < 3 or abs(cv2.contourArea(c)) < min_area:
            return None
        # contour pixels' coordinates: filling the polygon (rle.from_polygons) gives the
        # mask back
        return tuple((float(x), float(y)) for x, y in c.reshape(-1, 2))

    out: list[tuple[Outline, tuple[Outline, ...]]] = []
    for i, c in enumerate(contours):
        if hier[i][3] != -1:  # a hole: collected by its parent
            continue
        outer = simplify(c)
        if outer is None:
            continue
        holes: list[Outline] = []
        j = hier[i][2]
        while j != -1:
            h = simplify(contours[j])
            if h is not None:
                holes.append(h)
            j = hier[j][0]
        out.append((outer, tuple(holes)))
    return out
