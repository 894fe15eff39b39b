"""Interactive segmentation sessions: an embedding per image, computed once, cached in
memory (bounded by bytes) and on disk (checked on read), precomputed in the background for
the next images of the review queue; prompts are answered from the cached embedding.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.errors import LabelPilotError
from labelpilot.models.base import InteractiveSegmenter, MaskProposal, Prompt
from labelpilot.models.manifest import ModelManifest
from labelpilot.models.registry import load_segmenter, segmenter_manifest
from labelpilot.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class SegmentResult:
    proposals: list[MaskProposal]
    warnings: list[str] = field(default_factory=list)
    embed_ms: float = 0.0  # 0 when the embedding came from a cache
    decode_ms: float = 0.0
    cached: str = "memory"  # memory | disk | computed


def mask_warnings(mask: np.ndarray) -> list[str]:
    n = int(mask.sum())
    if n == 0:
        return ["the mask is empty: add a positive click on the object"]
    if n == mask.size:
        return ["the mask covers the whole image: add a negative click on the background"]
    return []


class EmbeddingCache:
    """Embeddings by (model, image key): an LRU in memory bounded by bytes, and .npz files
    on disk with a SHA-256 of their content (a corrupt or foreign file is recomputed),
    bounded too: past `max_disk_bytes` the least recently used files go."""

    def __init__(self, segmenter: InteractiveSegmenter, disk_dir: Path | None,
                 max_bytes: int = 512 << 20, max_disk_bytes: int = 2 << 30) -> None:
        self.seg = segmenter
        self.disk_dir = disk_dir
        self.max_bytes = max_bytes
        self.max_disk_bytes = max_disk_bytes
        self._disk_lock = threading.Lock()
        self._mem: OrderedDict[str, Any] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._pending: dict[str, Future[Any]] = {}
        self.stats = {"memory": 0, "disk": 0, "computed": 0, "disk_rejected": 0}

    @property
    def held(self) -> tuple[int, int]:
        """(embeddings held in memory, their bytes)."""
        with self._lock:
            return len(self._mem), self._bytes

    @property
    def in_flight(self) -> int:
        """Embeddings being computed now (precomputed or asked for)."""
        with self._lock:
            return len(self._pending)

    def _tag(self, key: str) -> str:
        return hashlib.sha256(f"{self.seg.name}@{self.seg.version}:{key}".encode()).hexdigest()

    def _disk_path(self, key: str) -> Path | None:
        if self.disk_dir is None:
            return None
        return self.disk_dir / f"{self._tag(key)[:32]}.npz"

    def _remember(self, key: str, emb: Any) -> None:
        size = int(getattr(emb, "nbytes", 0))
        with self._lock:
            if key in self._mem:
                return
            self._mem[key] = emb
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._mem) > 1:
                _, old = self._mem.popitem(last=False)
                self._bytes -= int(getattr(old, "nbytes", 0))

    def peek(self, key: str) -> Any | None:
        with self._lock:
            emb = self._mem.get(key)
            if emb is not None:
                self._mem.move_to_end(key)
            return emb

    def _read_disk(self, key: str) -> Any | None:
        path = self._disk_path(key)
        if path is None or not path.is_file():
            return None
        try:
            raw = path.read_bytes()
            digest, body = raw[:64].decode(), raw[64:]
            if hashlib.sha256(body).hexdigest() != digest:
                raise ValueError("checksum mismatch")
            with np.load(io.BytesIO(body), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            if str(arrays.pop("__tag__")) != self._tag(key):
                raise ValueError("written for another model or image")
            emb = self.seg.load_embedding(arrays)
            with contextlib.suppress(OSError):
                os.utime(path)  # used now: the last to be pruned
            return emb
        except Exception as e:  # any damage: recompute, never a wrong mask
            log.warning("embedding cache file %s is unusable (%s); recomputing", path, e)
            self.stats["disk_rejected"] += 1
            path.unlink(missing_ok=True)
            return None

    def _write_disk(self, key: str, emb: Any) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        buf = io.BytesIO()
        arrays = {"__tag__": np.array(self._tag(key)), **self.seg.save_embedding(emb)}
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        body = buf.getvalue()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(hashlib.sha256(body).hexdigest().encode() + body)
        tmp.replace(path)
        self._prune_disk(keep=path)

    def _prune_disk(self, keep: Path) -> None:
        """Remove the least recently used files until the folder fits `max_disk_bytes`."""
        assert self.disk_dir is not None
        with self._disk_lock:
            files = []
            for f in self.disk_dir.glob("*.npz"):
                try:
                    st = f.stat()
                except OSError:  # removed meanwhile
                    continue
                files.append((st.st_mtime, st.st_size, f))
            total = sum(size for _, size, _ in files)
            for _, size, f in sorted(files, key=lambda t: t[0]):
                if total <= self.max_disk_bytes:
                    break
                if f != keep:
                    f.unlink(missing_ok=True)
                    total -= size

    def get(self, key: str, load_image: Callable[[], np.ndarray]) -> tuple[Any, str, float]:
        """(embedding, where it came from, ms spent computing it)."""
        emb = self.peek(key)
        if emb is not None:
            self.stats["memory"] += 1
            return emb, "memory", 0.0
        with self._lock:
            fut = self._pending.get(key)
        if fut is not None:  # being precomputed: wait for it
            emb = fut.result()
            self.stats["memory"] += 1
            return emb, "memory", 0.0
        return self._load_or_compute(key, load_image)

    def _load_or_compute(self, key: str, load_image: Callable[[], np.ndarray]
                         ) -> tuple[Any, str, float]:
        emb = self._read_disk(key)
        if emb is not None:
            self._remember(key, emb)
            self.stats["disk"] += 1
            return emb, "disk", 0.0
        t0 = time.perf_counter()
        emb = self.seg.embed(load_image())
        ms = (time.perf_counter() - t0) * 1000
        self._remember(key, emb)
        try:
            self._write_disk(key, emb)
        except OSError as e:
            log.warning("could not write the embedding cache: %s", e)
        self.stats["computed"] += 1
        return emb, "computed", ms

    def precompute(self, key: str, load_image: Callable[[], np.ndarray],
                   pool: ThreadPoolExecutor) -> Future[Any] | None:
        if self.peek(key) is not None:
            return None
        with self._lock:
            if key in self._pending:
                return self._pending[key]

            def work() -> Any:
                try:
                    emb = self.peek(key)
                    return emb if emb is not None else self._load_or_compute(key, load_image)[0]
                finally:
                    with self._lock:
                        self._pending.pop(key, None)

            fut = pool.submit(work)
            self._pending[key] = fut
            return fut


class SegmentSession:
    """A segmenter with its cache; thread-safe; one per (workspace, model) in a server."""

    def __init__(self, segmenter: InteractiveSegmenter, cache_dir: Path | None = None,
                 max_bytes: int = 512 << 20, max_disk_bytes: int = 2 << 30) -> None:
        self.seg = segmenter
        self.cache = EmbeddingCache(segmenter, cache_dir, max_bytes, max_disk_bytes)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    def segment(self, key: str, load_image: Callable[[], np.ndarray], prompt: Prompt,
                size: tuple[int, int]) -> SegmentResult:
        """`size` = (width, height) of the image, for validating the prompt first."""
        prompt.validate(*size)
        emb, where, embed_ms = self.cache.get(key, load_image)
        t0 = time.perf_counter()
        proposals = self.seg.predict(emb, prompt)
        decode_ms = (time.perf_counter() - t0) * 1000
        warnings = mask_warnings(proposals[0].mask) if proposals else ["no mask"]
        return SegmentResult(proposals, warnings, embed_ms, decode_ms, where)

    def precompute(self, key: str, load_image: Callable[[], np.ndarray]) -> Future[Any] | None:
        return self.cache.precompute(key, load_image, self._pool)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def image_key(row: Any) -> str:
    """What an embedding is cached under: the image's content, not its id."""
    return str(row.sha256)


class SessionPool:
    """The segmentation sessions of one workspace in one process: one per model (created on
    first use), their embeddings cached in memory and under the workspace's
    `cache/embeddings/<model>/`."""

    def __init__(self, ws: Workspace, *, max_disk_bytes: int = 2 << 30) -> None:
        self.ws = ws
        self.max_disk_bytes = max_disk_bytes
        self._sessions: dict[str, SegmentSession] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None) -> tuple[SegmentSession, ModelManifest]:
        """The session for interactive segmenter `name` (None: the best available)."""
        manifest = segmenter_manifest(name, self.ws.models_dir)
        with self._lock:
            sess = self._sessions.get(manifest.name)
            if sess is None:
                seg = load_segmenter(manifest.name, self.ws.models_dir)
                sess = SegmentSession(seg, self.ws.root / "cache" / "embeddings" / manifest.name,
                                      max_disk_bytes=self.max_disk_bytes)
                self._sessions[manifest.name] = sess
        return sess, manifest

    def segment(self, row: Any, prompt: Prompt, model: str | None
                ) -> tuple[SegmentResult, ModelManifest]:
        """Answer a prompt on a stored image with segmenter `model`."""
        sess, manifest = self.get(model)
        res = sess.segment(image_key(row), lambda: self.ws.blobs.load_rgb(row), prompt,
                           (row.width, row.height))
        return res, manifest

    def prepare(self, row: Any, model: str | None) -> tuple[bool, ModelManifest]:
        """Start computing the image's embedding in the background; False if it is ready."""
        sess, manifest = self.get(model)
        fut = sess.precompute(image_key(row), lambda: self.ws.blobs.load_rgb(row))
        return fut is not None, manifest

    def prepare_quietly(self, row: Any) -> None:
        """Precompute with the default segmenter; a failure here only costs the first click."""
        with contextlib.suppress(LabelPilotError):
            self.prepare(row, None)

    def close(self) -> None:
        with self._lock:
            for sess in self._sessions.values():
                sess.close()
            self._sessions.clear()
