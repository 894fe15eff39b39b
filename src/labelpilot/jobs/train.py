"""The training jobs (`train-ocr-rec`, `train-detect`): one run at a time per workspace,
resumable."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelpilot.errors import LabelPilotError
from labelpilot.jobs.engine import Cancelled, JobContext, submit, unfinished_job_ids
from labelpilot.train import budget_progress

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from labelpilot.workspace import Workspace

TRAINING_KINDS = {"ocr-rec": "train-ocr-rec", "detect": "train-detect"}


def ensure_no_other_training(conn: Connection, job_id: int | None = None) -> None:
    """One training at a time per workspace (both kinds share the machine)."""
    others = unfinished_job_ids(conn, kinds=TRAINING_KINDS.values(), exclude=job_id)
    if others:
        other = others[0]
        raise LabelPilotError(f"training job {other} is already queued or running on this "
                              "workspace", hint="wait for it, or cancel it first")


def training_readiness(ws: Workspace, task: str) -> str | None:
    """Why training `task` cannot start now (nothing to learn from), or None: read from
    counts, before a job is queued, so the reason shows next to the button."""
    from labelpilot.store import repo
    from labelpilot.train.ocr_rec import MIN_VAL

    with ws.engine.connect() as conn:
        regions, lines = repo.confirmed_counts(conn, "train")
        _, val_lines = repo.confirmed_counts(conn, "val")
    if task == "detect" and regions == 0:
        return ("the train split has no accepted boxes to learn from: accept reviewed "
                "images' labels and put them in the train split")
    if task == "ocr-rec":
        if lines == 0:
            return ("the train split has no accepted text lines to learn from: accept "
                    "reviewed lines and put their images in the train split")
        need = 2 * MIN_VAL if not val_lines else 1
        if lines < need:
            return (f"the train split has {lines} accepted text lines; at least {need} are "
                    "needed (some are held out to validate when there is no val split)")
    return None


# Boxes of a class under which a detector is not expected to learn it well (the issue's
# "20-50 images" of a new class hold a few dozen boxes).
FEW_BOXES = 10


def training_warnings(ws: Workspace, task: str) -> list[str]:
    """What to know before training `task` (it can still start): the classes of the train
    split with too few boxes to learn them well, each with its count."""
    from labelpilot.store import repo

    if task != "detect":
        return []
    with ws.engine.connect() as conn:
        counts = repo.confirmed_regions_by_label(conn, "train")
    return [f"{name}: {n} box{'es' if n != 1 else ''} in the train split; {FEW_BOXES} or more "
            "of each class are needed to learn it well (label more, or merge the class)"
            for name, n in sorted(counts.items()) if 0 < n < FEW_BOXES]


def plan_training(*, task: str, init: str = "pretrained", epochs: int | None = None,
                  minutes: float | None = None, name: str | None = None,
                  base: str | None = None, tile: int | str | None = None,
                  overlap: float = 0.2
                  ) -> tuple[str, dict[str, Any]]:
    """The job (kind, params) that trains `task`, with the defaults the CLI and the API
    share: the recognizer trains 10 epochs, a detector 5 minutes from yolox-nano, unless
    told otherwise."""
    kind = TRAINING_KINDS.get(task)
    if kind is None:
        raise LabelPilotError(f"task {task!r} cannot be trained",
                              hint=f"use {' or '.join(TRAINING_KINDS)}")
    if init not in ("pretrained", "scratch"):
        raise LabelPilotError(f"init must be pretrained or scratch, not {init!r}")
    if task == "detect":
        # several bases ("a,b"): each is fine-tuned, the best on held-out images kept
        bases = _bases(base)
        params = {"init": init, "epochs": epochs, "minutes": minutes or (None if epochs else 5.0),
                  "name": name or f"detector-{init}", "base": ",".join(bases)}
        if tile is not None:
            from labelpilot.models.detect import Tiling

            if tile != "auto":
                try:
                    tile = int(tile)
                except ValueError:
                    raise LabelPilotError(f"--tile is a size in pixels or auto, not {tile!r}"
                                          ) from None
            # a tile size and overlap that make sense
            Tiling(64 if tile == "auto" else int(tile), float(overlap))
            params.update(tile=tile, overlap=float(overlap))
        return kind, params
    if tile is not None:
        raise LabelPilotError("--tile is for detectors (--task detect)")
    if base is not None and "," in base:
        raise LabelPilotError("the recognizer starts from one OCR model (--base NAME)")
    params = {"init": init, "epochs": epochs or (None if minutes else 10), "minutes": minutes,
              "name": name}
    if base is not None:
        params["base"] = base
    return kind, params


def _bases(text: str | None) -> list[str]:
    """The base models named in `--base` ("a,b"; none: yolox-nano), each once."""
    return list(dict.fromkeys(b.strip() for b in (text or "").split(",") if b.strip())) \
        or ["yolox-nano"]


def _of_bases(minutes: float | None, n: int, report: Callable[[int, int], None]
              ) -> Callable[[int, dict[str, float]], None]:
    """Progress of `n` trainings in turn, each with the whole budget: (done, total) over
    all of them (seconds, or steps when training by epochs)."""
    budget = int((minutes or 0) * 60)
    steps: dict[int, int] = {}

    def on_point(k: int, point: dict[str, float]) -> None:
        if budget:
            report(k * budget + min(int(point["seconds"]), budget), n * budget)
        else:
            steps[k] = int(point["step"])
            report(sum(steps.values()), sum(steps.values()))

    return on_point


@contextlib.contextmanager
def _stops_when_cancelled(run_dir: Path) -> Iterator[None]:
    """A cancelled run ends the job as cancelled, registers nothing and leaves no
    checkpoint behind (a cancelled job is not resumed)."""
    from labelpilot.train import TrainingCancelled

    try:
        yield
    except TrainingCancelled:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise Cancelled() from None


def _rescore(ctx: JobContext, model: str) -> int | None:
    """Queue the last active-learning selection again when it scored with the model this
    run made a new version of (its scores were the old version's): the job's id."""
    from labelpilot.active.select import rescoring
    from labelpilot.jobs.promote import last_selection

    params = rescoring(ctx.ws, last_selection(ctx.ws), model)
    if params is None:
        return None
    with ctx.ws.transaction() as conn:
        job = submit(conn, kind="select", params=params.public(), user=ctx.job.created_by,
                     known=("select",))
    return job.id


def _judge(ctx: JobContext, model: str, loop: dict[str, Any]) -> dict[str, Any]:
    """A closed-loop round's verdict (see jobs.loop); the model stays registered whatever
    it says, and an evaluation that fails only keeps it from being promoted."""
    from labelpilot.jobs.promote import judge

    try:
        return judge(ctx.ws, model, loop)
    except LabelPilotError as e:
        return {"round": loop.get("round"), "model": model, "promoted": False,
                "reason": f"not compared: {e.message}"}


def run_training(ctx: JobContext) -> dict[str, Any]:
    from labelpilot.train.ocr_rec import TrainConfig, Trainer

    p = dict(ctx.params)
    resume = bool(p.pop("resume", False))
    loop = p.pop("loop", None)
    cfg = TrainConfig(**p)
    progress = budget_progress(cfg.minutes, ctx.report)

    run_dir = ctx.ws.models_dir / ".runs" / f"job-{ctx.job.id}"
    trainer = Trainer(ctx.ws, cfg, run_dir=run_dir, progress=progress,
                      cancelled=ctx.cancel_requested)
    with _stops_when_cancelled(run_dir):
        result = trainer.run(resume=resume or ctx.done > 0)
    out = asdict(result)
    out["history"] = out["history"][-200:]
    out["rescoring_job"] = _rescore(ctx, out["model"])
    if loop:
        out["loop"] = _judge(ctx, out["model"], loop)
    return out


def run_detect_training(ctx: JobContext) -> dict[str, Any]:
    """Custom auto-label as a job; a run that was interrupted (the server stopped) goes on
    from its last checkpoint."""
    from labelpilot.train.detect import DetectTrainConfig, DetectTrainer, train_bases

    p = dict(ctx.params)
    bases = _bases(p.get("base"))
    cfg = DetectTrainConfig(init=p.get("init", "pretrained"), minutes=p.get("minutes"),
                            epochs=p.get("epochs"), name=p.get("name") or "custom-detector",
                            base=bases[0], tile=p.get("tile"),
                            overlap=float(p.get("overlap", 0.2)))
    progress = budget_progress(cfg.minutes, ctx.report)

    warnings: list[str] = training_warnings(ctx.ws, "detect")

    def warn(message: str) -> None:  # each base says the same things about the data
        if message not in warnings:
            warnings.append(message)

    run_dir = ctx.ws.models_dir / ".runs" / f"job-{ctx.job.id}"
    resume = bool(p.get("resume")) or ctx.done > 0
    with _stops_when_cancelled(run_dir):
        if len(bases) > 1:
            result = train_bases(ctx.ws, cfg, bases, run_dir, progress=_of_bases(
                cfg.minutes, len(bases), ctx.report), cancelled=ctx.cancel_requested,
                warn=warn, resume=resume)
        else:
            result = DetectTrainer(ctx.ws, cfg, progress=progress, cancelled=ctx.cancel_requested,
                                   warn=warn, run_dir=run_dir).run(resume=resume)
    # the model is registered: its checkpoints are not needed
    shutil.rmtree(run_dir, ignore_errors=True)
    out = asdict(result)
    out["history"] = out["history"][-200:]
    out["warnings"] = warnings
    out["model"] = result.name
    out["rescoring_job"] = _rescore(ctx, result.name)
    if p.get("loop"):
        out["loop"] = _judge(ctx, result.name, p["loop"])
    return out
