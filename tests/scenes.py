"""Synthetic scenes with known object masks: a textured background and objects of other
colours (one with a hole), small enough for fast tests."""

from __future__ import annotations

import cv2
import numpy as np


def scene(seed: int = 0, width: int = 320, height: int = 240) -> tuple[np.ndarray, list[np.ndarray]]:
    """RGB uint8 image and the bool masks of its two objects (a ring, a rectangle)."""
    rng = np.random.default_rng(seed)
    bg = np.empty((height, width, 3), np.float32)
    bg[..., 0] = 60 + 25 * rng.random((height, width))
    bg[..., 1] = 120 + 25 * rng.random((height, width))
    bg[..., 2] = 70 + 25 * rng.random((height, width))
    ring = np.zeros((height, width), np.uint8)
    cv2.ellipse(ring, (width // 3, height // 2), (width // 6, height // 4), 0, 0, 360, 1, -1)
    cv2.circle(ring, (width // 3, height // 2), height // 12, 0, -1)  # the hole
    rect = np.zeros((height, width), np.uint8)
    cv2.rectangle(rect, (int(width * 0.65), height // 5), (int(width * 0.9), int(height * 0.7)), 1, -1)
    img = bg.copy()
    img[ring > 0] = (200, 60, 50) + 20 * rng.random((int(ring.sum()), 3))
    img[rect > 0] = (230, 210, 60) + 20 * rng.random((int(rect.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8), [ring > 0, rect > 0]


def deepest(mask: np.ndarray) -> tuple[float, float]:
    dt = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(dt.argmax()), dt.shape)
    return float(x), float(y)
