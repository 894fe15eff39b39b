"""Text-line crops: perspective-rectified from a quad, as recognizers expect them."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from labelpilot.errors import ValidationError


def is_vertical(corners: Sequence[tuple[float, float]] | np.ndarray) -> bool:
    """True if `rectify` turns this quad's crop (a line much taller than wide)."""
    src = np.asarray(corners, dtype=np.float32)
    w = max(np.linalg.norm(src[0] - src[1]), np.linalg.norm(src[3] - src[2]))
    h = max(np.linalg.norm(src[0] - src[3]), np.linalg.norm(src[1] - src[2]))
    return bool(w >= 1 and h / w >= 1.5)


def rectify(image: np.ndarray, corners: Sequence[tuple[float, float]] | np.ndarray) -> np.ndarray:
    """Warp the quad `corners` (top-left, top-right, bottom-right, bottom-left) to an
    upright rectangle. Lines much taller than wide (vertical text) are turned 90 degrees
    counter-clockwise so they read left to right, as PaddleOCR's recognizers expect.
    """
    src = np.asarray(corners, dtype=np.float32)
    if src.shape != (4, 2):
        raise ValidationError(f"a crop needs 4 corners, but got shape {src.shape}")
    w = round(float(max(np.linalg.norm(src[0] - src[1]), np.linalg.norm(src[3] - src[2]))))
    h = round(float(max(np.linalg.norm(src[0] - src[3]), np.linalg.norm(src[1] - src[2]))))
    if w < 1 or h < 1:
        raise ValidationError(f"the quad {src.tolist()} has no area to crop")
    dst = np.asarray([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    crop = cv2.warpPerspective(image, m, (w, h), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)
    if h / w >= 1.5:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop
