"""Image thumbnails for the grid: JPEGs at a few fixed sizes, cached on disk. The stored
image is decoded once per image (for the largest size; the smaller ones are made from
that), at most a few at a time in the process, so many thumbnail requests for large
images cannot add up to gigabytes. `with_shapes` draws an image's labels over its
thumbnail (the grid's view of what is labeled), each class in its colour."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.annotations import Annotation, Box, Mask, Point, Polygon, Polyline, Quad, RotatedBox
from labelpilot.store.blobs import BlobStore

SIZES = (128, 256, 512, 1024)


def snap(size: int) -> int:
    """The cached size to serve for a request of `size` (the next one up)."""
    return next((s for s in SIZES if s >= size), SIZES[-1])


def _jpeg(source: Path | bytes, size: int) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
        im.thumbnail((size, size))
        small = im.convert("RGB")
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


class Thumbnails:
    def __init__(self, folder: Path, blobs: BlobStore, *, decodes: int = 2) -> None:
        self.folder = folder
        self.blobs = blobs
        self._decodes = threading.BoundedSemaphore(decodes)
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self.stats = {"originals_decoded": 0}

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 10_000:
                self._locks.clear()
            return self._locks.setdefault(key, threading.Lock())

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        tmp.write_bytes(data)
        tmp.replace(path)

    def get(self, row: Any, size: int) -> bytes:
        """The JPEG for an `images` row at `snap(size)` on its long side."""
        size = snap(size)
        path = self.folder / f"{row.sha256}_{size}.jpg"
        if path.exists():
            return path.read_bytes()
        with self._lock(row.sha256):  # one request per image makes its files
            if path.exists():
                return path.read_bytes()
            largest = self.folder / f"{row.sha256}_{SIZES[-1]}.jpg"
            if largest.exists():
                base = largest.read_bytes()
            else:
                with self._decodes:
                    self.stats["originals_decoded"] += 1
                    base = _jpeg(self.blobs.path(row.sha256, row.suffix), SIZES[-1])
                self._write(largest, base)
            if size == SIZES[-1]:
                return base
            data = _jpeg(base, size)
            self._write(path, data)
            return data


def class_colour(index: int, given: str | None = None) -> tuple[int, int, int]:
    """The class's colour as the editor draws it: the one the project gave it, else a hue
    the golden angle from its neighbour's (hsl(i * 137.5, 75%, 55%))."""
    import colorsys

    if given:
        return int(given[1:3], 16), int(given[3:5], 16), int(given[5:7], 16)
    r, g, b = colorsys.hls_to_rgb(((index * 137.5) % 360) / 360, 0.55, 0.75)
    return round(r * 255), round(g * 255), round(b * 255)


def with_shapes(thumb: bytes, image_size: tuple[int, int], shapes: list[Annotation],
                colours: dict[str, tuple[int, int, int]]) -> bytes:
    """The thumbnail JPEG with the annotations drawn over it: outlines for regions and
    points, a translucent fill for masks; proposals in a thinner line."""
    from PIL import Image, ImageDraw

    with Image.open(io.BytesIO(thumb)) as im:
        base = im.convert("RGBA")
    k = base.width / max(1, image_size[0])
    over = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(over)
    for a in shapes:
        colour = colours.get(a.label, (255, 255, 255))
        width = 1 if a.status == "predicted" else 2
        shape = a.shape
        if isinstance(shape, Mask):
            m = Image.fromarray(np.asarray(shape.to_array(), dtype=np.uint8) * 110)
            m = m.resize(base.size, Image.Resampling.BILINEAR)
            over.paste(Image.new("RGBA", base.size, (*colour, 255)), (0, 0), m)
        elif isinstance(shape, Polyline):
            draw.line([(x * k, y * k) for x, y in shape.points], fill=(*colour, 255), width=width)
        elif isinstance(shape, Point):
            x, y = shape.x * k, shape.y * k
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(*colour, 255))
        else:
            if isinstance(shape, Box | RotatedBox):
                pts = shape.corners()
            elif isinstance(shape, Polygon | Quad):
                pts = shape.points
            else:
                continue
            draw.polygon([(x * k, y * k) for x, y in pts], outline=(*colour, 255), width=width)
    out = Image.alpha_composite(base, over).convert("RGB")
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
