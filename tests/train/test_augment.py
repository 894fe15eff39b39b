"""The detector trainer's augmentation: boxes follow the pixels through every step."""

from __future__ import annotations

import random

import numpy as np
import pytest

from labelpilot.train.augment import AugmentConfig, Augmenter


def _images(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grey images of different sizes, each with a few boxes filled with a pure colour
    (the box's class says which): what is inside a box after augmenting shows whether the
    box followed its object."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        h, w = int(rng.integers(200, 700)), int(rng.integers(200, 700))
        img = np.full((h, w, 3), 90, np.uint8)
        boxes: list[list[int]] = []
        for c in range(3):
            bw, bh = int(rng.integers(30, w // 3)), int(rng.integers(30, h // 3))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            if any(x < b[2] and b[0] < x + bw and y < b[3] and b[1] < y + bh for b in boxes):
                continue
            img[y:y + bh, x:x + bw] = COLOURS[c]
            boxes.append([x, y, x + bw, y + bh, c])
        out.append((img, np.array(boxes, np.float32)))
    return out


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


@pytest.mark.parametrize("kind", ["single", "mosaic", "paste"])
def test_boxes_follow_their_objects(kind: str) -> None:
    cfg = AugmentConfig(mosaic=1.0 if kind == "mosaic" else 0.0,
                        copy_paste=1.0 if kind == "paste" else 0.0, hsv=(0, 0, 0))
    aug = Augmenter(_images(8), (416, 320), cfg, random.Random(1))
    seen = 0
    for _ in range(40):
        x, boxes = aug.sample()
        assert x.shape == (3, 320, 416) and x.dtype == np.float32
        img = x.transpose(1, 2, 0)
        for x1, y1, x2, y2, c in boxes:
            assert 0 <= x1 < x2 <= 416 and 0 <= y1 < y2 <= 320
            # the box's inside (a pixel in from its edges, where resizing blends) is its
            # colour, and just outside it is not
            inner = img[int(np.ceil(y1)) + 1:int(y2) - 1, int(np.ceil(x1)) + 1:int(x2) - 1]
            if inner.size == 0:
                continue
            want = np.array(COLOURS[int(c)], np.float32)
            assert np.abs(inner - want).max(-1).mean() < 20, (kind, c)
            seen += 1
    assert seen > 40


def test_a_mosaic_cuts_boxes_at_its_seams_and_drops_slivers() -> None:
    aug = Augmenter(_images(8), (416, 416), AugmentConfig(mosaic=1.0, copy_paste=0.0),
                    random.Random(3))
    counts = [len(aug.sample()[1]) for _ in range(30)]
    # four images of about 3 boxes: some are cut away, never more than all of them
    assert max(counts) <= 12 and np.mean(counts) > 2


def test_colour_jitter_changes_colours_not_boxes() -> None:
    images = _images(2)
    plain = Augmenter(images, (416, 416), AugmentConfig(mosaic=0, copy_paste=0, hsv=(0, 0, 0),
                                                        flip=0), random.Random(5)).sample()
    jittered = Augmenter(images, (416, 416), AugmentConfig(mosaic=0, copy_paste=0, flip=0),
                         random.Random(5)).sample()
    np.testing.assert_array_equal(plain[1], jittered[1])
    assert np.abs(plain[0] - jittered[0]).mean() > 1


def test_large_images_are_cut_into_the_tiles_a_tiled_detector_sees() -> None:
    from labelpilot.models.detect import Tiling
    from labelpilot.train.augment import slice_tiles

    # one 1000 x 600 image: small coloured boxes in the left part, nothing on the right
    img = np.full((600, 1000, 3), 90, np.uint8)
    boxes = []
    for k, (x, y) in enumerate([(20, 20), (150, 300), (230, 100), (120, 480)]):
        img[y:y + 40, x:x + 30] = COLOURS[k % 3]
        boxes.append([x, y, x + 30, y + 40, k % 3])
    tiling = Tiling(256, 0.2)
    windows = tiling.windows(1000, 600)
    tiles = slice_tiles([(img, np.array(boxes, np.float32))], tiling.windows, random.Random(0),
                        background=0.25)
    held = [t for t in tiles if len(t[1])]
    # every tile holding a box (whole or mostly), and one background tile per four of them
    assert len(held) >= 4 and len(tiles) == len(held) + len(held) // 4
    assert len(windows) > len(tiles)  # the other background tiles are left out
    found = set()
    for tile, b in tiles:
        assert tile.shape[0] <= 256 and tile.shape[1] <= 256
        for x1, y1, x2, y2, c in b:
            assert 0 <= x1 < x2 <= tile.shape[1] and 0 <= y1 < y2 <= tile.shape[0]
            inner = tile[int(np.ceil(y1)):int(y2), int(np.ceil(x1)):int(x2)]
            assert (inner == COLOURS[int(c)]).all()  # the box still covers its object
            found.add(int(c))
    assert found == {0, 1, 2}
    # a tile of background holds none of the objects' colours
    for tile, b in tiles:
        if not len(b):
            assert not any((tile == c).all(-1).any() for c in COLOURS)
