"""One model's worker: a bounded queue of requests, a thread that runs them in batches,
and the version it runs, swapped atomically.

Requests arriving within `max_wait_s` of the first in a batch join it, up to `max_batch`;
the batch runs on the version current when it starts, and every answer names that
version. A full queue refuses at once (503 with Retry-After) rather than letting every
request wait longer; a request whose deadline passed, or whose client went away, is dropped
before it costs a model run. Closing stops taking requests and finishes the accepted ones.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np

from labelpilot.annotations import Annotation
from labelpilot.errors import LabelPilotError, UnavailableError
from labelpilot.models.base import Predictor, StagedPredictor
from labelpilot.models.batching import Batching
from labelpilot.serving.metrics import ServingMetrics

log = logging.getLogger("labelpilot.serving")


@dataclass(frozen=True)
class ServingConfig:
    max_batch: int = 4  # on a CPU, 4 serves as fast as 16 with less memory (README)
    max_wait_s: float = 0.005
    workers: int = 1  # threads running batches of this model at once
    queue_size: int = 64  # requests waiting per model; past it, 503
    timeout_s: float = 30.0  # a request's deadline, from its arrival
    threads: int | None = None  # ONNX Runtime threads per run (None: every core)
    batching: bool = True  # give single-image graphs a batch axis where it checks out
    watch_s: float = 2.0  # how often the workspace's models are checked for new versions


@dataclass
class Loaded:
    """One version of a served model, loaded and warmed up."""

    name: str
    kind: str
    version: str
    variant: str | None  # the optimized variant it runs (None: the model's own files)
    key: tuple[Any, ...]  # what identifies it on disk: a change means a new version
    model: Predictor
    batching: Batching
    labels: tuple[str, ...]
    metrics: dict[str, Any]
    loaded_at: float = field(default_factory=time.time)
    ms_per_image: float = 0.0  # measured at warm-up, for Retry-After estimates


def staged(model: Any) -> TypeGuard[StagedPredictor]:
    """Whether a model splits `predict_batch` into prepare / run_prepared / finish, so
    that a server runs only the network in its batching thread."""
    return all(hasattr(model, m) for m in ("prepare", "run_prepared", "finish"))


@dataclass
class Job:
    item: Any  # the image, or what the version's `prepare` made of it
    loaded: Loaded  # the version the item was made for; it runs on that version
    min_score: float
    deadline: float  # time.monotonic()
    arrived: float
    # (version, proposals or a staged model's raw outputs, timing)
    future: Future[tuple[Loaded, Any, dict[str, float]]]


class ModelWorker:
    def __init__(self, loaded: Loaded, config: ServingConfig, metrics: ServingMetrics) -> None:
        self.name = loaded.name
        self.current = loaded
        self.config = config
        self.metrics = metrics
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=config.queue_size)
        self._closing = False
        self._stopped = threading.Event()
        self._arriving = 0  # requests for this model being read or decoded
        self._arriving_lock = threading.Lock()
        self.batches = 0
        # several threads take batches from the one queue: on a CPU a run on one core per
        # batch uses the cores better than one run spread over all of them
        self._threads = [threading.Thread(target=self._run, name=f"serve-{self.name}-{k}",
                                          daemon=True) for k in range(config.workers)]
        for t in self._threads:
            t.start()
        metrics.loaded.labels(self.name, loaded.version, loaded.variant or "").set(1)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def max_batch(self) -> int:
        cap = self.current.batching.max_batch
        return self.config.max_batch if cap is None else min(cap, self.config.max_batch)

    def retry_after(self) -> int:
        """Seconds until the queue should have room: what waits, at the measured speed."""
        per = max(self.current.ms_per_image, 1.0) / 1000
        return max(1, math.ceil(self.depth * per))

    def submit(self, item: Any, *, loaded: Loaded | None = None, min_score: float = 0.0
               ) -> Future[tuple[Loaded, Any, dict[str, float]]]:
        """Queue an image (or, with `loaded`, what that version's `prepare` made of it).
        The future gives (the version that ran it, its proposals, or a staged model's
        outputs for `finish`, and the timing)."""
        if self._closing:
            raise UnavailableError("the model server is shutting down", retry_after=5,
                                   hint="send it to another replica, or retry later")
        now = time.monotonic()
        job = Job(item, loaded or self.current, min_score, now + self.config.timeout_s, now,
                  Future())
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.metrics.errors.labels(self.name, "queue_full").inc()
            raise UnavailableError(
                f"model {self.name} has {self.config.queue_size} requests waiting, its limit",
                retry_after=self.retry_after()) from None
        self.metrics.queue_depth.labels(self.name).set(self.depth)
        return job.future

    def submit_image(self, image: np.ndarray, *, min_score: float = 0.0
                     ) -> Future[tuple[Loaded, list[Annotation], dict[str, float]]]:
        """Queue an image; the future gives (version, proposals, timing). Prepares it in
        the calling thread (and finishes it in the worker's): for callers without an event
        loop; the HTTP routes use `ask`."""
        loaded = self.current
        model = loaded.model
        if not staged(model):
            return self.submit(image, loaded=loaded, min_score=min_score)
        prepared = model.prepare(image)
        inner = self.submit(prepared, loaded=loaded, min_score=min_score)
        out: Future[tuple[Loaded, list[Annotation], dict[str, float]]] = Future()

        def done(f: Future[tuple[Loaded, Any, dict[str, float]]]) -> None:
            if f.cancelled():
                out.cancel()
            elif f.exception() is not None:
                out.set_exception(f.exception())  # type: ignore[arg-type]
            else:
                ran, raw, timing = f.result()
                out.set_result((ran, model.finish(prepared, raw, min_score), timing))

        inner.add_done_callback(done)
        return out

    async def ask(self, image_of: Any, *, min_score: float = 0.0
                  ) -> tuple[Loaded, list[Annotation], dict[str, float], tuple[int, int]]:
        """The whole path of one request: `image_of()` (decoding) and the model's `prepare`
        in a thread of their own, the network in this worker's batch, `finish` in a thread
        again; (version, proposals, timing, (width, height)). 503 past the deadline."""
        import asyncio

        import anyio

        with self.arriving():
            loaded = self.current
            model = loaded.model

            def prepare() -> tuple[Any, tuple[int, int]]:
                image = image_of()
                h, w = image.shape[:2]
                return (model.prepare(image) if staged(model) else image), (int(w), int(h))

            item, size = await anyio.to_thread.run_sync(prepare)
            future = self.submit(item, loaded=loaded, min_score=min_score)
        try:
            ran, raw, timing = await asyncio.wait_for(asyncio.wrap_future(future),
                                                      timeout=self.config.timeout_s)
        except TimeoutError:
            future.cancel()
            self.metrics.errors.labels(self.name, "deadline").inc()
            raise UnavailableError(f"model {self.name} did not answer within "
                                   f"{self.config.timeout_s:g} s",
                                   retry_after=self.retry_after()) from None
        finisher = ran.model
        if staged(finisher):
            proposals = await anyio.to_thread.run_sync(
                lambda: finisher.finish(item, raw, min_score))
        else:
            proposals = raw
        return ran, proposals, timing, size

    def swap(self, loaded: Loaded) -> Loaded:
        """Serve `loaded` from the next batch on; the batch running now finishes on the
        version it started with, which is then let go. Returns the old version."""
        old, self.current = self.current, loaded
        self.metrics.loaded.labels(self.name, old.version, old.variant or "").set(0)
        self.metrics.loaded.labels(self.name, loaded.version, loaded.variant or "").set(1)
        self.metrics.swaps.labels(self.name).inc()
        return old

    def close(self, timeout: float | None = None) -> None:
        """Take no more requests; finish those accepted; stop the thread."""
        self._closing = True
        self._stopped.set()
        for t in self._threads:
            t.join(timeout)

    # ---- the worker thread ------------------------------------------------------------
    def _take(self) -> list[Job]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        limit = self.max_batch()
        until = time.monotonic() + self.config.max_wait_s
        while len(batch) < limit:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = until - time.monotonic()
            # wait for more only while requests are on their way (being read or decoded):
            # a lone client pays no batching delay
            if left <= 0 or self._arriving == 0:
                break
            try:
                batch.append(self._queue.get(timeout=min(left, 0.001)))
            except queue.Empty:
                continue
        return batch

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Around reading and decoding a request for this model: a batch being formed
        waits for it (up to `max_wait_s`)."""
        with self._arriving_lock:
            self._arriving += 1
        try:
            yield
        finally:
            with self._arriving_lock:
                self._arriving -= 1

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                if self._stopped.is_set() and self._queue.empty():
                    return
                continue
            self.metrics.queue_depth.labels(self.name).set(self.depth)
            try:
                self._serve(batch)
            except Exception:  # never let the thread die: the next batch must run
                log.exception("model %s: a batch failed", self.name)

    def _serve(self, batch: list[Job]) -> None:
        now = time.monotonic()
        live = []
        for job in batch:
            if not job.future.set_running_or_notify_cancel():
                self.metrics.errors.labels(self.name, "client_gone").inc()
                continue  # the client went away: nothing to run
            if job.deadline <= now:
                self.metrics.errors.labels(self.name, "deadline").inc()
                job.future.set_exception(UnavailableError(
                    f"model {self.name} did not start this request within its "
                    f"{self.config.timeout_s:g} s deadline", retry_after=self.retry_after()))
                continue
            live.append(job)
        if not live:
            return
        # one version per batch: each job runs on the version it was prepared for (after a
        # swap, those accepted before it finish on the old one)
        groups: dict[int, list[Job]] = {}
        for j in live:
            groups.setdefault(id(j.loaded), []).append(j)
        for jobs in groups.values():
            self._run_batch(jobs[0].loaded, jobs)

    def _run_batch(self, model: Loaded, live: list[Job]) -> None:
        start = time.monotonic()
        try:
            if staged(model.model):
                results: list[Any] = model.model.run_prepared([j.item for j in live])
            else:
                results = [[a for a in found if (a.score or 0.0) >= j.min_score]
                           for j, found in zip(live, model.model.predict_batch(
                               [j.item for j in live], min_score=0.0), strict=True)]
        except LabelPilotError as e:
            for j in live:
                j.future.set_exception(e)
            return
        except Exception as e:
            log.exception("model %s version %s failed on a batch", self.name, model.version)
            self.metrics.errors.labels(self.name, "model_failed").inc(len(live))
            err = LabelPilotError(f"model {self.name} failed on this batch "
                                  f"({type(e).__name__})", hint="retry; if it persists, "
                                  "tell the administrator (the server's log has the cause)")
            err.http_status = 500
            for j in live:
                j.future.set_exception(err)
            return
        took = time.monotonic() - start
        self.batches += 1
        self.metrics.inference.labels(self.name).observe(took)
        self.metrics.batch_size.labels(self.name).observe(len(live))
        for j, result in zip(live, results, strict=True):
            self.metrics.queue_wait.labels(self.name).observe(start - j.arrived)
            timing = {"queue_ms": round((start - j.arrived) * 1000, 2),
                      "batch_ms": round(took * 1000, 2), "batch_size": len(live)}
            j.future.set_result((model, result, timing))
