"""Mask clean-up before a mask becomes one object."""

import numpy as np

from labelpilot.geometry.contours import drop_fragments


def test_drop_fragments_keeps_the_object_and_drops_its_slivers() -> None:
    m = np.zeros((100, 100), bool)
    m[10:60, 10:60] = True  # the object: 2,500 px
    m[70:90, 70:90] = True  # a second real part: 400 px (16 % of the largest)
    m[5, 80:83] = True  # slivers along edges: 3 px and 30 px (1.2 %)
    m[95:98, 0:10] = True
    out = drop_fragments(m)
    assert out.sum() == 2500 + 400
    assert out[10:60, 10:60].all() and out[70:90, 70:90].all() and not out[95:98, 0:10].any()
    # a stricter share drops the second part too; the largest always stays
    assert drop_fragments(m, min_fraction=0.5).sum() == 2500
    tiny = np.zeros((10, 10), bool)
    tiny[1, 1] = True
    assert drop_fragments(tiny).sum() == 1
    assert drop_fragments(np.zeros((5, 5), bool)).sum() == 0
