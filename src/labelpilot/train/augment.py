"""Training inputs for a detector that learns from a few dozen images: each sample is
either one image letterboxed at a random scale and place, or a mosaic of four (YOLOX's:
four images around a random centre on a double-size canvas, then a random zoom and crop
back to the input size), with labeled objects of other images pasted in (copy-paste of
box crops), colour jitter in HSV and a horizontal flip. Boxes follow every step; a box
cut to less than a quarter of its area, or to under 2 px, is dropped. Large images with
small objects are first cut into the tiles a tiled detector sees (`slice_tiles`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

PAD = 114.0


@dataclass
class AugmentConfig:
    mosaic: float = 0.5  # chance that a sample is a mosaic of four images
    copy_paste: float = 0.3  # chance that objects of other images are pasted in
    scale: tuple[float, float] = (0.6, 1.0)  # of the letterbox scale
    hsv: tuple[float, float, float] = (5.0, 0.3, 0.3)  # hue shift (of 180), sat/val gain
    flip: float = 0.5


Sample = tuple[np.ndarray, np.ndarray]  # BGR image, boxes [G, 5] x1 y1 x2 y2 class
Window = tuple[int, int, int, int]  # x1, y1, x2, y2


class Augmenter:
    def __init__(self, images: list[Sample], size: tuple[int, int], cfg: AugmentConfig,
                 rng: random.Random) -> None:
        """`size`: the model's input (width, height)."""
        self.images, self.size, self.cfg, self.rng = images, size, cfg, rng

    def sample(self) -> Sample:
        """One training input (float32 CHW, BGR 0-255) and its boxes."""
        cfg, rng = self.cfg, self.rng
        if len(self.images) >= 4 and rng.random() < cfg.mosaic:
            img, boxes = self._mosaic()
        else:
            img, boxes = self._single(*rng.choice(self.images))
        if rng.random() < cfg.copy_paste:
            img, boxes = self._paste(img, boxes)
        img = self._hsv(img)
        if rng.random() < cfg.flip:
            img = img[:, ::-1]
            w = img.shape[1]
            boxes = boxes.copy()
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        return np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32), boxes

    def _resized(self, image: np.ndarray, boxes: np.ndarray) -> Sample:
        w, h = self.size
        r = min(w / image.shape[1], h / image.shape[0]) * self.rng.uniform(*self.cfg.scale)
        nw, nh = max(1, round(image.shape[1] * r)), max(1, round(image.shape[0] * r))
        b = boxes.copy()
        b[:, :4] *= r
        return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR), b

    def _single(self, image: np.ndarray, boxes: np.ndarray) -> Sample:
        w, h = self.size
        img, b = self._resized(image, boxes)
        canvas = np.full((h, w, 3), PAD, np.uint8)
        ox, oy = self.rng.randint(0, w - img.shape[1]), self.rng.randint(0, h - img.shape[0])
        canvas[oy:oy + img.shape[0], ox:ox + img.shape[1]] = img
        b[:, [0, 2]] += ox
        b[:, [1, 3]] += oy
        return canvas, b

    def _mosaic(self) -> Sample:
        w, h = self.size
        rng = self.rng
        canvas = np.full((2 * h, 2 * w, 3), PAD, np.uint8)
        xc, yc = int(rng.uniform(0.5 * w, 1.5 * w)), int(rng.uniform(0.5 * h, 1.5 * h))
        all_boxes = []
        for k, (image, boxes) in enumerate(rng.sample(self.images, 4)):
            img, b = self._resized(image, boxes)
            ih, iw = img.shape[:2]
            # the quadrant's corner at the centre: top-left, top-right, bottom-left, bottom-right
            x0 = xc - iw if k in (0, 2) else xc
            y0 = yc - ih if k in (0, 1) else yc
            cx0, cy0 = max(x0, 0), max(y0, 0)
            cx1, cy1 = min(x0 + iw, 2 * w), min(y0 + ih, 2 * h)
            canvas[cy0:cy1, cx0:cx1] = img[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            b[:, [0, 2]] += x0
            b[:, [1, 3]] += y0
            all_boxes.append(clip_boxes(b, cx0, cy0, cx1, cy1))
        boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 5), np.float32)
        # a random zoom of the double canvas, cropped around the centre to the input size
        s = rng.uniform(0.5, 1.0)
        zoomed = cv2.resize(canvas, (round(2 * w * s), round(2 * h * s)))
        boxes = boxes.copy()
        boxes[:, :4] *= s
        x0 = int(np.clip(xc * s - w / 2 + rng.uniform(-0.25, 0.25) * w, 0, zoomed.shape[1] - w))
        y0 = int(np.clip(yc * s - h / 2 + rng.uniform(-0.25, 0.25) * h, 0, zoomed.shape[0] - h))
        out = zoomed[y0:y0 + h, x0:x0 + w]
        boxes[:, [0, 2]] -= x0
        boxes[:, [1, 3]] -= y0
        return np.ascontiguousarray(out), clip_boxes(boxes, 0, 0, w, h)

    def _paste(self, img: np.ndarray, boxes: np.ndarray) -> Sample:
        """1-3 labeled objects of other images (their box's pixels) pasted where they
        overlap no box of this sample much, at a random scale."""
        rng = self.rng
        h, w = img.shape[:2]
        img, out = img.copy(), [boxes]
        for _ in range(rng.randint(1, 3)):
            src, sb = rng.choice(self.images)
            if not len(sb):
                continue
            x1, y1, x2, y2, c = sb[rng.randrange(len(sb))]
            crop = src[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))]
            if crop.shape[0] < 4 or crop.shape[1] < 4:
                continue
            r = min(w / src.shape[1], h / src.shape[0]) * rng.uniform(0.4, 1.0)
            cw, ch = max(4, round(crop.shape[1] * r)), max(4, round(crop.shape[0] * r))
            if cw >= w or ch >= h:
                continue
            px, py = rng.randint(0, w - cw), rng.randint(0, h - ch)
            new = np.array([[px, py, px + cw, py + ch, c]], np.float32)
            have = np.concatenate(out)
            if len(have) and _overlap(new[0, :4], have[:, :4]).max() > 0.1:
                continue
            img[py:py + ch, px:px + cw] = cv2.resize(crop, (cw, ch))
            out.append(new)
        return img, np.concatenate(out)

    def _hsv(self, img: np.ndarray) -> np.ndarray:
        hue, sat, val = self.cfg.hsv
        rng = self.rng
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-hue, hue)) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1 - sat, 1 + sat), 0, 255)
        hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(1 - val, 1 + val), 0, 255)
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


def slice_tiles(images: list[Sample], windows: Callable[[int, int], list[Window]],
                rng: random.Random, background: float = 0.25) -> list[Sample]:
    """Large images as the tiles a tiled detector sees (`windows(width, height)`, e.g.
    `Tiling.windows`), each with its boxes clipped to it (a box left with under a quarter
    of its area dropped): every tile that holds a box, and tiles of background only, at
    random, up to `background` times as many (so that the model also sees what is not an
    object, without drowning in it)."""
    held: list[Sample] = []
    empty: list[Sample] = []
    for image, boxes in images:
        h, w = image.shape[:2]
        for x1, y1, x2, y2 in windows(w, h):
            b = clip_boxes(boxes, x1, y1, x2, y2)
            b[:, [0, 2]] -= x1
            b[:, [1, 3]] -= y1
            (held if len(b) else empty).append((image[y1:y2, x1:x2], b))
    rng.shuffle(empty)
    return held + empty[:int(background * len(held))]


def clip_boxes(boxes: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Boxes clipped to a region; those left with under a quarter of their area or 2 px
    dropped."""
    if not len(boxes):
        return boxes.reshape(0, 5).astype(np.float32)
    b = boxes.astype(np.float32).copy()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b[:, [0, 2]] = b[:, [0, 2]].clip(x0, x1)
    b[:, [1, 3]] = b[:, [1, 3]].clip(y0, y1)
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    keep = (bw >= 2) & (bh >= 2) & (bw * bh >= 0.25 * np.maximum(area, 1e-6))
    return b[keep]


def _overlap(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """How much of each of `others` the box covers, or of the box they cover (the larger)."""
    lt = np.maximum(box[:2], others[:, :2])
    rb = np.minimum(box[2:], others[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    a = (box[2:] - box[:2]).prod()
    b = (others[:, 2:] - others[:, :2]).prod(-1)
    return np.asarray(inter / np.maximum(np.minimum(a, b), 1e-6))
