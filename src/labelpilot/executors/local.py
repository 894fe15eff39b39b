"""The local executor: two images in flight, one inference thread each (one ONNX thread
per image runs more images per second than two threads on one image)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from labelpilot.executors.work import ImageRef, Work, Worker

T = TypeVar("T")


class LocalExecutor:
    def __init__(self, threads: int = 2) -> None:
        self.threads = threads

    def map(self, work: Work, refs: list[ImageRef]) -> Generator[tuple[ImageRef, Any], None, None]:
        worker = Worker(work)
        with ThreadPoolExecutor(self.threads) as pool:
            for ref, future in windowed(pool, worker.run, refs, ahead=self.threads + 1):
                yield ref, future.result()


def windowed(pool: ThreadPoolExecutor, fn: Callable[[T], Any], items: list[T], ahead: int
             ) -> Iterator[tuple[T, Future[Any]]]:
    """(item, future) in order, keeping `ahead` more submitted than consumed."""
    pending: deque[tuple[T, Future[Any]]] = deque()
    for item in items:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) > ahead:
            yield pending.popleft()
    while pending:
        yield pending.popleft()
