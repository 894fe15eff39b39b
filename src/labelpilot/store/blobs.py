"""Content-addressed image files: `blobs/<first two hex>/<sha256><suffix>`."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str, suffix: str) -> Path:
        if not _SHA_RE.match(sha256) or not re.match(r"^\.[a-z0-9]{1,5}$", suffix):
            raise ValueError(f"not a blob key: {sha256!r}{suffix!r}")
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def put(self, sha256: str, suffix: str, data: bytes) -> bool:
        """Store `data` under its key; True if the file was new.

        Written to a temporary file and renamed, so a crash never leaves a partial blob.
        """
        target = self.path(sha256, suffix)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    def remove(self, sha256: str, suffix: str) -> None:
        self.path(sha256, suffix).unlink(missing_ok=True)
