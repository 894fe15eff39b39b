"""Thumbnails: a few fixed sizes, the stored image decoded once however many requests of
whatever sizes arrive at once."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from labelpilot.imageio import probe_image
from labelpilot.store.blobs import BlobStore
from labelpilot.thumbnails import SIZES, Thumbnails, snap


def test_sizes_snap_up_to_the_cached_ones() -> None:
    assert [snap(s) for s in (16, 128, 129, 160, 512, 700, 1024, 5000)] == \
        [128, 128, 256, 256, 512, 1024, 1024, 1024]


def test_concurrent_requests_of_every_size_decode_the_image_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (1500, 2000, 3), dtype=np.uint8)).save(buf, "PNG")
    probed = probe_image(buf.getvalue(), name="big.png", max_pixels=10**8)
    blobs = BlobStore(tmp_path / "blobs")
    blobs.put(probed.sha256, probed.suffix, probed.data)
    row = SimpleNamespace(sha256=probed.sha256, suffix=probed.suffix)
    thumbs = Thumbnails(tmp_path / "thumbs", blobs)
    sizes = [100, 200, 300, 600, 900, 1024, 160, 64]
    got: dict[int, tuple[int, int]] = {}
    start = threading.Barrier(len(sizes))

    def ask(size: int) -> None:
        start.wait()
        got[size] = Image.open(io.BytesIO(thumbs.get(row, size))).size

    threads = [threading.Thread(target=ask, args=(s,)) for s in sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert thumbs.stats["originals_decoded"] == 1
    for size, (w, h) in got.items():
        assert max(w, h) == snap(size) and abs(w / h - 2000 / 1500) < 0.02
    assert sorted(p.name.rsplit("_", 1)[1] for p in (tmp_path / "thumbs").iterdir()) == \
        sorted(f"{s}.jpg" for s in SIZES)
