from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from labelpilot.errors import ValidationError
from labelpilot.geometry import rle


def _random_mask(seed: int, h: int = 37, w: int = 53) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), dtype=np.uint8)
    for _ in range(4):
        y, x = rng.integers(0, h), rng.integers(0, w)
        m[y:y + rng.integers(1, 20), x:x + rng.integers(1, 30)] = 1
    return m


@pytest.mark.parametrize("seed", range(8))
def test_coco_rle_matches_pycocotools(seed: int) -> None:
    m = _random_mask(seed)
    ours = rle.encode(m)
    ref = coco_mask.encode(np.asfortranarray(m))
    assert ours == ref["counts"].decode()
    np.testing.assert_array_equal(rle.decode(ref["counts"].decode(), *m.shape), m)
    assert rle.area(ours) == int(coco_mask.area(ref))
    x, y, w, h = coco_mask.toBbox(ref)
    assert rle.bbox(ours, *m.shape) == (x, y, x + w, y + h)


def test_coco_rle_edge_cases() -> None:
    full = np.ones((4, 5), dtype=np.uint8)
    empty = np.zeros((4, 5), dtype=np.uint8)
    for m in (full, empty):
        np.testing.assert_array_equal(rle.decode(rle.encode(m), 4, 5), m)
    assert rle.bbox(rle.encode(empty), 4, 5) == (0, 0, 0, 0)
    with pytest.raises(ValidationError, match="add up to"):
        rle.decode([3, 4], 4, 5)
    with pytest.raises(ValidationError, match="invalid character"):
        rle.decompress_counts("ab\x01")


def test_label_studio_rle_roundtrip_and_literal_runs() -> None:
    m = _random_mask(3, 20, 30)
    encoded = rle.ls_mask_encode(m)
    np.testing.assert_array_equal(rle.ls_mask_decode(encoded, 20, 30), m)
    # A hand-made stream with a literal chunk, as Label Studio's front end writes them:
    # num=3, word size 8, run sizes 1..4 bits, then one literal chunk of 3 words.
    bits = format(3, "032b") + format(7, "05b") + "0000" + "0001" + "0010" + "0011"
    bits += "0" + "01" + "10" + "00000001" + "11111111" + "00000010"
    bits += "0" * (-len(bits) % 8)
    data = [int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)]
    assert rle.ls_decode(data).tolist() == [1, 255, 2]
    with pytest.raises(ValidationError, match="truncated"):
        rle.ls_decode(data[:5])


def test_runs_start_with_zeros() -> None:
    assert rle.runs(np.array([1, 1, 0, 1])) == [0, 2, 1, 1]
    assert rle.runs(np.array([0, 0, 1])) == [2, 1]
