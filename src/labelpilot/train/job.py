"""The training jobs (`train-ocr-rec`, `train-detect`): one run at a time per workspace,
resumable."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from typing import Any

from sqlalchemy import select

from labelpilot.errors import LabelPilotError
from labelpilot.jobs import Cancelled, JobContext, jobs_t, register_job
from labelpilot.train import budget_progress


def ensure_no_other_training(conn: Any, job_id: int | None = None) -> None:
    q = select(jobs_t.c.id).where(jobs_t.c.kind.in_(["train-ocr-rec", "train-detect"]),
                                  jobs_t.c.status.in_(["queued", "running"]))
    if job_id is not None:
        q = q.where(jobs_t.c.id != job_id)
    other = conn.execute(q).scalar()
    if other is not None:
        raise LabelPilotError(f"training job {other} is already queued or running on this "
                              "workspace", hint="wait for it, or cancel it first")


@register_job("train-ocr-rec")
def run_training(ctx: JobContext) -> dict[str, Any]:
    from labelpilot.train.ocr_rec import TrainConfig, Trainer

    p = dict(ctx.params)
    resume = bool(p.pop("resume", False))
    cfg = TrainConfig(**p)
    progress = budget_progress(cfg.minutes, ctx.report)

    trainer = Trainer(ctx.ws, cfg, run_dir=ctx.ws.models_dir / ".runs" / f"job-{ctx.job.id}",
                      progress=progress, cancelled=ctx.cancel_requested)
    result = trainer.run(resume=resume or ctx.done > 0)
    if ctx.cancel_requested():
        raise Cancelled()
    out = asdict(result)
    out["history"] = out["history"][-200:]
    return out


@register_job("train-detect")
def run_detect_training(ctx: JobContext) -> dict[str, Any]:
    """Custom auto-label as a job; a run that was interrupted (the server stopped) goes on
    from its last checkpoint."""
    from labelpilot.train.detect import DetectTrainConfig, DetectTrainer

    p = dict(ctx.params)
    cfg = DetectTrainConfig(init=p.get("init", "pretrained"), minutes=p.get("minutes"),
                            epochs=p.get("epochs"), name=p.get("name") or "custom-detector")
    progress = budget_progress(cfg.minutes, ctx.report)

    warnings: list[str] = []
    trainer = DetectTrainer(ctx.ws, cfg, progress=progress, cancelled=ctx.cancel_requested,
                            warn=warnings.append,
                            run_dir=ctx.ws.models_dir / ".runs" / f"job-{ctx.job.id}")
    result = trainer.run(resume=bool(p.get("resume")) or ctx.done > 0)
    if ctx.cancel_requested():
        raise Cancelled()
    if trainer.run_dir is not None:  # the model is registered: its checkpoint is not needed
        shutil.rmtree(trainer.run_dir, ignore_errors=True)
    out = asdict(result)
    out["history"] = out["history"][-200:]
    out["warnings"] = warnings
    out["model"] = result.name
    return out
