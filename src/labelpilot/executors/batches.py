"""Results gathered for the one process that writes them: written a few at a time, in
one transaction each, so that a fast executor is not held back by a round trip per
image and a slow one does not hold finished results back for long."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batches(Generic[T]):
    """`write` gets the items added `size` at a time, or fewer once the oldest of them
    has waited `wait_s` (checked as each item arrives); `flush` writes what waits."""

    def __init__(self, write: Callable[[list[T]], None], *, size: int = 16,
                 wait_s: float = 0.25) -> None:
        self.write, self.size, self.wait_s = write, size, wait_s
        self._pending: list[T] = []
        self._since = 0.0

    def add(self, item: T) -> None:
        if not self._pending:
            self._since = time.monotonic()
        self._pending.append(item)
        if len(self._pending) >= self.size or time.monotonic() - self._since >= self.wait_s:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            self.write(pending)
