from pathlib import Path

import numpy as np
import pytest

from labelpilot.annotations import mask_to_polygons
from labelpilot.assist.sessions import EmbeddingCache, SegmentSession, mask_warnings
from labelpilot.errors import PromptError
from labelpilot.geometry import rle
from labelpilot.geometry.iou import mask_iou as iou
from labelpilot.models.base import Click, Prompt
from labelpilot.models.graphcut import GraphCutSegmenter
from tests.scenes import deepest, scene


class Counting(GraphCutSegmenter):
    def __init__(self) -> None:
        super().__init__()
        self.embeds = 0

    def embed(self, image: np.ndarray):  # type: ignore[no-untyped-def]
        self.embeds += 1
        return super().embed(image)


def test_embedding_is_computed_once_then_read_from_memory_and_disk(tmp_path: Path) -> None:
    img, (ring, _) = scene()
    seg = Counting()
    s = SegmentSession(seg, tmp_path / "cache")
    p = Prompt([Click(*deepest(ring))])
    r1 = s.segment("img-1", lambda: img, p, (320, 240))
    r2 = s.segment("img-1", lambda: img, p, (320, 240))
    assert (r1.cached, r2.cached, seg.embeds) == ("computed", "memory", 1)
    assert r1.embed_ms > 0 and r2.embed_ms == 0
    # a new session (a restarted server) reads the disk cache
    s2 = SegmentSession(seg, tmp_path / "cache")
    r3 = s2.segment("img-1", lambda: img, p, (320, 240))
    assert r3.cached == "disk" and seg.embeds == 1
    assert (r3.proposals[0].mask == r1.proposals[0].mask).all()
    assert iou(r1.proposals[0].mask, ring) > 0.9


def test_corrupt_or_foreign_cache_file_is_recomputed_never_used(tmp_path: Path) -> None:
    img, (ring, _) = scene(1)
    seg = Counting()
    s = SegmentSession(seg, tmp_path / "cache")
    p = Prompt([Click(*deepest(ring))])
    good = s.segment("k", lambda: img, p, (320, 240)).proposals[0].mask
    (f,) = list((tmp_path / "cache").glob("*.npz"))
    data = bytearray(f.read_bytes())
    data[200] ^= 0xFF  # one flipped byte
    f.write_bytes(bytes(data))
    s2 = SegmentSession(seg, tmp_path / "cache")
    r = s2.segment("k", lambda: img, p, (320, 240))
    assert r.cached == "computed" and s2.cache.stats["disk_rejected"] == 1
    assert (r.proposals[0].mask == good).all()
    # a file written for another image under this one's name: refused by its tag
    other, _ = scene(2)
    s3 = SegmentSession(seg, tmp_path / "cache")
    s3.segment("other", lambda: other, p, (320, 240))
    (g,) = [x for x in (tmp_path / "cache").glob("*.npz") if x.name != f.name]
    f.write_bytes(g.read_bytes())
    s4 = SegmentSession(seg, tmp_path / "cache")
    r = s4.segment("k", lambda: img, p, (320, 240))
    assert r.cached == "computed" and (r.proposals[0].mask == good).all()


def test_memory_cache_is_bounded(tmp_path: Path) -> None:
    img, _ = scene()
    seg = GraphCutSegmenter()
    one = seg.embed(img).nbytes
    cache = EmbeddingCache(seg, None, max_bytes=int(one * 2.5))
    for k in range(5):
        cache.get(f"k{k}", lambda: img)
    held, nbytes = cache.held
    assert held == 2 and nbytes <= 2.5 * one
    assert cache.peek("k4") is not None and cache.peek("k0") is None


def test_disk_cache_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    import os

    img, _ = scene()
    seg = Counting()
    probe = EmbeddingCache(seg, tmp_path / "probe")
    probe.get("x", lambda: img)
    one = next((tmp_path / "probe").glob("*.npz")).stat().st_size
    d = tmp_path / "cache"
    cache = EmbeddingCache(seg, d, max_bytes=1, max_disk_bytes=int(one * 2.5))
    cache.get("k0", lambda: img)
    cache.get("k1", lambda: img)
    for i, f in enumerate(sorted(d.glob("*.npz"), key=lambda f: f.stat().st_mtime)):
        os.utime(f, (1000 + i, 1000 + i))  # k0 older than k1, whatever the clock's grain
    # k0 is read from disk (a new cache: nothing in memory): now it is the recent one
    again = EmbeddingCache(seg, d, max_bytes=1, max_disk_bytes=int(one * 2.5))
    assert again.get("k0", lambda: img)[1] == "disk"
    again.get("k2", lambda: img)  # a third file: over the limit, k1 goes
    assert len(list(d.glob("*.npz"))) == 2
    fresh = EmbeddingCache(seg, d, max_bytes=1, max_disk_bytes=int(one * 2.5))
    assert fresh.get("k0", lambda: img)[1] == "disk"
    assert fresh.get("k2", lambda: img)[1] == "disk"
    embeds = seg.embeds
    assert fresh.get("k1", lambda: img)[1] == "computed" and seg.embeds == embeds + 1


def test_precompute_then_click_uses_it(tmp_path: Path) -> None:
    img, (ring, _) = scene()
    seg = Counting()
    s = SegmentSession(seg, None)
    fut = s.precompute("k", lambda: img)
    assert fut is not None
    fut.result(timeout=30)
    r = s.segment("k", lambda: img, Prompt([Click(*deepest(ring))]), (320, 240))
    assert r.cached == "memory" and seg.embeds == 1
    assert s.precompute("k", lambda: img) is None  # already there
    s.close()


def test_prompt_is_checked_before_any_work(tmp_path: Path) -> None:
    seg = Counting()
    s = SegmentSession(seg, None)
    with pytest.raises(PromptError, match="outside the image"):
        s.segment("k", lambda: np.zeros((10, 10, 3), np.uint8), Prompt([Click(50, 5)]), (10, 10))
    assert seg.embeds == 0


def test_polygons_keep_holes_and_give_the_mask_back() -> None:
    _, (ring, rect) = scene()
    polys = mask_to_polygons(ring | rect, tolerance=0)
    assert len(polys) == 2
    ring_poly = max(polys, key=lambda p: len(p.holes))
    assert len(ring_poly.holes) == 1
    back = np.zeros(ring.shape, bool)
    for p in polys:
        back |= rle.from_polygons([p.points], ring.shape[0], ring.shape[1], p.holes).astype(bool)
    assert iou(back, ring | rect) > 0.98
    # simplification keeps far fewer points for nearly the same mask
    simple = mask_to_polygons(ring, tolerance=1.5)[0]
    assert len(simple.points) < len(ring_poly.points) / 3
    again = rle.from_polygons([simple.points], ring.shape[0], ring.shape[1],
                             simple.holes).astype(bool)
    assert iou(again, ring) > 0.95


def test_empty_and_whole_image_masks_come_with_a_warning() -> None:
    assert "empty" in mask_warnings(np.zeros((5, 5), bool))[0]
    assert "whole image" in mask_warnings(np.ones((5, 5), bool))[0]
    m = np.zeros((5, 5), bool)
    m[1, 1] = True
    assert mask_warnings(m) == []
