"""Content-addressed image files: `blobs/<first two hex>/<sha256><suffix>`, and reading a
stored image back as pixels."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process blob lock (one process per workspace)
    fcntl = None  # type: ignore[assignment]

import cv2
import numpy as np

from labelpilot.errors import LabelPilotError

_SUFFIX_RE = re.compile(r"^\.[a-z0-9]{1,5}$")
_HEX = frozenset("0123456789abcdef")


TEMP_PREFIX = ".tmp-"
LOCK_NAME = ".lock"


class BlobStore:
    """Blobs are written, never deleted, by the code that stores images: a file may already
    belong to another writer's row (identical uploads racing). Orphans (a failed or killed
    import, an upload whose row lost a race) go in `collect`, which runs while no writer
    is storing blobs: writers hold the store's lock shared (`writing`), the collector holds
    it exclusively."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dirs: set[str] = set()

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[bool]:
        if fcntl is None:
            yield True
            return
        os.makedirs(self.root, exist_ok=True)
        fd = os.open(os.path.join(self.root, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold while storing blobs and until the rows that refer to them are committed."""
        with self._locked(fcntl.LOCK_SH if fcntl else 0):
            yield

    def collect(self, referenced: Callable[[], Iterable[tuple[str, str]]], *,
                wait: bool = False) -> dict[str, int] | None:
        """Remove blob files no row refers to and temporary files left by killed writers.

        `referenced` lists the (sha256, suffix) keys rows refer to; it is called with the
        lock held. Returns the counts, or None when writers are busy and `wait` is false.
        """
        mode = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB) if fcntl else 0
        with self._locked(mode) as got:
            if not got:
                return None
            keep = {sha + suffix for sha, suffix in referenced()}
            out = {"blobs": 0, "temporary": 0, "bytes": 0}
            for folder in self.root.glob("[0-9a-f][0-9a-f]"):
                for f in folder.iterdir():
                    temp = f.name.startswith(TEMP_PREFIX)
                    if temp or f.name not in keep:
                        with contextlib.suppress(FileNotFoundError):
                            size = f.stat().st_size
                            f.unlink()
                            out["temporary" if temp else "blobs"] += 1
                            out["bytes"] += size
            return out

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
        """Store `data` under its key; True if this call wrote the file.

        Idempotent and safe when writers race on one key: each writes a temporary file of
        its own and renames it over the target (the same bytes), so a crash never leaves a
        partial blob and no writer's file is ever removed.
        """
        target = self._path(sha256, suffix)
        if os.path.exists(target):
            return False
        folder = self._folder(target)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, 0o644)
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
        try:
            os.link(source, target)
        except FileExistsError:  # another writer stored the same bytes first
            return False
        return True

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
