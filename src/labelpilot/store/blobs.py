"""Content-addressed image files: `blobs/<first two hex>/<sha256><suffix>`, and reading a
stored image back as pixels."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from labelpilot.errors import LabelPilotError

_SUFFIX_RE = re.compile(r"^\.[a-z0-9]{1,5}$")
_HEX = frozenset("0123456789abcdef")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._dirs: set[str] = set()

    def path(self, sha256: str, suffix: str) -> Path:
        return Path(self._path(sha256, suffix))

    def _path(self, sha256: str, suffix: str) -> str:
        if len(sha256) != 64 or not _HEX.issuperset(sha256) or not _SUFFIX_RE.match(suffix):
            raise ValueError(f"not a blob key: {sha256!r}{suffix!r}")
        return os.path.join(self.root, sha256[:2], sha256 + suffix)

    def _folder(self, target: str) -> str:
        folder = os.path.dirname(target)
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)
        return folder

    def put(self, sha256: str, suffix: str, data: bytes) -> bool:
        """Store `data` under its key; True if the file was new.

        Written to a temporary file and renamed, so a crash never leaves a partial blob.
        """
        target = self._path(sha256, suffix)
        if os.path.exists(target):
            return False
        folder = self._folder(target)
        # One writer per process and content: pid + key make the temporary name unique.
        tmp = os.path.join(folder, f".{sha256}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, target)
        return True

    def link(self, sha256: str, suffix: str, source: str) -> bool:
        """Hard-link `source` (whose bytes hash to `sha256`) into the store; True if new.

        Raises OSError where the file system refuses the link; the caller copies instead.
        """
        target = self._path(sha256, suffix)
        if os.path.exists(target):
            return False
        self._folder(target)
        os.link(source, target)
        return True

    def remove(self, sha256: str, suffix: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(sha256, suffix))

    def load_image(self, row: Any) -> np.ndarray:
        """The image of an `images` row as a BGR array; LabelPilotError if it does not decode."""
        path = self.path(row.sha256, row.suffix)
        data = np.fromfile(path, dtype=np.uint8) if path.is_file() else np.zeros(0, np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise LabelPilotError(f"image {row.id} ({row.file_name}) does not decode",
                             hint="re-import the file, then run autolabel again")
        return image

    def load_rgb(self, row: Any) -> np.ndarray:
        """The image of an `images` row as a contiguous RGB array (what segmenters take)."""
        return np.ascontiguousarray(self.load_image(row)[..., ::-1])
