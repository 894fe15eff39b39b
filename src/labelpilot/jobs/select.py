"""The `select` job: active learning's selection (see `labelpilot.active.select`) with
progress and cancel. Re-run after an interruption, it reuses the scores and embeddings
already stored and computes the rest."""

from __future__ import annotations

from typing import Any

from labelpilot.active.select import SelectParams, select_images
from labelpilot.jobs.engine import JobContext


def run_select(ctx: JobContext) -> dict[str, Any]:
    def progress(done: int, total: int) -> None:
        ctx.check_cancel()
        ctx.report(done, total)

    return select_images(ctx.ws, SelectParams(**ctx.params), progress=progress)
