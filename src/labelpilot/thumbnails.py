"""Image thumbnails for the grid: JPEGs at a few fixed sizes, cached on disk. The stored
image is decoded once per image (for the largest size; the smaller ones are made from
that), at most a few at a time in the process, so many thumbnail requests for large
images cannot add up to gigabytes. Imports the image store only."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

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
