"""Unpacking archives people import (CVAT and Label Studio exports come zipped), safely."""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from labelpilot.errors import LabelPilotError, UnsafePathError

MAX_UNPACKED_BYTES = 20 * 1024**3
# A member this many times larger than its compressed bytes is a bomb, not a dataset
# (images barely compress; label JSON compresses 10-30x).
MAX_RATIO = 200
_RATIO_FROM = 1 << 20  # members under 1 MiB may compress as they like
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _check_member(archive: Path, name: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise UnsafePathError(f"{archive}: member {name!r} would be written outside the "
                              "folder it is unpacked into; nothing was imported",
                              hint="re-create the archive with relative paths")
    return p


def unpack(archive: Path, dest: Path, *, max_bytes: int = MAX_UNPACKED_BYTES) -> None:
    """Unpack `archive` into `dest`, refusing absolute paths, `..`, links and bombs."""
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            total = 0
            for info in infos:
                _check_member(archive, info.filename)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UnsafePathError(f"{archive}: member {info.filename!r} is a link; "
                                          "links are not imported")
                if info.file_size > _RATIO_FROM and \
                        info.file_size > MAX_RATIO * max(info.compress_size, 1):
                    raise UnsafePathError(
                        f"{archive}: member {info.filename!r} expands {info.compress_size:,} "
                        f"bytes into {info.file_size:,}, over {MAX_RATIO}x: refused as a zip "
                        "bomb; nothing was imported")
                total += info.file_size
            if total > max_bytes:
                raise UnsafePathError(f"{archive}: unpacks to {total:,} bytes, over the limit "
                                      f"of {max_bytes:,}")
            _check_space(archive, dest, total)
            zf.extractall(dest)
        return
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            _check_member(archive, m.name)
            if not (m.isfile() or m.isdir()):
                raise UnsafePathError(f"{archive}: member {m.name!r} is not a plain file")
        total = sum(m.size for m in members)
        if total > max_bytes:
            raise UnsafePathError(f"{archive}: unpacks to more than {max_bytes:,} bytes")
        _check_space(archive, dest, total)
        tf.extractall(dest, filter="data")


def _check_space(archive: Path, dest: Path, total: int) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest).free
    if total > free:
        raise LabelPilotError(f"{archive} unpacks to {total:,} bytes but {dest} has only "
                              f"{free:,} free; nothing was imported",
                              hint="free some space, or unpack it elsewhere and import the folder")
