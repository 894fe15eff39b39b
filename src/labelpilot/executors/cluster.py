"""The Ray executor: Ray Core actors, one CPU (and `gpus_per_worker` GPUs) each, each
loading the job's model once and running images sent by reference. Ray restarts an actor
whose process dies and retries the calls it had not answered (`max_restarts`,
`max_task_retries`), so a lost worker costs its in-flight images' time, not the job.
Results are taken in submission order, a few images ahead per actor."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Generator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelpilot.errors import LabelPilotError
from labelpilot.executors.locations import S3, S3Blobs
from labelpilot.executors.work import ImageRef, Work, Worker
from labelpilot.extras import require_ray
from labelpilot.store.blobs import BlobStore

if TYPE_CHECKING:
    from labelpilot.executors.spec import ExecutorSpec

AHEAD_PER_WORKER = 2  # images queued at each actor: one running, one ready
PUSH_AHEAD = 512  # images sent to an object store at a time, before they are asked for
_CONNECT = threading.Lock()
_connected: list[str | None] = []  # the address this process is connected to, if it is


class _Fatal:
    """An error that fails the job (the model cannot load), carried back as a value."""

    def __init__(self, message: str, hint: str | None) -> None:
        self.message, self.hint = message, hint


class RemoteWorker:
    """The actor's class (made a Ray actor in `RayExecutor`)."""

    def __init__(self, work: Work) -> None:
        self.worker = Worker(work)

    def run(self, ref: ImageRef) -> Any:
        try:
            return self.worker.run(ref)
        except LabelPilotError as e:
            return _Fatal(e.message, e.hint)

    def pid(self) -> int:
        return os.getpid()


def connect(address: str | None, *, num_cpus: int | None = None) -> Any:
    """Ray, connected to the cluster at `address` (None: start one in this process unless
    RAY_ADDRESS names one). A process stays connected; another address reconnects."""
    ray = require_ray()
    with _CONNECT:
        if ray.is_initialized():
            if _connected == [address]:
                return ray
            ray.shutdown()
        _connected.clear()
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     num_cpus=num_cpus if address is None else None,
                     ignore_reinit_error=True)
        except ConnectionError as e:
            raise LabelPilotError(f"cannot reach the Ray cluster at {address}: {e}",
                                  hint="start it (`ray start --head`) or check "
                                       "--ray-address") from None
        _connected.append(address)
    return ray


class RayExecutor:
    def __init__(self, spec: ExecutorSpec) -> None:
        self.spec = spec
        self.ray = connect(spec.address, num_cpus=spec.workers)
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        self.workers = spec.workers or max(1, cpus)
        if self.workers > cpus:
            raise LabelPilotError(f"the Ray cluster has {cpus} CPU(s); {self.workers} "
                                  "workers need one each",
                                  hint=f"use --workers {cpus} or fewer, or add nodes")
        self.actors: list[Any] = []
        self.sent = 0  # images sent to the object store the workers read from

    def map(self, work: Work, refs: list[ImageRef]) -> Generator[tuple[ImageRef, Any], None, None]:
        ray = self.ray
        store: S3Blobs | None = None
        source = BlobStore(Path(work.blobs))  # the workspace's folder, which a store mirrors
        if self.spec.blobs:  # the workers read images elsewhere
            if self.spec.blobs.startswith(S3):
                store = S3Blobs(self.spec.blobs, self.spec.s3_endpoint)
            work = replace(work, blobs=self.spec.blobs, blob_endpoint=self.spec.s3_endpoint)
        actor = ray.remote(RemoteWorker).options(
            num_cpus=1, num_gpus=self.spec.gpus_per_worker, max_restarts=-1,
            max_task_retries=-1)
        n = min(self.workers, max(1, len(refs)))
        self.actors = [actor.remote(work) for _ in range(n)]
        pending: deque[tuple[ImageRef, Any]] = deque()
        try:
            for k, ref in enumerate(refs):
                if store is not None and k % PUSH_AHEAD == 0:  # what the next ones need
                    self.sent += store.push(source, refs[k:k + PUSH_AHEAD])
                pending.append((ref, self.actors[k % n].run.remote(ref)))
                if len(pending) >= n * AHEAD_PER_WORKER:
                    yield self._take(pending)
            while pending:
                yield self._take(pending)
        finally:
            for a in self.actors:
                ray.kill(a)
            self.actors = []

    def _take(self, pending: deque[tuple[ImageRef, Any]]) -> tuple[ImageRef, Any]:
        ref, obj = pending.popleft()
        result = self.ray.get(obj)
        if isinstance(result, _Fatal):
            raise LabelPilotError(result.message, hint=result.hint)
        return ref, result

    def worker_pids(self) -> list[int]:
        """The processes of the actors of the running `map` (for tests that kill one)."""
        return list(self.ray.get([a.pid.remote() for a in self.actors]))
