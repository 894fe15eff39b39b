"""The blob store under racing writers, and its garbage collection."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from labelpilot.store.blobs import TEMP_PREFIX, BlobStore


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_writers_racing_on_one_key_all_succeed_and_leave_the_whole_file(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = os.urandom(8 << 20)  # large enough that the writes overlap
    sha = _key(data)
    start = threading.Barrier(12)

    def put(_: int) -> bool:
        start.wait()
        return store.put(sha, ".png", data)

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(put, range(12)))
    assert any(results)
    path = store.path(sha, ".png")
    assert _key(path.read_bytes()) == sha
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_link_racing_an_existing_file_is_not_an_error(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    src = tmp_path / "a.png"
    src.write_bytes(b"x" * 100)
    sha = _key(src.read_bytes())
    assert store.link(sha, ".png", str(src)) is True
    os.utime(store.path(sha, ".png"))
    assert store.link(sha, ".png", str(src)) is False


def test_collect_removes_unreferenced_and_temporary_files_only(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    kept, orphan = b"kept", b"orphan"
    store.put(_key(kept), ".png", kept)
    store.put(_key(orphan), ".jpg", orphan)
    temp = store.path(_key(kept), ".png").parent / f"{TEMP_PREFIX}killed"
    temp.write_bytes(b"half")
    done = store.collect(lambda: [(_key(kept), ".png")])
    assert done == {"blobs": 1, "temporary": 1, "bytes": len(orphan) + 4}
    assert store.path(_key(kept), ".png").is_file()
    assert not store.path(_key(orphan), ".jpg").exists() and not temp.exists()


def test_collect_waits_for_writers(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    orphan = b"orphan"
    with store.writing():
        # a writer between storing a blob and committing its row: nothing may go
        store.put(_key(orphan), ".png", orphan)
        assert store.collect(lambda: []) is None
    assert store.collect(lambda: []) == {"blobs": 1, "temporary": 0, "bytes": len(orphan)}
