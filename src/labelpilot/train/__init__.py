"""Fine-tuning: the PyTorch side only (the `[train]` extra, imported lazily through
`labelpilot.extras`). Trainers read the store and write models; jobs run them."""

from __future__ import annotations

from collections.abc import Callable


class TrainingCancelled(Exception):
    """A trainer saw its `cancelled` callback say yes: it stops at once, between two
    steps, and registers nothing (its last checkpoint stays in the run folder)."""


def budget_progress(minutes: float | None, report: Callable[[int, int], None]
                    ) -> Callable[[dict[str, float]], None]:
    """A trainer's progress callback that reports (done, total): seconds of the time
    budget, or steps when training by epochs (no budget)."""
    budget = int((minutes or 0) * 60)

    def on_point(point: dict[str, float]) -> None:
        if budget:
            report(min(int(point["seconds"]), budget), budget)
        else:
            report(int(point["step"]), int(point["step"]))

    return on_point
