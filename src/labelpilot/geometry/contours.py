"""Outlines of binary masks: outer contours with their holes, simplified."""

from __future__ import annotations

import cv2
import numpy as np

Outline = tuple[tuple[float, float], ...]


def drop_fragments(mask: np.ndarray, *, min_fraction: float = 0.02, min_pixels: int = 16
                   ) -> np.ndarray:
    """The mask without its small pieces: 8-connected components under `min_pixels` or
    under `min_fraction` of the largest one (the slivers a segmenter leaves along edges).
    The largest component is always kept."""
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep_at = max(float(min_pixels), min_fraction * float(areas.max()))
    keep = np.zeros(n, bool)
    keep[1:] = areas >= keep_at
    keep[1 + int(np.argmax(areas))] = True
    return keep[lab]


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
