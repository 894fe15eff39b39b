"""The kind -> handler table. Only the shells (cli, server) import it: they hand it to the
engine (`run_job`, `JobRunner`) and submit through it, so an unknown kind is refused
before it is queued."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labelpilot.jobs import engine
from labelpilot.jobs.autolabel import run_autolabel
from labelpilot.jobs.export import run_export
from labelpilot.jobs.imports import run_import
from labelpilot.jobs.optimize import run_optimize
from labelpilot.jobs.segment_everything import run_segment_everything
from labelpilot.jobs.select import run_select
from labelpilot.jobs.train import run_detect_training, run_training

if TYPE_CHECKING:
    from sqlalchemy import Connection

HANDLERS: dict[str, engine.Handler] = {
    "autolabel": run_autolabel,
    "segment-everything": run_segment_everything,
    "export": run_export,
    "import": run_import,
    "train-ocr-rec": run_training,
    "train-detect": run_detect_training,
    "optimize": run_optimize,
    "select": run_select,
}


def submit(conn: Connection, *, kind: str, params: dict[str, Any], user: str | None
           ) -> engine.JobInfo:
    """Queue a job of one of the kinds in HANDLERS."""
    return engine.submit(conn, kind=kind, params=params, user=user, known=HANDLERS)
