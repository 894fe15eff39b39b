"""Reading test images: cv2.imread answers None for a missing file; a test says so."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_bgr(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    assert image is not None, f"cannot read {path}"
    return np.asarray(image)
