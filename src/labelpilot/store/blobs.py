"""Content-addressed image files: `blobs/<first two hex>/<sha256><suffix>`."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

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
